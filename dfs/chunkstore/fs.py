"""``FsChunkStore``: chunks as files in a fan-out tree on the node's local disk.

On-disk layout under the node's data directory:

| path                              | what                                                    |
|-----------------------------------|---------------------------------------------------------|
| ``chunks/ab/<sha256>``            | one chunk; ``ab`` is the id's first byte (a store made  |
|                                   | before layout 1: ``chunks/ab/cd/<sha256>``,             |
|                                   | ``dfs.chunkstore.fan_out``)                             |
| ``chunks/ab/.<sha256>.<r>.tmp``   | a write in progress; removed on error and at start      |
| ``chunks/.layout``                | the store's fan-out layout, 1 or 2                      |
| ``quarantine/<sha256>.<time>``    | a copy that failed verification, kept for inspection    |
| ``node_id``                       | the node's generated id, stable across restarts         |

A write goes to a temp file in the target directory, is fsync'd (and its pages are given back
to the kernel: ``_drop_cached``), then moved over its final name with ``os.replace`` (atomic:
a reader sees the old copy or the new one, never a part), and the directory is fsync'd before
the write is acknowledged. The temp file gets a fast checksum of its bytes before its fsync
(``dfs.chunkstore.file_sum``: an extended attribute), which is what a read checks; a file
without one is re-hashed with SHA-256 instead, and ``scrub`` re-hashes every copy.
Blocking file work runs in worker threads; hashing releases the GIL there.

A put of a chunk already stored does exactly what a new write does, from the capacity check
to the directory fsync, and replaces the copy with the verified bytes. So the time a write
takes does not tell a tenant whether some other tenant stores those bytes (no dedup timing
oracle), a silently rotten copy is replaced instead of being acknowledged, and the fresh mtime
keeps the copy from garbage collection: GC deletes a copy only if it was not written since GC
checked that no upload relies on it (``delete_if_idle``). The replaced copy's blocks are
freed only after the write is acknowledged (a descriptor keeps the old file alive through
the replace and is closed on a worker thread afterwards): freeing is work a new write does
not do, and done inside the write it made a rewrite measurably slower (its journal commit
grew). The replace and the byte count
change in one step under the store's lock, so a rewrite, a concurrent writer of the same
chunk or a delete never counts a copy twice. ``scrub`` re-hashes every copy at a bounded rate,
quarantines bad ones, and re-counts ``used_bytes`` from disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import secrets
import shutil
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from dfs.chunkstore import file_sum
from dfs.chunkstore.base import Buffer, ChunkStore, read_prefix, verify_at_rate
from dfs.chunkstore.fan_out import FanOut, is_chunk_name, open_fan_out
from dfs.chunkstore.quarantine import MEDIUM_ERRORS
from dfs.errors import (
    ChunkNotFound,
    DfsError,
    InsufficientStorage,
    IntegrityError,
    InvalidRequest,
    Unavailable,
)
from dfs.fsutil import fsync_dir, make_dirs, write_all
from dfs.ids import ChunkId, sha256_hex, sha256_hex_parts

_Written = tuple[bool, int | None]
"""What a write did: (no copy was here before, descriptor of the copy it replaced)."""


def _drop_cached(fd: int) -> None:
    """Give a durable chunk file's pages back to the kernel (write-behind, like a backup
    tool's): a node writes far more than it reads back soon, and left cached, every new chunk
    took fresh page-cache pages, whose first touch was most of the kernel's cost of a write
    here (a copy of ``write`` ran ~12x slower per byte at RF 2, where the two nodes' copies
    double the churn; bench/README.md). Reused pages make it one plain copy. A read of the
    chunk later comes from the disk, and is cached then."""
    if hasattr(os, "posix_fadvise"):  # not on every platform; only a cost without it
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


def _create(tmp: str) -> int:
    """Create ``tmp`` exclusively for writing, making its fan-out directories only when they
    are missing (a mkdir of an existing directory per chunk is a failing syscall and a stat),
    durably: a new directory's parent is fsync'd (``make_dirs``), else a crash could take the
    directory, and the acknowledged chunks in it, away."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    try:
        return os.open(tmp, flags, 0o644)
    except FileNotFoundError:
        make_dirs(os.path.dirname(tmp))
        return os.open(tmp, flags, 0o644)


def _read_whole(fd: int, size: int) -> bytes:
    """A chunk file's bytes, usually in one ``read`` of the size ``fstat`` gave; otherwise
    (a file that grew or shrank meanwhile, a read the kernel capped) read on to its end, so
    the hash check sees every byte it holds."""
    data = os.read(fd, size + 1)
    if len(data) == size:
        return data
    parts = [data]
    while more := os.read(fd, 1 << 20):
        parts.append(more)
    return b"".join(parts)


def _close_all(fds: Sequence[int]) -> None:
    for fd in fds:
        os.close(fd)


class FsChunkStore:
    """ChunkStore on a local directory; layout in the module docstring."""

    def __init__(self, root: Path, capacity_bytes: int | None = None) -> None:
        self._root = root
        self._chunks = root / "chunks"
        self._chunks_dir = os.fspath(self._chunks)  # str paths: the hot paths build one each
        self._fan_out = FanOut(self._chunks_dir, 1)  # what ``open`` finds on disk
        self._quarantine = root / "quarantine"
        self._capacity = capacity_bytes
        self._used = 0
        self._count = 0
        self._smallest_at_open: int | None = None  # size of the smallest chunk found by open
        self._reserved = 0  # bytes of puts in flight, so concurrent puts cannot overshoot
        self._lock = threading.Lock()  # counters change from worker threads
        self._sums = True  # files get their checksum attribute (False: the disk takes none)

    def _account(self, size: int, count: int) -> None:
        with self._lock:
            self._used += size
            self._count += count

    @classmethod
    async def open(cls, root: Path, capacity_bytes: int | None = None) -> FsChunkStore:
        store = cls(root, capacity_bytes)
        await asyncio.to_thread(store._scan)
        return store

    def _scan(self) -> None:
        """Create the tree, drop leftovers of interrupted writes, and count what is stored."""
        self._fan_out = open_fan_out(self._chunks_dir)
        make_dirs(os.fspath(self._quarantine))
        used = count = 0
        smallest: int | None = None
        for dirpath, _dirs, files in os.walk(self._chunks):
            for name in files:
                full = os.path.join(dirpath, name)
                if name.endswith(".tmp"):
                    os.unlink(full)
                elif is_chunk_name(name):
                    size = os.stat(full).st_size
                    used += size
                    count += 1
                    smallest = size if smallest is None else min(smallest, size)
        self._used, self._count, self._smallest_at_open = used, count, smallest

    def path_of(self, chunk_id: ChunkId) -> Path:
        return Path(self._path(chunk_id))

    def _path(self, chunk_id: ChunkId) -> str:
        # Defence in depth: handlers parse ids already, but no string that is not 64
        # lowercase hex characters ("../x", "/etc/passwd", "") may ever become a path here.
        if not is_chunk_name(chunk_id):
            raise InvalidRequest("chunk_id must be 64 lowercase hex characters (sha256)")
        return self._fan_out.path(chunk_id)

    @property
    def root(self) -> Path:
        return self._root

    @property
    def used_bytes(self) -> int:
        return self._used

    @property
    def chunk_count(self) -> int:
        return self._count

    @property
    def smallest_at_open(self) -> int | None:
        """The size of the smallest chunk file found when the store was opened (None: no
        file). ``PackChunkStore`` learns from it whether any file can hold a small chunk."""
        return self._smallest_at_open

    @property
    def capacity_bytes(self) -> int:
        if self._capacity is not None:
            return self._capacity
        return self._used + shutil.disk_usage(self._chunks).free

    # --- writes ---------------------------------------------------------------------------

    async def put(self, chunk_id: ChunkId, data: Buffer) -> bool:
        return await self.put_parts(chunk_id, [data])

    async def put_parts(self, chunk_id: ChunkId, parts: Sequence[Buffer]) -> bool:
        new, replaced = await asyncio.to_thread(self._put, chunk_id, parts)
        self._release([replaced])
        return new

    async def put_many(
        self,
        items: Sequence[tuple[ChunkId, Buffer]],
        *,
        verified: bool = False,
        counted: Sequence[Callable[[], None]] | None = None,
    ) -> list[bool]:
        """``put`` for many small chunks: every hash is checked before anything is written
        (one bad chunk stores none of the batch), then the writes run on worker threads at
        once, so their fsyncs share the file system's journal commits. Each chunk is still
        fsync'd, moved into place and its directory fsync'd before this returns, whether or
        not a copy was here (as by ``put``). ``verified``: the caller hashed them already
        (``PackChunkStore``, which checks a whole batch before storing any of it).
        ``counted[i]``, when given, runs as item i counts as used (``put_verified_blocking``)."""
        if not verified:
            await asyncio.to_thread(self._verify_all, items)
        ends: Sequence[Callable[[], None] | None] = counted or [None] * len(items)
        written = await asyncio.gather(
            *(
                asyncio.to_thread(self._put, c, [d], verified=True, counted=end)
                for (c, d), end in zip(items, ends, strict=True)
            )
        )
        self._release([replaced for _, replaced in written])
        return [new for new, _ in written]

    @staticmethod
    def _verify_all(items: Sequence[tuple[ChunkId, Buffer]]) -> None:
        for chunk_id, data in items:
            if sha256_hex(data) != chunk_id:
                raise IntegrityError(f"body does not hash to chunk {chunk_id}")

    @staticmethod
    def _release(replaced: Sequence[int | None]) -> None:
        """Close the descriptors that kept replaced copies alive, on a worker thread, without
        waiting: that last close frees the old copy's blocks, work a new write does not do, so
        it must not run before the write is acknowledged nor land in its directory fsync
        (measured: it made a rewrite ~4 ms slower than a new write, a timing oracle again)."""
        fds = [fd for fd in replaced if fd is not None]
        if fds:
            asyncio.get_running_loop().run_in_executor(None, _close_all, fds)

    def put_verified_blocking(
        self,
        chunk_id: ChunkId,
        parts: Sequence[Buffer],
        counted: Callable[[], None] | None = None,
    ) -> _Written:
        """``put_parts`` of bytes the caller hashed already, blocking (for a caller already on
        a worker thread: ``PackChunkStore`` checks, reserves and writes a large chunk in one
        thread hand-off). Hand the descriptor it returns to ``release`` on the event loop.
        ``counted`` runs under ``accounting``'s lock in the step that counts the chunk as
        used (the caller's own reservation ends there, not after the directory fsync)."""
        return self._put(chunk_id, parts, verified=True, counted=counted)

    def accounting(self) -> threading.Lock:
        """The lock under which ``used_bytes`` changes."""
        return self._lock

    def release(self, replaced: Sequence[int | None]) -> None:
        """``_release`` for ``put_verified_blocking``'s callers (on the event loop)."""
        self._release(replaced)

    def _put(
        self,
        chunk_id: ChunkId,
        parts: Sequence[Buffer],
        *,
        verified: bool = False,
        counted: Callable[[], None] | None = None,
    ) -> _Written:
        """Write verified bytes (``parts`` end to end) whether or not a copy is here: the same
        steps, the same capacity check and the same durable work either way (see the module
        docstring)."""
        if not verified and sha256_hex_parts(parts) != chunk_id:
            raise IntegrityError(f"body does not hash to chunk {chunk_id}")
        final = self._path(chunk_id)
        size = sum(len(p) for p in parts)
        with self._lock:
            if self._capacity is not None and self._used + self._reserved + size > self._capacity:
                raise InsufficientStorage(
                    f"node is full: {self._used} of {self._capacity} bytes used"
                    f" ({self._reserved} being written), chunk needs {size}"
                )
            self._reserved += size
        return self._write(chunk_id, final, parts, size, counted)

    def _write(
        self,
        chunk_id: ChunkId,
        final: str,
        parts: Sequence[Buffer],
        size: int,
        counted: Callable[[], None] | None = None,
    ) -> _Written:
        """Temp file, write, fsync, atomic replace of any copy, fsync of the directory.
        ``size`` bytes are reserved: ``_replace`` turns them into used bytes, or they are
        given back here when the write fails before it."""
        directory = os.path.dirname(final)
        tmp = f"{directory}/.{chunk_id}.{secrets.token_hex(4)}.tmp"
        replaced: int | None = None
        renamed = False
        try:
            fd = _create(tmp)
            try:
                write_all(fd, parts)
                if self._sums:
                    self._sums = file_sum.keep(fd, file_sum.of(parts))
                os.fsync(fd)
                _drop_cached(fd)
            finally:
                os.close(fd)
            replaced = self._replace(tmp, final, size, counted)
            renamed = True
            fsync_dir(directory)
        except BaseException as exc:
            _close_all([replaced] if replaced is not None else [])
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise InsufficientStorage(f"node disk is full: {exc.strerror}") from None
            raise
        finally:
            if not renamed:  # a renamed temp file is gone: no failing unlink per chunk
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                with self._lock:
                    self._reserved -= size
        return replaced is None, replaced

    def _replace(
        self, tmp: str, final: str, size: int, counted: Callable[[], None] | None = None
    ) -> int | None:
        """Move the written temp file over ``final`` and count it, in one step under the lock
        (against delete, quarantine and concurrent writers of the same chunk): a copy that was
        here is replaced, so its bytes leave the count as the new ones enter it, and the
        reservation becomes used bytes in the same step (counted twice until the directory
        fsync, it refused concurrent writes that fitted). Returns an
        open descriptor of the replaced copy (None when there was none), which defers freeing
        its blocks until ``_release`` closes it."""
        with self._lock:
            try:
                old: int | None = os.open(final, os.O_RDONLY)
            except FileNotFoundError:
                old = None
            old_size = os.fstat(old).st_size if old is not None else 0
            os.replace(tmp, final)
            self._reserved -= size
            self._used += size - old_size
            self._count += old is None
            if counted is not None:
                counted()
        return old

    async def delete(self, chunk_id: ChunkId) -> None:
        await asyncio.to_thread(self._delete, chunk_id)

    def _delete(self, chunk_id: ChunkId, min_age: float = 0.0) -> bool:
        path = self._path(chunk_id)
        with self._lock:  # unlink and count in one step, so a rescan never counts it twice
            try:
                st = os.stat(path)
                if time.time() - st.st_mtime < min_age:
                    return False
                os.unlink(path)
            except FileNotFoundError:
                return False
            self._used -= st.st_size
            self._count -= 1
        return True

    async def delete_if_idle(self, chunk_id: ChunkId, min_age: float) -> bool:
        """Delete the copy unless it was written or re-sent in the last ``min_age`` seconds;
        True if it was deleted."""
        return await asyncio.to_thread(self._delete, chunk_id, min_age)

    # --- reads ----------------------------------------------------------------------------

    async def get(self, chunk_id: ChunkId) -> bytes:
        return await asyncio.to_thread(self._get, chunk_id)

    async def get_many(
        self, chunk_ids: Sequence[ChunkId], max_bytes: int
    ) -> list[Buffer | DfsError]:
        for chunk_id in chunk_ids:
            if not is_chunk_name(chunk_id):
                raise InvalidRequest("chunk_id must be 64 lowercase hex characters (sha256)")
        return await asyncio.to_thread(read_prefix, self._get, chunk_ids, max_bytes)

    def read(self, chunk_id: ChunkId) -> bytes:
        """``get``, blocking (for callers already on a worker thread)."""
        return self._get(chunk_id)

    def _get(self, chunk_id: ChunkId, rehash: bool = False) -> bytes:
        """The chunk's bytes, checked against the file's checksum (``file_sum``), or
        re-hashed with SHA-256 when it has none, when it does not match, or when ``rehash``
        (scrub); a copy that fails SHA-256, or that the disk cannot read (EIO:
        ``MEDIUM_ERRORS``), is quarantined; any other failure to read it is Unavailable."""
        path = self._path(chunk_id)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise ChunkNotFound(f"chunk {chunk_id} is not on this node") from None
        except OSError as exc:
            raise Unavailable(f"chunk {chunk_id} could not be opened: {exc.strerror}") from None
        try:
            st = os.fstat(fd)
            try:
                data = _read_whole(fd, st.st_size)
                kept = file_sum.stored(fd) if self._sums else None
            except OSError as exc:
                if exc.errno not in MEDIUM_ERRORS:  # nothing known of the copy: kept
                    raise Unavailable(f"chunk {chunk_id} not read: {exc.strerror}") from None
                self._quarantine_copy(chunk_id, st.st_ino, st.st_size)
                raise ChunkNotFound(
                    f"chunk {chunk_id} could not be read ({exc.strerror}) and was quarantined"
                ) from None
            digest = file_sum.of([data]) if self._sums else b""
            if kept == digest and not rehash:
                return data
            if sha256_hex(data) != chunk_id:
                self._quarantine_copy(chunk_id, st.st_ino, len(data))
                raise ChunkNotFound(f"chunk {chunk_id} failed verification and was quarantined")
            if self._sums and kept != digest:  # verified: its checksum added or put right
                self._sums = file_sum.keep(fd, digest)
        finally:
            os.close(fd)
        return data

    def _quarantine_copy(self, chunk_id: ChunkId, inode: int, size: int) -> None:
        """Move the copy that failed (file ``inode``) to quarantine, unless a write replaced
        it with verified bytes since it was read; both directories are then fsync'd (best
        effort), so a crash does not bring the rotten copy back under its name after
        ``/quarantined`` reported it lost (the inventory would count it again)."""
        path = self._path(chunk_id)
        dest = self._quarantine / f"{chunk_id}.{int(time.time())}"
        with self._lock:
            try:
                if os.stat(path).st_ino != inode:
                    return  # rewritten meanwhile: the copy there now was verified
                os.replace(path, dest)
            except FileNotFoundError:
                return  # another reader quarantined it first
            except OSError:
                return  # the disk refuses even a rename: the copy stays, found again later
            self._used -= size
            self._count -= 1
        with contextlib.suppress(OSError):
            fsync_dir(self._quarantine)
            fsync_dir(os.path.dirname(path))

    async def quarantined(self) -> list[ChunkId]:
        """Chunks with a quarantined copy and no good copy here now: repair replaces them."""

        def op() -> list[ChunkId]:
            ids = {n.split(".", 1)[0] for n in os.listdir(self._quarantine)}
            return sorted(
                ChunkId(c)
                for c in ids
                if is_chunk_name(c) and not self.path_of(ChunkId(c)).exists()
            )

        return await asyncio.to_thread(op)

    async def _rehashed(self, chunk_id: ChunkId) -> bytes:
        return await asyncio.to_thread(self._get, chunk_id, True)

    async def scrub(self, rate_bytes: float) -> tuple[int, int]:
        """Re-hash every stored copy, at most ``rate_bytes`` per second, quarantining bad
        ones; then re-count used bytes from disk. Returns (chunks checked, quarantined)."""
        result = await verify_at_rate(self.iter_ids(), self._rehashed, rate_bytes)
        await asyncio.to_thread(self._recount)
        return result

    def _recount(self) -> None:
        """Re-baseline used bytes and count from disk (they drift when a copy truncated on
        disk is quarantined: the size taken off is the short one). Skipped while puts are in
        flight, whose accounting would land after the count."""
        with self._lock:
            if self._reserved:
                return
            used = count = 0
            for dirpath, _dirs, files in os.walk(self._chunks):
                for name in files:
                    if is_chunk_name(name):
                        with contextlib.suppress(FileNotFoundError):
                            used += os.stat(os.path.join(dirpath, name)).st_size
                            count += 1
            self._used, self._count = used, count

    async def list_chunks(self, after: str, limit: int) -> list[tuple[ChunkId, float]]:
        """Up to ``limit`` stored chunk ids greater than ``after``, ascending, each with the
        seconds since it was last written or re-sent (what garbage collection's ``min_age``
        compares against). Pages by walking the fan-out tree in order, so a page costs
        O(page), not O(store)."""
        return await asyncio.to_thread(self._list, after, limit)

    def _list(self, after: str, limit: int) -> list[tuple[ChunkId, float]]:
        out: list[tuple[ChunkId, float]] = []
        now = time.time()
        for folder, name in self._fan_out.files_after(after):
            try:
                mtime = os.stat(f"{folder}/{name}").st_mtime
            except FileNotFoundError:
                continue
            out.append((ChunkId(name), max(now - mtime, 0.0)))
            if len(out) >= limit:
                break
        return out

    async def check_writable(self) -> None:
        """Create, fsync and remove a small file in the root (OSError if it can't)."""
        await asyncio.to_thread(self._probe_write)

    def _probe_write(self) -> None:
        path = self._root / f".readyz-{secrets.token_hex(4)}.tmp"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"ok")
            os.fsync(fd)
        finally:
            os.close(fd)
            path.unlink(missing_ok=True)

    async def has(self, chunk_ids: Iterable[ChunkId]) -> set[ChunkId]:
        ids = list(chunk_ids)
        exists = os.path.exists
        return await asyncio.to_thread(lambda: {c for c in ids if exists(self._path(c))})

    async def iter_ids(self) -> AsyncIterator[ChunkId]:
        ids = await asyncio.to_thread(lambda: list(self._walk()))
        for chunk_id in ids:
            yield chunk_id

    def _walk(self) -> Iterator[ChunkId]:
        for _dirpath, _dirs, files in os.walk(self._chunks):
            for name in files:
                if is_chunk_name(name):
                    yield ChunkId(name)


if TYPE_CHECKING:
    _: type[ChunkStore] = FsChunkStore
