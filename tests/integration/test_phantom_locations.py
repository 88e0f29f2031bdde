"""Locations must never name a copy that is not there (a "phantom"): repair and a drain count
locations, so a phantom makes a chunk with too few real copies look safe. In process, each
race run at the exact point it happens (a hook on the step it races), never by timing:

- the orphan sweep (``dfs.api.gc.sweep_node``) records a copy it listed while repair's trim
  is deleting it (before the trim's forget, or between its forget and its delete);
- a trim's delete whose answer was lost: the copy is gone, so no second copy may go;
- a repair pass in another process (a restart, the repair lease moving) reads the nodes'
  background-replication journals and must not record again forwards whose copies went;
- a drain's status counts only copies their nodes confirm;
- another process's inventory lists a copy a stalled pass's trim then deletes and forgets
  before the inventory records it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from dfs import auth, protocol
from dfs import durability_policy as policy
from dfs.api.coordinator import REPAIR_LEASE, Coordinator
from dfs.api.gc import sweep_node
from dfs.api.ingest import ingest
from dfs.api.inventory import take_inventory
from dfs.api.repair import Repair
from dfs.chunking import ChunkerProfile
from dfs.errors import DfsError
from dfs.ids import parse_chunk_id
from dfs.meta.base import Location, NodeRecord
from tests.integration.conftest import InProcessCluster, running_cluster
from tests.integration.test_ingest_small import _reader

pytestmark = pytest.mark.integration

GRACE = 1.0
"""GC's grace: the sweep looks at copies at least this old (the nodes' wall clock)."""
PATIENT_NODES = {"heartbeat_timeout": 120.0}
"""Nodes stay live while a test moves the API's clock on by a lease's time to live."""


def shifted_clock(monkeypatch: pytest.MonkeyPatch, coord: Coordinator) -> Callable[[float], None]:
    """Give the coordinator a clock the test moves on (another process's pass after this
    one's lease expired); returns ``advance(seconds)``."""
    offset = [0.0]
    monkeypatch.setattr(coord, "clock", lambda: time.time() + offset[0])

    def advance(seconds: float) -> None:
        offset[0] += seconds

    return advance


async def store(coord: Coordinator, name: str, size: int, seed: int) -> str:
    """Upload one chunk of ``size`` bytes; its id."""
    if not await coord.meta.tenant_exists("alice"):
        await coord.meta.create_tenant("alice", coord.clock())
    data = random.Random(seed).randbytes(size)
    done = await ingest(coord, "alice", name, _reader(data), ChunkerProfile.default(), 1 << 30)
    (cid,) = {e.chunk_id for e in done.manifest}
    assert cid == hashlib.sha256(data).hexdigest()
    return cid


async def live(coord: Coordinator) -> dict[str, NodeRecord]:
    return {n.node_id: n for n in await coord.live_nodes()}


async def really_held(coord: Coordinator, cid: str) -> set[str]:
    """The live nodes that answer has-chunks holding ``cid`` (nothing recorded)."""
    nodes = list((await live(coord)).values())
    answers = await coord._ask_holders([cid], nodes)
    return {n.node_id for n, a in zip(nodes, answers, strict=True) if cid in a}  # type: ignore[operator]


async def recorded(coord: Coordinator, cid: str) -> set[str]:
    return set((await coord.meta.get_locations([cid]))[cid])


async def copy_to_third(coord: Coordinator, cid: str, size: int) -> None:
    """Copy ``cid`` to the live node lacking it and record it: one surplus copy."""
    nodes = await live(coord)
    holders = await recorded(coord, cid)
    (third,) = set(nodes) - holders
    src, dst = nodes[sorted(holders)[0]], nodes[third]
    extra = protocol.copy_cap_extra(dst.node_id, dst.url)
    cap = coord.cap(auth.OP_COPY, cid, src.node_id, extra)
    await coord.nodes.copy_chunk(src.url, cid, dst.node_id, dst.url, cap=cap)
    await coord.meta.add_locations([Location(cid, third, size)], coord.clock())


@pytest.fixture
async def gc_cluster(tmp_path: Path) -> AsyncIterator[InProcessCluster]:
    """3 nodes at factor 2, maintenance driven by the test, a short GC grace."""
    cfg = {"maintenance": False, "gc_grace": GRACE, "orphan_interval": 0.01, "drain_settle": 0.0}
    async with running_cluster(tmp_path, n=3, rf=2, api_cfg=cfg, node_cfg=PATIENT_NODES) as c:
        yield c


async def surplus_chunk(c: InProcessCluster) -> str:
    """A chunk with 3 real, recorded copies at factor 2, older than the sweep's grace."""
    coord = c.api.coordinator
    cid = await store(coord, "f", 30_000, 2)
    await copy_to_third(coord, cid, 30_000)
    assert await recorded(coord, cid) == await really_held(coord, cid) == set(await live(coord))
    # a wait the grace defines: the nodes age copies by the wall clock, and the sweep looks
    # only at copies at least the grace old
    await asyncio.sleep(GRACE + 0.1)
    return cid


# --- A: the orphan sweep against repair's trim ------------------------------------------------


async def test_sweep_between_trims_forget_and_delete_leaves_no_phantom(
    gc_cluster: InProcessCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sweep lists the victim after the trim forgot its copy and before it deletes it:
    the sweep records the copy (still there), the trim deletes it, and forgets it again."""
    coord = gc_cluster.api.coordinator
    cid = await surplus_chunk(gc_cluster)
    nodes = await live(coord)
    forget = coord.meta.remove_surplus_location  # the trim's forget before its delete
    swept: list[tuple[str, int]] = []

    async def forget_then_sweep(loc: Location, keep: set[str]) -> bool:
        forgot = await forget(loc, keep)
        if not swept and loc.chunk_id == cid:
            _deleted, rec = await sweep_node(coord, nodes[loc.node_id], set())
            swept.append((loc.node_id, rec))
        return forgot

    monkeypatch.setattr(coord.meta, "remove_surplus_location", forget_then_sweep)
    report = await Repair(coord).repair_once()
    assert report is not None
    assert report.trimmed == 1
    ((victim, rec),) = swept
    assert rec == 1  # the sweep did record the copy it listed, before the delete
    real = await really_held(coord, cid)
    assert victim not in real
    assert len(real) == 2
    assert await recorded(coord, cid) == real


async def test_sweep_that_listed_before_a_trim_records_no_phantom(
    gc_cluster: InProcessCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sweep lists the victim's copy, then a whole repair pass trims it (forget, delete,
    forget), then the sweep goes on to record what it listed: it must find it gone."""
    coord = gc_cluster.api.coordinator
    cid = await surplus_chunk(gc_cluster)
    nodes = await live(coord)
    (victim,) = policy.trim_victims(cid, list(nodes.values()), coord.rf)
    list_chunks = coord.nodes.list_chunks
    trimmed: list[int] = []

    async def list_then_trim(url: str, **kw: Any) -> Any:
        page = await list_chunks(url, **kw)
        if not trimmed and url == victim.url:
            trimmed.append(0)  # the pass's own inventory listings go straight through
            report = await Repair(coord).repair_once()
            assert report is not None
            trimmed[0] = report.trimmed
        return page

    monkeypatch.setattr(coord.nodes, "list_chunks", list_then_trim)
    _deleted, rec = await sweep_node(coord, victim, set())
    assert trimmed == [1]
    real = await really_held(coord, cid)
    assert real == set(nodes) - {victim.node_id}
    assert await recorded(coord, cid) == real
    assert rec == 0  # recorded, found gone on asking again, forgotten


async def test_a_trim_whose_delete_answer_was_lost_trims_no_second_copy(
    gc_cluster: InProcessCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The node deletes the victim's copy but its answer is lost: the trim takes the delete
    as failed, asks the node, finds the copy gone and leaves it forgotten. It must not go on
    to the next-ranked copy as past a copy kept: that left 1 real copy at factor 2."""
    coord = gc_cluster.api.coordinator
    cid = await surplus_chunk(gc_cluster)
    delete = coord.nodes.delete_chunk
    deletes: list[str] = []

    async def delete_answer_lost(url: str, chunk_id: str, **kw: Any) -> Any:
        gone = await delete(url, chunk_id, **kw)
        deletes.append(url)
        if len(deletes) == 1:
            raise DfsError("the delete's answer was lost")
        return gone

    monkeypatch.setattr(coord.nodes, "delete_chunk", delete_answer_lost)
    report = await Repair(coord).repair_once()
    assert report is not None
    assert len(deletes) == 1
    real = await really_held(coord, cid)
    assert len(real) == 2
    assert await recorded(coord, cid) == real


# --- B: replication journals read again by another process -----------------------------------


async def _forwarded(coord: Coordinator) -> str:
    """Wait until the one background forward is done (a condition, bounded); the node it
    went to."""
    deadline = time.monotonic() + 30.0
    while True:
        reps = []
        for n in (await live(coord)).values():
            cap = coord.cap(auth.OP_STATUS, auth.ANY_CHUNK, n.node_id)
            reps.append((await coord.nodes.status(n.url, cap=cap))["replication"])
        done = [d for r in reps for d in r["done"]]
        if done and not sum(r["pending"] for r in reps):
            ((_cid, target, _size),) = done
            return str(target)
        assert time.monotonic() < deadline, reps
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("cursors_kept", [True, False], ids=["handover", "no-cursors"])
async def test_another_process_does_not_replay_journal_forwards_whose_copies_went(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cursors_kept: bool
) -> None:
    """Pass 1 records a background forward; the replica's copy is then lost (and forgotten,
    as the inventory does). Pass 2 runs in another process once pass 1's lease expired: it
    must not record the forward again, or the chunk looks fully replicated with one copy
    and is never repaired. ``no-cursors``: the lease's info has no journal cursors (written
    by an API before them): the journal is read from the start, and only forwards whose
    copy is still there are recorded. The inventory is off: its window does not reach the
    chunk in this pass (it would, on a small node, and hide the replay)."""
    cfg = {"maintenance": False, "replication_strategy": "async", "inventory_pages_per_pass": 0}
    async with running_cluster(tmp_path, n=3, rf=2, api_cfg=cfg, node_cfg=PATIENT_NODES) as c:
        coord = c.api.coordinator
        advance = shifted_clock(monkeypatch, coord)
        cid = await store(coord, "f", 400_000, 4)  # one chunk, stored as a file
        lost_on = await _forwarded(coord)
        first = await Repair(coord, owner="api-one").repair_once()
        assert first is not None
        where = await recorded(coord, cid)
        assert len(where) == 2
        assert lost_on in where
        replica = next(n for n in c.nodes if n.cfg.node_id == lost_on)
        await replica.store.delete(parse_chunk_id(cid))
        await coord.meta.remove_locations([Location(cid, lost_on, 0)])
        if not cursors_kept:
            lease = await coord.meta.get_lease(REPAIR_LEASE)
            assert lease is not None
            info = json.loads(lease.info)
            info.pop("replication_cursors", None)
            await coord.meta.acquire_lease(
                REPAIR_LEASE, lease.owner, coord.clock(), 30.0, json.dumps(info)
            )
        advance(31.0)  # the first process's lease (30 s) has expired
        second = await Repair(coord, owner="api-two").repair_once()
        assert second is not None
        real = await really_held(coord, cid)
        assert await recorded(coord, cid) == real
        assert len(real) == 2
        assert second.repaired == 1
        # the journal cursors are the lease's: the primary's one forward was read once
        (primary,) = where - {lost_on}
        assert second.replication_cursors[primary][1] == 1
        lease = await coord.meta.get_lease(REPAIR_LEASE)
        assert lease is not None
        assert json.loads(lease.info)["replication_cursors"][primary][1] == 1


# --- D: a drain's status counts confirmed copies only ----------------------------------------


async def test_drain_status_confirms_copies_with_their_nodes(
    gc_cluster: InProcessCluster,
) -> None:
    """A chunk recorded on all three nodes but held by two: draining one of the two, the
    locations say two copies remain elsewhere, the nodes say one. Not done; the phantom is
    forgotten, repair copies the chunk, and then the drain is done."""
    coord = gc_cluster.api.coordinator
    cid = await store(coord, "f", 30_000, 7)
    holders = await recorded(coord, cid)
    (phantom,) = set(await live(coord)) - holders
    await coord.meta.add_locations([Location(cid, phantom, 30_000)], coord.clock())
    drained = sorted(holders)[0]
    await coord.drains.set_draining(drained, True)
    status = await coord.drains.status(drained, coord.rf)
    assert (status["chunks"], status["short"], status["done"]) == (1, 1, False)
    assert await recorded(coord, cid) == holders  # the phantom was forgotten
    repair = Repair(coord)
    for _ in range(3):
        assert await repair.repair_once() is not None
        status = await coord.drains.status(drained, coord.rf)
        if status["done"]:
            break
    assert status["done"]
    assert len(await really_held(coord, cid) - {drained}) == 2


# --- E: another process's inventory against a trim -------------------------------------------


async def test_inventory_that_listed_before_a_trims_delete_records_no_phantom(
    gc_cluster: InProcessCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A repair pass that stalled past its lease trims (forget, delete, forget) while the
    process that took the lease over takes its inventory of the victim: the inventory reads
    metadata after the trim's first forget and lists the node before its delete, so it sees
    an untracked copy, and records it only after the trim's second forget. It must ask the
    node again (as the orphan sweep does) and find the copy gone, not leave it recorded."""
    coord = gc_cluster.api.coordinator
    cid = await surplus_chunk(gc_cluster)
    nodes = await live(coord)
    (victim,) = policy.trim_victims(cid, list(nodes.values()), coord.rf)
    for seed in range(100, 140):  # another chunk recorded on the victim: its inventory runs
        other = await store(coord, f"g{seed}", 20_000, seed)
        if victim.node_id in await recorded(coord, other):
            break
    else:
        raise AssertionError("no chunk placed on the victim")
    forgot, listed = asyncio.Event(), asyncio.Event()
    forget = coord.meta.remove_surplus_location

    async def forget_then_wait(loc: Location, keep: set[str]) -> bool:
        forgot_it = await forget(loc, keep)
        if loc.chunk_id == cid and not forgot.is_set():
            forgot.set()
            await listed.wait()  # the other process lists the node now, before the delete
        return forgot_it

    monkeypatch.setattr(coord.meta, "remove_surplus_location", forget_then_wait)
    stalled = asyncio.ensure_future(Repair(coord).repair_once())
    await asyncio.wait_for(forgot.wait(), 30.0)
    list_chunks = coord.nodes.list_chunks

    async def list_then_trim(url: str, **kw: Any) -> Any:
        page = await list_chunks(url, **kw)
        if url == victim.url and not listed.is_set():
            assert cid in {c for c, _age in page[0]}  # listed before the delete
            listed.set()
            report = await asyncio.wait_for(stalled, 30.0)  # delete, forget again
            assert report is not None
            assert report.trimmed == 1
        return page

    monkeypatch.setattr(coord.nodes, "list_chunks", list_then_trim)
    done = await take_inventory(coord, [victim], {}, 1)
    assert listed.is_set()
    assert stalled.done()
    real = await really_held(coord, cid)
    assert victim.node_id not in real
    assert len(real) == 2
    assert await recorded(coord, cid) == real
    assert done.untracked == 0  # recorded, found gone on asking again, forgotten
