"""Whole files through the API: ingest a request body into chunks, read a file back verified.

These serve the seed's single-request endpoints (``POST /upload``, the signed download URL)
for clients that cannot chunk or talk to nodes themselves, such as curl and browsers.

- ``ingest`` chunks a streamed body with ``dfs.chunking`` in a worker thread (the body is read
  from the event loop as the chunker asks for it), sends each chunk the tenant does not
  already own to its placement exactly as a client would (the nodes verify and sign a
  receipt), then creates and finalizes the file through the Coordinator, so the upload meets
  the same checks as any other. Memory: the chunker's buffer plus ``INGEST_WINDOW`` chunks.
- ``read_verified`` yields a complete file's chunks in order, each fetched from a live replica
  and checked against its sha256 before it is yielded (fail over to the next replica on
  error or mismatch); unverified bytes are never yielded. Memory: ``READ_WINDOW`` chunks.

Knows nothing of aiohttp.web: handlers pass an ``async read(n) -> bytes`` function.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any

from dfs import auth, protocol
from dfs.api.service import Coordinator, file_body
from dfs.chunking import Chunk, ChunkerProfile
from dfs.errors import ChunkNotFound, DfsError, InvalidRequest, PayloadTooLarge
from dfs.ids import new_file_id, sha256_hex
from dfs.meta.base import FileRecord, ManifestEntry

log = logging.getLogger("dfs.api.fileio")

INGEST_WINDOW = 4
READ_WINDOW = 4
_READ_BUFFER = 4 * protocol.MIB

ReadFn = Callable[[int], Coroutine[Any, Any, bytes]]


class _LoopReader(io.RawIOBase):
    """A blocking file object, for a worker thread, over an async ``read(n)`` on ``loop``;
    it hashes and counts what passes through."""

    def __init__(self, read: ReadFn, loop: asyncio.AbstractEventLoop, limit: int) -> None:
        self._read = read
        self._loop = loop
        self._limit = limit
        self.size = 0
        self.whole = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        data: bytes = asyncio.run_coroutine_threadsafe(self._read(len(view)), self._loop).result()
        n = len(data)
        view[:n] = data
        self.size += n
        if self.size > self._limit:
            raise PayloadTooLarge(f"body exceeds {self._limit} bytes")
        self.whole.update(data)
        return n


def _next_chunk(chunks: Iterator[Chunk]) -> tuple[int, bytes, str] | None:
    chunk = next(chunks, None)
    if chunk is None:
        return None
    return chunk.offset, bytes(chunk.data), chunk.chunk_id  # copy: the chunker reuses its buffer


def check_name(name: object) -> str:
    if not isinstance(name, str) or not 0 < len(name) <= protocol.MAX_FILE_NAME:
        raise InvalidRequest(f"filename must be 1-{protocol.MAX_FILE_NAME} characters")
    if "\x00" in name:
        raise InvalidRequest("filename must not contain NUL")
    return name


@dataclass(frozen=True)
class Ingested:
    """What ``ingest`` did: ``created`` is False when the tenant already stored the content
    (``body`` is then the existing file's metadata)."""

    created: bool
    body: dict[str, Any]


async def ingest(
    coord: Coordinator,
    tenant: str,
    name: str,
    read: ReadFn,
    profile: ChunkerProfile,
    limit: int,
) -> Ingested:
    """Store the body ``read`` yields as a new file of ``tenant`` named ``name``, unless the
    tenant already has a complete file with the same bytes."""
    live = await coord.writable_nodes()
    live_ids = {n.node_id for n in live}
    file_id = new_file_id()
    raw = _LoopReader(read, asyncio.get_running_loop(), limit)
    chunks = profile.split(io.BufferedReader(raw, _READ_BUFFER))
    manifest: list[ManifestEntry] = []
    receipts: dict[str, str] = {}
    seen: set[str] = set()
    inflight: set[asyncio.Task[None]] = set()

    async def store(chunk_id: str, data: bytes) -> None:
        owned = await coord.meta.owned_chunks(tenant, [chunk_id])
        if owned:
            where = (await coord.meta.get_locations([chunk_id]))[chunk_id]
            if len(where & live_ids) >= coord.rf:
                return  # the tenant's own chunk, with its copies: nothing to send
        answer = await coord.put_to_nodes(chunk_id, data, file_id, live)
        receipts[chunk_id] = str(answer["receipt"])

    try:
        while True:
            got = await asyncio.to_thread(_next_chunk, chunks)
            if got is None:
                break
            offset, data, chunk_id = got
            manifest.append(ManifestEntry(offset, len(data), chunk_id))
            if len(manifest) > protocol.MAX_CHUNKS_PER_FILE:
                raise PayloadTooLarge(f"more than {protocol.MAX_CHUNKS_PER_FILE} chunks")
            if chunk_id in seen:
                continue
            seen.add(chunk_id)
            while len(inflight) >= INGEST_WINDOW:
                done, inflight = await asyncio.wait(inflight, return_when="FIRST_COMPLETED")
                for t in done:
                    t.result()
            inflight.add(asyncio.create_task(store(chunk_id, data)))
        if inflight:
            await asyncio.gather(*inflight)
            inflight.clear()
    finally:
        for t in inflight:
            t.cancel()
        if inflight:
            await asyncio.gather(*inflight, return_exceptions=True)
    sha256 = raw.whole.hexdigest()
    existing = await coord.meta.find_file_by_sha256(tenant, sha256)
    if existing is not None:
        return Ingested(False, file_body(existing))
    rec = FileRecord(
        file_id=file_id,
        name=name,
        size=raw.size,
        sha256=sha256,
        chunker=str(profile),
        tenant=tenant,
        created_at=coord.clock(),
        chunk_count=len(manifest),
    )
    await coord.meta.create_file(rec, manifest)
    # Checked again just before the commit: a concurrent identical upload that committed
    # meanwhile wins, and this file stays pending (invisible) instead of duplicating it.
    existing = await coord.meta.find_file_by_sha256(tenant, sha256)
    if existing is not None:
        return Ingested(False, file_body(existing))
    return Ingested(True, await coord.finalize_upload(file_id, receipts, tenant))


async def _fetch_verified(coord: Coordinator, chunk: dict[str, Any]) -> bytes:
    chunk_id = str(chunk["sha256"])
    for replica in chunk["replicas"]:
        try:
            data = await coord.nodes.get_chunk(str(replica["url"]), chunk_id, cap=replica["cap"])
        except DfsError as exc:
            log.warning("read of %s from %s failed: %s", chunk_id[:12], replica["node_id"], exc)
            continue
        ok = len(data) == int(chunk["size"])
        if ok and await asyncio.to_thread(sha256_hex, data) == chunk_id:
            return data
        log.error("node %s returned bad bytes for chunk %s", replica["node_id"], chunk_id[:12])
    raise ChunkNotFound(f"no live replica returned good bytes for chunk {chunk_id[:12]}")


async def read_verified(coord: Coordinator, plan: dict[str, Any]) -> AsyncIterator[bytes]:
    """The chunks of a download plan in order, each verified, ``READ_WINDOW`` fetched ahead."""
    chunks = iter(plan["chunks"])
    window: list[asyncio.Task[bytes]] = []
    try:
        for chunk in chunks:
            window.append(asyncio.create_task(_fetch_verified(coord, chunk)))
            if len(window) >= READ_WINDOW:
                yield await window.pop(0)
        while window:
            yield await window.pop(0)
    finally:
        for t in window:
            t.cancel()
        if window:
            await asyncio.gather(*window, return_exceptions=True)


def download_cap(coord: Coordinator, file_id: str, tenant: str, ttl: float) -> str:
    """The signature of a download URL: file id and tenant bound, expiring in ``ttl`` s."""
    return auth.mint(coord.cfg.cluster_secret, auth.OP_DOWNLOAD, file_id, tenant, ttl=ttl)


def check_download_cap(coord: Coordinator, file_id: str, tenant: str, sig: str | None) -> None:
    auth.check(coord.cfg.cluster_secret, sig, auth.OP_DOWNLOAD, file_id, tenant)
