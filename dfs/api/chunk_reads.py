"""Chunks read back for the API and the gateway: each fetched from a live replica and checked
against its sha256 before it is returned (fail over to the next replica on error or mismatch,
and hedge to it when the first is slow: ``dfs.transport.hedged``); unverified bytes are never
returned. ``read_verified`` yields a download plan's chunks in order, ``READ_WINDOW`` fetched
ahead (its memory). Split from ``dfs.api.ingest``, whose proxied chunk reads use it too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from dfs.api.coordinator import Coordinator
from dfs.errors import ChunkNotFound, DfsError, IntegrityError
from dfs.ids import sha256_hex
from dfs.transport.hedged import Source, first_good

log = logging.getLogger("dfs.api.ingest")

READ_WINDOW = 4

HEDGE_DELAY = 1.0
"""Seconds a replica read waits before it asks the next replica too (``first_good``)."""


class _ReadLog:
    """What the API's hedged replica reads report: logs only (cluster-wide avoidance comes
    from heartbeats)."""

    def __init__(self, chunk_id: str) -> None:
        self.chunk_id = chunk_id[:12]

    def hedged(self, key: str) -> None:
        log.info("read of %s is slow; asking %s too", self.chunk_id, key)

    def failed(self, key: str, exc: DfsError) -> None:
        log.warning("read of %s from %s failed: %s", self.chunk_id, key, exc)

    def won(self, key: str, losers: Sequence[str]) -> None:
        if losers:
            log.info("read of %s: %s answered before %s", self.chunk_id, key, losers)


INLINE_HASH_BYTES = 64 * 1024
"""Chunks up to this size are hashed on the event loop (tens of microseconds): a worker
thread's hand-off would cost more than the hash."""


async def _hashed(data: bytes) -> str:
    if len(data) <= INLINE_HASH_BYTES:
        return sha256_hex(data)
    return await asyncio.to_thread(sha256_hex, data)


async def first_verified(
    coord: Coordinator, chunk_id: str, replicas: Sequence[dict[str, Any]], size: int | None
) -> bytes | None:
    """The chunk's bytes from the first replica (``node_id``, ``url``, ``cap``) whose answer
    hashes to ``chunk_id`` (and has ``size`` bytes, if given), hedged (``first_good``); None
    if none does."""

    def verified(replica: dict[str, Any]) -> Callable[[], Awaitable[bytes]]:
        async def read() -> bytes:
            url, cap = str(replica["url"]), str(replica["cap"])
            data = b"".join(await coord.nodes.get_chunk(url, chunk_id, cap=cap, size=size))
            ok = size is None or len(data) == size
            if ok and await _hashed(data) == chunk_id:
                return data
            log.error("node %s returned bad bytes for chunk %s", replica["node_id"], chunk_id[:12])
            raise IntegrityError(f"bad bytes for chunk {chunk_id[:12]}")

        return read

    sources = [Source(str(r["node_id"]), verified(r)) for r in replicas]
    try:
        return await first_good(sources, HEDGE_DELAY, _ReadLog(chunk_id), f"chunk {chunk_id}")
    except ChunkNotFound:
        return None


async def fetch_verified(coord: Coordinator, chunk: dict[str, Any]) -> bytes:
    """One chunk of a download plan, verified (hedged over its replicas)."""
    chunk_id = str(chunk["sha256"])
    data = await first_verified(coord, chunk_id, chunk["replicas"], int(chunk["size"]))
    if data is None:
        raise ChunkNotFound(f"no live replica returned good bytes for chunk {chunk_id[:12]}")
    return data


async def read_verified(coord: Coordinator, plan: dict[str, Any]) -> AsyncIterator[bytes]:
    """The chunks of a download plan in order, each verified, ``READ_WINDOW`` fetched ahead."""
    chunks = iter(plan["chunks"])
    window: list[asyncio.Task[bytes]] = []
    try:
        for chunk in chunks:
            window.append(asyncio.create_task(fetch_verified(coord, chunk)))
            if len(window) >= READ_WINDOW:
                yield await window.pop(0)
        while window:
            yield await window.pop(0)
    finally:
        for t in window:
            t.cancel()
        if window:
            await asyncio.gather(*window, return_exceptions=True)
