"""Hedged reads, the client's avoid list and byte-scaled deadlines (issue 12, item 4)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import pytest

from dfs import protocol
from dfs.client.avoid import AvoidList
from dfs.errors import ChunkNotFound, DfsError, InvalidRequest, Unavailable
from dfs.transport.hedged import Source, first_good


class Seen:
    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def hedged(self, key: str) -> None:
        self.events.append(("hedged", key))

    def failed(self, key: str, exc: DfsError) -> None:
        self.events.append(("failed", key))

    def won(self, key: str, losers: Sequence[str]) -> None:
        self.events.append(("won", (key, tuple(losers))))


def hangs(cancelled: list[str], key: str) -> Callable[[], Awaitable[bytes]]:
    async def read() -> bytes:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(key)
            raise
        raise AssertionError("unreachable")

    return read


def answers(data: bytes) -> Callable[[], Awaitable[bytes]]:
    async def read() -> bytes:
        return data

    return read


def fails() -> Callable[[], Awaitable[bytes]]:
    async def read() -> bytes:
        raise Unavailable("refused")

    return read


async def test_a_hung_source_is_hedged_and_cancelled() -> None:
    seen, cancelled = Seen(), []
    sources = [Source("a", hangs(cancelled, "a")), Source("b", answers(b"ok"))]
    assert await asyncio.wait_for(first_good(sources, 0.05, seen, "x"), 5) == b"ok"
    assert seen.events == [("hedged", "b"), ("won", ("b", ("a",)))]
    assert cancelled == ["a"]


async def test_a_failed_source_is_replaced_at_once_and_the_last_resort_never_hedged() -> None:
    seen, cancelled = Seen(), []
    sources = [
        Source("a", fails()),
        Source("b", hangs(cancelled, "b")),
        Source("proxy", answers(b"late"), hedge=False),
    ]
    task = asyncio.ensure_future(first_good(sources, 0.01, seen, "x"))
    await asyncio.sleep(0.2)
    assert not task.done()  # b hangs and the proxy is asked only once b failed
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen.events == [("failed", "a")]
    assert cancelled == ["b"]


async def test_no_good_source_is_chunk_not_found() -> None:
    seen = Seen()
    with pytest.raises(ChunkNotFound, match="refused"):
        await first_good([Source("a", fails()), Source("b", fails())], 1.0, seen, "x")
    assert seen.events == [("failed", "a"), ("failed", "b")]


def test_avoid_list_orders_reads_excludes_failed_writes_and_forgets() -> None:
    now = [0.0]
    avoid = AvoidList(ttl=30.0, clock=lambda: now[0])
    replicas = [{"node_id": "n1"}, {"node_id": "n2"}, {"node_id": "n3"}]
    avoid.slow("n1")
    avoid.failed("n2")
    assert [r["node_id"] for r in avoid.order(replicas)] == ["n3", "n1", "n2"]
    assert avoid.excluded() == {"n2"}  # a slow read is no reason to re-plan writes
    avoid.ok("n1")
    assert avoid.avoided() == {"n2"}
    now[0] = 31.0
    assert avoid.avoided() == set()
    assert [r["node_id"] for r in avoid.order(replicas)] == ["n1", "n2", "n3"]


def test_a_node_that_fails_again_at_once_is_avoided_longer_each_time() -> None:
    """A hung node fails its first write after each avoidance: 30, 60, 120 s... up to the
    cap; a failure long after the last avoidance, or an answer (``ok``), starts again."""
    now = [0.0]
    avoid = AvoidList(ttl=30.0, clock=lambda: now[0], max_ttl=100.0)

    def avoided_for(at: float) -> float:
        now[0] = at
        avoid.failed("n1")
        avoid.failed("n1")  # a second write in flight failing changes nothing
        step = 0.5
        while "n1" in avoid.excluded():
            now[0] += step
        return now[0] - at

    assert avoided_for(0.0) == 30.0
    assert avoided_for(35.0) == 60.0  # tried 5 s after its avoidance ended: failed again
    assert avoided_for(95.0) == 100.0  # 120 s, capped
    assert avoided_for(200.0) == 100.0
    assert avoided_for(600.0) == 30.0  # long after: a new failure
    avoid.ok("n1")
    assert avoided_for(631.0) == 30.0  # it answered: its history is forgotten
    assert avoid.excluded() == set()


def test_deadlines_scale_with_bytes() -> None:
    d = protocol.TransferDeadline()
    assert d.for_bytes(0) == protocol.CHUNK_DEADLINE_FLOOR
    mib = protocol.MIB
    assert (
        d.for_bytes(16 * mib) == protocol.CHUNK_DEADLINE_FLOOR + 16 * mib / protocol.CHUNK_MIN_RATE
    )
    assert protocol.TransferDeadline(1.0, mib).for_bytes(4 * mib) == 5.0
    with pytest.raises(InvalidRequest):
        protocol.TransferDeadline(0.0, mib)
