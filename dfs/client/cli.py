"""``dfs-client``: the command line (click). Only it and its parts ``dfs.client.cli_base``
(shared plumbing) and ``dfs.client.cli_admin`` (admin, whoami) import click.

Each command wraps one ``asyncio.run`` over the ``Client`` library. Output is text for people
(dfs.client.cli_output), or with ``--json`` one JSON object per line on stdout and nothing else.
Where requests go: dfs.client.profiles. Errors: one ``Error: <message>`` line on stderr, exit
with the error class's code (the table: ``dfs-client --help``, docs/cli.md)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from dfs import __version__
from dfs.chunking import ChunkerProfile
from dfs.client import cli_output, profiles
from dfs.client.cli_admin import admin, whoami
from dfs.client.cli_base import (
    CONTEXT,
    INTERRUPTED,
    NOT_STORED,
    Interrupted,
    UrlGroup,
    concurrency_option,
    json_option,
    proxy_option,
    quiet_option,
    target_options,
)
from dfs.client.cli_base import complete_profiles as _complete_profiles
from dfs.client.cli_base import emit as _emit
from dfs.client.cli_base import fail as _fail
from dfs.client.cli_base import load_config as _config
from dfs.client.cli_base import make_client as _client
from dfs.client.cli_base import run as _run
from dfs.client.cli_base import simple as _simple
from dfs.client.library import Client
from dfs.client.local_files import local_path, walk
from dfs.client.profiles import Target
from dfs.client.progress import Progress
from dfs.client.verify import VerifyReport
from dfs.client.verify import verify as verify_file
from dfs.errors import DfsError, IntegrityError


@click.group(cls=UrlGroup, context_settings=CONTEXT, epilog=cli_output.EXIT_CODES)
@click.version_option(__version__, prog_name="dfs-client")
def cli() -> None:
    """dfs: a chunked, content-addressed, replicated file store.

    \b
    Where requests go: a first argument with a scheme or of the form host:port
    is the API URL; otherwise --profile, DFS_API_URL, or the default profile.
    The token: --token, DFS_TOKEN, or the profile's token.

    \b
    Examples:
      dfs-client config set local 127.0.0.1:8080 --token "$DFS_TOKEN"
      dfs-client upload photos/                 # every file, named photos/...
      dfs-client ls --all
      dfs-client download FILE_ID copy.jpg
      dfs-client download --prefix photos/ restored/
      dfs-client check big.iso; echo $?         # 0 stored, 10 not yet
      dfs-client stats http://127.0.0.1:8080    # an explicit URL, admin token

    Shell completion: eval "$(_DFS_CLIENT_COMPLETE=bash_source dfs-client)"
    (zsh_source, fish_source for zsh and fish). Reference: docs/cli.md.
    """


@cli.command()
@json_option
@target_options
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
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
def upload(
    as_json: bool,
    target: Target,
    quiet: bool,
    chunk_size: int | None,
    concurrency: int,
    proxy: bool,
    prefix: str,
    no_resume: bool,
    paths: tuple[Path, ...],
) -> None:
    """Upload files and directories (recursively; a directory's files are named by their path
    relative to it). One file prints its new id; several print ID<TAB>NAME lines; --json one
    object per file.

    Files up to 8 MiB go in batches (one planning and one commit request per batch); an
    interrupted upload of a bigger file resumes when run again (journal in ~/.cache/dfs).

    \b
    Examples:
      dfs-client upload report.pdf
      dfs-client upload --prefix backup/ ~/photos ~/notes.txt
      dfs-client upload 127.0.0.1:8080 report.pdf
    """
    try:
        profile = ChunkerProfile.fixed(chunk_size) if chunk_size else ChunkerProfile.default()
    except DfsError as exc:
        raise click.BadParameter(exc.message, param_hint="--chunk-size") from None
    items = list(walk(paths, prefix))
    one_file = len(items) == 1 and not any(p.is_dir() for p in paths)

    async def go() -> None:
        resume = not no_resume
        async with _client(target, concurrency=concurrency, proxy=proxy, resume=resume) as client:
            total = sum(it.size for it in items)
            with Progress.for_terminal("upload", total, quiet) as bar:
                results = await client.upload_many(items, profile=profile, progress=bar)
            for r in results:
                _emit(as_json, asdict(r), r.file_id if one_file else f"{r.file_id}\t{r.name}")

    _run(go(), resumable=not no_resume)


@cli.command()
@json_option
@target_options
@quiet_option
@concurrency_option
@proxy_option
@click.option(
    "--prefix",
    default=None,
    help="Download every file whose name starts with this ('' for all) into OUT, a directory.",
)
@click.option("--no-resume", is_flag=True, help="Do not keep or reuse partial downloads.")
@click.argument("file_ids", nargs=-1)
@click.argument("out", type=click.Path(path_type=Path))
def download(
    as_json: bool,
    target: Target,
    quiet: bool,
    concurrency: int,
    proxy: bool,
    prefix: str | None,
    no_resume: bool,
    file_ids: tuple[str, ...],
    out: Path,
) -> None:
    """Download FILE_IDS to OUT (a file path for one id, or a directory to keep the stored
    names), or with --prefix every matching file into the directory OUT. An interrupted
    download resumes from its partial temp file when run again.

    \b
    Examples:
      dfs-client download 6f1c...-uuid copy.pdf
      dfs-client download --prefix backup/ restored/
    """
    if prefix is None and not file_ids:
        raise click.UsageError("give FILE_IDS or --prefix")
    if prefix is not None and file_ids:
        raise click.UsageError("give FILE_IDS or --prefix, not both")

    async def go() -> None:
        resume = not no_resume
        async with _client(target, concurrency=concurrency, proxy=proxy, resume=resume) as client:
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

    _run(go(), resumable=not no_resume)


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
@target_options
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--after", default=None, help="The last file id of the previous page.")
@click.option("--all", "all_pages", is_flag=True, help="Every page, not just one.")
def ls_cmd(as_json: bool, target: Target, limit: int, after: str | None, all_pages: bool) -> None:
    """List this tenant's files, a page at a time (--all for every page): id, size, sha256
    prefix, name. With --json one object per file; the last line of a partial listing is
    {"next_after": ...}."""

    async def go() -> None:
        cursor = after
        async with _client(target) as client:
            for _ in range(1_000_000):
                page = await client.ls(limit=limit, after=cursor)
                for f in page["files"]:
                    _emit(as_json, f, cli_output.listing_line(f))
                cursor = page["next_after"]
                if not cursor or not all_pages:
                    break
            if cursor and not all_pages:
                _emit(as_json, {"next_after": cursor}, f"# more: --after {cursor}")

    _run(go())


@cli.command()
@json_option
@target_options
@click.argument("file_id")
def stat(as_json: bool, target: Target, file_id: str) -> None:
    """A file's metadata (--json: raw bytes and epoch seconds)."""
    _simple(lambda c: c.stat(file_id), target, as_json, cli_output.file_text)


@cli.command()
@json_option
@target_options
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def check(as_json: bool, target: Target, file: Path) -> None:
    """Does this tenant already store FILE's exact bytes? Sends only its sha256.
    Exits 0 if it does, 10 if not."""
    body = _simple(lambda c: c.check(file), target, as_json, cli_output.check_text)
    if not body["exists"]:
        sys.exit(NOT_STORED)


@cli.command()
@json_option
@target_options
@concurrency_option
@click.argument("file_id")
def verify(as_json: bool, target: Target, concurrency: int, file_id: str) -> None:
    """Read every copy of every chunk of FILE_ID and check it has REPLICATION_FACTOR healthy
    copies. Exits 6 if not."""

    async def go() -> VerifyReport:
        async with _client(target, concurrency=concurrency) as c:
            return await verify_file(c, file_id)

    report = _run(go())
    rf, under = report.replication_factor, report.under_replicated
    text = cli_output.verify_text(report.healthy, report.chunks, rf, under)
    _emit(as_json, asdict(report), text)
    if not report.healthy:
        sys.exit(IntegrityError.exit_code)


@cli.command()
@json_option
@target_options
@click.argument("file_id")
def url(as_json: bool, target: Target, file_id: str) -> None:
    """A signed URL that fetches FILE_ID without a token (e.g. curl -fo FILE URL) for 15
    minutes."""
    _simple(lambda c: c.download_url(file_id), target, as_json, lambda b: b["download_url"])


@cli.command()
@json_option
@target_options
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--page", default=None, help="The next_page key of the previous page.")
@click.option("--all", "all_pages", is_flag=True, help="Every page, not just one.")
def hashes(as_json: bool, target: Target, limit: int, page: str | None, all_pages: bool) -> None:
    """Chunk ids stored in the cluster, paged (admin)."""

    async def go() -> None:
        cursor = page
        async with _client(target) as client:
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


@cli.command()
@json_option
@target_options
@click.argument("file_id")
def rm(as_json: bool, target: Target, file_id: str) -> None:
    """Delete FILE_ID; its chunks' space comes back once the GC grace has passed."""
    _simple(lambda c: c.delete(file_id), target, as_json, lambda b: str(b["file_id"]))


@cli.command()
@json_option
@target_options
def stats(as_json: bool, target: Target) -> None:
    """Dedup and cluster statistics (admin; --json: raw byte counts)."""
    _simple(lambda c: c.stats(), target, as_json, cli_output.stats_text)


@cli.command()
@json_option
@target_options
def nodes(as_json: bool, target: Target) -> None:
    """Storage nodes, their space and liveness (admin; --json: raw bytes, epoch seconds)."""
    _simple(lambda c: c.list_nodes(), target, as_json, cli_output.nodes_text)


cli.add_command(admin)
cli.add_command(whoami)


@cli.group("config")
def config_group() -> None:
    """Profiles: named API URLs with their tokens, kept (mode 0600) in DFS_CONFIG or
    ~/.config/dfs/config.toml. The first profile set becomes the default.

    \b
    Examples:
      dfs-client config set local 127.0.0.1:8080 --token "$DFS_TOKEN"
      dfs-client config ls
      dfs-client config use prod
      dfs-client --profile prod ls     (or DFS_PROFILE=prod)
    """


def _edit_config(change: Callable[[profiles.Config], object]) -> None:
    config = _config()
    try:
        change(config)
        profiles.save(config)
    except DfsError as exc:
        _fail(exc.message, exc.exit_code)
    except OSError as exc:
        _fail(f"cannot write {profiles.config_path()}: {exc.strerror or exc}", 1)


@config_group.command("set")
@click.option("--token", default=None, help="The token to send with this profile's requests.")
@click.option("--default", "make_default", is_flag=True, help="Make it the default profile.")
@click.argument("name")
@click.argument("api_url")
def config_set(token: str | None, make_default: bool, name: str, api_url: str) -> None:
    """Add or replace profile NAME for API_URL (http(s)://host:port or host:port)."""

    def change(config: profiles.Config) -> None:
        profiles.set_profile(config, name, api_url, token)
        if make_default:
            profiles.use_profile(config, name)

    _edit_config(change)


@config_group.command("use")
@click.argument("name", shell_complete=_complete_profiles)
def config_use(name: str) -> None:
    """Make NAME the default profile."""
    _edit_config(lambda config: profiles.use_profile(config, name))


@config_group.command("rm")
@click.argument("name", shell_complete=_complete_profiles)
def config_rm(name: str) -> None:
    """Remove profile NAME."""
    _edit_config(lambda config: profiles.remove_profile(config, name))


@config_group.command("ls")
@json_option
def config_ls(as_json: bool) -> None:
    """List profiles (* marks the default; tokens are not shown)."""
    config = _config()
    for p in sorted(config.profiles.values(), key=lambda p: p.name):
        default = p.name == config.default
        obj = {"name": p.name, "url": p.url, "token": bool(p.token), "default": default}
        token = "token" if p.token else "no token"
        _emit(as_json, obj, f"{'*' if default else ' '} {p.name}\t{p.url}\t{token}")


def main(argv: Sequence[str] | None = None) -> int:
    """The console script: one ``Error:`` line for usage errors, 130 on Ctrl-C."""
    try:
        code = cli.main(args=argv, prog_name="dfs-client", standalone_mode=False)
    except (Interrupted, click.exceptions.Abort) as exc:
        hint = str(exc) if isinstance(exc, Interrupted) else ""
        click.echo(f"Interrupted{': ' + hint if hint else ''}.", err=True)
        return INTERRUPTED
    except click.UsageError as exc:
        path = exc.ctx.command_path if exc.ctx else "dfs-client"
        click.echo(f"Error: {exc.format_message()} (see: {path} --help)", err=True)
        return exc.exit_code
    except click.ClickException as exc:
        click.echo(f"Error: {exc.format_message()}", err=True)
        return exc.exit_code
    return code if isinstance(code, int) else 0
