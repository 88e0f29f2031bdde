"""Batched chunk reads: many small chunks fetched per node in ``/get-chunks`` requests.

A restore of thousands of small files needs thousands of small chunks; one ``/get-chunk``
each pays a round trip and a request's work per chunk. ``BatchReader`` groups the chunks by
the replica to ask first (the plan's order, nodes the client avoids last) and sends
``concurrency`` requests at once, verifies every record's sha256 as it arrives and hands the
good bytes to ``deliver``. Plans of a batched ``/download-plans`` answer name, per replica,
the read batch that holds the chunk there (one ``get-batch`` capability for the batch): a
request then asks one batch for the positions it needs. Plans with a capability per chunk
and replica are sent up to ``BATCH_CHUNKS`` chunks (``BATCH_BYTES``) per request.

Fail-over and hedging, as for single reads (``dfs.client.download.ChunkFetcher``):

- a record that is missing or quarantined on its node, or whose bytes do not verify, sends
  that chunk to its next replica in a later request (bad bytes also make the client avoid
  the node for a while); a request that fails (refused, cut short, past its deadline)
  sends all its chunks not yet served to their next replicas and avoids the node;
- a request that has served nothing for ``hedge_delay`` of its next record's size is
  *hedged*: its remaining chunks are also asked of their next replicas, the first verified
  copy of each chunk wins, and the slow request is cancelled once nothing it could still
  serve is missing (the slow node is then tried last for a while, ``AvoidList.slow``);
- a chunk that no replica served is asked of the API proxy, and ChunkNotFound is raised
  when that fails too.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from dfs import protocol
from dfs.client.connection import Connection
from dfs.errors import ChunkNotFound, DfsError
from dfs.transport.node_client import ReadBatch

log = logging.getLogger("dfs.client")

BATCH_CHUNKS = 256
"""Chunks in one /get-chunks request the client sends (the node takes up to MAX_GET_BATCH)."""
BATCH_BYTES = 4 * 1024 * 1024
"""Bytes asked for in one /get-chunks request: a slow node delays at most this much."""
HASH_IN_THREAD = 256 * 1024
"""Chunks at least this big are hashed on a worker thread, smaller ones on the event loop."""
HEDGE_FLOOR = 1.0
HEDGE_FACTOR = 4.0
EXPECTED_RATE = 16 * 1024 * 1024

Deliver = Callable[[dict[str, Any], bytes, int], None]
"""Called once per chunk with its plan entry, its verified bytes and how many sources failed
it first (must not block)."""


@dataclass(eq=False)
class _Want:
    """One chunk to read: its plan entry, the replicas not asked yet, requests asking it."""

    chunk: dict[str, Any]
    sources: list[dict[str, Any]]
    inflight: int = 0
    done: bool = False
    failures: int = 0  # sources that failed it (missing, bad bytes, a failed request)


@dataclass(eq=False)
class _Request:
    """One /get-chunks request to one node."""

    node_id: str
    url: str
    wants: list[_Want]
    caps: list[str]  # per-chunk capabilities (plans without read batches)
    batch: ReadBatch | None = None  # or the read batch the wants are in, with one capability
    positions: list[int] = field(default_factory=list)  # the wants' positions in the batch
    served: int = 0  # records received so far
    last: float = field(default_factory=time.monotonic)
    started: bool = False
    hedged: bool = False
    bad: bool = False  # served bytes that did not verify: not a node to trust again soon
    proxy: bool = False  # the last resort: each chunk through the API proxy

    def remaining(self) -> list[_Want]:
        return self.wants[self.served :]


def _verify(chunk: dict[str, Any], data: bytes) -> bool:
    return len(data) == int(chunk["size"]) and hashlib.sha256(data).hexdigest() == chunk["sha256"]


class BatchReader:
    """Reads chunks in /get-chunks batches; see the module docstring."""

    def __init__(self, conn: Connection, deliver: Deliver) -> None:
        self.conn = conn
        self.deliver = deliver
        self.failovers = 0
        self.hedges = 0
        self._todo: list[_Want] = []
        self._wake = asyncio.Event()
        self._sem = asyncio.Semaphore(conn.concurrency)

    async def read(self, chunks: Sequence[dict[str, Any]]) -> None:
        """Read every chunk (plan entries, distinct ids) and deliver it once."""
        self._todo = [_Want(c, self.conn.avoid.order(c["replicas"])) for c in chunks]
        running: dict[asyncio.Task[None], _Request] = {}
        try:
            while self._todo or running:
                for req in self._requests():
                    running[asyncio.create_task(self._run(req))] = req
                if running:
                    await self._wait(running)
        finally:
            for task in running:
                task.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)

    async def _wait(self, running: dict[asyncio.Task[None], _Request]) -> None:
        """Wait for a request to end, a chunk to need another source, or a hedge to be due."""
        self._wake.clear()
        wake = asyncio.ensure_future(self._wake.wait())
        await asyncio.wait(
            [*running, wake], timeout=HEDGE_FLOOR / 2, return_when=asyncio.FIRST_COMPLETED
        )
        wake.cancel()
        for task in [t for t in running if t.done()]:
            self._ended(running.pop(task), task)
        self._hedge(running)
        for task, req in list(running.items()):
            if all(w.done for w in req.remaining()):  # nothing left it could still serve
                task.cancel()
                del running[task]
                self._release(req.remaining())
                if req.hedged:
                    self.conn.avoid.slow(req.node_id)

    def _ended(self, req: _Request, task: asyncio.Task[None]) -> None:
        exc = None if task.cancelled() else task.exception()
        if exc is not None and (req.proxy or not isinstance(exc, DfsError)):
            raise exc
        if exc is not None:
            log.warning("node %s failed a batched read: %s", req.node_id, exc)
            self.failovers += 1
            self.conn.avoid.failed(req.node_id)
            for w in req.remaining():
                w.failures += 1
        elif not req.hedged and not req.bad:
            self.conn.avoid.ok(req.node_id)
        self._release(req.remaining())

    def _release(self, wants: Sequence[_Want]) -> None:
        """These requests no longer ask for ``wants``; unserved ones go to their next source."""
        for w in wants:
            w.inflight -= 1
            if not w.done and w.inflight == 0:
                self._todo.append(w)

    def _hedge(self, running: dict[asyncio.Task[None], _Request]) -> None:
        now = time.monotonic()
        for req in running.values():
            rest = req.remaining()
            if req.hedged or not req.started or not rest:
                continue
            delay = max(HEDGE_FLOOR, HEDGE_FACTOR * int(rest[0].chunk["size"]) / EXPECTED_RATE)
            if now - req.last < delay:
                continue
            again = [w for w in rest if not w.done and w.sources]
            if again:
                req.hedged = True
                self.hedges += 1
                self.conn.stats.hedges += 1
                self.conn.avoid.slow(req.node_id)
                self._todo += again

    def _requests(self) -> Iterator[_Request]:
        """Requests for the chunks waiting, each to its next source (the proxy when none)."""
        todo, self._todo = self._todo, []
        # by read batch (one request each: its one capability), else by node
        groups: dict[int | str, list[tuple[_Want, dict[str, Any]]]] = {}
        last: list[_Want] = []
        for w in todo:
            if w.done:
                continue
            w.inflight += 1
            if w.sources:
                replica = w.sources.pop(0)
                batch = replica.get("batch")
                key = str(replica["node_id"]) if batch is None else id(batch)
                groups.setdefault(key, []).append((w, replica))
            else:
                last.append(w)
        for items in groups.values():
            node_id, url = str(items[0][1]["node_id"]), str(items[0][1]["url"])
            batch = items[0][1].get("batch")
            if batch is not None:
                items.sort(key=lambda item: int(item[1]["at"]))
                wants = [w for w, _r in items]
                positions = [int(r["at"]) for _w, r in items]
                yield _Request(node_id, url, wants, [], batch, positions)
            else:
                yield from self._split(node_id, url, items)
        if last:
            yield _Request("", "", last, [""] * len(last), proxy=True)

    @staticmethod
    def _split(
        node_id: str, url: str, items: list[tuple[_Want, dict[str, Any]]]
    ) -> Iterator[_Request]:
        """Per-chunk capabilities: up to BATCH_CHUNKS chunks (BATCH_BYTES) per request."""
        req = _Request(node_id, url, [], [])
        size = 0
        for w, replica in items:
            n = int(w.chunk["size"])
            if req.wants and (len(req.wants) >= BATCH_CHUNKS or size + n > BATCH_BYTES):
                yield req
                req, size = _Request(node_id, url, [], []), 0
            req.wants.append(w)
            req.caps.append(str(replica["cap"]))
            size += n
        if req.wants:
            yield req

    async def _run(self, req: _Request) -> None:
        async with self._sem:
            req.started, req.last = True, time.monotonic()
            if req.proxy:
                for w in req.wants:
                    await self._proxy(w)
                return

            async def on_record(n: int, status: int, data: bytes) -> None:
                req.last = time.monotonic()
                await self._record(req, req.wants[n], status, data)
                req.served = n + 1  # after _record released it: never released twice

            if req.batch is not None:
                sizes = [int(w.chunk["size"]) for w in req.wants]
                want = list(zip(req.positions, sizes, strict=True))
                await self.conn.nodes.get_chunk_batch(req.url, req.batch, want, on_record)
                return
            entries = [
                (str(w.chunk["sha256"]), cap, int(w.chunk["size"]))
                for w, cap in zip(req.wants, req.caps, strict=True)
            ]
            await self.conn.nodes.get_chunks(req.url, entries, on_record)

    async def _record(self, req: _Request, w: _Want, status: int, data: bytes) -> None:
        if w.done:
            pass
        elif status != protocol.RECORD_OK:
            self.failovers += 1  # missing or unreadable there: the next replica has it
            w.failures += 1
        elif (
            _verify(w.chunk, data)  # small: on the loop, no coroutine of its own per record
            if len(data) < HASH_IN_THREAD
            else await asyncio.to_thread(_verify, w.chunk, data)
        ):
            w.done = True
            self.deliver(w.chunk, data, w.failures)
        else:
            log.warning("node %s returned bad bytes for a chunk", req.node_id)
            self.failovers += 1
            w.failures += 1
            req.bad = True
            self.conn.avoid.failed(req.node_id)
        self._release([w])
        if self._todo or w.inflight:
            # a chunk to send elsewhere, or one another request still asks for (hedged):
            # the read loop has something to decide. Not per record: each wake scans every
            # running request's remaining chunks.
            self._wake.set()

    @staticmethod
    async def _good(chunk: dict[str, Any], data: bytes) -> bool:
        if len(data) >= HASH_IN_THREAD:
            return await asyncio.to_thread(_verify, chunk, data)
        return _verify(chunk, data)

    async def _proxy(self, w: _Want) -> None:
        """The last resort for a chunk no replica served: the API proxy."""
        chunk_id = str(w.chunk["sha256"])
        what = f"no replica returned good bytes for chunk {chunk_id[:12]}"
        try:
            data = await self.conn.api.proxy_get_chunk(chunk_id)
        except DfsError as exc:
            raise ChunkNotFound(f"{what}: {exc.message}") from None
        if not await self._good(w.chunk, data):
            raise ChunkNotFound(f"{what}: the API proxy's bytes did not verify either")
        w.done = True
        self.deliver(w.chunk, data, w.failures)
