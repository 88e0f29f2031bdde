"""Verified reads of a complete file's chunks through this process (the API's and the S3
gateway's streamed downloads, content checks, multipart assembly, ``/proxy-chunk-get``).

Each chunk is fetched from its replicas in the plan's order, hedged to the next replica when
the first is slow and failed over on an error or on bytes that do not hash to the chunk's id
(``dfs.transport.hedged``): unverified bytes are never returned. A chunk's bytes stay in the
pieces the node's answer arrived in (``fetch_verified_pieces``): they are hashed over the
pieces, and a caller that writes them out sends them as they are instead of joining them.
``read_verified`` fetches the following chunks while one is consumed
(``fetched_ahead``), bounded in bytes (``READ_AHEAD_BYTES``) and in requests
(``READ_WINDOW``).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sequence
from contextlib import aclosing
from typing import Any, TypeVar

from dfs import protocol
from dfs.api.coordinator import Coordinator
from dfs.errors import ChunkNotFound, DfsError, IntegrityError
from dfs.ids import sha256_hex_parts
from dfs.transport.hedged import Source, first_good

log = logging.getLogger("dfs.api.verified_reads")

T = TypeVar("T")
R = TypeVar("R")

READ_AHEAD_BYTES = 12 * protocol.MIB
"""Bytes of chunks ``read_verified`` fetches ahead of the one it yields (a chunk is always
fetched, whatever its size): with the default chunks (about 1.2 MiB) about 10 requests are in
flight, where a window of 4 chunks left a streamed answer waiting on the nodes; the worst
case (4 MiB chunks: three ahead and the one being written) holds what that window held."""
READ_WINDOW = 16
"""Chunks fetched ahead at most, whatever their size (a request each)."""


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


async def _hashed(pieces: Sequence[bytes], size: int) -> str:
    if size <= INLINE_HASH_BYTES:
        return sha256_hex_parts(pieces)
    return await asyncio.to_thread(sha256_hex_parts, pieces)


def joined(pieces: Sequence[bytes]) -> bytes:
    """A chunk's pieces as one ``bytes`` (no copy for a chunk that arrived in one piece)."""
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


async def first_good_pieces(
    coord: Coordinator, chunk_id: str, replicas: Sequence[dict[str, Any]], size: int | None
) -> list[bytes] | None:
    """The chunk's bytes, in the pieces they arrived in (never joined here), from the first
    replica (``node_id``, ``url``, ``cap``) whose answer hashes to ``chunk_id`` (and has
    ``size`` bytes, if given), hedged (``first_good``); None if none does."""

    def verified(replica: dict[str, Any]) -> Callable[[], Awaitable[list[bytes]]]:
        async def read() -> list[bytes]:
            url, cap = str(replica["url"]), str(replica["cap"])
            pieces = await coord.nodes.get_chunk(url, chunk_id, cap=cap, size=size)
            got = sum(len(p) for p in pieces)
            ok = size is None or got == size
            if ok and await _hashed(pieces, got) == chunk_id:
                return pieces
            log.error("node %s returned bad bytes for chunk %s", replica["node_id"], chunk_id[:12])
            raise IntegrityError(f"bad bytes for chunk {chunk_id[:12]}")

        return read

    sources = [Source(str(r["node_id"]), verified(r)) for r in replicas]
    try:
        return await first_good(sources, HEDGE_DELAY, _ReadLog(chunk_id), f"chunk {chunk_id}")
    except ChunkNotFound:
        return None


async def fetch_verified_pieces(coord: Coordinator, chunk: dict[str, Any]) -> list[bytes]:
    """One chunk of a download plan, verified (hedged over its replicas), in the pieces it
    arrived in."""
    chunk_id = str(chunk["sha256"])
    pieces = await first_good_pieces(coord, chunk_id, chunk["replicas"], int(chunk["size"]))
    if pieces is None:
        raise ChunkNotFound(f"no live replica returned good bytes for chunk {chunk_id[:12]}")
    return pieces


async def fetch_verified(coord: Coordinator, chunk: dict[str, Any]) -> bytes:
    """One chunk of a download plan, verified (hedged over its replicas)."""
    return joined(await fetch_verified_pieces(coord, chunk))


async def read_verified(coord: Coordinator, plan: dict[str, Any]) -> AsyncGenerator[bytes, None]:
    """The chunks of a download plan in order, each verified, up to ``READ_AHEAD_BYTES``
    (and ``READ_WINDOW`` chunks) fetched ahead."""
    async with aclosing(read_verified_pieces(coord, plan)) as chunks:
        async for pieces in chunks:
            yield joined(pieces)


async def read_verified_pieces(
    coord: Coordinator, plan: dict[str, Any]
) -> AsyncGenerator[list[bytes], None]:
    """``read_verified``'s chunks in the pieces they arrived in: a caller that writes them
    out (a streamed answer) need not join them, a copy of every byte."""
    fetches = fetched_ahead(
        plan["chunks"],
        lambda chunk: int(chunk["size"]),
        lambda chunk: fetch_verified_pieces(coord, chunk),
        READ_AHEAD_BYTES,
        READ_WINDOW,
    )
    async with aclosing(fetches):
        async for pieces in fetches:
            yield pieces


async def fetched_ahead(
    items: Iterable[T],
    size: Callable[[T], int],
    fetch: Callable[[T], Awaitable[R]],
    max_bytes: int,
    max_items: int,
) -> AsyncGenerator[R, None]:
    """``fetch(item)`` of each item, yielded in order, with the next items' fetches running
    meanwhile: as many as fit in ``max_bytes`` (by ``size``) and ``max_items``, at least one.
    Fetches still running when the consumer stops are cancelled."""
    window: collections.deque[tuple[asyncio.Task[R], int]] = collections.deque()
    ahead = 0  # bytes of the items in ``window``
    try:
        for item in items:
            n = size(item)
            while window and (len(window) >= max_items or ahead + n > max_bytes):
                task, took = window.popleft()
                ahead -= took
                yield await task
            window.append((asyncio.ensure_future(fetch(item)), n))
            ahead += n
        while window:
            yield await window.popleft()[0]
    finally:
        for t, _ in window:
            t.cancel()
        if window:
            await asyncio.gather(*(t for t, _ in window), return_exceptions=True)
