"""Repair and garbage collection hold their lease for the whole pass (``dfs.api.pass_lease``):
a pass renews it as it goes, and stops as soon as another process has taken it over (its
lease expired while it stalled), so two passes never trim, copy or collect side by side.
In process; the API's clock is moved on by the test (the pass "stalls") at the exact step,
never waited out."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from dfs import durability_policy as policy
from dfs.api import repair as repair_module
from dfs.api.coordinator import REPAIR_LEASE, Coordinator
from dfs.api.gc import GC_LEASE, GarbageCollector, sweep_node
from dfs.api.repair import Repair
from dfs.api.trims import Trims, cap_ttl
from dfs.errors import DfsError
from dfs.ids import parse_chunk_id
from dfs.meta.base import Location
from tests.integration.conftest import InProcessCluster, running_cluster
from tests.integration.test_phantom_locations import (
    PATIENT_NODES,
    copy_to_third,
    live,
    really_held,
    recorded,
    shifted_clock,
    store,
)
from tests.integration.test_trim_commit_window import DEADLINE, aged

pytestmark = pytest.mark.integration

SIZE = 30_000
TTL = 30.0
"""Both leases' time to live here (repair: 3 x 10 s, at least 30 s; GC: 3 x 5 s, at least 30)."""


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[InProcessCluster]:
    cfg = {"maintenance": False, "gc_grace": 1.0, "gc_interval": 5.0}
    async with running_cluster(tmp_path, n=3, rf=2, api_cfg=cfg, node_cfg=PATIENT_NODES) as c:
        yield c


async def chunks(coord: Coordinator, n: int) -> list[str]:
    return [await store(coord, f"f{i}", SIZE, 100 + i) for i in range(n)]


async def take_over(coord: Coordinator, name: str, advance: Any) -> None:
    """This pass stalls past its lease, and another process takes the lease."""
    lease = await coord.meta.get_lease(name)
    assert lease is not None
    advance(lease.expires_at - coord.clock() + 1.0)
    assert await coord.meta.acquire_lease(name, "api-other", coord.clock(), TTL)


async def test_repair_stops_trimming_once_another_process_took_its_lease(
    cluster: InProcessCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    coord = cluster.api.coordinator
    advance = shifted_clock(monkeypatch, coord)
    ids = await chunks(coord, 3)
    for cid in ids:
        await copy_to_third(coord, cid, SIZE)  # 3 copies at factor 2: one to trim
    for cid in ids:  # past the grace: the trim's delete keeps younger copies (min_age)
        for node_id in await recorded(coord, cid):
            await aged(coord, node_id, cid, 1.2)
    delete = coord.nodes.delete_chunk
    deleted: list[str] = []

    async def delete_then_stall(url: str, chunk_id: str, **kw: Any) -> Any:
        gone = await delete(url, chunk_id, **kw)
        deleted.append(chunk_id)
        if len(deleted) == 1:
            await take_over(coord, REPAIR_LEASE, advance)
        return gone

    monkeypatch.setattr(coord.nodes, "delete_chunk", delete_then_stall)
    assert await Repair(coord, owner="api-one").repair_once() is None
    assert len(deleted) == 1  # the chunks after the takeover are the other process's
    assert sorted([len(await really_held(coord, c)) for c in ids]) == [2, 3, 3]
    lease = await coord.meta.get_lease(REPAIR_LEASE)
    assert lease is not None
    assert lease.owner == "api-other"


async def surplus_with_a_drained_best(coord: Coordinator) -> tuple[str, list[Any]]:
    """A chunk with 3 old copies at factor 2 whose best-ranked holder is draining (a pass
    then trims that one: the other two are enough); the chunk and its holders, ranked."""
    (cid,) = await chunks(coord, 1)
    await copy_to_third(coord, cid, SIZE)
    for node_id in await recorded(coord, cid):  # past the grace: old enough to trim
        await aged(coord, node_id, cid, 1.2)
    ranked = policy.rank_nodes(cid, list((await live(coord)).values()))
    await coord.drains.set_draining(ranked[0].node_id, True)
    return cid, ranked


async def other_pass(
    coord: Coordinator, advance: Any, best: str, stalled_for: float
) -> tuple[Any, Repair]:
    """The stalled pass's lease expires (``stalled_for`` seconds past it, by the API clock)
    and another process's pass runs, the drain of ``best`` cancelled meanwhile: it would
    trim the lowest-ranked copy, another than the stalled pass's. Its report and itself."""
    lease = await coord.meta.get_lease(REPAIR_LEASE)
    assert lease is not None
    await coord.drains.set_draining(best, False)
    advance(lease.expires_at - coord.clock() + stalled_for)
    other = Repair(coord, owner="api-other")
    report = await other.repair_once()
    assert report is not None
    return report, other


async def test_a_pass_stalled_before_its_forget_deletes_nothing_another_pass_counted_on(
    cluster: InProcessCluster, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A pass stalls after its last renewal, on the step that forgets the copy it trims (the
    drained best-ranked one), longer than the other process's fence (``dfs.api.trims``):
    the other pass trims the lowest-ranked copy. When the first goes on, the copies it
    counted on keeping are not all recorded any more: it deletes nothing, and 2 copies
    stay (1 before: each pass deleted a different one)."""
    coord = cluster.api.coordinator
    advance = shifted_clock(monkeypatch, coord)
    cid, ranked = await surplus_with_a_drained_best(coord)
    best, lowest = ranked[0].node_id, ranked[-1].node_id
    forget = coord.meta.remove_surplus_location
    stalled: list[str] = []

    async def stall_then_forget(loc: Location, keep: Any) -> bool:
        if not stalled:  # the first pass's trim, once: the other pass runs meanwhile
            stalled.append(loc.node_id)
            # a stall longer than the fence (minutes: more than the nodes' heartbeats
            # would survive on this moved clock), so the other pass is not fenced
            monkeypatch.setattr(repair_module, "fence", lambda *_: 0.0)
            other, _ = await other_pass(coord, advance, best, 1.0)
            assert other.trimmed == 1
            assert await really_held(coord, cid) == {n.node_id for n in ranked[:2]}
        return await forget(loc, keep)

    monkeypatch.setattr(coord.meta, "remove_surplus_location", stall_then_forget)
    with caplog.at_level(logging.INFO, logger="dfs.api.repair"):
        assert await Repair(coord, owner="api-one").repair_once() is None  # its lease was lost
    assert stalled == [best]
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert refused == [
        f"trim of {cid[:12]} on {best} refused: that copy, or one of those it keeps"
        f" ({','.join(sorted(n.node_id for n in ranked[1:]))}), is not recorded now"
        " (another pass trimmed, or a copy was lost); deferred to the next pass"
    ]
    assert await really_held(coord, cid) == await recorded(coord, cid) == {best, ranked[1].node_id}
    assert lowest not in await really_held(coord, cid)


async def test_a_pass_stalled_between_its_forget_and_its_delete_loses_no_copy(
    cluster: InProcessCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first pass stalls after its forget, on its delete. The copy it forgot is still on
    its node, so the orphan sweep records it again (the inventory or a has-chunks answer
    would too). The other process takes the lease over 1 s after it expired: the first
    pass's delete capability may still be valid, so the other pass is fenced and trims
    nothing (it would have trimmed the lowest-ranked copy: with the first's delete, 1 of 2
    copies stayed). The first's delete then goes through; 2 copies stay."""
    coord = cluster.api.coordinator
    advance = shifted_clock(monkeypatch, coord)
    cid, ranked = await surplus_with_a_drained_best(coord)
    best = ranked[0].node_id
    nodes = await live(coord)
    delete = coord.nodes.delete_chunk
    stalled: list[str] = []
    others: list[Repair] = []

    async def stall_then_delete(url: str, chunk_id: str, **kw: Any) -> Any:
        if not stalled:  # the first pass's delete, once: the others run meanwhile
            stalled.append(url)
            assert await recorded(coord, cid) == {n.node_id for n in ranked[1:]}
            assert await sweep_node(coord, nodes[best], set()) == (0, 1)
            other, repair = await other_pass(coord, advance, best, 1.0)
            assert other.trimmed == 0
            assert cid in repair._deferred  # left to its next passes
            others.append(repair)
        return await delete(url, chunk_id, **kw)

    monkeypatch.setattr(coord.nodes, "delete_chunk", stall_then_delete)
    assert await Repair(coord, owner="api-one").repair_once() is None  # its lease was lost
    assert stalled == [nodes[best].url]
    assert await really_held(coord, cid) == {n.node_id for n in ranked[1:]}
    # its next pass holds the lease itself, and is fenced still until the same time
    (repair,) = others
    fenced = repair._trims.fenced_until
    assert fenced > coord.clock()
    assert await repair.repair_once() is not None
    assert repair._trims.fenced_until == fenced


async def test_a_trims_delete_capability_expires_after_the_renewal_it_was_minted_from(
    cluster: InProcessCluster,
) -> None:
    """A pass that stalls longer than the other process's fence sends its delete after it:
    its capability expired ``cap_ttl`` after the lease renewal it was minted from, however
    late it is sent, so the node refuses it and the copy stays. One minted from a fresh
    renewal deletes."""
    coord = cluster.api.coordinator
    (cid,) = await chunks(coord, 1)
    holder = sorted(await recorded(coord, cid))[0]
    node = (await live(coord))[holder]
    grace = coord.cfg.gc_grace
    await aged(coord, holder, cid, grace + 0.2)  # old enough: only the capability decides

    async def no_lease() -> None:
        return None

    stale = time.time() - cap_ttl(TTL) - 1.0  # wall time: what the node checks against
    late = Trims(coord, no_lease, lambda: stale, TTL, set())._delete_cap(cid, holder, grace)
    with pytest.raises(DfsError, match="expired"):
        await coord.nodes.delete_chunk(node.url, cid, cap=late, min_age=grace)
    assert holder in await really_held(coord, cid)
    fresh = Trims(coord, no_lease, time.time, TTL, set())._delete_cap(cid, holder, grace)
    assert await coord.nodes.delete_chunk(node.url, cid, cap=fresh, min_age=grace)
    assert holder not in await really_held(coord, cid)


async def test_repair_stops_copying_once_another_process_took_its_lease(
    cluster: InProcessCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    coord = cluster.api.coordinator
    advance = shifted_clock(monkeypatch, coord)
    ids = await chunks(coord, 3)
    by_id = {n.cfg.node_id: n for n in cluster.nodes}
    for cid in ids:  # one of the two copies is lost: each chunk is short
        lost_on = sorted(await recorded(coord, cid))[0]
        await by_id[lost_on].store.delete(parse_chunk_id(cid))
        await coord.meta.remove_locations([Location(cid, lost_on, 0)])
    copy = coord.nodes.copy_chunk
    copied: list[str] = []

    async def copy_then_stall(url: str, chunk_id: str, *args: Any, **kw: Any) -> None:
        await copy(url, chunk_id, *args, **kw)
        copied.append(chunk_id)
        if len(copied) == 1:
            await take_over(coord, REPAIR_LEASE, advance)

    monkeypatch.setattr(coord.nodes, "copy_chunk", copy_then_stall)
    assert await Repair(coord, owner="api-one").repair_once() is None
    assert len(copied) == 1
    assert sorted([len(await really_held(coord, c)) for c in ids]) == [1, 1, 2]


async def unreferenced(coord: Coordinator, n: int, advance: Any) -> list[str]:
    """``n`` chunks whose files were deleted longer than the grace ago (by the API's clock)."""
    ids = await chunks(coord, n)
    for i in range(n):
        (rec,) = [f for f in await coord.meta.list_files("alice", limit=100) if f.name == f"f{i}"]
        await coord.delete_file(rec.file_id, "alice")
    advance(2.0)  # past the 1 s grace
    return ids


async def test_gc_renews_its_lease_during_a_long_pass(
    cluster: InProcessCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each chunk collected takes 0.6 of the lease's time to live: without renewals the
    lease expires at the second, and another process would start collecting alongside."""
    coord = cluster.api.coordinator
    advance = shifted_clock(monkeypatch, coord)
    ids = await unreferenced(coord, 3, advance)
    collect = coord.meta.delete_chunk_if_unreferenced
    others_got_it: list[bool] = []

    async def slow_collect(chunk_id: str, cutoff: float) -> Any:
        holders = await collect(chunk_id, cutoff)
        advance(0.6 * TTL)
        got = await coord.meta.acquire_lease(GC_LEASE, "api-other", coord.clock(), TTL)
        others_got_it.append(got)
        return holders

    monkeypatch.setattr(coord.meta, "delete_chunk_if_unreferenced", slow_collect)
    report = await GarbageCollector(coord, owner="api-one").gc_once()
    assert others_got_it == [False, False, False]
    assert report is not None
    assert report.collected == 3
    assert await coord.meta.get_chunks(ids) == {}


async def test_gc_stops_once_another_process_took_its_lease(
    cluster: InProcessCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    coord = cluster.api.coordinator
    advance = shifted_clock(monkeypatch, coord)
    ids = await unreferenced(coord, 3, advance)
    collect = coord.meta.delete_chunk_if_unreferenced
    collected: list[str] = []

    async def collect_then_stall(chunk_id: str, cutoff: float) -> Any:
        holders = await collect(chunk_id, cutoff)
        collected.append(chunk_id)
        if len(collected) == 1:
            await take_over(coord, GC_LEASE, advance)
        return holders

    monkeypatch.setattr(coord.meta, "delete_chunk_if_unreferenced", collect_then_stall)
    assert await GarbageCollector(coord, owner="api-one").gc_once() is None
    assert len(collected) == 1
    assert len(await coord.meta.get_chunks(ids)) == 2  # left to the lease's new holder


async def test_trims_delete_under_a_long_repair_interval(tmp_path: Path) -> None:
    """An hourly repair (DFS_REPAIR_INTERVAL=3600: a 3 h lease) still trims. A trim's delete
    capability must live no longer than a node accepts (``auth.CAP_MAX_TTL`` + the clock
    skew): one expiring a sixth of the lease + 60 s after the renewal (~31 min here) was
    refused by every node as living too long, and the surplus copy was never trimmed."""
    cfg = {"maintenance": False, "gc_grace": 1.0, "repair_interval": 3600.0}
    async with running_cluster(tmp_path, n=3, rf=2, api_cfg=cfg, node_cfg=PATIENT_NODES) as c:
        coord = c.api.coordinator
        (cid,) = await chunks(coord, 1)
        await copy_to_third(coord, cid, SIZE)
        for node_id in await recorded(coord, cid):  # past the grace: old enough to trim
            await aged(coord, node_id, cid, 1.2)
        report = await Repair(coord, owner="api-one").repair_once()
        assert report is not None
        assert report.trimmed == 1
        assert len(await really_held(coord, cid)) == 2


async def test_a_takeover_unseen_by_the_lease_read_before_the_acquire_is_fenced(
    cluster: InProcessCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process reads the lease (its own, from its last pass) and stalls before it acquires
    it. Meanwhile its lease expires, another process takes it over and stalls between its
    trim's forget and its delete (the drained best-ranked copy), and that lease expires too.
    The first process then acquires the lease: it took it over from another owner, though
    the lease it read was its own. It must be fenced (the other's delete capability may
    still be valid), not trim the lowest-ranked copy: with the other's delete, 1 of 2
    copies stayed."""
    coord = cluster.api.coordinator
    advance = shifted_clock(monkeypatch, coord)
    first = Repair(coord, owner="api-one")
    assert await first.repair_once() is not None  # the lease is api-one's
    cid, ranked = await surplus_with_a_drained_best(coord)
    best = ranked[0].node_id
    nodes = await live(coord)
    delete, get_lease = coord.nodes.delete_chunk, coord.meta.get_lease
    other_stalled, first_done = asyncio.Event(), asyncio.Event()

    async def stall_then_delete(url: str, chunk_id: str, **kw: Any) -> Any:
        if url == nodes[best].url and not other_stalled.is_set():  # the other's delete
            other_stalled.set()
            await first_done.wait()
        return await delete(url, chunk_id, **kw)

    async def other() -> Any:
        return await Repair(coord, owner="api-other").repair_once()

    tasks: list[asyncio.Task[Any]] = []

    async def read_then_stall(name: str) -> Any:
        lease = await get_lease(name)
        if name == REPAIR_LEASE and not tasks:  # the first process's read, once
            assert lease is not None
            assert lease.owner == "api-one"
            advance(lease.expires_at - coord.clock() + 1.0)
            tasks.append(asyncio.create_task(other()))
            await asyncio.wait_for(other_stalled.wait(), DEADLINE)
            # the other's forgotten copy is recorded again (the orphan sweep), its drain
            # cancelled, and its lease expires while it stalls
            assert await sweep_node(coord, nodes[best], set()) == (0, 1)
            await coord.drains.set_draining(best, False)
            held = await get_lease(name)
            assert held is not None
            assert held.owner == "api-other"
            advance(held.expires_at - coord.clock() + 1.0)
        return lease

    monkeypatch.setattr(coord.nodes, "delete_chunk", stall_then_delete)
    monkeypatch.setattr(coord.meta, "get_lease", read_then_stall)
    # the other process took the lease over long after the first's expired, past its own
    # fence (minutes: more than the nodes' heartbeats would survive on this moved clock)
    fence = repair_module.fence
    monkeypatch.setattr(
        repair_module, "fence", lambda p, o, t: 0.0 if o == "api-other" else fence(p, o, t)
    )
    first._last_full = None  # its full scan is due: it looks at every chunk
    try:
        report = await first.repair_once()
    finally:
        first_done.set()
    assert report is not None
    assert await asyncio.wait_for(tasks[0], DEADLINE) is None  # its lease was lost
    assert len(await really_held(coord, cid)) == 2
    assert report.trimmed == 0
    assert cid in first._deferred  # left to its next passes
