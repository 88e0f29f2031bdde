"""Small files' batches (``batches``) and their scan step: each file chunked and hashed, or
taken from the files cache (``dfs.client.file_cache``) when it is listed unchanged, the next
batch scanned in a worker thread while this one is sent.

A small file is read once, whole (``read_small``): cut and hashed from that buffer, whose
bytes the batch keeps (up to ``HOLD_BYTES`` a batch, in the order of its files) so that its
chunks are sent from memory instead of opening and reading the file again. What is sent is
then exactly what was hashed: one version of the file, even if it changes afterwards (a file
whose bytes were not kept is read again at the send and checked by the node, as a big
file's chunks are).

A file whose stat after its read is not its stat when it was opened (size, mtime, ctime,
inode, device: ``same_version``) changed during the read, which may have read a mix of
versions: its scan is marked ``changed`` and the batch leaves it out (``FileChanged``). Two
``fstat`` calls on the descriptor already open, no ``stat`` of the path. A file changed
between its listing and its read is read whole as it is then, like any other (a log file
appended to between backups is stored, not refused). A file removed or made unreadable
between its listing and its read (``GONE``) is marked ``changed`` too, with the error
(``Scanned.error``), and left out the same way: one file gone from a live tree is not the
whole upload.

A scan taken from the cache is marked (``Scanned.cached``): if the API's plan asks for any
of its chunks, the servers no longer hold that content for this tenant, and the file is read
and scanned again before a byte of it is sent (``rescan``), so a stale cache can cost a
normal upload, never a wrong one.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dfs import protocol
from dfs.chunking import ChunkerProfile, ChunkRef, FileScan, chunk_id_of, scan_file
from dfs.client.file_cache import FileCache
from dfs.client.local_files import GONE, LocalFile, open_to_read, same_version

SMALL_FILE = 8 * 1024 * 1024  # files up to this size are uploaded in batches
BATCH_FILES = 500
CACHED_BATCH_FILES = protocol.MAX_BATCH_FILES
"""Files of a batch, when they are files the files cache knows unchanged (each counts half
of one it does not): nothing of theirs is read or held, and each plan request costs the API
a fixed part (its commit rewrites the pages of the chunks it references, a has-chunks round
to the nodes, its reads): re-backups of 7,733 unchanged files took 1-14% less API CPU in
batches of 1,000 than of 500 (bench/README.md, stop 59). Files the cache does not know stay
at BATCH_FILES: their bytes are held from scan to send, and a first backup was no faster in
batches of 1,000 (its client's peak memory 199 MiB against 168)."""
PLANS_AT_ONCE = 2
"""Batches planned at the same time. The API plans a batch on one core (its event loop), so
with several API processes behind a load balancer (a deployment's ``api_count``) two plans
in flight are planned at once: measured with two API processes and a re-backup of 7,733
unchanged files (every batch only planned), 1.00 -> 0.82 s (medians of 6 A/B pairs); with
one process they queue there, as one at a time did (bench/README.md).
Here, not in ``dfs.client.upload``, for ``dfs.client.early_batches`` (no aiohttp) too."""
BATCH_BYTES = 64 * 1024 * 1024
# a batch's files' bytes kept from scan to send (then dropped): one batch scanning ahead and
# at most PIPELINE_DEPTH in flight (``dfs.client.upload``) hold at most 5 x 16 MiB
HOLD_BYTES = 16 * 1024 * 1024
# a file of a batch is read whole up to this size (batches take files listed up to 8 MiB);
# one that grew past it since it was listed is streamed (bounded memory), not kept
READ_WHOLE = 8 * 1024 * 1024
_READ_MORE = 1024 * 1024

Batch = list[tuple[int, LocalFile]]  # small files with their places in the upload's listing


FIRST_BATCH_FILES = BATCH_FILES // 8
"""Files of the first batch: nothing is planned or sent before it is scanned, so the
batches grow from this (doubling) to BATCH_FILES and the pipeline starts sooner."""


def batches(
    files: Iterable[tuple[int, LocalFile]],
    first: int = FIRST_BATCH_FILES,
    known: Callable[[LocalFile], bool] | None = None,
) -> Iterator[Batch]:
    """Small files (with their place in the caller's list) in batches of at most
    BATCH_FILES files and BATCH_BYTES bytes, the first ones smaller (``first``, then twice
    as many each, up to BATCH_FILES). A file ``known`` to the files cache (unchanged: it
    will not be read) counts as half a file and none of its bytes: a batch of such files
    holds up to CACHED_BATCH_FILES."""
    batch: Batch = []
    size = 0
    weight = 0  # in halves of a file the cache does not know
    most = first
    for n, f in files:
        cached = known is not None and known(f)
        more = 1 if cached else 2
        grown = 0 if cached else f.size
        if batch and (weight + more > 2 * most or size + grown > BATCH_BYTES):
            yield batch
            batch, size, weight = [], 0, 0
            most = min(2 * most, BATCH_FILES)
        batch.append((n, f))
        size += grown
        weight += more
    if batch:
        yield batch


def _read_whole(fd: int, size: int) -> bytes | None:
    """The file's bytes (``size``: as listed, a hint), or None when it is over READ_WHOLE."""
    data = os.read(fd, min(size, READ_WHOLE) + 1)
    if len(data) > size or len(data) == 0:  # grew since listed (or listed empty): read on
        parts = [data]
        total = len(data)
        while total <= READ_WHOLE and (more := os.read(fd, _READ_MORE)):
            parts.append(more)
            total += len(more)
        data = b"".join(parts)
    elif os.read(fd, 1):  # more after the first read (it grew meanwhile): streamed instead
        return None
    return None if len(data) > READ_WHOLE else data


def scan_buffer(data: bytes, profile: ChunkerProfile) -> FileScan:
    """``scan_file``'s answer for a file whose bytes are ``data``: cut from the buffer
    (``cut_buffer``: no stream, no copy), each chunk hashed from it. A file no longer than
    the profile's smallest chunk (FastCDC's minimum, the fixed size) is one chunk (none when
    empty) whatever its bytes, its chunk id its sha256."""
    if len(data) <= profile.min_size:
        digest = chunk_id_of(data)
        chunks = [ChunkRef(0, len(data), digest)] if data else []
        return FileScan(size=len(data), sha256=digest, chunks=chunks)
    chunks = [
        ChunkRef(c.offset, len(c.data), chunk_id_of(c.data)) for c in profile.cut_buffer(data)
    ]
    return FileScan(size=len(data), sha256=chunk_id_of(data), chunks=chunks)


@dataclass(slots=True)
class Scanned:
    """A file's scan, whether it came from the files cache (unread), and the bytes it was
    read from when they are kept for the send (``take``); ``st``: the file's stat once read
    (``read_small``); ``changed``: it was written to during the read (nothing kept), or
    could not be opened (``error``: gone or unreadable since it was listed; no scan)."""

    scan: FileScan
    cached: bool = False
    data: bytes | None = None
    st: os.stat_result | None = None
    changed: bool = False
    error: OSError | None = None

    def take(self) -> bytes | None:
        """The kept bytes, handed over once (their holder drops them after the send)."""
        data, self.data = self.data, None
        return data


def read_small(path: Path, profile: ChunkerProfile, size: int = 0, keep: bool = False) -> Scanned:
    """A file of a batch read once and scanned (``scan_buffer``), its bytes kept if
    ``keep`` (``size``: its listed size, to read it in one call), with its stat once read
    (``fstat``). A file over READ_WHOLE (grown since it was listed) is streamed through
    ``scan_file`` and not kept."""
    fd = open_to_read(path)
    try:
        opened = os.fstat(fd)
        data = _read_whole(fd, size)
        if data is None:
            scan = scan_file(path, profile)
        st = os.fstat(fd)
    finally:
        os.close(fd)
    changed = not same_version(opened, st)  # written to during the read: perhaps a mix
    if data is None or changed:
        return Scanned(scan if data is None else scan_buffer(data, profile), st=st, changed=changed)
    return Scanned(scan_buffer(data, profile), data=data if keep and data else None, st=st)


def scan_small(path: Path, profile: ChunkerProfile) -> FileScan:
    """``scan_file``'s answer for a file of a batch, read once (``read_small``)."""
    return read_small(path, profile).scan


def cacheable(f: LocalFile) -> bool:
    """Files the cache may answer for: listed with their stat, and not standard input
    spooled to a temp file (whose path means nothing the next time)."""
    return f.st is not None and f.keep_attrs


def scan_one(
    f: LocalFile, profile: ChunkerProfile, cache: FileCache | None, keep: bool = False
) -> Scanned:
    """A file's scan: from the cache, else read (``read_small``: ``changed`` when it was
    written to during the read, or gone or unreadable since it was listed)."""
    if cache is not None and f.st is not None and cacheable(f):
        found = cache.lookup(f.path, f.st)
        if found is not None:
            return Scanned(found, cached=True)
    try:
        return read_small(f.path, profile, f.size, keep)
    except GONE as exc:
        return Scanned(FileScan(size=0, sha256="", chunks=[]), changed=True, error=exc)


def scan_batch(
    files: Sequence[LocalFile], profile: ChunkerProfile, cache: FileCache | None
) -> list[Scanned]:
    """A batch's scans; the bytes of its files kept in order while HOLD_BYTES allows."""
    left = HOLD_BYTES
    out = []
    for f in files:
        scanned = scan_one(f, profile, cache, keep=f.size <= left)
        if scanned.data is not None:
            left -= len(scanned.data)
        out.append(scanned)
    return out


def rescan(files: Sequence[LocalFile], profile: ChunkerProfile, cache: FileCache) -> list[Scanned]:
    """The files read and scanned again (cached scans the servers did not confirm), kept as
    ``scan_batch`` keeps them; the cache forgets them until they are stored again."""
    for f in files:
        cache.forget(f.path)
    return scan_batch(files, profile, None)


def upload_entry(
    name: str,
    scan: FileScan,
    chunker: str,
    st: os.stat_result | None = None,
    for_object: bool = False,
) -> dict[str, Any]:
    """The body ``/init-upload`` takes (and each entry of ``/init-uploads``) for a file
    stored as ``scan``: with ``st``, its permission bits and mtime for the download to
    restore (issue 16); ``for_object``: the file is linked to an object next (sync), so no
    lookup by content may hand it out meanwhile (docs/WIRE.md)."""
    body: dict[str, Any] = {
        "name": name,
        "size": scan.size,
        "sha256": scan.sha256,
        "chunker": chunker,
        "chunks": [{"sha256": c.chunk_id, "size": c.size} for c in scan.chunks],
    }
    if for_object:
        body["for_object"] = True
    if st is not None:
        body["mode"] = stat.S_IMODE(st.st_mode)
        body["mtime"] = st.st_mtime_ns / 1_000_000_000
    return body


def remember(
    cache: FileCache | None, files: Sequence[LocalFile], scans: Sequence[FileScan]
) -> None:
    """Files of a batch now stored: the cache keeps what each was stored as."""
    if cache is None:
        return
    for f, scan in zip(files, scans, strict=True):
        if f.st is not None and cacheable(f):
            cache.remember(f.path, f.st, scan)


class ScanAhead:
    """The scan step of batches: the next batch hashes in a thread while this one is sent.
    ``next_batch``: the batches as they are listed (``dfs.client.walk_ahead``), None at
    the end."""

    def __init__(
        self,
        next_batch: Callable[[], Awaitable[Batch | None]],
        profile: ChunkerProfile,
        cache: FileCache | None = None,
    ) -> None:
        self._next_batch = next_batch
        self._profile = profile
        self._cache = cache
        self._next: asyncio.Task[tuple[Batch, list[Scanned]] | None] | None = None
        self._start()

    def _start(self) -> None:
        self._next = asyncio.create_task(self._scan_next())

    async def _scan_next(self) -> tuple[Batch, list[Scanned]] | None:
        batch = await self._next_batch()
        if batch is None:
            return None
        files = [f for _n, f in batch]
        return batch, await asyncio.to_thread(scan_batch, files, self._profile, self._cache)

    async def take(self) -> tuple[Batch, list[Scanned]] | None:
        """The next batch and its scans (None at the end); starts the one after."""
        assert self._next is not None
        got = await self._next
        self._next = None
        if got is not None:
            self._start()
        return got

    async def close(self) -> None:
        if self._next is not None:
            self._next.cancel()
            await asyncio.gather(self._next, return_exceptions=True)
