"""``dfs-client upload`` and ``download``: which local files go, where downloads land.

Upload: ``walk`` (dfs.client.local_files) lists the files; what cannot be uploaded (unreadable,
not a regular file, a symbolic link without ``-L``, a stored name the API would refuse: not
UTF-8, or too long; a file gone or unreadable by the time it is read) is skipped with a
``Skipped:`` line on stderr and the command exits PARTIAL after uploading the rest. ``-``
uploads standard input (spooled to a private temp file first: the pipeline reads a file
twice).

Download: OUT is a file for one id, or a directory (one that exists, one ending in ``/``,
several ids, ``--prefix``) where files land under their stored relative names. Every target
is worked out and checked before anything is fetched: two files on one path are refused,
and so is an existing different file (unless ``--force``); a file already holding exactly
the bytes is left as it is; a stored name that cannot be written safely is skipped and
reported (exit PARTIAL). ``-`` writes one file to standard output.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from dfs.chunking import ChunkerProfile
from dfs.client.cli_common import (
    PARTIAL,
    UrlCommand,
    concurrency_option,
    emit_lines,
    fail,
    json_option,
    line_of,
    make_client,
    proxy_option,
    quiet_option,
    run,
    skipped_lines,
    target_options,
    upload_concurrency_option,
)
from dfs.client.cli_namespace_transfer import (
    LocalOrRemote,
    Remote,
    at_option,
    checksum_option,
    download_remote,
    settle_paths,
    upload_remote,
)
from dfs.client.cli_output import printable
from dfs.client.early_batches import EarlyBatches
from dfs.client.early_listing import ListedEarly
from dfs.client.early_scan import EarlyScan
from dfs.client.local_files import (
    DIRECTORY_SUFFIXES,
    Existing,
    LocalFile,
    Skipped,
    download_targets,
    existing,
    holds_nothing,
)
from dfs.client.profiles import Target
from dfs.client.progress import Progress
from dfs.client.remote_names import is_file_id, is_remote
from dfs.client.upload_start import STDIN, early_batches, early_scan, listing, spooled_stdin
from dfs.errors import Conflict, DfsError, InvalidRequest, from_body

if TYPE_CHECKING:  # the library is imported when a command runs (make_client)
    from dfs.client.download import DownloadResult
    from dfs.client.early_reads import EarlyChunks
    from dfs.client.file_upload import UploadResult
    from dfs.client.library import Client
    from dfs.client.plans import EarlyPlans


def partial_exit(skipped: Sequence[Skipped], done: str) -> None:
    """``Skipped:`` lines, then as ``exit_partial``."""
    skipped_lines(skipped)
    exit_partial(skipped, done)


def exit_partial(skipped: Sequence[Skipped], done: str) -> None:
    """With files skipped: one ``Error:`` line and exit PARTIAL."""
    if skipped:
        n = len(skipped)
        fail(f"{n} file{'s' if n > 1 else ''} skipped (see above); {done}", PARTIAL)


@click.command(cls=UrlCommand)
@json_option
@target_options
@quiet_option
@click.option(
    "--chunk-size",
    type=int,
    default=None,
    help="Fixed-size chunks of N bytes instead of content-defined (FastCDC) chunks.",
)
@upload_concurrency_option
@proxy_option
@click.option("--prefix", default="", help="Prepend this to every stored name (e.g. 'backup/').")
@click.option("--name", default=None, help="Store the one file (or '-', stdin) under this name.")
@click.option(
    "--follow-symlinks",
    "-L",
    is_flag=True,
    help="Follow symbolic links inside directories (default: skip and report them).",
)
@click.option("--no-resume", is_flag=True, help="Do not journal receipts or resume an earlier run.")
@click.option(
    "--no-cache",
    is_flag=True,
    help="Read every file, even those listed unchanged since they were stored (files cache).",
)
@checksum_option
@click.argument(
    "args",
    metavar="PATHS...",
    nargs=-1,
    required=True,
    type=LocalOrRemote(exists=True, allow_dash=True, path_type=Path),
)
def upload(
    as_json: bool,
    target: Target,
    quiet: bool,
    chunk_size: int | None,
    concurrency: int,
    proxy: bool,
    prefix: str,
    name: str | None,
    follow_symlinks: bool,
    no_resume: bool,
    no_cache: bool,
    checksum: bool,
    args: tuple[Path | Remote, ...],
) -> None:
    """Upload files and directories (recursively; a directory's files are named by their path
    relative to it). One file prints its new id; several print ID<TAB>NAME lines; --json one
    object per file. '-' uploads standard input (with --name).

    Files up to 8 MiB go in batches (one planning and one commit request per batch), and are
    not read again while unchanged since stored there (files cache; --no-cache reads them); an
    interrupted upload of a bigger file resumes when run again (journal in ~/.cache/dfs).
    Unreadable files, special files, symbolic links met inside a directory (unless -L) and
    names the API refuses (not UTF-8, over 1024 characters; over 1024 bytes as a key) are
    skipped, each on a 'Skipped:' line; the rest is uploaded and the exit status is 23.

    \b
    Examples:
      dfs-client upload report.pdf
      dfs-client upload --prefix backup/ ~/photos ~/notes.txt
      pg_dump db | dfs-client upload - --name backups/db.sql
      dfs-client upload 127.0.0.1:8080 report.pdf
      dfs-client upload ~/pics photos/2024/     # to bucket/prefix/, unchanged files skipped
    """
    conn = dict(concurrency=concurrency, proxy=proxy, resume=not no_resume, file_cache=not no_cache)
    renamed = bool(prefix or name)
    settled = settle_paths(args, by_name=renamed)
    if isinstance(settled[-1], Remote):  # LOCAL... BUCKET/KEY: dfs.client.cli_namespace_transfer
        left = upload_remote(
            target, conn, settled, renamed, checksum, quiet, as_json, follow_symlinks
        )
        return partial_exit(left, "the rest uploaded")
    paths = tuple(Path(p) for p in settled)  # a remote path here names nothing: the walk says so
    profile = _profile(chunk_size)
    _check_names(paths, name)
    skipped: list[Skipped] = []
    with contextlib.ExitStack() as cleanup:
        paths, spooled = spooled_stdin(paths, cleanup)
        items = listing(paths, prefix, name, follow_symlinks, spooled, skipped, cleanup)
        one_path = len(paths) == 1 and not paths[0].is_dir()
        early = early_scan(paths[0], profile, cleanup) if one_path and not spooled else None
        plans = early_batches(target, items, profile, cleanup) if not no_cache else None
        how = (quiet, as_json)
        run(
            _upload(target, conn, items, profile, how, one_path, skipped, early, plans),
            not no_resume,
        )
    exit_partial(skipped, "the rest uploaded")


def _profile(chunk_size: int | None) -> ChunkerProfile:
    """The chunker ``--chunk-size`` asks for (fixed-size chunks), else the default."""
    try:
        return ChunkerProfile.fixed(chunk_size) if chunk_size else ChunkerProfile.default()
    except DfsError as exc:
        raise click.BadParameter(exc.message, param_hint="--chunk-size") from None


def _check_names(paths: tuple[Path, ...], name: str | None) -> None:
    """UsageError for a ``--name`` (or standard input) that does not name one file."""
    if STDIN in paths and (len(paths) > 1 or not name):
        raise click.UsageError("'-' (standard input) is uploaded alone, with --name NAME")
    if name is not None and (len(paths) > 1 or paths[0].is_dir()):
        raise click.UsageError("--name names one file: give exactly one file")


async def _upload(
    target: Target,
    conn: dict[str, Any],
    items: Iterable[LocalFile],
    profile: ChunkerProfile,
    how: tuple[bool, bool],
    one_path: bool,
    skipped: list[Skipped],
    early: EarlyScan | None = None,
    plans: EarlyBatches | None = None,
) -> None:
    """Upload ``items`` as they are listed (``plans``: their first batches planned already);
    the files left out (``skipped``, filled by the listing, and with several paths the files
    that changed while they were uploaded) reported once the uploads are done, then one line
    per file uploaded (just its id for one file named alone: ``one_path`` and nothing
    skipped; such a file that changed fails the command instead)."""
    quiet, as_json = how

    def changed(f: LocalFile, exc: DfsError) -> None:
        skipped.append(Skipped(str(f.path), exc.message))

    async with make_client(target, **conn) as client:
        try:
            with Progress.for_terminal("upload", None, quiet) as bar:
                results = await client.upload_many(
                    items,
                    profile=profile,
                    progress=bar,
                    listed=bar.add_total,
                    failed=None if one_path else changed,
                    early=early,
                    early_batches=plans,
                )
        finally:
            if isinstance(items, ListedEarly):  # a failed upload: the listing ends first
                await asyncio.to_thread(items.stop)
            skipped_lines(skipped)  # counted again at the end
        one_file = one_path and not skipped
        emit_lines([_upload_line(as_json, r, one_file) for r in results])


def _upload_line(as_json: bool, r: UploadResult, one_file: bool) -> str:
    """One upload's line; ``asdict`` (a deep copy) only for --json: a backup of thousands of
    small files spent more client CPU on it than on reading its unchanged files."""
    if as_json:
        return line_of(True, asdict(r), "")
    return r.file_id if one_file else f"{r.file_id}\t{printable(r.name)}"


@click.command(cls=UrlCommand)
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
@click.option("--force", "-f", is_flag=True, help="Replace existing files whose bytes differ.")
@click.option("--no-resume", is_flag=True, help="Do not keep or reuse partial downloads.")
@checksum_option
@click.option("--version", default=None, help="BUCKET/KEY: this version, not the current one.")
@at_option
@click.argument("file_ids", nargs=-1)
@click.argument("out")
def download(
    as_json: bool,
    target: Target,
    quiet: bool,
    concurrency: int,
    proxy: bool,
    prefix: str | None,
    force: bool,
    no_resume: bool,
    checksum: bool,
    version: str | None,
    at: float | None,
    file_ids: tuple[str, ...],
    out: str,
) -> None:
    """Download FILE_IDS to OUT: a file path for one id; a directory (one that exists, a path
    ending in '/', several ids, or --prefix) keeps the stored relative names under it; '-'
    writes one file to standard output. An interrupted download resumes from its partial
    temp file when run again.

    Nothing is fetched until every target is known: two files that would land on one path,
    and existing files with other bytes (unless --force), are refused. A file that already
    holds exactly the bytes is left as it is. A stored name that cannot be written safely is
    skipped ('Skipped:' line), the rest is downloaded and the exit status is 23.

    \b
    Examples:
      dfs-client download 6f1c...-uuid copy.pdf
      dfs-client download ID1 ID2 restored/
      dfs-client download --prefix backup/ restored/
      dfs-client download 6f1c...-uuid - | tar x
      dfs-client download photos/2024/ pics/     # every key under it, unchanged skipped
      dfs-client download --at 2026-12-01 photos/ pics/  # as it was then (versioned)
    """
    if len(file_ids) == 1 and is_remote(file_ids[0]) and not is_file_id(file_ids[0]):
        if out == "-":  # else a file named "-", and "downloaded" on stdout for the reader
            raise click.UsageError("'-' (standard output) takes a FILE_ID; ./- names a file")
        conn = {"concurrency": concurrency, "proxy": proxy, "resume": not no_resume}
        src = file_ids[0]
        left = download_remote(target, conn, src, out, version, checksum, quiet, as_json, at)
        exit_partial(left, "the rest downloaded")
        return
    if at is not None or version is not None:
        raise click.UsageError("--at and --version pick versions of BUCKET/KEY or BUCKET/PREFIX/")
    _check_by_id(file_ids, prefix, out, as_json)
    job = Download(as_json, quiet, force)
    conn = {"concurrency": concurrency, "proxy": proxy, "resume": not no_resume}
    conn["overwrite"] = force  # else a file that appears at a target meanwhile is kept

    async def go() -> None:
        async with make_client(target, **conn) as client:
            await job.run(client, file_ids, prefix, out)

    run(go(), resumable=not no_resume)
    skipped_lines(job.skipped)
    exit_partial(job.skipped, "the rest downloaded")


def _check_by_id(file_ids: Sequence[str], prefix: str | None, out: str, as_json: bool) -> None:
    """A download by file id or name prefix: its arguments, and where it goes."""
    if prefix is None and not file_ids:
        raise click.UsageError("give FILE_IDS or --prefix")
    if prefix is not None and file_ids:
        raise click.UsageError("give FILE_IDS or --prefix, not both")
    if out == "-" and (len(file_ids) != 1 or as_json):
        raise click.UsageError("'-' (standard output) takes one FILE_ID and no --json")
    try:
        check_out(out, file_ids, prefix)
    except DfsError as exc:
        fail(exc.message, exc.exit_code)


def out_kind(out: str, file_ids: Sequence[str], prefix: str | None) -> str:
    """Where a download goes: "stdout", "directory" or "file"."""
    if out == "-":
        return "stdout"
    several = prefix is not None or len(file_ids) > 1
    if several or out.endswith(DIRECTORY_SUFFIXES) or Path(out).is_dir():
        return "directory"
    return "file"


def check_out(out: str, file_ids: Sequence[str], prefix: str | None) -> None:
    """Refuse, naming the user's path, an OUT that cannot be written: a directory OUT that is
    a file, a file OUT whose directory is missing (a directory OUT is created)."""
    path = Path(out)
    kind = out_kind(out, file_ids, prefix)
    if kind == "directory" and path.exists() and not path.is_dir():
        raise InvalidRequest(f"{out} is not a directory")
    if kind == "file" and not path.parent.is_dir():
        why = "is not a directory" if path.parent.exists() else "does not exist"
        raise InvalidRequest(f"cannot write {out}: the directory {path.parent} {why}")


class Download:
    """One ``download`` command: every target worked out and checked, then the fetches."""

    def __init__(self, as_json: bool, quiet: bool, force: bool) -> None:
        self.as_json = as_json
        self.quiet = quiet
        self.force = force
        self.skipped: list[Skipped] = []

    async def run(
        self, client: Client, file_ids: Sequence[str], prefix: str | None, out: str
    ) -> None:
        root = Path(out)
        kind = await asyncio.to_thread(out_kind, out, file_ids, prefix)
        if kind == "stdout":
            from dfs.client.part_file import STDOUT

            plan = await client.api.download_plan(file_ids[0])
            with Progress.for_terminal("download", int(plan["size"]), self.quiet) as bar:
                await client.download(file_ids[0], STDOUT, plan=plan, progress=bar)
        elif prefix is not None:
            from dfs.client.download import BATCH_FILES
            from dfs.client.plans import EarlyPlans

            # the first page's small files read too, unless through the API proxy or into a
            # folder that already holds files (which may already be there: read for nothing);
            # an empty folder is as fresh as a new one
            fresh = not client.proxy and await asyncio.to_thread(holds_nothing, root)
            chunks = client.early_chunks() if fresh else None
            early = EarlyPlans(client.api, not client.proxy, BATCH_FILES, chunks)
            try:
                files = await all_files(client, prefix, early.start)
                await self.into_directory(client, root, files, {}, early, chunks)
            except BaseException:
                await early.cancel()
                raise
        elif kind == "directory":
            plans = await download_plans(client, file_ids)
            await self.into_directory(client, root, list(plans.values()), plans)
        else:
            await self.to_file(client, file_ids[0], root)

    async def to_file(self, client: Client, file_id: str, path: Path) -> None:
        plan = await client.api.download_plan(file_id)
        size, sha256 = int(plan["size"]), str(plan["sha256"])
        state = await asyncio.to_thread(existing, path, None, size, sha256)
        self.check({file_id: state}, {file_id: path})
        if state is Existing.SAME:
            self.emit_unchanged(plan, path)
            return
        with Progress.for_terminal("download", size, self.quiet) as bar:
            r = await client.download(file_id, path, plan=plan, progress=bar)
        self.emit(r)

    async def into_directory(
        self,
        client: Client,
        root: Path,
        files: list[dict[str, Any]],
        plans: dict[str, dict[str, Any]],
        early: EarlyPlans | None = None,
        early_chunks: EarlyChunks | None = None,
    ) -> None:
        """Check every target, then download; the plans and chunks ``early`` asked for
        while the files were listed are taken only once the checks passed."""
        info = {str(f["file_id"]): f for f in files}
        pairs, skipped = download_targets(root, [(i, str(f["name"])) for i, f in info.items()])
        self.skipped += skipped

        def look() -> dict[str, Existing]:
            if holds_nothing(root):  # a new or empty folder: nothing can be in the way yet
                return {i: Existing.NOTHING for i, _p in pairs}
            clear: set[Path] = set()  # each directory above the targets looked at once
            return {
                i: existing(p, root, int(info[i]["size"]), str(info[i]["sha256"]), clear)
                for i, p in pairs
            }

        states = await asyncio.to_thread(look)
        self.check(states, dict(pairs))
        if early is not None:
            plans = await early.take()
        chunks = await early_chunks.take() if early_chunks is not None else None
        await asyncio.to_thread(root.mkdir, parents=True, exist_ok=True)
        todo = [(i, p) for i, p in pairs if states[i] is not Existing.SAME]
        # the files with plans first, in the plans' order: the files of one /download-plans
        # answer (EarlyPlans) then make one batch, whose chunks are in its read batches
        rank = {file_id: n for n, file_id in enumerate(plans)}
        todo.sort(key=lambda t: rank.get(t[0], len(rank)))
        total = sum(int(info[i]["size"]) for i, _p in todo)
        with Progress.for_terminal("download", total, self.quiet) as bar:
            results = await client.download_many(
                todo, progress=bar, plans=plans, chunks=chunks, root=root
            )
        done = {r.file_id: r for r in results}
        emit_lines(
            [
                self.line(done[i])
                if i in done
                else self.line(unchanged_result(info[i], path), True)
                for i, path in pairs
            ]
        )

    def check(self, states: dict[str, Existing], paths: dict[str, Path]) -> None:
        """Refuse, before anything is written, targets that cannot or may not be written."""
        blocked = [paths[i] for i, s in states.items() if s is Existing.BLOCKED]
        if blocked:
            raise Conflict(f"a directory or a file is in the way of {_few(blocked)}")
        differ = [paths[i] for i, s in states.items() if s is Existing.DIFFERENT]
        if differ and not self.force:
            raise Conflict(
                f"{_few(differ)} already exist{'s' if len(differ) == 1 else ''} with other "
                "bytes; nothing written (--force replaces them)"
            )

    def line(self, r: DownloadResult, unchanged: bool = False) -> str:
        # vars, not asdict: asdict deep-copies every field, and a restore reports each file
        obj = {**vars(r), "unchanged": unchanged} if self.as_json else {}
        return line_of(self.as_json, obj, printable(r.path))

    def emit(self, r: DownloadResult, unchanged: bool = False) -> None:
        click.echo(self.line(r, unchanged))

    def emit_unchanged(self, f: dict[str, Any], path: Path) -> None:
        """A target that already held exactly the bytes: reported as if downloaded."""
        self.emit(unchanged_result(f, path), unchanged=True)


def unchanged_result(f: dict[str, Any], path: Path) -> DownloadResult:
    """The result reported for a target that already held exactly the bytes."""
    from dfs.client.download import DownloadResult

    chunks = f.get("chunks", 0)
    return DownloadResult(
        file_id=str(f["file_id"]),
        name=str(f["name"]),
        path=str(path),
        size=int(f["size"]),
        sha256=str(f["sha256"]),
        chunks=len(chunks) if isinstance(chunks, list) else int(chunks or 0),
        failovers=0,
        seconds=0.0,
    )


def _few(paths: Sequence[Path]) -> str:
    shown = ", ".join(str(p) for p in paths[:3])
    return shown + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")


async def download_plans(client: Client, file_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The download plans of ``file_ids`` by id, BATCH_FILES per request; NotFound for an id
    that is not a complete file of the tenant."""
    from dfs.client.download import BATCH_FILES

    plans: dict[str, dict[str, Any]] = {}
    wanted = list(dict.fromkeys(file_ids))
    for start in range(0, len(wanted), BATCH_FILES):
        part = wanted[start : start + BATCH_FILES]
        for file_id, plan in zip(
            part, await client.api.download_plans(part, batched=not client.proxy), strict=True
        ):
            if "error" in plan:
                raise from_body(404, plan)
            plans[file_id] = plan
    return plans


async def all_files(
    client: Client, prefix: str, first_page: Callable[[list[str]], None] | None = None
) -> list[dict[str, Any]]:
    """Every file of the tenant whose name starts with ``prefix``; the newest per name.
    ``first_page`` is called with the file ids of the first page as soon as it is here."""
    by_name: dict[str, dict[str, Any]] = {}
    after: str | None = None
    for _ in range(1_000_000):  # bounded: a page per 1000 files
        page = await client.ls(limit=1000, after=after, prefix=prefix)
        if first_page is not None and after is None:
            first_page([str(f["file_id"]) for f in page["files"]])
        for f in page["files"]:
            name = str(f["name"])
            newer = name not in by_name or f["created_at"] > by_name[name]["created_at"]
            # startswith still: an older API ignores ``prefix`` and lists every file
            if name.startswith(prefix) and newer:
                by_name[name] = f
        after = page["next_after"]
        if not after:
            break
    return sorted(by_name.values(), key=lambda f: str(f["name"]))
