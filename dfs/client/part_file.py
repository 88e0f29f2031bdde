"""The temp file a download writes one file into (``PartFile``), beside its target, and
its commit: the whole-file sha256 checked, then the name of the target taken; or standard
output in its place (``StdoutPart``).

The temp file, its resume sidecar and the target are named relative to the target's folder
open as a descriptor (``dir_fd``, from ``dfs.client.target_dirs``: walked from the restore's
root without following links), so a folder swapped for a symbolic link while the file
downloads gets nothing written through it. Without one (a caller that gave a path alone)
the names are paths, resolved at each call.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from dfs.client.file_names import Overwrite, link_or_replace, still_names, temp_name
from dfs.client.file_writer import final_attrs
from dfs.client.resume import DownloadSidecar, open_own
from dfs.client.write_behind import WriteBehind
from dfs.errors import Conflict, IntegrityError
from dfs.fsutil import fsync_dir, pwrite_all, write_all
from dfs.ids import sha256_hex

log = logging.getLogger("dfs.client")

# a download starts an fdatasync in the background after this many bytes written
DOWNLOAD_FLUSH_BYTES = 32 << 20
WRITE_AHEAD_BYTES = 4 << 20
"""Verified bytes of a download that may wait for its writer thread (``WriteBehind``)."""
DROP_BEHIND = hasattr(os, "posix_fadvise")
"""Whether each background flush then drops the pages it wrote back from the page cache."""

Pieces = Sequence[bytes]
"""Bytes to write, as pieces end to end: a chunk as its body arrived, a run's chunks."""


class PartFile:
    """The temp file a download writes into beside its target, and its resume sidecar.

    Chunks are written in order, by one thread of the file's own (``WriteBehind``: the fetch
    loop hands a chunk over and asks for the next one at once); each write hashes the same
    bytes into the whole-file sha256, and dirty pages are written back in the background as
    chunks arrive (otherwise the whole file waits in the page cache and the final fsync pays
    for it all).
    Once written back they are dropped from the page cache (``DROP_BEHIND``): a big download
    would otherwise fill it with pages nobody reads again, and make the kernel reclaim
    memory for every next write (the whole-file sha256 is of the bytes fetched, not read
    back, and resume re-reads only what an earlier run wrote).
    """

    def __init__(self, target: Path, file_id: str, resume: bool, dir_fd: int | None = None) -> None:
        # with resume, a fixed name, so that running the download again finds what this wrote
        self.target = target
        self.dir_fd = dir_fd  # the target's folder, open: closed by abandon or commit
        self.path = self._name(file_id if resume else secrets.token_hex(8))
        self.sidecar = DownloadSidecar(self.path, dir_fd)
        self.resume = resume
        self.whole = hashlib.sha256()
        self.fd = -1
        self._behind = WriteBehind(WRITE_AHEAD_BYTES)
        self._flusher: ThreadPoolExecutor | None = None
        self._flushing: Future[None] | None = None
        self._unflushed = 0
        self._end = 0  # where the bytes written so far end (in order: all before it too)
        self._dropped = 0  # the page cache holds none of this file before this offset
        self._opening: asyncio.Future[None] | None = None  # an open cancelled, still running

    def _name(self, tag: str) -> Path:
        return self.target.parent / temp_name(self.target.name, tag)

    def _at(self, path: Path) -> str | Path:
        """``path`` as the system calls take it: its name in ``dir_fd``, else itself."""
        return path.name if self.dir_fd is not None else path

    def _unlink(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._at(self.path), dir_fd=self.dir_fd)

    async def open(self) -> None:
        """Open the temp file (``_open``, on a worker thread); the folder is closed if it
        cannot be. Cancelled, the thread runs on with this file's folder: once it ends, what
        it opened is closed and removed and the folder closed (``release_dir`` leaves the
        folder to it), never the folder closed under it, which made it open the temp file by
        its full path."""
        opening = asyncio.get_running_loop().run_in_executor(None, self._open)
        try:
            await asyncio.shield(opening)
        except asyncio.CancelledError:
            self._opening = opening
            opening.add_done_callback(self._opened_for_nobody)
            raise
        except OSError as exc:  # the user's path in the message, not the temp file's
            self.release_dir()
            raise OSError(exc.errno, exc.strerror, str(self.target)) from None
        except BaseException:
            self.release_dir()
            raise

    def _opened_for_nobody(self, opening: asyncio.Future[None]) -> None:
        try:
            if not opening.cancelled() and opening.exception() is None:
                os.close(self.fd)
                if not self.resume:
                    self._unlink()
        finally:
            self._opening = None
            self.release_dir()

    def _open(self) -> None:
        """Open the temp file, never through a link planted at its predictable name, and
        0600: a private file's bytes are never open to others while written or kept."""
        if self.resume:
            fd = open_own(self._at(self.path), os.O_RDWR | os.O_CREAT, 0o600, self.dir_fd)
            if fd is not None:
                try:
                    os.fchmod(fd, 0o600)  # one an older client made readable to all
                    self.sidecar.load()
                    if not self.sidecar.offsets:
                        os.ftruncate(fd, 0)
                except BaseException:
                    os.close(fd)
                    raise
                self.fd = fd
                return
            # something that is not our file lies at the fixed name: a private one instead
            log.warning("%s is not a file of ours; not resuming into it", self.path)
            self.path = self._name(secrets.token_hex(8))
            self.sidecar = DownloadSidecar(self.path, self.dir_fd)
            self.resume = False
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        self.fd = os.open(self._at(self.path), flags, 0o600, dir_fd=self.dir_fd)

    async def written_before(self, chunk: dict[str, Any]) -> bytes | None:
        """The chunk as an earlier run wrote it, if it is there and still verifies."""
        offset, size = int(chunk["offset"]), int(chunk["size"])
        if offset not in self.sidecar.offsets:
            return None
        data = await asyncio.to_thread(os.pread, self.fd, size, offset)
        if len(data) == size and await asyncio.to_thread(sha256_hex, data) == chunk["sha256"]:
            return data
        # fetched instead, so it must be written again: the whole-file hash covers the bytes
        # fetched, not these, and would not notice them left on disk
        self.sidecar.offsets.discard(offset)
        return None

    def _pwrite_all(self, offset: int, data: Pieces, run: Sequence[int] = ()) -> None:
        if not run and offset in self.sidecar.offsets:
            return  # verified on disk by an earlier run
        pwrite_all(self.fd, data, offset)
        if self.resume:
            self.sidecar.add(*(run or (offset,)))

    def _write_hashed(self, offset: int, data: Pieces, run: Sequence[int], size: int) -> None:
        """On the writer thread: the write, the whole-file hash (in order: one piece at a
        time, so updates never interleave), and a background flush when one is due."""
        self._pwrite_all(offset, data, run)
        for piece in data:
            self.whole.update(piece)
        self._written(offset + size, size)

    def _written(self, end: int, size: int) -> None:
        """Start a flush of what is written once ``DOWNLOAD_FLUSH_BYTES`` more are (on a
        thread of its own: the writes go on while it waits for the disk)."""
        self._unflushed += size
        self._end = max(self._end, end)
        due = bool(DOWNLOAD_FLUSH_BYTES) and self._unflushed >= DOWNLOAD_FLUSH_BYTES
        if due and (self._flushing is None or self._flushing.done()):
            if self._flusher is None:
                self._flusher = ThreadPoolExecutor(1, thread_name_prefix="dfs-flush")
            self._flushing = self._flusher.submit(self._flush, self._end)
            self._unflushed = 0

    async def write(self, offset: int, data: Pieces, run: Sequence[int] = ()) -> None:
        """Hand over the next chunk in file order, or (``run``: their offsets) the next
        chunks, one after another in ``data`` (the pieces the bytes arrived in, end to end).
        Returns once it is queued (``settle`` waits for the writes); raises the error of an
        earlier write that failed."""
        size = sum(len(p) for p in data)
        await self._behind.put(lambda: self._write_hashed(offset, data, run, size), size)

    def _flush(self, end: int) -> None:
        """Write back what is written, then drop it (up to ``end``) from the page cache."""
        os.fdatasync(self.fd)
        if DROP_BEHIND and end > self._dropped:
            os.posix_fadvise(self.fd, self._dropped, end - self._dropped, os.POSIX_FADV_DONTNEED)
            self._dropped = end

    async def settle(self) -> None:
        """Wait for the queued writes and a background flush: their threads use fd, so never
        close fd under them. A write's failure is raised by ``fsync``."""
        with contextlib.suppress(Exception):
            await self._behind.finish()
        if self._flushing is not None:
            await asyncio.gather(asyncio.wrap_future(self._flushing), return_exceptions=True)
        if self._flusher is not None:
            self._flusher.shutdown()
            self._flusher = None

    async def fsync(self) -> None:
        await self._behind.finish()  # raises the error of a write that failed
        await asyncio.to_thread(os.fsync, self.fd)

    async def end(self, size: int, plan: Mapping[str, Any]) -> None:
        """Cut at ``size`` (a resumed file may be longer than hashed); the plan's mode (0600
        so far) and mtime, on the descriptor (``final_attrs``): before the file has its
        target's name, so never through whatever stands at that name later."""
        await asyncio.to_thread(os.ftruncate, self.fd, size)
        await asyncio.to_thread(final_attrs, self.fd, plan)

    def _stop_threads(self) -> None:
        """Blocking, after a failure: the queued writes done, no thread left using fd."""
        self._behind.stop()
        if self._flusher is not None:
            self._flusher.shutdown(wait=True)

    def abandon(self) -> None:
        """After a failure: close; keep the file and sidecar for the next run to resume."""
        try:
            self._stop_threads()
            os.close(self.fd)
            if not self.resume:
                self._unlink()
        finally:
            self.release_dir()

    def release_dir(self) -> None:
        """Close the target's folder (once; ``abandon`` and ``commit`` do), unless a
        cancelled ``open`` still works in it (it closes the folder when it ends)."""
        if self._opening is not None:
            return
        dir_fd, self.dir_fd = self.dir_fd, None
        if dir_fd is not None:
            os.close(dir_fd)

    async def commit(
        self, target: Path, file_id: str, sha256: str, overwrite: Overwrite = True
    ) -> None:
        """Close; check the whole-file sha256, then rename over ``target`` (no ``overwrite``:
        link, never replacing a file there) while the temp name is still this file (else
        IntegrityError: one put there since holds bytes no hash checked)."""
        try:
            self._take_name(target, file_id, sha256, overwrite)
        except BaseException:
            self.release_dir()
            raise
        dir_fd, self.dir_fd = self.dir_fd, None  # the thread closes it, cancelled or not
        await asyncio.to_thread(_sync_dir, dir_fd, target.parent)

    def _take_name(self, target: Path, file_id: str, sha256: str, overwrite: Overwrite) -> None:
        mine = os.fstat(self.fd)
        os.close(self.fd)
        if self.whole.hexdigest() != sha256:
            self._unlink()
            self.sidecar.remove()
            raise IntegrityError(f"file {file_id}: whole-file sha256 does not match its manifest")
        if not still_names(self._at(self.path), mine, self.dir_fd):
            raise IntegrityError(
                f"{self.path} was replaced while {target} was downloaded into it; not written"
            )
        try:
            at = self._at(self.path)
            link_or_replace(at, self._at(target), overwrite, self.dir_fd, str(target))
        except FileExistsError:
            self._unlink()
            self.sidecar.remove()
            raise Conflict(f"{target} changed during the download; not replaced") from None
        except OSError:  # a folder at the target, no permission: kept only to be resumed
            if not self.resume:
                self._unlink()
            raise
        self.sidecar.remove()


def _sync_dir(dir_fd: int | None, parent: Path) -> None:
    """Make a new name in the folder durable; the folder's descriptor is closed after."""
    if dir_fd is None:
        fsync_dir(parent)
        return
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


STDOUT = Path("/dev/stdout")  # ``download_file``'s ``out`` for the bytes on standard output


class StdoutPart(PartFile):
    """Standard output in place of a temp file: chunks go out in file order as they verify
    (each against its sha256); the whole-file sha256 is checked at the end, and a mismatch
    is an IntegrityError after the bytes went out (the reader sees the exit status)."""

    def __init__(self) -> None:
        super().__init__(STDOUT, "", False)
        self.fd = 1

    async def open(self) -> None:
        return None

    def _pwrite_all(self, offset: int, data: Pieces, run: Sequence[int] = ()) -> None:
        write_all(self.fd, data)

    def _written(self, end: int, size: int) -> None:
        return None  # no flush of a pipe

    async def fsync(self) -> None:
        await self._behind.finish()

    async def end(self, size: int, plan: Mapping[str, Any]) -> None:
        return None  # a pipe has no end, mode or mtime to set

    def abandon(self) -> None:
        self._stop_threads()

    async def commit(
        self, target: Path, file_id: str, sha256: str, overwrite: Overwrite = True
    ) -> None:
        if self.whole.hexdigest() != sha256:
            raise IntegrityError(f"file {file_id}: whole-file sha256 does not match its manifest")
