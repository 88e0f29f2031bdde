"""Replica forwarding: how a primary node gets the other copies of a write onto other nodes.

One ``ReplicaForwarder`` per node does all of it, for ``/store-chunk`` and ``/store-chunks``
alike and for repair's ``/copy-chunk``:

- **sync** (REPLICATION_STRATEGY=sync, the default): the local write and the forwards to
  every target run at once (the two disks, or the two cores, work together); the write
  answers only once every copy is durable. All targets must ack: the first hard failure
  fails the whole write (ReplicationError) and cancels the rest. When the local write fails
  too, its error is the one reported (a bad body fails locally with 422 and on each replica).
- **async**: the write answers after the local durable copy; ``replicate_later`` forwards
  from the store in the background, to each target on its own, with bounded retries, at
  most ``BACKGROUND_FORWARDS`` at once per target (each reads its chunk only when its turn
  comes; a hung target holds back only its own forwards).
  ``ReplicationLog`` is what ``/status`` reports of that work: the forwards in flight (the
  backlog), the chunks given up on (the API's repair copies them) and a numbered journal of
  completed forwards, which the repair pass records as locations, reading from the last
  number it saw (``/status?after=N``; ``boot`` changes when the node restarts).

Forwarded requests carry the FORWARDED marker, so a replica never fans out again; each
carries a ``replicate`` capability minted here per chunk and per replica (a batch: one
``replicate-batch`` capability per replica, bound to the batch's chunk-id list). A replica stores
them with the same ``ChunkStore.put`` as an upload write, so a chunk it already holds is
rewritten there too: a sync forward is on the uploading tenant's clock (a fast path on a
replica would time as a dedup oracle), and a rotten replica copy is replaced. Background and
repair copies take the same path: one write rule, and a held copy is always one verified
write old. Depends on the
``ChunkStore`` port and the ``NodeTransport`` Protocol only (``NodeClient`` satisfies it).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Protocol, TypeVar

from dfs import auth, protocol
from dfs.chunkstore.base import Buffer, ChunkStore
from dfs.config import NodeConfig
from dfs.errors import DfsError, ReplicationError
from dfs.ids import ChunkId
from dfs.node.capabilities import replica_cap

log = logging.getLogger("dfs.node.forwarding")

T = TypeVar("T")
Target = tuple[str, str]
"""(node id, base URL) of a node to forward to."""

REPLICATION_ATTEMPTS = 3
BACKGROUND_FORWARDS = 16
"""Background (async) forwards to one target that hold a chunk read from the store at once;
the rest of that target's backlog waits for a turn before it reads its chunk, so a slow or
hung replica leaves its backlog on disk, not in memory (each forward holds up to
MAX_CHUNK_SIZE bytes), and holds back no other target's forwards."""
FAILED_KEPT = 10_000
"""Chunk ids given up on that /status keeps reporting (the oldest drop out first)."""
JOURNAL_KEPT = 100_000


class NodeTransport(Protocol):
    """The two replica writes a primary sends (``NodeClient`` has them)."""

    async def replicate_chunk(
        self,
        node_url: str,
        chunk_id: str,
        data: Buffer | Sequence[Buffer],
        *,
        cap: str,
        timeout: float | None = None,
    ) -> dict[str, Any]: ...

    async def store_chunks(
        self,
        node_url: str,
        body: bytes | Sequence[Buffer],
        headers: dict[str, str],
        *,
        forwarded: bool,
        timeout: float | None,
    ) -> list[dict[str, Any]]: ...


class ReplicationLog:
    """Background (async) replication as /status reports it; bounded in memory."""

    def __init__(self) -> None:
        self.boot = secrets.token_hex(8)
        self.pending = 0
        self.failed: collections.OrderedDict[str, float] = collections.OrderedDict()
        self.seq = 0
        self.journal: collections.deque[tuple[int, str, str, int]] = collections.deque(
            maxlen=JOURNAL_KEPT
        )

    def done(self, chunk_id: str, node_id: str, size: int) -> None:
        self.seq += 1
        self.journal.append((self.seq, chunk_id, node_id, size))
        self.failed.pop(chunk_id, None)

    def gave_up(self, chunk_id: str) -> None:
        self.failed[chunk_id] = time.time()
        self.failed.move_to_end(chunk_id)
        while len(self.failed) > FAILED_KEPT:
            self.failed.popitem(last=False)

    def report(self, after: int, limit: int = protocol.MAX_LIST_CHUNKS) -> dict[str, Any]:
        entries = [e for e in self.journal if e[0] > after][:limit]
        return {
            "boot": self.boot,
            "pending": self.pending,
            "failed": list(self.failed),
            "seq": entries[-1][0] if entries else self.seq,
            "done": [[c, n, size] for _seq, c, n, size in entries],
        }


async def to_every_target(
    what: str, targets: Sequence[Target], send: Callable[[str, str], Coroutine[Any, Any, T]]
) -> list[T]:
    """``send(node_id, url)`` to every target at once; their results in target order, or
    ReplicationError naming ``what`` once any fails (the others are cancelled), with the
    nodes that failed in its ``failed_nodes`` detail (the API places the chunk again
    without them: ``dfs.api.chunk_writes``)."""
    if len(targets) == 1:  # RF 2's one replica per chunk: no task group to set up and join
        node_id, url = targets[0]
        try:
            return [await send(node_id, url)]
        except DfsError as exc:
            raise ReplicationError(
                f"{what}: 1 of 1 replicas failed: {exc.message}", failed_nodes=[node_id]
            ) from None
    failed: list[str] = []

    async def one(node_id: str, url: str) -> T:
        try:
            return await send(node_id, url)
        except DfsError:
            failed.append(node_id)
            raise

    try:
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(one(node_id, url)) for node_id, url in targets]
    except* DfsError as group:
        first = group.exceptions[0]
        msg = first.message if isinstance(first, DfsError) else str(first)
        raise ReplicationError(
            f"{what}: {len(group.exceptions)} of {len(targets)} replicas failed: {msg}",
            failed_nodes=failed,
        ) from None
    return [t.result() for t in tasks]


class ReplicaForwarder:
    """The node's replica writes, sync and background; see the module docstring."""

    def __init__(self, cfg: NodeConfig, store: ChunkStore, transport: NodeTransport) -> None:
        self._cfg = cfg
        self._store = store
        self._transport = transport
        self.log = ReplicationLog()
        self._pending: set[asyncio.Task[None]] = set()
        self._turns: dict[str, asyncio.Semaphore] = {}  # per target node id

    # --- writes with their replicas --------------------------------------------------------

    async def store(
        self,
        chunk_id: ChunkId,
        data: Buffer | list[Buffer],
        targets: Sequence[Target],
        *,
        asynchronous: bool,
    ) -> tuple[bool, list[str]]:
        """Store one chunk (its bytes, or a list of the pieces of a body as it arrived, stored
        and forwarded without joining them) here and on ``targets``: (newly stored here,
        replica node ids that acked; none yet when asynchronous)."""
        parts = data if isinstance(data, list) else [data]
        return await self._write(
            self._store.put_parts(chunk_id, parts),
            [chunk_id],
            targets,
            asynchronous,
            lambda: self.fan_out(chunk_id, parts, targets),
        )

    async def store_batch(
        self,
        items: Sequence[tuple[ChunkId, Buffer]],
        targets: Sequence[Target],
        *,
        asynchronous: bool,
    ) -> list[str]:
        """Store a batch here (``put_many``) and on ``targets``; the replica node ids."""
        _, replicas = await self._write(
            self._store.put_many(items),
            [c for c, _ in items],
            targets,
            asynchronous,
            lambda: self._fan_out_batch(items, targets),
        )
        return replicas

    async def _write(
        self,
        local: Coroutine[Any, Any, T],
        chunk_ids: Sequence[ChunkId],
        targets: Sequence[Target],
        asynchronous: bool,
        forward: Callable[[], Awaitable[list[str]]],
    ) -> tuple[T, list[str]]:
        """Run the ``local`` write; with sync targets, ``forward()`` at the same time (the
        local copy is hashed and fsync'd while the replicas receive theirs) and answer once
        both are done, the local error first: a bad body fails here (422) and on each replica,
        and the local error is the one to report."""
        if not targets or asynchronous:
            stored = await local
            for chunk_id in chunk_ids:  # async: the other copies follow in the background
                self.replicate_later(chunk_id, targets)
            return stored, []
        here, remote = await asyncio.gather(local, forward(), return_exceptions=True)
        if isinstance(here, BaseException):
            raise here
        if isinstance(remote, BaseException):
            raise remote
        return here, remote

    async def fan_out(
        self, chunk_id: str, data: Buffer | list[Buffer], targets: Sequence[Target]
    ) -> list[str]:
        """Store ``data`` (bytes, or pieces sent one after the other) on every target (sync);
        their node ids, or ReplicationError."""
        timeout = self._cfg.replication_timeout
        # views, so that a send the socket takes only in part leaves the rest in place: the
        # event loop's transport slices what it could not send (a copy of a bytearray's rest)
        view = [memoryview(p) for p in data] if isinstance(data, list) else memoryview(data)

        async def one(node_id: str, url: str) -> str:
            cap = replica_cap(self._cfg, chunk_id, node_id)
            answer = await self._transport.replicate_chunk(
                url, chunk_id, view, cap=cap, timeout=timeout
            )
            return str(answer.get("node_id", node_id))

        return await to_every_target(f"chunk {chunk_id[:12]}", targets, one)

    async def _fan_out_batch(
        self, items: Sequence[tuple[ChunkId, Buffer]], targets: Sequence[Target]
    ) -> list[str]:
        """Send the batch to every target at once, with a ``replicate-batch`` capability for
        that target bound to the batch's chunk-id list; their node ids, or ReplicationError."""
        chunk_ids = [c for c, _ in items]
        # the parts, not one joined body: the chunks go out as they are, no copy per replica
        body = protocol.pack_chunks_parts(
            [{"chunk_id": c} for c in chunk_ids], [d for _, d in items]
        )
        digest = protocol.list_sha256(chunk_ids)

        async def one(node_id: str, url: str) -> str:
            cap = replica_cap(self._cfg, digest, node_id, auth.OP_REPLICATE_BATCH)
            timeout = self._cfg.replication_timeout
            await self._transport.store_chunks(
                url, body, protocol.batch_headers(cap, chunk_ids), forwarded=True, timeout=timeout
            )
            return node_id

        return await to_every_target(f"batch of {len(items)} chunks", targets, one)

    # --- background (async) replication ----------------------------------------------------

    def replicate_later(self, chunk_id: ChunkId, targets: Sequence[Target]) -> None:
        """Forward a chunk already durable here to ``targets`` in the background, each on its
        own, re-reading it from the store when its turn comes (at most
        ``BACKGROUND_FORWARDS`` at once per target), so the bytes of a backlog wait on disk,
        not in memory."""
        for target in targets:
            task = asyncio.create_task(self._forward_with_retries(chunk_id, target))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _forward_with_retries(self, chunk_id: ChunkId, target: Target) -> None:
        self.log.pending += 1
        turns = self._turns.setdefault(target[0], asyncio.Semaphore(BACKGROUND_FORWARDS))
        try:
            delay = 0.5
            for attempt in range(1, REPLICATION_ATTEMPTS + 1):
                try:
                    async with turns:  # read only when it can be sent: see the bound
                        data = await self._store.get(chunk_id)
                        await self.fan_out(chunk_id, data, [target])
                    self.log.done(chunk_id, target[0], len(data))
                    return
                except DfsError as exc:
                    log.warning(
                        "background replication of %s to %s, attempt %d/%d: %s",
                        chunk_id[:12],
                        target[0],
                        attempt,
                        REPLICATION_ATTEMPTS,
                        exc.message,
                    )
                if attempt < REPLICATION_ATTEMPTS:
                    await asyncio.sleep(delay)
                    delay *= 2
            self.log.gave_up(chunk_id)
            log.error("gave up replicating %s; the API's repair will copy it", chunk_id[:12])
        finally:
            self.log.pending -= 1

    async def close(self) -> None:
        """Cancel the background forwards still running (the node is stopping)."""
        for task in list(self._pending):
            task.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)
