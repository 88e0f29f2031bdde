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
from dfs.chunking import ChunkerProfile
from dfs.client.library import DEFAULT_CONCURRENCY, Client
from dfs.client.local_files import local_path, walk
from dfs.client.progress import Progress
from dfs.client.verify import VerifyReport
from dfs.client.verify import verify as verify_file
from dfs.errors import DfsError, IntegrityError

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


quiet_option = click.option(
    "--quiet", "-q", is_flag=True, help="No progress bar (bars show only on a terminal anyway)."
)


@cli.command()
@json_option
@token_option
@quiet_option
@click.option(
    "--chunk-size",
    type=int,
    default=None,
    help="Fixed-size chunks of N bytes instead of content-defined (FastCDC) chunks.",
)
@concurrency_option
@proxy_option
@click.option("--prefix", default="", help="Prepend this to every stored name (e.g. 'backup/').")
@click.option("--no-resume", is_flag=True, help="Do not journal receipts or resume an earlier run.")
@click.argument("api_url")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
def upload(
    as_json: bool,
    token: str | None,
    quiet: bool,
    chunk_size: int | None,
    concurrency: int,
    proxy: bool,
    prefix: str,
    no_resume: bool,
    api_url: str,
    paths: tuple[Path, ...],
) -> None:
    """Upload files and directories (recursively; a directory's files are named by their path
    relative to it). Prints each new file id, or with --json one object per file.

    Files up to 8 MiB go in batches (one planning and one commit request per batch); an
    interrupted upload of a bigger file resumes when run again (journal in ~/.cache/dfs).
    """
    try:
        profile = ChunkerProfile.fixed(chunk_size) if chunk_size else ChunkerProfile.default()
    except DfsError as exc:
        raise click.BadParameter(exc.message, param_hint="--chunk-size") from None
    items = list(walk(paths, prefix))

    async def go() -> None:
        async with Client(
            api_url,
            token=resolve_token(token),
            concurrency=concurrency,
            proxy=proxy,
            resume=not no_resume,
        ) as client:
            total = sum(it.size for it in items)
            with Progress.for_terminal("upload", total, quiet) as bar:
                results = await client.upload_many(items, profile=profile, progress=bar)
            for r in results:
                _emit(as_json, asdict(r), r.file_id)

    _run(go())


@cli.command()
@json_option
@token_option
@quiet_option
@concurrency_option
@proxy_option
@click.option(
    "--prefix",
    default=None,
    help="Download every file whose name starts with this ('' for all) into OUT, a directory.",
)
@click.option("--no-resume", is_flag=True, help="Do not keep or reuse partial downloads.")
@click.argument("api_url")
@click.argument("file_ids", nargs=-1)
@click.argument("out", type=click.Path(path_type=Path))
def download(
    as_json: bool,
    token: str | None,
    quiet: bool,
    concurrency: int,
    proxy: bool,
    prefix: str | None,
    no_resume: bool,
    api_url: str,
    file_ids: tuple[str, ...],
    out: Path,
) -> None:
    """Download FILE_IDS to OUT (a file path for one id, or a directory to keep the stored
    names), or with --prefix every matching file into the directory OUT. An interrupted
    download resumes from its partial temp file when run again."""
    if prefix is None and not file_ids:
        raise click.UsageError("give FILE_IDS or --prefix")
    if prefix is not None and file_ids:
        raise click.UsageError("give FILE_IDS or --prefix, not both")

    async def go() -> None:
        async with Client(
            api_url,
            token=resolve_token(token),
            concurrency=concurrency,
            proxy=proxy,
            resume=not no_resume,
        ) as client:
            if prefix is None and len(file_ids) == 1:
                plan = await client.api.download_plan(file_ids[0])
                with Progress.for_terminal("download", int(plan["size"]), quiet) as bar:
                    r = await client.download(file_ids[0], out, plan=plan, progress=bar)
                _emit(as_json, asdict(r), r.path)
                return
            if prefix is not None:
                files = await _all_files(client, prefix)
                pairs = [(str(f["file_id"]), local_path(out, str(f["name"]))) for f in files]
                total = sum(int(f["size"]) for f in files)
            else:
                await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
                pairs = [(f, out) for f in file_ids]
                total = None
            with Progress.for_terminal("download", total, quiet) as bar:
                results = await client.download_many(pairs, progress=bar)
            for r in results:
                _emit(as_json, asdict(r), r.path)

    _run(go())


async def _all_files(client: Client, prefix: str) -> list[dict[str, Any]]:
    """Every file of the tenant whose name starts with ``prefix``; the newest per name."""
    by_name: dict[str, dict[str, Any]] = {}
    after: str | None = None
    for _ in range(1_000_000):  # bounded: a page per 1000 files
        page = await client.ls(limit=1000, after=after)
        for f in page["files"]:
            name = str(f["name"])
            newer = name not in by_name or f["created_at"] > by_name[name]["created_at"]
            if name.startswith(prefix) and newer:
                by_name[name] = f
        after = page["next_after"]
        if not after:
            break
    return sorted(by_name.values(), key=lambda f: str(f["name"]))


@cli.command("ls")
@json_option
@token_option
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--after", default=None, help="The last file id of the previous page.")
@click.option("--all", "all_pages", is_flag=True, help="Every page, not just one.")
@click.argument("api_url")
def ls_cmd(
    as_json: bool,
    token: str | None,
    limit: int,
    after: str | None,
    all_pages: bool,
    api_url: str,
) -> None:
    """List this tenant's files, a page at a time (--all for every page). With --json one
    object per file; the last line of a partial listing is {"next_after": ...}."""

    async def go() -> None:
        cursor = after
        async with Client(api_url, token=resolve_token(token)) as client:
            for _ in range(1_000_000):
                page = await client.ls(limit=limit, after=cursor)
                for f in page["files"]:
                    _emit(
                        as_json, f, f"{f['file_id']}\t{f['size']}\t{f['sha256'][:12]}\t{f['name']}"
                    )
                cursor = page["next_after"]
                if not cursor or not all_pages:
                    break
            if cursor and not all_pages:
                _emit(as_json, {"next_after": cursor}, f"# more: --after {cursor}")

    _run(go())


@cli.command()
@json_option
@token_option
@click.argument("api_url")
@click.argument("file_id")
def stat(as_json: bool, token: str | None, api_url: str, file_id: str) -> None:
    """A file's metadata."""
    _simple(lambda c: c.stat(file_id), api_url, token, as_json, _lines)


@cli.command()
@json_option
@token_option
@click.argument("api_url")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def check(as_json: bool, token: str | None, api_url: str, file: Path) -> None:
    """Does this tenant already store FILE's exact bytes? Sends only its sha256."""

    def render(b: dict[str, Any]) -> str:
        if b["exists"]:
            return f"exists: {b['file']['file_id']} {b['file']['name']}"
        return f"new: {b['sha256']}"

    _simple(lambda c: c.check(file), api_url, token, as_json, render)


@cli.command()
@json_option
@token_option
@concurrency_option
@click.argument("api_url")
@click.argument("file_id")
def verify(as_json: bool, token: str | None, concurrency: int, api_url: str, file_id: str) -> None:
    """Read every copy of every chunk of FILE_ID and check it has REPLICATION_FACTOR healthy
    copies. Exits 6 if not."""

    async def go() -> VerifyReport:
        async with Client(api_url, token=resolve_token(token), concurrency=concurrency) as c:
            return await verify_file(c, file_id)

    report = _run(go())
    text = (
        f"ok: {report.chunks} chunks, each with {report.replication_factor} healthy copies"
        if report.healthy
        else "\n".join(
            f"under-replicated: chunk {b['sha256'][:12]} at {b['offset']}: "
            f"{b['healthy_copies']}/{report.replication_factor} healthy copies"
            for b in report.under_replicated
        )
    )
    _emit(as_json, asdict(report), text)
    if not report.healthy:
        sys.exit(IntegrityError.exit_code)


@cli.command()
@json_option
@token_option
@click.argument("api_url")
@click.argument("file_id")
def url(as_json: bool, token: str | None, api_url: str, file_id: str) -> None:
    """A signed URL that fetches FILE_ID without a token (e.g. with curl) for 15 minutes."""
    _simple(lambda c: c.download_url(file_id), api_url, token, as_json, lambda b: b["download_url"])


@cli.command()
@json_option
@token_option
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--page", default=None, help="The next_page key of the previous page.")
@click.option("--all", "all_pages", is_flag=True, help="Every page, not just one.")
@click.argument("api_url")
def hashes(
    as_json: bool, token: str | None, limit: int, page: str | None, all_pages: bool, api_url: str
) -> None:
    """Chunk ids stored in the cluster, paged (admin)."""

    async def go() -> None:
        cursor = page
        async with Client(api_url, token=resolve_token(token)) as client:
            for _ in range(10_000_000):
                body = await client.hashes(limit=limit, page=cursor)
                if as_json and not all_pages:
                    _emit(True, body, "")
                    return
                for h in body["hashes"]:
                    _emit(as_json, {"sha256": h}, h)
                cursor = body["next_page"]
                if not cursor or not all_pages:
                    break
            if cursor and not all_pages:
                _emit(False, {}, f"# more: --page {cursor}")

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
@click.argument("file_id")
def rm(as_json: bool, token: str | None, api_url: str, file_id: str) -> None:
    """Delete FILE_ID; its chunks' space comes back once the GC grace has passed."""
    _simple(lambda c: c.delete(file_id), api_url, token, as_json, lambda b: str(b["file_id"]))


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
