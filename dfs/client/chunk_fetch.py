"""Reading the chunks of one file: each from the first source with good bytes.

``ChunkFetcher`` is what ``dfs.client.download`` asks for the chunks of one file: a big
chunk alone (``fetch``: its replicas hedged, then the API proxy, ``first_good``), a run of
small ones together (``fetch_run``: ``/get-chunks`` requests through ``BatchReader``, with
the same fail-over, hedging and proxy last resort), so that a file of 100,000 tiny chunks
pays a round trip per few hundred chunks, not per chunk. Every chunk's bytes are verified
against its sha256 before they are returned, except a big chunk's with ``deferred``: a file
downloaded into a temp file (``dfs.client.download``) checks those by its whole-file sha256
before the file is named, and mends the chunks that were wrong (``dfs.client.part_mend``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from dfs.client.batch_read import BatchReader
from dfs.client.connection import Connection
from dfs.errors import DfsError, IntegrityError
from dfs.ids import sha256_hex_parts
from dfs.transport.hedged import Source, first_good

log = logging.getLogger("dfs.client")

HEDGE_FLOOR = 1.0
"""Seconds a read waits at least before it also asks the next replica (a hedged read)."""
HEDGE_FACTOR = 4.0
"""A read hedges after this many times the time a chunk of its size is expected to take."""
EXPECTED_RATE = 16 * 1024 * 1024
"""Bytes per second one chunk read is expected to get before any was measured."""


class ChunkFetcher:
    """Verified bytes of a chunk from the first source that has them: its replicas (unless
    ``proxy``), those the client avoids last, then the API proxy (``first_good``).

    Hedged: when a replica has not answered within ``hedge_delay`` (a few times what a chunk
    of that size took lately), the next replica is asked too and the first verified answer
    wins; the loser is cancelled and avoided for a while (``AvoidList.slow``), so a hung
    node costs each chunk at most one hedge delay, and later chunks none. A replica that
    fails or returns bad bytes is avoided (``failed``) and the next source is asked at once.
    Counts the sources that failed (``failovers``) and the hedges (``hedges``).

    ``deferred``: ``fetch`` checks only the size of a big chunk's bytes, not their sha256,
    which is then its caller's to check (a download into a temp file: the whole-file
    sha256 covers every byte, then ``part_mend``). ``fetch_run`` always verifies.
    """

    def __init__(self, conn: Connection, *, deferred: bool = False) -> None:
        self.conn = conn
        self.deferred = deferred
        self.failovers = 0
        self.hedges = 0
        self._rate = float(EXPECTED_RATE)  # bytes/s of recent reads, smoothed

    def hedge_delay(self, size: int) -> float:
        return max(HEDGE_FLOOR, HEDGE_FACTOR * size / self._rate)

    def _sources(self, chunk: dict[str, Any]) -> list[Source[str | None, list[bytes]]]:
        chunk_id, size = str(chunk["sha256"]), int(chunk["size"])
        sources: list[Source[str | None, list[bytes]]] = []
        if not self.conn.proxy:
            for replica in self.conn.avoid.order(chunk["replicas"]):
                if "cap" not in replica:  # a read batch's chunk: only batched reads ask it
                    continue
                get = functools.partial(
                    self.conn.nodes.get_chunk,
                    str(replica["url"]),
                    chunk_id,
                    cap=str(replica["cap"]),
                    size=size,
                )
                sources.append(Source(str(replica["node_id"]), self._verified(get, chunk)))
        sources.append(Source(None, self._verified(self._proxied(chunk_id), chunk), hedge=False))
        return sources

    def _proxied(self, chunk_id: str) -> Callable[[], Awaitable[list[bytes]]]:
        async def get() -> list[bytes]:
            return [await self.conn.api.proxy_get_chunk(chunk_id)]

        return get

    def _verified(
        self, get: Callable[[], Awaitable[list[bytes]]], chunk: dict[str, Any]
    ) -> Callable[[], Awaitable[list[bytes]]]:
        async def read() -> list[bytes]:
            started = time.monotonic()
            pieces = await get()
            size = sum(len(p) for p in pieces)
            if size != int(chunk["size"]) or (
                not self.deferred
                and await asyncio.to_thread(sha256_hex_parts, pieces) != chunk["sha256"]
            ):
                log.warning("a source returned bad bytes for chunk %s", str(chunk["sha256"])[:12])
                raise IntegrityError("bytes did not match the chunk's sha256")
            elapsed = max(time.monotonic() - started, 1e-3)
            self._rate = 0.8 * self._rate + 0.2 * (size / elapsed)
            return pieces

        return read

    async def fetch(self, chunk: dict[str, Any]) -> list[bytes]:
        """The chunk's verified bytes, in the pieces they arrived in (never joined)."""
        delay = self.hedge_delay(int(chunk["size"]))
        what = f"chunk {str(chunk['sha256'])[:12]}"
        return await first_good(self._sources(chunk), delay, self, what)

    async def fetch_run(self, chunks: Sequence[dict[str, Any]]) -> dict[str, bytes]:
        """Verified bytes of small chunks (ids may repeat), by id, in ``/get-chunks``
        requests (``BatchReader``: fail-over, hedging, the API proxy last)."""
        got: dict[str, bytes] = {}

        def deliver(chunk: dict[str, Any], data: bytes, failed: int) -> None:
            got[str(chunk["sha256"])] = data

        reader = BatchReader(self.conn, deliver)
        try:
            await reader.read(list({str(c["sha256"]): c for c in chunks}.values()))
        finally:
            self.failovers += reader.failovers
            self.hedges += reader.hedges
        return got

    # HedgeObserver: what the client learns from each read's race

    def hedged(self, key: str | None) -> None:
        self.hedges += 1
        self.conn.stats.hedges += 1

    def failed(self, key: str | None, exc: DfsError) -> None:
        self.failovers += 1
        if key is not None:
            self.conn.avoid.failed(key)

    def won(self, key: str | None, losers: Sequence[str | None]) -> None:
        if key is not None:
            self.conn.avoid.ok(key)
        for loser in losers:
            if loser is not None:
                self.conn.avoid.slow(loser)
