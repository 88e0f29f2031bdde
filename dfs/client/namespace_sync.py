"""Files and directory trees to and from ``bucket/key``, skipping what is already there.

Uploads go through the upload pipeline as any file does (``dfs.client.paged_upload``'s: a
huge file page by page, so it is not bound by the chunks one ``/init-upload`` takes), each
file made for its object (``for_object``: never handed out by content), and each file is
linked as the object's new version as the upload completes it (``dfs.client.sync_links``:
hundreds of keys to a request, while the upload goes on) with its mtime in the
user metadata (``mtime``, as rclone keeps it), so a later sync can tell an unchanged file,
same size and mtime, as ``rsync``, ``aws s3 sync`` and ``rclone sync`` do; with
``checksum`` the SHA-256 is compared instead. Downloads of the tenant's own objects go
through the download pipeline (``dfs.client.download``: parallel, verified, mtime restored);
objects of buckets shared with the tenant are streamed through the API, which verifies each
chunk, into a temp file as the pipeline writes one (``PartFile``: checked here against the
sha256 and size of the object, fsync'ed, renamed). Keys land under the folder by their name
after the prefix, as a download by file id places stored names (``key_targets``): a key that
cannot be written safely, or one of keys that would land on one path, is skipped, reported.
Only the files compared and found different are replaced, while they are still what was
compared (``sync_compare.Found``): a file that appeared at a target, or changed, since is kept
(Conflict; an empty object's is skipped, reported).
A file whose link is refused, or whose version links the bucket owner's clone of it (the
caller is a read-write grantee), is deleted: no file of the caller's is left behind. Nor by
a run killed between uploads and links: its journal (``dfs.client.link_journal``) names
what it left unlinked, and the next folder upload to that API with that token deletes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from dfs import protocol
from dfs.bounded import gather_bounded
from dfs.chunking import ChunkerProfile
from dfs.client.connection import Connection, ProgressFn
from dfs.client.download import DownloadPipeline
from dfs.client.early_listing import KeyedFiles, keyed_files, listed_now
from dfs.client.file_cache import FileCache
from dfs.client.file_names import Overwrite, link_or_replace, temp_name
from dfs.client.link_journal import LinkJournal, journal_folder, running_ids, take_leftovers
from dfs.client.listing_ahead import ListingAhead
from dfs.client.local_files import (
    DIRECTORY_SUFFIXES,
    Skipped,
    holds_nothing,
    key_targets,
)
from dfs.client.namespace import NamespaceMethods, key_path
from dfs.client.paged_upload import StreamingUploadPipeline
from dfs.client.part_file import PartFile
from dfs.client.sync_compare import Found, changed_downloads, changed_uploads, stored_mtime
from dfs.client.sync_links import UploadLinker, upload_and_link
from dfs.client.target_dirs import TargetDirs
from dfs.client.version_times import NewestAt
from dfs.errors import Conflict, DfsError, IntegrityError, InvalidRequest, KeyNotFound, NotFound
from dfs.ids import parse_file_id
from dfs.transport.http import request

log = logging.getLogger("dfs.client")


@dataclass
class SyncReport:
    """What a sync did: objects written (uploads: the linked versions; downloads: the
    local paths), unchanged ones skipped, and what could not be sent."""

    done: list[dict[str, Any]] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def _one_target(out: Path, key: str, as_dir: bool) -> Path:
    """Where one object lands: in ``out`` under the key's last segment when ``out`` is a
    directory or ``as_dir`` (it was given ending in "/": made if missing, as ``cp`` and
    ``aws s3 cp`` do), else ``out`` itself."""
    return out / key.rsplit("/", 1)[-1] if as_dir or out.is_dir() else out


def _names_directory(out: str | Path) -> bool:
    """Is ``out`` a directory by its spelling (a string ending in "/", which ``Path`` drops)?"""
    return isinstance(out, str) and out.endswith(DIRECTORY_SUFFIXES)


Wanted = list[tuple[dict[str, Any], Path]]
"""Objects to download and their targets."""


NOT_UNDER = "listed for the prefix but not under"
"""Why a key the listing answered outside the prefix asked for is skipped (reported)."""
FOLDER_WITH_BYTES = "a key ending in '/' that holds bytes: no file can have its name"
"""Why a folder-like key is skipped (reported) when it is no empty folder marker."""


def _under(out: Path, objs: dict[str, dict[str, Any]], prefix: str) -> tuple[Wanted, list[Skipped]]:
    """The objects of the keys under ``prefix`` (folder markers left out) and where each
    lands in the directory ``out``: by the key's name after ``prefix``, as a download by
    file id places stored names (``key_targets``): a key that cannot be written safely, and
    keys that would land on one path, are skipped, not the restore. A key ending in "/"
    that holds bytes (S3 allows it) is skipped and reported, never left out unsaid, as is a
    key the listing gave that is not under ``prefix`` (an API's listing bug: cut as if it
    were, it landed where a key under the prefix belongs)."""
    outside = [k for k in objs if not k.startswith(prefix)]
    names = [(k, k[len(prefix) :]) for k in objs if k.startswith(prefix) and not k.endswith("/")]
    targets, skipped = key_targets(out, names)
    full = [k for k, o in objs.items() if k.endswith("/") and o.get("file_id")]
    skipped += [Skipped(k, FOLDER_WITH_BYTES) for k in full if k.startswith(prefix)]
    skipped += [Skipped(k, f"{NOT_UNDER} '{prefix}'; not written") for k in outside]
    return [(objs[k], target) for k, target in targets], skipped


def _write_empty(
    targets: Sequence[tuple[dict[str, Any], Path]], found: Found, dirs: TargetDirs
) -> set[Path]:
    """Empty objects (no file) as empty files at their targets, as every download writes:
    a new temp file beside the target (never opened through a link), its mtime set, fsync'ed
    and renamed over the target (a link there is replaced, never followed), then the
    directories fsync'ed (blocking); each relative to its folder's descriptor, opened from
    the restore's root (``dirs``: a folder swapped for a link gets nothing). Only what the
    comparison ``found`` there is replaced: a file that appeared or changed since is kept;
    the targets of those (not written) are returned."""
    by_folder: dict[Path, list[tuple[dict[str, Any], Path]]] = {}
    for obj, target in targets:
        by_folder.setdefault(target.parent, []).append((obj, target))
    taken: set[Path] = set()
    for folder, there in by_folder.items():  # one folder open at a time, however many
        dir_fd = dirs.open(str(folder))
        try:
            taken.update(t for o, t in there if not _write_one_empty(o, t, found, dir_fd))
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return taken


def _write_one_empty(obj: dict[str, Any], target: Path, found: Found, dir_fd: int) -> bool:
    """One empty file at ``target`` (in the folder open at ``dir_fd``); False if a file
    that appeared there is kept."""
    tmp = temp_name(target.name, secrets.token_hex(8))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    fd = os.open(tmp, flags, 0o644, dir_fd=dir_fd)
    try:
        try:
            if (mtime := stored_mtime(obj)) is not None:
                os.utime(fd, (time.time(), mtime))
            os.fsync(fd)
        finally:
            os.close(fd)
        link_or_replace(tmp, target.name, found.replaceable, dir_fd, str(target))
    except FileExistsError:
        os.unlink(tmp, dir_fd=dir_fd)
        return False
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    return True


def _stored_mtimes(todo: Wanted) -> dict[Path, float]:
    """Each target's mtime as its object's ``mtime`` metadata says, where it does: the
    download pipeline would give the file its own stored mtime, which may differ (an S3
    client's object, a key linked with its metadata), and the next sync compares the
    metadata's, so that file would look changed on every run, downloaded again and,
    uploaded back, a new version each time."""
    return {target: mtime for o, target in todo if (mtime := stored_mtime(o)) is not None}


SHA256_HEADER = "X-Dfs-Sha256"
"""The whole file's sha256, in the API's answer to an object's GET."""
STREAM_BLOCK = 1 << 20


async def _receive(resp: aiohttp.ClientResponse, part: PartFile) -> int:
    """The answer's body into ``part`` (hashed as it is written); its size."""
    size = 0
    try:
        async for data in resp.content.iter_chunked(STREAM_BLOCK):
            await part.write(size, [data])
            size += len(data)
    finally:
        await part.settle()  # no write left running on part's descriptor
    return size


def _checked(
    name: str, obj: dict[str, Any], answered: str | None, part: PartFile, size: int
) -> str:
    """The sha256 of the bytes ``part`` holds, when they are the object's: that sha256 is
    the one the API answered (and the listing's, if it gave one), and ``size`` is the
    object's size; else IntegrityError (nothing is written then)."""
    got = part.whole.hexdigest()
    listed = obj.get("sha256")
    if answered is None or got != answered or (listed is not None and got != listed):
        raise IntegrityError(f"{name}: the bytes received do not match its sha256; not written")
    if size != int(obj["size"]):
        raise IntegrityError(
            f"{name}: {size} bytes received, the object has {obj['size']}; not written"
        )
    return got


def _new_journal(folder: Path) -> LinkJournal | None:
    """This run's link journal; None when the cache directory cannot hold one (the upload
    goes on without: a kill then leaves its unlinked files, as before journals)."""
    try:
        return LinkJournal.create(folder)
    except OSError as exc:
        log.warning("no link journal in %s: %s", folder, exc)
        return None


APPEARED = "a file appeared or changed at its target during the download; kept, not replaced"
"""Why an object is not written where a file was written after the download compared."""

CLEANUPS_AT_ONCE = 16
"""Requests at once while deleting what killed runs left (``_release_leftovers``)."""


class SyncMethods(NamespaceMethods):
    """Transfers of ``Client`` to and from keys (which supplies the connection)."""

    def _connection(self) -> Connection:
        raise NotImplementedError

    async def files_cache(self, bucket: str, profile: ChunkerProfile) -> FileCache | None:
        """The files cache of uploads to ``bucket`` (``Client`` has it; none here)."""
        return None

    async def _remote_map(
        self,
        bucket: str,
        prefix: str,
        first_page: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> dict[str, dict[str, Any]]:
        """Every object under ``prefix`` by key; ``first_page`` is given the first page's
        objects as soon as they are here."""
        out: dict[str, dict[str, Any]] = {}
        async for page in self.list_pages(bucket, prefix, delimiter=""):
            if first_page is not None and not out:
                first_page(page["objects"])
            out.update((o["key"], o) for o in page["objects"])
        return out

    async def upload_to(
        self,
        paths: Sequence[str | Path],
        bucket: str,
        key: str = "",
        *,
        checksum: bool = False,
        profile: ChunkerProfile | None = None,
        progress: ProgressFn | None = None,
        follow_symlinks: bool = False,
        listed: Future[KeyedFiles] | None = None,
    ) -> SyncReport:
        """Upload files and directories to ``bucket/key`` (a prefix for directories),
        skipping files whose object is unchanged; ``follow_symlinks``: the symbolic links
        met inside the directories are followed (``walk``), not skipped. ``listed``: their
        listing (``keyed_files`` of the same arguments), when the caller started it already
        (``dfs.client.early_listing``); else it runs on a thread now."""
        report = SyncReport()
        if listed is None:
            listed = listed_now(lambda: keyed_files(list(map(Path, paths)), key, follow_symlinks))
        files, prefix, skipped = await asyncio.wrap_future(listed)
        report.skipped += skipped
        # two local files for one key (the same name in two folders given): the last wins,
        # as it would overwrite the first; chosen before the comparison with the remote, or
        # each run would find the other one changed and upload it (the key flipping)
        files = list({f.name: f for f in files}.values())
        # none left (each skipped): the prefix may be no key the API lists by either
        remote = await self._remote_map(bucket, prefix) if files else {}
        todo, unchanged = await asyncio.to_thread(changed_uploads, files, remote, checksum)
        report.unchanged += unchanged
        profile = profile or ChunkerProfile.default()
        conn = self._connection()
        folder = journal_folder(conn.api_url, conn.token)
        await self._release_leftovers(folder)
        if not todo:
            return report
        cache = await self.files_cache(bucket, profile)
        # for_object: linked below, so no lookup by content may hand them out meanwhile
        pipeline = StreamingUploadPipeline(conn, profile, progress, cache, for_object=True)
        # a file that changed while it was read is reported and left out; the rest go on
        pipeline.failed = lambda f, exc: report.skipped.append(Skipped(str(f.path), exc.message))
        journal = await asyncio.to_thread(_new_journal, folder) if conn.resume else None
        if journal is not None:
            pipeline.planned = journal.up
        linker = UploadLinker(self, bucket, todo, journal.done if journal else None)
        try:
            report.done += await upload_and_link(
                lambda done: pipeline.upload_files(todo, done=done), linker
            )
        finally:
            if journal is not None:
                journal.close()
            if cache is not None:
                cache.save()
        return report

    async def _release_leftovers(self, folder: Path) -> None:
        """Delete the complete files that runs killed before linking them left behind
        (``dfs.client.link_journal``); their journals go once that is done. Best effort:
        a file it cannot look at now is left to the next run, and the upload goes on."""
        try:
            left = await asyncio.to_thread(take_leftovers, folder)
        except OSError as exc:
            log.warning("link journals in %s not read: %s", folder, exc)
            return
        api = self._connection().api

        async def complete(fid: str) -> bool | None:
            """True: complete, to delete; None: nothing to do; False: not looked at now."""
            try:
                parse_file_id(fid)  # a torn or foreign line is no id to ask about
                return (await api.file(fid)).get("state") == "complete" or None
            except (NotFound, InvalidRequest):
                return None
            except (DfsError, OSError) as exc:
                log.warning("file %s of a killed upload not looked at: %s", fid, exc)
                return False

        async def delete(fid: str) -> bool:
            try:
                await self._release_own(fid)
                return True
            except (DfsError, OSError) as exc:
                log.warning("file %s of a killed upload not deleted yet: %s", fid, exc)
                return False

        done = False
        try:
            looked = await gather_bounded(complete, left.file_ids, CLEANUPS_AT_ONCE)
            # read again just before the deletes: a client started since may have taken
            # one of these files over (a big file's resume journal) and named it
            running = await asyncio.to_thread(running_ids, folder, left)
            wanted = [
                f for f, c in zip(left.file_ids, looked, strict=True) if c and f not in running
            ]
            deleted = await gather_bounded(delete, wanted, CLEANUPS_AT_ONCE)
            done = False not in looked and all(deleted)
        finally:
            left.release(remove=done)

    async def _release_own(self, file_id: str) -> None:
        """Delete the caller's file made for an object when no version links it: the link
        was refused, or it linked the bucket owner's clone of it (a read-write grantee's
        file, cloned into the owner's tenant). It was uploaded ``for_object`` (a new file,
        never handed out by content), so it is this sync's alone; the API refuses to delete
        one a version links (409: a link whose answer was lost), and one gone is gone."""
        with contextlib.suppress(Conflict, NotFound):
            await self._connection().api.delete_file(file_id)

    async def _owns(self, bucket: str) -> bool:
        """Is ``bucket`` the caller's (its files are then the caller's too)? False also for
        a bucket it cannot list: an object shared with it alone."""
        who = await self._call("GET", protocol.WHOAMI)
        try:
            return bool((await self.bucket_info(bucket))["owner"] == who["tenant"])
        except NotFound:
            return False

    async def _stream_to(
        self, obj: dict[str, Any], target: Path, replace: Overwrite, dirs: TargetDirs
    ) -> None:
        """An object's bytes through the API (each chunk verified there) into ``target``, as
        the download pipeline writes a file (``PartFile``, in its folder opened from the
        restore's root by ``dirs``): a new temp file beside it, hashed as it is written,
        checked against the sha256 the API answers (``X-Dfs-Sha256``; and the listing's) and
        the object's size, its mtime set, fsync'ed, renamed over ``target``, the directory
        fsync'ed. On any failure the temp file is removed and ``target`` left as it was; a
        file there that ``replace`` does not allow replacing (one that appeared or changed
        since the comparison) is kept (Conflict)."""
        url = f"{self.api_url.rstrip('/')}/objects/{obj['bucket']}/{key_path(obj['key'])}"
        name = f"{obj['bucket']}/{obj['key']}"
        params = {"version": obj["version_id"]}
        session = self._require_session()
        async with request(session, "GET", url, headers=self._auth(), params=params) as resp:
            part = PartFile(target, "", False, await dirs.open_async(str(target.parent)))
            await part.open()  # (its folder closed if it fails)
            try:
                size = await _receive(resp, part)
                # made 0600 while written; the object's mtime metadata, where it has one
                await part.end(size, {"mode": obj.get("mode"), "mtime": stored_mtime(obj)})
                await part.fsync()
                sha256 = _checked(name, obj, resp.headers.get(SHA256_HEADER), part, size)
            except BaseException:
                part.abandon()
                raise
        await part.commit(target, name, sha256, replace)

    async def download_from(
        self,
        bucket: str,
        key: str,
        out: str | Path,
        *,
        version: str | None = None,
        at: float | None = None,
        checksum: bool = False,
        progress: ProgressFn | None = None,
    ) -> SyncReport:
        """Download ``bucket/key`` to ``out`` (into it if it is a directory, or a string
        ending with "/"), or every key under the prefix ``key`` (empty or ending with "/")
        into the directory ``out``, skipping local files that already hold the object's
        content, and keys whose target is a directory or under a file or a symbolic link
        (``in_the_way``). ``at`` (Unix seconds): not the current objects but those current
        at that time (``versions_at``)."""
        as_dir = _names_directory(out)
        out = Path(out)
        if as_dir and await asyncio.to_thread(lambda: out.exists() and not out.is_dir()):
            raise InvalidRequest(f"{out} is not a directory")
        if at is not None and version is not None:
            raise InvalidRequest("a version or a time (--at) picks what to download, not both")
        if at is None:
            obj = await self._single(bucket, key, version)
            if obj is not None:
                one = [(obj, _one_target(out, key, as_dir))]
                return await self._fetch(bucket, out, one, checksum, progress)
            key = key if not key or key.endswith("/") else key + "/"
            if version is not None:
                raise InvalidRequest("--version names one key's version, not a prefix's")
        owned = await self._owns(bucket)  # else streamed through the API: nothing read ahead
        fresh = owned and await asyncio.to_thread(holds_nothing, out)
        ahead = ListingAhead(self._connection(), fresh) if owned else None
        try:
            first = ahead.first_page if ahead else None
            if at is not None:
                wanted, skipped = await self._wanted_at(bucket, key, out, at, as_dir, first)
            else:
                objs = await self._remote_map(bucket, key, first)
                if not objs and key:
                    raise KeyNotFound(f"no key or folder {bucket}/{key}")
                wanted, skipped = _under(out, objs, key)
            return await self._fetch(bucket, out, wanted, checksum, progress, skipped, ahead, owned)
        finally:
            if ahead is not None:
                await ahead.cancel()  # what the download did not take

    async def versions_at(
        self,
        bucket: str,
        prefix: str,
        at: float,
        *,
        exact: bool = False,
        first_page: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> dict[str, dict[str, Any]]:
        """Each key under ``prefix`` (``exact``: the key ``prefix`` alone) as it was at ``at``
        (Unix seconds, the API's clock): its newest version created then or before. A key
        whose version then was a delete marker, or that had none yet, is left out. Only what
        is still stored can be found: a bucket without versioning keeps one version a key,
        so it reaches back past no overwrite. ``first_page``: given the picks of the
        listing's first page as soon as it is here (each key's versions come together, so
        only its last key's pick may change; a plan asked for it then is not used)."""
        picks = NewestAt(at)  # the rule prune keeps to (dfs.client.version_times)
        if exact:
            for o in await self.key_versions(bucket, prefix):
                picks.feed(o)
            return picks.objects()
        first = True
        async for page in self.list_pages(bucket, prefix, delimiter="", versions=True):
            for o in page["objects"]:
                picks.feed(o)
            if first and first_page is not None:
                first_page(list(picks.objects().values()))
            first = False
        return picks.objects()

    async def _wanted_at(
        self,
        bucket: str,
        key: str,
        out: Path,
        at: float,
        as_dir: bool,
        first_page: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> tuple[Wanted, list[Skipped]]:
        """What ``download_from`` fetches for ``at``: the version of ``key`` then, else (no
        such key then: a folder named without its slash) every key under ``key/`` then
        (``_under``: with the keys it skips)."""
        named = key
        if key and not key.endswith("/"):
            one = (await self.versions_at(bucket, key, at, exact=True)).get(key)
            if one is not None:
                return [(one, _one_target(out, key, as_dir))], []
            key += "/"
        objs = await self.versions_at(bucket, key, at, first_page=first_page)
        if not objs and named:
            when = time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(at))
            raise KeyNotFound(f"no key or folder {bucket}/{named} at {when}")
        return _under(out, objs, key)

    async def _single(self, bucket: str, key: str, version: str | None) -> dict[str, Any] | None:
        """The object ``key`` names, or None when it names a folder (ends with "/", or no
        such key: a folder named without its slash, as ``rsync`` takes ``dir``)."""
        if not key or key.endswith("/"):
            return None
        try:
            return await self.object_info(bucket, key, version=version)
        except KeyNotFound:
            if version is not None:
                raise
            return None

    async def _fetch(
        self,
        bucket: str,
        root: Path,
        wanted: Wanted,
        checksum: bool,
        progress: ProgressFn | None,
        skipped: Sequence[Skipped] = (),
        ahead: ListingAhead | None = None,
        owned: bool | None = None,
    ) -> SyncReport:
        """Download ``wanted`` (targets in or at ``root``) but the targets that hold their
        object already or that something stands in the way of; ``skipped``: the keys left
        out before (reported with the rest); ``ahead``: the plans and chunks read while
        listing; ``owned``: whether the bucket is the caller's, if known."""
        report = SyncReport(skipped=list(skipped))
        if await asyncio.to_thread(holds_nothing, root):
            # nothing there: no target holds its object or has anything in its way (a
            # look at each cost a restore of 7,733 files ~0.4 s before its first write)
            todo, found = list(wanted), Found(dict.fromkeys(str(t) for _o, t in wanted))
        else:
            todo, report.unchanged, blocked, found = await asyncio.to_thread(
                changed_downloads, wanted, root, checksum
            )
            report.skipped += blocked
        # the folder the targets are in: root, or its parent for a key downloaded as root
        base = root.parent if any(t == root for _o, t in todo) else root
        dirs = TargetDirs(base)
        empty = [(o, t) for o, t in todo if not o.get("file_id")]  # an empty object: no file
        if empty:  # a file that appeared at a target meanwhile is kept, and reported
            taken = await asyncio.to_thread(_write_empty, empty, found, dirs)
            report.skipped += [Skipped(o["key"], APPEARED) for o, t in empty if t in taken]
            todo = [(o, t) for o, t in todo if t not in taken]
        report.done.extend({"key": o["key"], "path": str(t)} for o, t in todo)
        todo = [(o, t) for o, t in todo if o.get("file_id")]
        if todo and (await self._owns(bucket) if owned is None else owned):
            plans, chunks = await ahead.take() if ahead is not None else ({}, None)
            # the files with plans first, in their order: one early answer makes one batch
            rank = {file_id: n for n, file_id in enumerate(plans)}
            pairs = sorted(
                ((o["file_id"], t) for o, t in todo), key=lambda p: rank.get(p[0], len(rank))
            )
            pipeline = DownloadPipeline(self._connection(), progress)
            pipeline.overwrite = found.replaceable  # what appeared or changed: Conflict, kept
            pipeline.mtimes = _stored_mtimes(todo)
            pipeline.root = base
            await pipeline.download_files(pairs, plans, chunks)
        else:
            for obj, target in todo:
                await self._stream_to(obj, target, found.replaceable, dirs)
        return report
