"""``upload`` and ``download`` to and from ``bucket/key`` (dfs.client.cli_transfer hands
them remote paths): directories map to prefixes, unchanged files are skipped as ``rsync``
does (same size and mtime; ``--checksum``: same SHA-256). The work is
``dfs.client.namespace_sync``'s; here are the click types and the output."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from dfs.client.cli_common import emit_lines, line_of, make_client, run, skipped_lines
from dfs.client.cli_output import printable
from dfs.client.cli_times import PointInTime
from dfs.client.early_listing import keyed_files, listed_now
from dfs.client.local_files import Skipped
from dfs.client.profiles import Target
from dfs.client.progress import Progress

if TYPE_CHECKING:  # the library is imported when a command runs (make_client)
    from dfs.client.namespace_sync import SyncReport
from dfs.client.remote_names import is_remote, parse_remote


class Remote(str):
    """A command-line argument that names ``bucket/key`` rather than a local path."""

    __slots__ = ()


class NamedLikeRemote(Remote):
    """A folder path (``bucket/`` or ``bucket/prefix/``, ending with "/") that also names a
    local directory: which it is depends on where it stands (``settle_paths``)."""

    __slots__ = ()


class LocalOrRemote(click.Path):
    """A local path that exists, or else a remote path (it contains "/"); a folder path that
    is both is a ``NamedLikeRemote`` until ``settle_paths`` decides. (Any other local path
    stays one: ``upload logs/*.log`` names files, whatever the last one looks like.)"""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and is_remote(value):
            if not os.path.lexists(value):
                return Remote(value)
            if value.endswith("/") and os.path.isdir(value):
                return NamedLikeRemote(value)
        return super().convert(value, param, ctx)


def settle_paths(paths: Sequence[Path | Remote], by_name: bool) -> list[Path | Remote]:
    """``upload``'s arguments decided. The last of two or more is where they go when it is a
    folder path (``bucket/``, ``bucket/prefix/``), even where a local directory has its name,
    as the last argument of ``cp`` or ``rsync`` is: the same command then means the same
    in every folder (a note on stderr says so; ``./NAME/`` names the local one). Every other
    argument that names a local path is that path, and so is the last one with ``--prefix``
    or ``--name``, which upload by name, to no destination."""
    last = len(paths) - 1
    out: list[Path | Remote] = []
    for i, p in enumerate(paths):
        if isinstance(p, NamedLikeRemote):
            if i == last and i > 0 and not by_name:
                click.echo(
                    f"Note: {printable(p)} is taken as the remote path, not the local one "
                    f"(write ./{printable(p)} to upload that)",
                    err=True,
                )
                out.append(Remote(p))
                continue
            out.append(Path(p))
        else:
            out.append(p)
    return out


at_option = click.option(
    "--at",
    type=PointInTime(),
    default=None,
    help="BUCKET/KEY or BUCKET/PREFIX/: the objects as they were at TIME (ISO 8601 or Unix "
    "seconds); a versioned bucket keeps what that needs.",
)

checksum_option = click.option(
    "--checksum",
    "-c",
    is_flag=True,
    help="BUCKET/KEY transfers: skip files by SHA-256, not by size and mtime.",
)


def _report(report: SyncReport, as_json: bool, verb: str) -> list[Skipped]:
    """Print a line per key done or unchanged, all in one write (``emit_lines``)."""
    lines = [
        line_of(as_json, d, f"{verb}\t{printable(d.get('path') or d['bucket'] + '/' + d['key'])}")
        for d in report.done
    ]
    lines += [
        line_of(as_json, {"unchanged": name}, f"unchanged\t{printable(name)}")
        for name in report.unchanged
    ]
    emit_lines(lines)
    return report.skipped


def upload_remote(
    target: Target,
    conn: dict[str, Any],
    args: Sequence[Path | Remote],
    renamed: bool,
    checksum: bool,
    quiet: bool,
    as_json: bool,
    follow_symlinks: bool = False,
) -> list[Skipped]:
    """Upload ``args`` but the last to the last (bucket/key or bucket/prefix/); what was
    skipped. ``renamed``: --prefix or --name was given (they name file-id uploads only).
    ``follow_symlinks``: -L, the links inside directories followed."""
    sources = [s for s in args[:-1] if isinstance(s, Path)]
    dest = str(args[-1])
    if not sources or renamed or len(sources) < len(args) - 1:
        raise click.UsageError("upload LOCAL... BUCKET/KEY, without --prefix or --name")
    if any(str(s) == "-" for s in sources):
        raise click.UsageError("'-' (standard input) is uploaded alone, with --name NAME")
    bucket, key = parse_remote(dest)
    if len(sources) > 1 or sources[0].is_dir():
        key = key if not key or key.endswith("/") else key + "/"
    # listed from now on, while the client library is imported
    listed = listed_now(lambda: keyed_files(sources, key, follow_symlinks))

    async def go() -> SyncReport:
        async with make_client(target, **conn) as client:
            total = sum(p.stat().st_size for p in sources if p.is_file())
            with Progress.for_terminal("upload", total, quiet) as bar:
                return await client.upload_to(
                    sources,
                    bucket,
                    key,
                    checksum=checksum,
                    progress=bar,
                    follow_symlinks=follow_symlinks,
                    listed=listed,
                )

    return _report(run(go(), resumable=True), as_json, "uploaded")


def download_remote(
    target: Target,
    conn: dict[str, Any],
    src: str,
    out: str,
    version: str | None,
    checksum: bool,
    quiet: bool,
    as_json: bool,
    at: float | None = None,
) -> list[Skipped]:
    """Download ``src`` (bucket/key, or every key under bucket/prefix/) to ``out``; ``at``:
    as it was then."""
    bucket, key = parse_remote(src)

    async def go() -> SyncReport:
        async with make_client(target, **conn) as client:
            with Progress.for_terminal("download", None, quiet) as bar:
                # the string as given: a trailing "/" makes OUT a directory
                return await client.download_from(
                    bucket, key, out, version=version, at=at, checksum=checksum, progress=bar
                )

    skipped = _report(run(go(), resumable=True), as_json, "downloaded")
    skipped_lines(skipped)  # keys not written (the caller exits 23 for them)
    return skipped
