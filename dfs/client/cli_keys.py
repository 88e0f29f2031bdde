"""``dfs-client keys create|ls|revoke``: S3 access keys for ``dfs-s3`` (the token's tenant's;
an admin token may name another tenant with ``--tenant``).

``keys create --json URL`` prints ``{"access_key_id", "secret_access_key", ...}``; the secret
is shown only this once (AWS tools take it as ``AWS_SECRET_ACCESS_KEY``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import click

from dfs.client.cli_common import UrlCommand, emit, json_option, make_client, run, target_options
from dfs.client.profiles import Target

if TYPE_CHECKING:  # the library is imported when a command runs (make_client)
    from dfs.client.library import Client


def _call(
    fetch: Callable[[Client], Awaitable[dict[str, Any]]],
    target: Target,
    as_json: bool,
    render: Callable[[dict[str, Any]], str],
) -> None:
    async def go() -> dict[str, Any]:
        async with make_client(target) as client:
            return await fetch(client)

    body = run(go())
    emit(as_json, body, render(body))


@click.group("keys")
def keys() -> None:
    """S3 access keys of your tenant (for dfs-s3 and AWS tools)."""


tenant_option = click.option("--tenant", default=None, help="Another tenant's (admin token).")


@keys.command("create", cls=UrlCommand)
@json_option
@target_options
@tenant_option
@click.option("--label", default="", help="A note to recognise the key by.")
def create(as_json: bool, target: Target, tenant: str | None, label: str) -> None:
    """Create an access key and print its id and secret (the secret is shown only once)."""
    _call(
        lambda c: c.api.create_access_key(label, tenant),
        target,
        as_json,
        lambda b: f"{b['access_key_id']} {b['secret_access_key']}",
    )


@keys.command("ls", cls=UrlCommand)
@json_option
@target_options
@tenant_option
def ls(as_json: bool, target: Target, tenant: str | None) -> None:
    """List access keys (ids and labels, never secrets)."""
    _call(
        lambda c: c.api.list_access_keys(tenant),
        target,
        as_json,
        lambda b: "\n".join(
            f"{k['access_key_id']}  {k['tenant']}  {k['label']}" for k in b["access_keys"]
        ),
    )


@keys.command("revoke", cls=UrlCommand)
@json_option
@target_options
@click.argument("access_key_id")
def revoke(as_json: bool, target: Target, access_key_id: str) -> None:
    """Revoke ACCESS_KEY_ID: every dfs-s3 refuses it within 5 seconds."""
    _call(lambda c: c.api.revoke_access_key(access_key_id), target, as_json, lambda b: b["revoked"])
