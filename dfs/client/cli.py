"""``dfs-client``: the command line (click), assembled from its commands.

The shared plumbing (running a command, errors, options, where requests go) is in
dfs.client.cli_common, the transfer commands (``upload``, ``download``) in
dfs.client.cli_transfer; the other commands are here. Output is text for people
(dfs.client.cli_output), or with ``--json`` one JSON object per line on stdout and nothing else.
Errors: one ``Error: <message>`` line on stderr, exit with the error class's code (the table:
``dfs-client --help``, docs/cli.md)."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from dfs import __version__
from dfs.client import cli_drain, cli_keys, cli_namespace, cli_output, cli_transfer, profiles
from dfs.client.cli_common import (
    CONTEXT,
    INTERRUPTED,
    NOT_STORED,
    Interrupted,
    UrlGroup,
    complete_profiles,
    concurrency_option,
    emit,
    fail,
    json_option,
    load_config,
    make_client,
    run,
    target_options,
)
from dfs.client.cli_output import printable
from dfs.client.cli_times import PointInTime
from dfs.client.profiles import Target
from dfs.client.remote_names import is_remote
from dfs.errors import DfsError, IntegrityError
from dfs.malloc import keep_freed_buffers

if TYPE_CHECKING:  # the commands import the library when they run (dfs.client.cli_main)
    from dfs.client.library import Client
    from dfs.client.verify import VerifyReport


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
      dfs-client upload --prefix photos/ ~/pics # every file, named photos/...
      dfs-client ls --all
      dfs-client download FILE_ID copy.jpg
      dfs-client download --prefix photos/ restored/
      dfs-client download FILE_ID - | tar x     # standard output
      dfs-client check big.iso; echo $?         # 0 stored, 10 not yet
      dfs-client stats http://127.0.0.1:8080    # an explicit URL, admin token
      dfs-client mb photos/ && dfs-client upload ~/pics photos/2024/
      dfs-client ls photos/2024/                # folders first; bucket/ or bucket/key

    Shell completion: eval "$(_DFS_CLIENT_COMPLETE=bash_source dfs-client)"
    (zsh_source, fish_source for zsh and fish). Reference: docs/cli.md.
    """


cli.add_command(cli_transfer.upload)
cli.add_command(cli_transfer.download)
cli.add_command(cli_keys.keys)
for _command in cli_namespace.COMMANDS:
    cli.add_command(_command)


@cli.command("ls")
@json_option
@target_options
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--after", default=None, help="The last file id of the previous page.")
@click.option("--all", "all_pages", is_flag=True, help="Every page, not just one.")
@click.option("-l", "--long", "long_", is_flag=True, help="Also the stored mode and mtime.")
@click.option("-r", "--recursive", is_flag=True, help="BUCKET/PREFIX/: every key, no folders.")
@click.option("--versions", is_flag=True, help="BUCKET/PREFIX/: every version, delete markers.")
@click.option(
    "--at",
    type=PointInTime(),
    default=None,
    help="BUCKET/PREFIX/: the keys as they were at TIME (ISO 8601 or Unix seconds).",
)
@click.argument("path", required=False)
def ls_cmd(
    as_json: bool,
    target: Target,
    limit: int,
    after: str | None,
    all_pages: bool,
    long_: bool,
    recursive: bool,
    versions: bool,
    at: float | None,
    path: str | None,
) -> None:
    """List a folder of a bucket (ls BUCKET/PREFIX/: folders first, sizes, dates; --long
    adds version, type, access, tags); without PATH this tenant's files, a page at a time
    (--all for every page): id, size, sha256 prefix, (--long: mode, mtime,) name. With
    --json one object per entry; the last line of a partial file listing is
    {"next_after": ...}. The buckets: dfs-client buckets."""
    if path is not None:
        if at is not None and versions:
            raise click.UsageError("--at lists the keys at a time; --versions every version")
        how = cli_namespace.Listing(long_, recursive, versions, as_json, at)
        cli_namespace.list_remote(target, path, how)
        return
    if at is not None:
        raise click.UsageError("--at lists a folder of a bucket as it was: ls --at TIME BUCKET/")

    async def go() -> None:
        cursor = after
        async with make_client(target) as client:
            for _ in range(1_000_000):
                page = await client.ls(limit=limit, after=cursor)
                for f in page["files"]:
                    emit(as_json, f, cli_output.listing_line(f, long_))
                cursor = page["next_after"]
                if not cursor or not all_pages:
                    break
            if cursor and not all_pages:
                emit(as_json, {"next_after": cursor}, f"# more: --after {cursor}")

    run(go())


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

    from dfs.client.verify import verify as verify_file

    async def go() -> VerifyReport:
        async with make_client(target, concurrency=concurrency) as c:
            return await verify_file(c, file_id)

    report = run(go())
    rf, under = report.replication_factor, report.under_replicated
    text = cli_output.verify_text(report.healthy, report.chunks, rf, under)
    emit(as_json, asdict(report), text)
    if not report.healthy:
        sys.exit(IntegrityError.exit_code)


@cli.command()
@json_option
@target_options
@click.option("--version", default=None, help="BUCKET/KEY: this version.")
@click.option("--ttl", type=click.IntRange(1), default=None, help="BUCKET/KEY: seconds valid.")
@click.argument("file_id")
def url(as_json: bool, target: Target, version: str | None, ttl: int | None, file_id: str) -> None:
    """A signed URL that fetches FILE_ID or BUCKET/KEY (any version) without a token (e.g.
    curl -fo FILE URL) for 15 minutes (or the cluster's limit)."""
    if is_remote(file_id):
        cli_namespace.url_remote(target, file_id, version, ttl, as_json)
        return
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
        async with make_client(target) as client:
            for _ in range(10_000_000):
                body = await client.hashes(limit=limit, page=cursor)
                if as_json and not all_pages:
                    emit(True, body, "")
                    return
                for h in body["hashes"]:
                    emit(as_json, {"sha256": h}, h)
                cursor = body["next_page"]
                if not cursor or not all_pages:
                    break
            if cursor and not all_pages:
                emit(False, {}, f"# more: --page {cursor}")

    run(go())


def _simple(
    fetch: Callable[[Client], Awaitable[dict[str, Any]]],
    target: Target,
    as_json: bool,
    render: Callable[[dict[str, Any]], str],
) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        async with make_client(target) as client:
            return await fetch(client)

    body = run(go())
    emit(as_json, body, render(body))
    return body


@cli.command()
@json_option
@target_options
@click.option(
    "-r",
    "--recursive",
    is_flag=True,
    help="BUCKET/PREFIX/: every key under it (BUCKET/NAME: that key and NAME/).",
)
@click.option("--version", default=None, help="BUCKET/KEY: remove this version for good.")
@click.argument("file_id")
def rm(as_json: bool, target: Target, recursive: bool, version: str | None, file_id: str) -> None:
    """Delete FILE_ID, or BUCKET/KEY (a delete marker where versioning is on; --version
    removes one version for good; --recursive every key under a prefix); a file's chunks'
    space comes back once the GC grace has passed."""
    if is_remote(file_id):
        cli_namespace.remove_remote(target, file_id, recursive, version, as_json)
        return
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


@cli.group(cls=UrlGroup)
def admin() -> None:
    """Tenants, tokens and node drains (needs an admin token).

    \b
    A revoked token is refused by every API process within 10 s (the token cache).
    A tenant for yourself, kept as the default profile:
      dfs-client admin create-tenant URL me
      dfs-client config set me URL --token "$(dfs-client admin create-token URL me)"
    """


admin.add_command(cli_drain.drain)


@admin.command("create-tenant")
@json_option
@target_options
@click.argument("tenant")
def create_tenant(as_json: bool, target: Target, tenant: str) -> None:
    """Create TENANT."""
    _simple(lambda c: c.api.create_tenant(tenant), target, as_json, lambda b: b["tenant"])


@admin.command("create-token")
@json_option
@target_options
@click.option("--role", type=click.Choice(["user", "admin"]), default="user", show_default=True)
@click.option("--label", default="", help="A note to recognise the token by.")
@click.argument("tenant")
def create_token(as_json: bool, target: Target, role: str, label: str, tenant: str) -> None:
    """Create a token for TENANT and print it (it is shown only this once)."""
    _simple(
        lambda c: c.api.create_token(tenant, role, label), target, as_json, lambda b: b["token"]
    )


@admin.command("tenants")
@json_option
@target_options
def tenants(as_json: bool, target: Target) -> None:
    """List tenants."""
    _simple(
        lambda c: c.api.list_tenants(),
        target,
        as_json,
        lambda b: "\n".join(map(printable, b["tenants"])),
    )


@admin.command("tokens")
@json_option
@target_options
@click.argument("tenant", required=False)
def tokens(as_json: bool, target: Target, tenant: str | None) -> None:
    """List tokens (of TENANT, else of every tenant): id, tenant, role, label; never the text."""
    _simple(lambda c: c.api.list_tokens(tenant), target, as_json, cli_output.tokens_text)


@admin.command("revoke")
@json_option
@target_options
@click.argument("token_id")
def revoke(as_json: bool, target: Target, token_id: str) -> None:
    """Revoke the token TOKEN_ID (its id from `admin tokens`); every API process refuses it
    within the token cache's lifetime (10 s)."""
    _simple(lambda c: c.api.revoke_token(token_id), target, as_json, lambda b: b["token_id"])


@cli.command()
@json_option
@target_options
def whoami(as_json: bool, target: Target) -> None:
    """The tenant, role and token id (and label) of the token in use."""
    _simple(lambda c: c.api.whoami(), target, as_json, cli_output.whoami_text)


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


def _editload_config(change: Callable[[profiles.Config], object]) -> None:
    config = load_config()
    try:
        change(config)
        profiles.save(config)
    except DfsError as exc:
        fail(exc.message, exc.exit_code)
    except OSError as exc:
        fail(f"cannot write {profiles.config_path()}: {exc.strerror or exc}", 1)


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

    _editload_config(change)


@config_group.command("use")
@click.argument("name", shell_complete=complete_profiles)
def config_use(name: str) -> None:
    """Make NAME the default profile."""
    _editload_config(lambda config: profiles.use_profile(config, name))


@config_group.command("rm")
@click.argument("name", shell_complete=complete_profiles)
def config_rm(name: str) -> None:
    """Remove profile NAME."""
    _editload_config(lambda config: profiles.remove_profile(config, name))


@config_group.command("ls")
@json_option
def config_ls(as_json: bool) -> None:
    """List profiles (* marks the default; tokens are not shown)."""
    config = load_config()
    for p in sorted(config.profiles.values(), key=lambda p: p.name):
        default = p.name == config.default
        obj = {"name": p.name, "url": p.url, "token": bool(p.token), "default": default}
        token = "token" if p.token else "no token"
        emit(as_json, obj, f"{'*' if default else ' '} {p.name}\t{p.url}\t{token}")


def main(argv: Sequence[str] | None = None) -> int:
    """The console script: one ``Error:`` line for usage errors, 130 on Ctrl-C."""
    keep_freed_buffers()  # downloaded chunks reuse freed buffers, not fresh zeroed pages
    try:
        code = cli.main(args=argv, prog_name="dfs-client", standalone_mode=False)
    except (Interrupted, click.exceptions.Abort) as exc:
        hint = str(exc) if isinstance(exc, Interrupted) else ""
        click.echo(f"Interrupted{': ' + hint if hint else ''}.", err=True)
        return INTERRUPTED
    except click.UsageError as exc:
        path = exc.ctx.command_path if exc.ctx else "dfs-client"
        message = printable(exc.format_message())
        click.echo(f"Error: {message} (see: {path} --help)", err=True)
        return exc.exit_code
    except click.ClickException as exc:
        click.echo(f"Error: {printable(exc.format_message())}", err=True)
        return exc.exit_code
    return code if isinstance(code, int) else 0
