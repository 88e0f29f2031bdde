"""Small files' batches (``batches``) and their scan step: each file chunked and hashed, or
taken from the files cache (``dfs.client.file_cache``) when it is listed unchanged, the next
batch scanned in a worker thread while this one is sent.

A scan taken from the cache is marked (``Scanned.cached``): if the API's plan asks for any
of its chunks, the servers no longer hold that content for this tenant, and the file is read
and scanned again before a byte of it is sent (``rescan``), so a stale cache can cost a
normal upload, never a wrong one.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from dfs.chunking import ChunkerProfile, ChunkRef, FileScan, chunk_id_of, scan_file
from dfs.client.file_cache import FileCache
from dfs.client.local_files import LocalFile

BATCH_FILES = 500
BATCH_BYTES = 64 * 1024 * 1024


def batches(files: Sequence[tuple[int, LocalFile]]) -> Iterator[list[tuple[int, LocalFile]]]:
    """Small files (with their place in the caller's list) in batches of at most
    BATCH_FILES files and BATCH_BYTES bytes."""
    batch: list[tuple[int, LocalFile]] = []
    size = 0
    for n, f in files:
        if batch and (len(batch) >= BATCH_FILES or size + f.size > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append((n, f))
        size += f.size
    if batch:
        yield batch


def scan_small(path: Path, profile: ChunkerProfile) -> FileScan:
    """``scan_file``'s answer for a file of a batch, cheaper for the many that are one chunk.

    A file no longer than the profile's smallest chunk (FastCDC's minimum, the fixed size)
    is one chunk (none when empty) whatever its bytes: it is read once and hashed once (its
    chunk id is its sha256), without the chunker's and the buffered reader's MiB buffers
    that every ``scan_file`` allocates. Longer files go through ``scan_file``."""
    fd = os.open(path, os.O_RDONLY)
    try:
        data = os.read(fd, profile.min_size + 1)
        while len(data) <= profile.min_size and (more := os.read(fd, profile.min_size + 1)):
            data += more
    finally:
        os.close(fd)
    if len(data) > profile.min_size:
        return scan_file(path, profile)
    if not data:
        return FileScan(size=0, sha256=chunk_id_of(data), chunks=[])
    digest = chunk_id_of(data)
    return FileScan(size=len(data), sha256=digest, chunks=[ChunkRef(0, len(data), digest)])


@dataclass(frozen=True)
class Scanned:
    """A file's scan, and whether it came from the files cache (unread)."""

    scan: FileScan
    cached: bool = False


def cacheable(f: LocalFile) -> bool:
    """Files the cache may answer for: listed with their stat, and not standard input
    spooled to a temp file (whose path means nothing the next time)."""
    return f.st is not None and f.keep_attrs


def scan_one(f: LocalFile, profile: ChunkerProfile, cache: FileCache | None) -> Scanned:
    if cache is not None and f.st is not None and cacheable(f):
        found = cache.lookup(f.path, f.st)
        if found is not None:
            return Scanned(found, cached=True)
    return Scanned(scan_small(f.path, profile))


def rescan(f: LocalFile, profile: ChunkerProfile, cache: FileCache | None) -> FileScan:
    """The file read and scanned again (a cached scan the servers did not confirm); the
    cache forgets it until it is stored again."""
    if cache is not None:
        cache.forget(f.path)
    return scan_small(f.path, profile)


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
    """The scan step of batches: the next batch hashes in a thread while this one is sent."""

    def __init__(
        self,
        todo: list[list[tuple[int, LocalFile]]],
        profile: ChunkerProfile,
        cache: FileCache | None = None,
    ) -> None:
        self._todo = todo
        self._profile = profile
        self._cache = cache
        self._next: asyncio.Task[list[Scanned]] | None = None
        self._start(0)

    def _start(self, n: int) -> None:
        if n < len(self._todo):
            files = [f for _n, f in self._todo[n]]
            self._next = asyncio.create_task(
                asyncio.to_thread(lambda: [scan_one(f, self._profile, self._cache) for f in files])
            )

    async def take(self, n: int) -> list[Scanned]:
        """The scans of batch ``n`` (the one after the last taken); starts batch ``n + 1``."""
        assert self._next is not None
        scans = await self._next
        self._next = None
        self._start(n + 1)
        return scans

    async def close(self) -> None:
        if self._next is not None:
            self._next.cancel()
            await asyncio.gather(self._next, return_exceptions=True)
