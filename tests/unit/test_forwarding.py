"""ReplicaForwarder over the ChunkStore port, without a disk or a network: a
MemoryChunkStore and a fake transport that records what a primary sends its replicas."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from dfs import auth, protocol
from dfs.chunkstore.base import Buffer
from dfs.chunkstore.memory import MemoryChunkStore
from dfs.config import NodeConfig
from dfs.errors import IntegrityError, ReplicationError, Unavailable
from dfs.ids import ChunkId
from dfs.node.capabilities import check_put, check_replicate, check_replicate_batch
from dfs.node.forwarding import BACKGROUND_FORWARDS, ReplicaForwarder

SECRET = b"s" * 32
CFG = NodeConfig(
    node_id="primary", data_dir=Path("unused"), cluster_secret=SECRET, replication_timeout=5.0
)


def chunk(data: bytes) -> tuple[ChunkId, bytes]:
    return ChunkId(hashlib.sha256(data).hexdigest()), data


class FakeNodes:
    """Records replica writes; the nodes in ``down`` fail with Unavailable."""

    def __init__(self, down: frozenset[str] = frozenset()) -> None:
        self.down = down
        self.sent: list[tuple[str, str, str]] = []  # (url, chunk id, cap)

    async def replicate_chunk(
        self, node_url: str, chunk_id: str, data: Buffer, *, cap: str, timeout: float | None = None
    ) -> dict[str, Any]:
        if node_url in self.down:
            raise Unavailable(f"{node_url} is down")
        self.sent.append((node_url, chunk_id, cap))
        return {"node_id": node_url.rsplit("/", 1)[-1]}

    async def store_chunks(
        self,
        node_url: str,
        body: bytes | Sequence[Buffer],
        headers: dict[str, str],
        *,
        forwarded: bool,
        timeout: float | None,
    ) -> list[dict[str, Any]]:
        assert forwarded
        whole = body if isinstance(body, bytes) else b"".join(body)
        ids = [entry["chunk_id"] for entry, _data in protocol.unpack_chunks(whole)]
        assert headers[protocol.BATCH] == protocol.list_sha256(ids)
        for chunk_id in ids:
            self.sent.append((node_url, chunk_id, headers[protocol.CAPABILITY]))
        return []


TARGETS = [("r1", "http://h/r1"), ("r2", "http://h/r2")]


def replica_cfg(node_id: str) -> NodeConfig:
    return NodeConfig(node_id=node_id, data_dir=Path("unused"), cluster_secret=SECRET)


async def test_sync_store_forwards_with_a_replicate_cap_per_replica() -> None:
    store, nodes = MemoryChunkStore(), FakeNodes()
    cid, data = chunk(b"hello")
    stored, replicas = await ReplicaForwarder(CFG, store, nodes).store(
        cid, data, TARGETS, asynchronous=False
    )
    assert (stored, replicas) == (True, ["r1", "r2"])
    assert await store.get(cid) == data
    for url, sent_id, cap in nodes.sent:
        check_replicate(replica_cfg(url.rsplit("/", 1)[-1]), cap, sent_id)  # no error


async def test_sync_store_fails_when_a_replica_fails_and_the_local_error_wins() -> None:
    store, nodes = MemoryChunkStore(), FakeNodes(down=frozenset({"http://h/r2"}))
    forwarder = ReplicaForwarder(CFG, store, nodes)
    cid, data = chunk(b"hello")
    with pytest.raises(ReplicationError, match="1 of 2 replicas failed") as failed:
        await forwarder.store(cid, data, TARGETS, asynchronous=False)
    # the failed replica is named, so the API places the chunk again without it
    assert failed.value.details["failed_nodes"] == ["r2"]
    with pytest.raises(IntegrityError):
        await forwarder.store(cid, b"other bytes", TARGETS, asynchronous=False)


async def test_one_replica_is_forwarded_to_and_its_failure_is_a_replication_error() -> None:
    # RF 2's single target takes a path without a task group: same answers, same error
    store, nodes = MemoryChunkStore(), FakeNodes()
    forwarder = ReplicaForwarder(CFG, store, nodes)
    cid, data = chunk(b"one replica")
    assert await forwarder.store(cid, data, TARGETS[:1], asynchronous=False) == (True, ["r1"])
    assert [(u, c) for u, c, _ in nodes.sent] == [("http://h/r1", cid)]
    down = ReplicaForwarder(CFG, store, FakeNodes(down=frozenset({"http://h/r1"})))
    with pytest.raises(
        ReplicationError, match="1 of 1 replicas failed: http://h/r1 is down"
    ) as failed:
        await down.store(cid, data, TARGETS[:1], asynchronous=False)
    assert failed.value.details["failed_nodes"] == ["r1"]


async def test_batch_forwards_every_chunk_to_every_replica() -> None:
    store, nodes = MemoryChunkStore(), FakeNodes()
    items = [chunk(bytes([i]) * 10) for i in range(3)]
    replicas = await ReplicaForwarder(CFG, store, nodes).store_batch(
        items, TARGETS, asynchronous=False
    )
    assert replicas == ["r1", "r2"]
    assert sorted((u, c) for u, c, _ in nodes.sent) == sorted(
        (u, c) for _, u in TARGETS for c, _ in items
    )
    assert store.chunk_count == 3
    # one replicate-batch capability per replica, bound to the batch's chunk-id list
    digest = protocol.list_sha256([c for c, _ in items])
    for node_id, url in TARGETS:
        caps = {cap for u, _c, cap in nodes.sent if u == url}
        assert len(caps) == 1
        check_replicate_batch(replica_cfg(node_id), caps.pop(), digest)


async def test_async_store_answers_first_and_journals_the_background_forwards() -> None:
    store, nodes = MemoryChunkStore(), FakeNodes()
    forwarder = ReplicaForwarder(CFG, store, nodes)
    cid, data = chunk(b"later")
    assert await forwarder.store(cid, data, TARGETS, asynchronous=True) == (True, [])
    for _ in range(100):
        if forwarder.log.pending == 0 and len(nodes.sent) == 2:
            break
        await asyncio.sleep(0.01)
    report = forwarder.log.report(0)
    assert sorted(report["done"]) == [[cid, "r1", 5], [cid, "r2", 5]]
    assert (report["pending"], report["failed"]) == (0, [])
    await forwarder.close()


def test_put_check_tells_sync_from_async() -> None:
    cid, _ = chunk(b"x")
    file_id = "00000000-0000-4000-8000-000000000002"
    forward = protocol.forward_header(TARGETS)
    for asynchronous in (False, True):
        extra = protocol.put_cap_extra(file_id, forward, asynchronous=asynchronous)
        cap = auth.mint(SECRET, auth.OP_PUT, cid, "primary", extra=extra)
        assert check_put(CFG, cap, cid, file_id, forward) is asynchronous


class StalledNodes(FakeNodes):
    """Replicas that take every forward, but the one at ``stalled`` answers none until ``go``
    is set: counts the forwards waiting on it at once (each holds its chunk's bytes); ``full``
    is set once ``bound`` wait there, ``all_sent`` once ``expected`` forwards were answered."""

    def __init__(self, stalled: str, bound: int, expected: int) -> None:
        super().__init__()
        self.stalled, self.bound, self.expected = stalled, bound, expected
        self.go, self.full, self.all_sent = asyncio.Event(), asyncio.Event(), asyncio.Event()
        self.waiting = 0
        self.peak = 0

    async def replicate_chunk(
        self, node_url: str, chunk_id: str, data: Buffer, *, cap: str, timeout: float | None = None
    ) -> dict[str, Any]:
        if node_url == self.stalled:
            self.waiting += 1
            self.peak = max(self.peak, self.waiting)
            if self.waiting >= self.bound:
                self.full.set()
            try:
                await self.go.wait()
            finally:
                self.waiting -= 1
        answer = await super().replicate_chunk(node_url, chunk_id, data, cap=cap, timeout=timeout)
        if len(self.sent) == self.expected:
            self.all_sent.set()
        return answer


async def test_a_stalled_replica_keeps_the_async_backlog_on_disk_not_in_memory() -> None:
    """Async writes to a replica that does not answer: only BACKGROUND_FORWARDS forwards to
    it hold a chunk read from the store at once (before, every queued forward read its chunk
    at once and held it while it waited: the whole backlog in memory), and the other replica
    gets every chunk meanwhile; the rest follow once the stalled one answers."""
    n = 4 * BACKGROUND_FORWARDS
    (_, stalled), (_, healthy) = TARGETS
    store, nodes = MemoryChunkStore(), StalledNodes(stalled, BACKGROUND_FORWARDS, 2 * n)
    forwarder = ReplicaForwarder(CFG, store, nodes)
    for i in range(n):
        cid, data = chunk(i.to_bytes(4, "big") * 256)
        await forwarder.store(cid, data, TARGETS, asynchronous=True)
    async with asyncio.timeout(5):
        await nodes.full.wait()
        while len(nodes.sent) < n:  # noqa: ASYNC110 (the healthy replica's n forwards)
            await asyncio.sleep(0.01)
    assert {url for url, _c, _cap in nodes.sent} == {healthy}
    assert nodes.peak == BACKGROUND_FORWARDS
    assert forwarder.log.pending == n
    nodes.go.set()
    async with asyncio.timeout(5):
        await nodes.all_sent.wait()
    await asyncio.gather(*forwarder._pending)  # each journals its forward as it ends
    assert forwarder.log.pending == 0
    assert len(forwarder.log.report(0)["done"]) == 2 * n
    await forwarder.close()


async def test_a_long_replication_timeout_still_mints_replica_caps_a_replica_takes() -> None:
    """REPLICATION_TIMEOUT may be longer than a capability may live (15 min): the replica caps
    a primary mints still check (they lived the timeout plus the clock skew, which a replica
    refuses as longer than allowed: no write could be replicated). A replica checks the cap
    when the request's head arrives, so it need not outlive the write."""
    cfg = NodeConfig(
        node_id="primary", data_dir=Path("unused"), cluster_secret=SECRET, replication_timeout=3600
    )
    store, nodes = MemoryChunkStore(), FakeNodes()
    cid, data = chunk(b"slow link")
    await ReplicaForwarder(cfg, store, nodes).store(cid, data, TARGETS, asynchronous=False)
    assert len(nodes.sent) == 2
    for url, sent_id, cap in nodes.sent:
        check_replicate(replica_cfg(url.rsplit("/", 1)[-1]), cap, sent_id)  # no error
