"""``Client``: upload and download files (the Python API the CLI is built on).

Upload: chunk and hash the file in a worker thread (one pass, bounded memory), ask the API
which chunks to send where, send the missing ones in parallel straight to their primary node
(which forwards to the other replicas), then finalize. Each chunk is re-read just before it
is sent and the node hashes it against the id from the scan before storing it, so a file that
changes during the upload fails instead of storing a mix of versions.

Resume (``dfs.client.resume``): an upload journals its pending file id and every receipt, so
running it again asks ``/resume-upload`` for only the chunks not yet proven and stored; a
download keeps its temp file and a sidecar of written chunks when interrupted, and a second
run re-verifies those locally and fetches only the rest.

Download: fetch chunks in parallel within a bounded window, verify each chunk's sha256 and
fail over to the next replica (then to the API proxy) on error or mismatch, write into a temp
file beside the target, check the whole-file sha256, fsync and rename. Memory is bounded by
``concurrency`` chunks in both directions.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import hashlib
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from dfs import protocol
from dfs.chunking import DEFAULT_PROFILE, ChunkerProfile, FileScan, scan_file_threaded
from dfs.client.resume import DownloadSidecar, UploadJournal
from dfs.errors import (
    ChunkNotFound,
    Conflict,
    DfsError,
    FileNotFound,
    IntegrityError,
    InvalidRequest,
    ReplicationError,
    Unavailable,
)
from dfs.fsutil import fsync_dir
from dfs.ids import sha256_hex
from dfs.transport.api_client import ApiClient
from dfs.transport.http import make_session
from dfs.transport.node_client import NodeClient

log = logging.getLogger("dfs.client")

DEFAULT_CONCURRENCY = 8
# a download starts an fdatasync in the background after this many bytes written
DOWNLOAD_FLUSH_BYTES = 32 << 20
ProgressFn = Callable[[int], None]


@dataclass(frozen=True)
class UploadResult:
    file_id: str
    name: str
    size: int
    sha256: str
    chunks: int
    new_chunks: int
    bytes_sent: int
    seconds: float


@dataclass(frozen=True)
class DownloadResult:
    file_id: str
    name: str
    path: str
    size: int
    sha256: str
    chunks: int
    failovers: int
    seconds: float


_CHANGED = "the file changed while it was being uploaded; upload it again"


def read_chunk(fd: int, offset: int, size: int) -> bytes:
    """The chunk's bytes as they are now; a short read means the file shrank since the scan.

    Not re-hashed here: the node hashes every body against the chunk id from the scan before
    it stores anything (422 otherwise, see ``upload``), so bytes that changed since the scan
    are refused there, and hashing them twice would cost a core's worth of sha256 per byte.
    """
    data = os.pread(fd, size, offset)
    if len(data) != size:
        raise IntegrityError(_CHANGED)
    return data


def read_chunk_from(path: str | os.PathLike[str], offset: int, size: int) -> bytes:
    """``read_chunk`` of the file at ``path`` (opened and closed here); blocking, so call it
    through ``asyncio.to_thread``."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return read_chunk(fd, offset, size)
    finally:
        os.close(fd)


def _hash_file(path: Path) -> tuple[int, str]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while block := f.read(4 << 20):
            h.update(block)
            size += len(block)
    return size, h.hexdigest()


def safe_basename(name: str, fallback: str) -> str:
    """The last component of a stored name, safe to create in a directory."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    if base in ("", ".", "..") or "\x00" in base:
        return fallback
    return base


class Client:
    """An async dfs client bound to one API URL; use ``async with Client(url) as c``."""

    def __init__(
        self,
        api_url: str,
        *,
        token: str | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        proxy: bool = False,
        resume: bool = True,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        if concurrency < 1:
            raise InvalidRequest("concurrency must be >= 1")
        self.api_url = api_url
        self.token = token
        self.concurrency = concurrency
        self.proxy = proxy
        self.resume = resume
        self._own_session = session is None
        self._session = session
        self._flush_every = DOWNLOAD_FLUSH_BYTES

    @property
    def api(self) -> ApiClient:
        return ApiClient(self._require_session(), self.api_url, self.token)

    @property
    def nodes(self) -> NodeClient:
        return NodeClient(self._require_session())

    def _require_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("use the Client inside 'async with Client(url) as client:'")
        return self._session

    async def __aenter__(self) -> Client:
        if self._session is None:
            # created here, inside the running loop, never in __init__
            self._session = make_session(limit=max(2 * self.concurrency, 16))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    # --- upload ---------------------------------------------------------------------------

    async def upload(
        self,
        path: str | Path,
        *,
        name: str | None = None,
        profile: ChunkerProfile | None = None,
        progress: ProgressFn | None = None,
    ) -> UploadResult:
        started = time.monotonic()
        path = Path(path)
        profile = profile or ChunkerProfile.parse(DEFAULT_PROFILE)
        scan: FileScan = await asyncio.to_thread(scan_file_threaded, path, profile)
        name = name or path.name
        journal = (
            UploadJournal.for_upload(self.api_url, self.token, scan.sha256, str(profile), name)
            if self.resume
            else None
        )
        plan = await self._resume_plan(journal)
        if plan is None:
            plan = await self.api.init_upload(
                name=name,
                size=scan.size,
                sha256=scan.sha256,
                chunker=str(profile),
                chunks=[{"sha256": c.chunk_id, "size": c.size} for c in scan.chunks],
            )
            if journal is not None:
                await asyncio.to_thread(journal.start, str(plan["file_id"]))
        offsets: dict[str, int] = {}
        for c in scan.chunks:
            offsets.setdefault(c.chunk_id, c.offset)
        todo: list[dict[str, Any]] = plan["upload"]
        file_id = str(plan["file_id"])
        receipts: dict[str, str] = dict(journal.receipts) if journal is not None else {}
        if progress:
            progress(scan.size - sum(int(i["size"]) for i in todo))  # nothing to send for these
        sent = 0
        fd = os.open(path, os.O_RDONLY)
        try:

            async def send(item: dict[str, Any]) -> None:
                nonlocal sent
                chunk_id, size = str(item["sha256"]), int(item["size"])
                data = await asyncio.to_thread(read_chunk, fd, offsets[chunk_id], size)
                try:
                    receipts[chunk_id] = await self.send_chunk(file_id, chunk_id, data, item)
                except IntegrityError:
                    # the node (or the API proxy) found that these bytes no longer hash to
                    # the id scanned before init-upload: the file changed under us
                    raise IntegrityError(_CHANGED) from None
                if journal is not None:
                    journal.add(chunk_id, receipts[chunk_id])
                sent += size
                if progress:
                    progress(size)

            await self.run_bounded(send, iter(todo))
        finally:
            os.close(fd)
        done = await self.api.finalize_upload(file_id, receipts)
        if journal is not None:
            await asyncio.to_thread(journal.finish)
        return UploadResult(
            file_id=str(done["file_id"]),
            name=str(done["name"]),
            size=int(done["size"]),
            sha256=str(done["sha256"]),
            chunks=len(scan.chunks),
            new_chunks=len(todo),
            bytes_sent=sent,
            seconds=time.monotonic() - started,
        )

    async def _resume_plan(self, journal: UploadJournal | None) -> dict[str, Any] | None:
        """A plan for the journal's pending upload (only chunks it has not proven), or None
        to start afresh."""
        if journal is None or journal.file_id is None:
            return None
        try:
            return await self.api.resume_upload(journal.file_id, journal.receipts)
        except Conflict:
            # finalized already (the journal outlived it): finalize again returns the file
            return {"file_id": journal.file_id, "upload": []}
        except FileNotFound:
            log.info("pending upload %s is gone; starting afresh", journal.file_id)
            return None

    async def send_chunk(
        self, file_id: str, chunk_id: str, data: bytes, item: dict[str, Any]
    ) -> str:
        """Send one chunk to its primary (which forwards to the other targets); return the
        receipt that proves to finalize-upload that the bytes were sent."""
        if self.proxy:
            answer = await self.api.proxy_put_chunk(chunk_id, data, file_id=file_id)
            return str(answer["receipt"])
        targets = [(str(t["node_id"]), str(t["url"])) for t in item["targets"]]
        caps = [str(c) for c in item["caps"]]
        attempt = 0
        retrying = AsyncRetrying(
            stop=stop_after_attempt(max(2 * len(targets), 2)),
            wait=wait_exponential(multiplier=0.1, max=2.0),
            retry=retry_if_exception_type((Unavailable, ReplicationError)),
            reraise=True,
        )
        async for try_ in retrying:
            with try_:
                # rotate the primary so a dead first target does not sink the chunk
                i = attempt % len(targets)
                attempt += 1
                order = targets[i:] + targets[:i]
                answer = await self.nodes.put_chunk(
                    order[0][1],
                    chunk_id,
                    data,
                    cap=caps[i],
                    file_id=file_id,
                    forward=protocol.forward_header(order[1:]),
                )
        return str(answer["receipt"])

    async def run_bounded(
        self, work: Callable[[dict[str, Any]], Awaitable[None]], items: Iterator[dict[str, Any]]
    ) -> None:
        """Run ``work`` over ``items`` with at most ``concurrency`` in flight; fail fast."""

        async def worker() -> None:
            for item in items:  # the shared iterator hands each item to one worker
                await work(item)

        try:
            async with asyncio.TaskGroup() as tg:
                for _ in range(self.concurrency):
                    tg.create_task(worker())
        except* DfsError as group:
            # callers (and the CLI's error mapping) expect the DfsError itself, not a group
            raise group.exceptions[0] from None

    # --- download -------------------------------------------------------------------------

    async def download(
        self,
        file_id: str,
        out: str | Path,
        *,
        progress: ProgressFn | None = None,
        plan: dict[str, Any] | None = None,
    ) -> DownloadResult:
        started = time.monotonic()
        if plan is None:
            plan = await self.api.download_plan(file_id)
        target = Path(out)
        if await asyncio.to_thread(target.is_dir):
            target = target / safe_basename(str(plan["name"]), file_id)
        if self.resume:
            # a fixed name, so that running the download again finds what this run wrote
            tmp = target.parent / f".{target.name}.{file_id}.dfs-part"
        else:
            tmp = target.parent / f".{target.name}.{secrets.token_hex(4)}.dfs-part"
        sidecar = DownloadSidecar(tmp)
        if self.resume:
            await asyncio.to_thread(sidecar.load)
        failovers = 0
        whole = hashlib.sha256()
        flags = os.O_RDWR | os.O_CREAT | (0 if self.resume else os.O_EXCL)
        fd = os.open(tmp, flags, 0o644)
        if not sidecar.offsets:
            os.ftruncate(fd, 0)
        try:

            async def fetch(chunk: dict[str, Any]) -> bytes:
                nonlocal failovers
                data, misses = await self._fetch_chunk(chunk)
                failovers += misses
                return data

            async def local_or_fetch(chunk: dict[str, Any]) -> bytes:
                """A chunk an earlier run wrote, if it still verifies; else fetch it."""
                offset, size = int(chunk["offset"]), int(chunk["size"])
                if offset in sidecar.offsets:
                    data = await asyncio.to_thread(os.pread, fd, size, offset)
                    ok = len(data) == size
                    if ok and await asyncio.to_thread(sha256_hex, data) == chunk["sha256"]:
                        return data
                return await fetch(chunk)

            def pwrite_all(offset: int, data: bytes) -> None:
                if offset in sidecar.offsets:
                    return  # verified on disk by an earlier run
                view = memoryview(data)
                at = offset
                while view:
                    n = os.pwrite(fd, view, at)
                    view, at = view[n:], at + n
                if self.resume:
                    sidecar.add(offset)

            async def write(offset: int, data: bytes) -> None:
                # the write may wait for the disk; hash the same bytes on another thread
                # meanwhile (in order: one chunk at a time, so updates never interleave)
                await asyncio.gather(
                    asyncio.to_thread(pwrite_all, offset, data),
                    asyncio.to_thread(whole.update, data),
                )

            # Start writing back dirty pages while chunks still arrive: otherwise the whole
            # file waits in the page cache and the final fsync pays for all of it at once.
            flushing: asyncio.Task[None] | None = None
            unflushed = 0

            def wrote(n: int) -> None:
                nonlocal flushing, unflushed
                unflushed += n
                due = bool(self._flush_every) and unflushed >= self._flush_every
                if due and (flushing is None or flushing.done()):
                    flushing = asyncio.create_task(asyncio.to_thread(os.fdatasync, fd))
                    unflushed = 0
                if progress:
                    progress(n)

            window: collections.deque[tuple[int, asyncio.Task[bytes]]] = collections.deque()
            try:
                for chunk in plan["chunks"]:
                    if len(window) >= self.concurrency:
                        await self._drain_one(window, write, wrote)
                    task = asyncio.create_task(local_or_fetch(chunk))
                    window.append((int(chunk["offset"]), task))
                while window:
                    await self._drain_one(window, write, wrote)
            finally:
                for _off, task in window:
                    task.cancel()
                if window:
                    await asyncio.gather(*(t for _o, t in window), return_exceptions=True)
                if flushing is not None:  # its thread uses fd: never close fd under it
                    await asyncio.gather(flushing, return_exceptions=True)
            await asyncio.to_thread(os.fsync, fd)
        except BaseException:
            os.close(fd)
            if not self.resume:  # else kept, with its sidecar, for the next run to resume
                tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        if whole.hexdigest() != plan["sha256"]:
            tmp.unlink(missing_ok=True)
            sidecar.remove()
            raise IntegrityError(f"file {file_id}: whole-file sha256 does not match its manifest")
        os.replace(tmp, target)
        sidecar.remove()
        await asyncio.to_thread(fsync_dir, target.parent)
        return DownloadResult(
            file_id=file_id,
            name=str(plan["name"]),
            path=str(target),
            size=int(plan["size"]),
            sha256=str(plan["sha256"]),
            chunks=len(plan["chunks"]),
            failovers=failovers,
            seconds=time.monotonic() - started,
        )

    @staticmethod
    async def _drain_one(
        window: collections.deque[tuple[int, asyncio.Task[bytes]]],
        write: Callable[[int, bytes], Awaitable[None]],
        progress: ProgressFn | None,
    ) -> None:
        offset, task = window[0]
        data = await task
        window.popleft()
        await write(offset, data)
        if progress:
            progress(len(data))

    async def _fetch_chunk(self, chunk: dict[str, Any]) -> tuple[bytes, int]:
        """Verified bytes of one chunk, and how many sources failed before one served it."""
        chunk_id = str(chunk["sha256"])
        misses = 0
        errors: list[str] = []
        sources: list[Callable[[], Awaitable[bytes]]] = []
        if not self.proxy:
            for replica in chunk["replicas"]:
                sources.append(
                    functools.partial(
                        self.nodes.get_chunk, str(replica["url"]), chunk_id, cap=str(replica["cap"])
                    )
                )
        sources.append(functools.partial(self.api.proxy_get_chunk, chunk_id))
        for source in sources:
            try:
                data = await source()
            except DfsError as exc:
                misses += 1
                errors.append(exc.message)
                continue
            good = len(data) == int(chunk["size"])
            if good and await asyncio.to_thread(sha256_hex, data) == chunk_id:
                return data, misses
            misses += 1
            errors.append("bytes did not match the chunk's sha256")
            log.warning("a source returned bad bytes for chunk %s; failing over", chunk_id[:12])
        raise ChunkNotFound(
            f"no replica returned good bytes for chunk {chunk_id[:12]}: {'; '.join(errors[-3:])}"
        )

    # --- status ---------------------------------------------------------------------------

    async def delete(self, file_id: str) -> dict[str, Any]:
        """Delete one of the tenant's files; its space comes back after the GC grace."""
        return await self.api.delete_file(file_id)

    async def stats(self) -> dict[str, Any]:
        return await self.api.stats()

    async def list_nodes(self) -> dict[str, Any]:
        return await self.api.nodes()

    async def stat(self, file_id: str) -> dict[str, Any]:
        """A complete file's metadata (FileNotFound for unknown, pending or others' files)."""
        return await self.api.file(file_id)

    async def ls(self, *, limit: int = 100, after: str | None = None) -> dict[str, Any]:
        """One page of this tenant's files: ``{"files": [...], "next_after"}``."""
        return await self.api.list_files(limit=limit, after=after)

    async def check(self, path: str | Path) -> dict[str, Any]:
        """Whether this tenant already stores a file with exactly these bytes (nothing sent
        but the hash): ``{"exists", "file", "sha256", "size"}``."""
        size, digest = await asyncio.to_thread(_hash_file, Path(path))
        answer = await self.api.check(digest)
        return {**answer, "sha256": digest, "size": size}

    async def download_url(self, file_id: str) -> dict[str, Any]:
        """A signed URL anyone can fetch the file from until it expires (at most 15 min)."""
        return await self.api.download_url(file_id)

    async def hashes(self, *, limit: int = 100, page: str | None = None) -> dict[str, Any]:
        return await self.api.hashes(limit=limit, page=page)
