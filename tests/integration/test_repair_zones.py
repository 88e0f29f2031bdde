"""Repair keeps a chunk's copies in distinct zones, as placement does (``DFS_NODE_ZONE``).

Repair used to copy to the best-ranked nodes lacking a chunk and trims kept the best-ranked
holders, neither looking at zones: a chunk whose copy in one zone was lost was copied back
into the zone of its remaining copy whenever a node there ranked first, and a surplus copy
was trimmed from the only other zone. Both left every copy in one zone, which a zone outage
then took whole. In process, with the nodes' zones and room fixed in the registry the pass
reads, so the rendezvous ranking (and so the test) is deterministic.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dfs import auth, protocol
from dfs import durability_policy as policy
from dfs.api.coordinator import Coordinator
from dfs.api.repair import Repair
from dfs.meta.base import Location, NodeRecord
from tests.integration.conftest import InProcessCluster, running_cluster
from tests.integration.test_phantom_locations import copy_to_third, really_held, recorded, store

pytestmark = pytest.mark.integration

GRACE = 1.0
"""GC's grace: a trim deletes only copies at least this old (the nodes' wall clock)."""


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[InProcessCluster]:
    """3 nodes at factor 2, maintenance driven by the test, a short GC grace."""
    cfg = {"maintenance": False, "gc_grace": GRACE}
    async with running_cluster(tmp_path, n=3, rf=2, api_cfg=cfg) as c:
        yield c


def zoned(coord: Coordinator, monkeypatch: pytest.MonkeyPatch, zones: dict[str, str]) -> None:
    """The registry as repair reads it: each node in ``zones[node_id]``, all with equal room."""
    list_nodes = coord.meta.list_nodes

    async def with_zones() -> list[NodeRecord]:
        return [
            dataclasses.replace(n, zone=zones[n.node_id], capacity_bytes=1 << 40, used_bytes=0)
            for n in await list_nodes()
        ]

    monkeypatch.setattr(coord.meta, "list_nodes", with_zones)


async def ranked(coord: Coordinator, cid: str, ids: set[str]) -> list[str]:
    """``ids`` in placement order for ``cid`` (equal room: by the hash alone)."""
    nodes = [
        dataclasses.replace(n, capacity_bytes=1 << 40, used_bytes=0)
        for n in await coord.live_nodes()
        if n.node_id in ids
    ]
    return [n.node_id for n in policy.rank_nodes(cid, nodes)]


async def test_repair_copies_to_another_zone_before_the_holders_own(
    cluster: InProcessCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One copy left, in zone a; the node ranked first among the others is in zone a too,
    the other in zone b: the copy goes to zone b."""
    coord = cluster.api.coordinator
    cid = await store(coord, "f", 30_000, 11)
    keep, lost = sorted(await recorded(coord, cid))
    node = {n.node_id: n for n in await coord.live_nodes()}[lost]
    cap = coord.cap(auth.OP_DELETE, cid, lost, protocol.delete_cap_extra(0.0))
    assert await coord.nodes.delete_chunk(node.url, cid, cap=cap)
    await coord.meta.remove_locations([Location(cid, lost, 0)])
    first, second = await ranked(coord, cid, set(node_ids(cluster)) - {keep})
    zoned(coord, monkeypatch, {keep: "a", first: "a", second: "b"})
    report = await Repair(coord).repair_once()
    assert report is not None
    assert report.repaired == 1
    assert await recorded(coord, cid) == await really_held(coord, cid) == {keep, second}


async def test_a_trim_keeps_a_copy_in_each_zone(
    cluster: InProcessCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three copies at factor 2, the lowest-ranked holder alone in zone b: the trim deletes
    one of the two in zone a, not the one in zone b."""
    coord = cluster.api.coordinator
    cid = await store(coord, "f", 30_000, 12)
    await copy_to_third(coord, cid, 30_000)
    await asyncio.sleep(GRACE + 0.1)  # a wait the grace defines: nodes age copies by it
    first, second, third = await ranked(coord, cid, set(node_ids(cluster)))
    zoned(coord, monkeypatch, {first: "a", second: "a", third: "b"})
    report = await Repair(coord).repair_once()
    assert report is not None
    assert report.trimmed == 1
    assert await recorded(coord, cid) == await really_held(coord, cid) == {first, third}


def node_ids(c: InProcessCluster) -> list[str]:
    return [f"node{i}" for i in range(1, len(c.nodes) + 1)]
