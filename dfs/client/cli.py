"""``dfs-client``: the command line (click). The only module that imports click.

Each command wraps one ``asyncio.run`` over the ``Client`` library. Output is one line of
text per result, or with ``--json`` one JSON object per line on stdout and nothing else there.
Errors print ``Error: <message>`` on stderr and exit with the error class's code:

| exit | meaning                                         |
|------|-------------------------------------------------|
| 0    | success                                         |
| 1    | unexpected error                                |
| 2    | invalid request or usage                        |
| 3    | authentication failed                           |
| 4    | not found                                       |
| 5    | conflict (e.g. upload not complete)             |
| 6    | integrity error (bytes did not match their hash)|
| 7    | cluster unavailable / replication failed / full |
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tomllib
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import click

from dfs import __version__
from dfs.chunking import DEFAULT_PROFILE, ChunkerProfile
from dfs.client.transfer import DEFAULT_CONCURRENCY, Client
from dfs.errors import DfsError

T = TypeVar("T")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except DfsError as exc:
        click.echo(f"Error: {exc.message}", err=True)
        sys.exit(exc.exit_code)
    except OSError as exc:
        click.echo(f"Error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), err=True)
        sys.exit(1)


def _emit(as_json: bool, obj: dict[str, Any], text: str) -> None:
    click.echo(json.dumps(obj, sort_keys=True) if as_json else text)


DEFAULT_CONFIG = Path("~/.config/dfs/config.toml")


def resolve_token(token: str | None) -> str | None:
    """--token, then DFS_TOKEN (click fills both into ``token``), then the config file
    (DFS_CONFIG or ~/.config/dfs/config.toml, key ``token``)."""
    if token:
        return token
    path = Path(os.environ.get("DFS_CONFIG", str(DEFAULT_CONFIG))).expanduser()
    try:
        with open(path, "rb") as f:
            value = tomllib.load(f).get("token")
    except FileNotFoundError:
        return None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise click.UsageError(f"cannot read config file {path}: {exc}") from None
    return str(value) if value else None


token_option = click.option(
    "--token",
    envvar="DFS_TOKEN",
    default=None,
    show_envvar=True,
    help="API token (else DFS_TOKEN, else `token` in ~/.config/dfs/config.toml).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
concurrency_option = click.option(
    "--concurrency",
    default=DEFAULT_CONCURRENCY,
    show_default=True,
    type=click.IntRange(1, 256),
    help="Chunks in flight at once.",
)
proxy_option = click.option(
    "--proxy", is_flag=True, help="Send and fetch chunks through the API (nodes unreachable)."
)


@click.group()
@click.version_option(__version__, prog_name="dfs-client")
def cli() -> None:
    """dfs: a chunked, content-addressed, replicated file store."""


@cli.command()
@json_option
@token_option
@click.option(
    "--chunk-size",
    type=int,
    default=None,
    help="Fixed-size chunks of N bytes instead of content-defined (FastCDC) chunks.",
)
@concurrency_option
@proxy_option
@click.argument("api_url")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
def upload(
    as_json: bool,
    token: str | None,
    chunk_size: int | None,
    concurrency: int,
    proxy: bool,
    api_url: str,
    files: tuple[Path, ...],
) -> None:
    """Upload FILES; prints each new file id."""
    try:
        profile = (
            ChunkerProfile.fixed(chunk_size)
            if chunk_size
            else ChunkerProfile.parse(DEFAULT_PROFILE)
        )
    except DfsError as exc:
        raise click.BadParameter(exc.message, param_hint="--chunk-size") from None

    async def go() -> None:
        async with Client(
            api_url, token=resolve_token(token), concurrency=concurrency, proxy=proxy
        ) as client:
            for path in files:
                r = await client.upload(path, profile=profile)
                _emit(as_json, asdict(r), r.file_id)

    _run(go())


@cli.command()
@json_option
@token_option
@concurrency_option
@proxy_option
@click.argument("api_url")
@click.argument("file_id")
@click.argument("out", type=click.Path(path_type=Path))
def download(
    as_json: bool,
    token: str | None,
    concurrency: int,
    proxy: bool,
    api_url: str,
    file_id: str,
    out: Path,
) -> None:
    """Download FILE_ID to OUT (a file path, or a directory to keep the stored name)."""

    async def go() -> None:
        async with Client(
            api_url, token=resolve_token(token), concurrency=concurrency, proxy=proxy
        ) as client:
            r = await client.download(file_id, out)
            _emit(as_json, asdict(r), r.path)

    _run(go())


def _simple(
    fetch: Callable[[Client], Awaitable[dict[str, Any]]],
    api_url: str,
    token: str | None,
    as_json: bool,
    render: Callable[[dict[str, Any]], str],
) -> None:
    async def go() -> dict[str, Any]:
        async with Client(api_url, token=resolve_token(token)) as client:
            return await fetch(client)

    body = _run(go())
    _emit(as_json, body, render(body))


def _lines(body: dict[str, Any]) -> str:
    return "\n".join(f"{k}: {v}" for k, v in sorted(body.items()))


@cli.command()
@json_option
@token_option
@click.argument("api_url")
def stats(as_json: bool, token: str | None, api_url: str) -> None:
    """Dedup and cluster statistics (admin)."""
    _simple(lambda c: c.stats(), api_url, token, as_json, _lines)


@cli.command()
@json_option
@token_option
@click.argument("api_url")
def nodes(as_json: bool, token: str | None, api_url: str) -> None:
    """Storage nodes and their liveness (admin)."""

    def render(body: dict[str, Any]) -> str:
        lines = [f"{body['live']} live, replication factor {body['replication_factor']}"]
        for n in body["nodes"]:
            lines.append(
                f"{n['node_id']}\t{n['url']}\t{n['status']}\t"
                f"{n['used_bytes']}/{n['capacity_bytes']} bytes"
            )
        return "\n".join(lines)

    _simple(lambda c: c.list_nodes(), api_url, token, as_json, render)


@cli.group()
def admin() -> None:
    """Tenants and tokens (needs an admin token)."""


@admin.command("create-tenant")
@json_option
@token_option
@click.argument("api_url")
@click.argument("tenant")
def create_tenant(as_json: bool, token: str | None, api_url: str, tenant: str) -> None:
    """Create TENANT."""
    _simple(lambda c: c.api.create_tenant(tenant), api_url, token, as_json, lambda b: b["tenant"])


@admin.command("create-token")
@json_option
@token_option
@click.option("--role", type=click.Choice(["user", "admin"]), default="user", show_default=True)
@click.option("--label", default="", help="A note to recognise the token by.")
@click.argument("api_url")
@click.argument("tenant")
def create_token(
    as_json: bool, token: str | None, role: str, label: str, api_url: str, tenant: str
) -> None:
    """Create a token for TENANT and print it (it is shown only this once)."""
    _simple(
        lambda c: c.api.create_token(tenant, role, label),
        api_url,
        token,
        as_json,
        lambda b: b["token"],
    )


@admin.command("tenants")
@json_option
@token_option
@click.argument("api_url")
def tenants(as_json: bool, token: str | None, api_url: str) -> None:
    """List tenants."""
    _simple(
        lambda c: c.api.list_tenants(), api_url, token, as_json, lambda b: "\n".join(b["tenants"])
    )


def main(argv: list[str] | None = None) -> int:
    cli.main(args=argv, prog_name="dfs-client")
    return 0
