"""``dfs-client admin ...`` (tenants, tokens: list, create, revoke) and ``dfs-client whoami``.

Apart from ``dfs.client.cli`` to keep each command module short; ``dfs.client.cli`` adds
these commands to the ``dfs-client`` group. A token is named by its id (the first 16 hex
digits of its SHA-256, see ``dfs.auth.token_id``), never by its text."""

from __future__ import annotations

import click

from dfs.client import cli_output
from dfs.client.cli_base import UrlCommand, UrlGroup, json_option, simple, target_options
from dfs.client.profiles import Target


@click.group(cls=UrlGroup)
def admin() -> None:
    """Tenants and tokens (needs an admin token).

    \b
    A revoked token is refused by every API process within TOKEN_CACHE_SECONDS (10 s).

    \b
    A tenant for yourself, kept as the default profile:
      dfs-client admin create-tenant URL me
      dfs-client config set me URL --token "$(dfs-client admin create-token URL me)"
    """


@admin.command("create-tenant")
@json_option
@target_options
@click.argument("tenant")
def create_tenant(as_json: bool, target: Target, tenant: str) -> None:
    """Create TENANT."""
    simple(lambda c: c.api.create_tenant(tenant), target, as_json, lambda b: b["tenant"])


@admin.command("create-token")
@json_option
@target_options
@click.option("--role", type=click.Choice(["user", "admin"]), default="user", show_default=True)
@click.option("--label", default="", help="A note to recognise the token by.")
@click.argument("tenant")
def create_token(as_json: bool, target: Target, role: str, label: str, tenant: str) -> None:
    """Create a token for TENANT and print it (it is shown only this once)."""
    simple(lambda c: c.api.create_token(tenant, role, label), target, as_json, lambda b: b["token"])


@admin.command("tenants")
@json_option
@target_options
def tenants(as_json: bool, target: Target) -> None:
    """List tenants."""
    simple(lambda c: c.api.list_tenants(), target, as_json, lambda b: "\n".join(b["tenants"]))


@admin.command("tokens")
@json_option
@target_options
@click.argument("tenant", required=False)
def tokens(as_json: bool, target: Target, tenant: str | None) -> None:
    """List tokens (of TENANT, else of every tenant): id, tenant, role, label; never the text."""
    simple(lambda c: c.api.list_tokens(tenant), target, as_json, cli_output.tokens_text)


@admin.command("revoke")
@json_option
@target_options
@click.argument("token_id")
def revoke(as_json: bool, target: Target, token_id: str) -> None:
    """Revoke the token TOKEN_ID (its id from `admin tokens`); every API process refuses it
    within the token cache's lifetime (10 s)."""
    simple(lambda c: c.api.revoke_token(token_id), target, as_json, lambda b: b["token_id"])


@click.command(cls=UrlCommand)
@json_option
@target_options
def whoami(as_json: bool, target: Target) -> None:
    """The tenant, role and token id (and label) of the token in use."""
    simple(lambda c: c.api.whoami(), target, as_json, cli_output.whoami_text)
