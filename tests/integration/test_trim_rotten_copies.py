"""Repair's trim never deletes a good surplus copy for copies that rotted.

A chunk with one copy too many (3 at factor 2) loses its lowest-ranked copy to the trim. If
the two copies it keeps rotted on disk since the last scrub, they are still *present*
(``/has-chunks``); counting on them, the trim deleted the one good copy and the chunk was
lost. The trim now asks its holders to read their copies back (``/has-chunks`` with
``verify``): the rotten ones fail their node's check, are quarantined there and not counted,
nothing is trimmed, and the next passes copy the good one back to the factor. In process
(real sockets, real chunk files), the rot made by flipping a byte in each file.
"""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from dfs import auth
from dfs import durability_policy as policy
from dfs.api.coordinator import Coordinator
from dfs.api.repair import Repair
from dfs.errors import DfsError
from dfs.meta.base import NodeRecord
from tests.integration.conftest import InProcessCluster
from tests.integration.test_phantom_locations import (
    GRACE,
    copy_to_third,
    gc_cluster,  # noqa: F401 (the fixture)
    live,
    really_held,
    recorded,
    store,
)

pytestmark = pytest.mark.integration

SIZE = 300_000  # over the pack threshold: one chunk file per copy
PASSES = 5  # repair passes the copies may take to get back to the factor


def rot(c: InProcessCluster, node_id: str, chunk_id: str) -> None:
    """Flip one byte in the middle of the node's file of ``chunk_id`` (left in place)."""
    (node,) = [n for n in c.nodes if n.cfg.node_id == node_id]
    (path,) = node.cfg.data_dir.rglob(chunk_id)
    with open(path, "r+b") as f:
        f.seek(SIZE // 2)
        byte = f.read(1)
        f.seek(SIZE // 2)
        f.write(bytes([byte[0] ^ 0xFF]))


async def intact(coord: Coordinator, node: NodeRecord, chunk_id: str) -> bool:
    """Whether the node serves ``chunk_id`` with the bytes its id names."""
    cap = coord.cap(auth.OP_GET, chunk_id, node.node_id)
    try:
        pieces = await coord.nodes.get_chunk(node.url, chunk_id, cap=cap, size=SIZE)
    except DfsError:
        return False  # missing here, or quarantined as it was read
    return hashlib.sha256(b"".join(pieces)).hexdigest() == chunk_id


async def test_a_trim_keeps_the_good_copy_when_the_kept_ones_rotted(
    gc_cluster: InProcessCluster,  # noqa: F811 (the fixture)
) -> None:
    coord = gc_cluster.api.coordinator
    cid = await store(coord, "f", SIZE, 7)
    await copy_to_third(coord, cid, SIZE)
    # a wait the grace defines: a node deletes no copy younger than GC's grace (by its wall
    # clock), and the third copy was just written
    await asyncio.sleep(GRACE + 0.1)
    nodes = await live(coord)
    assert await recorded(coord, cid) == await really_held(coord, cid) == set(nodes)
    (victim,) = policy.trim_victims(cid, list(nodes.values()), coord.rf)
    kept = set(nodes) - {victim.node_id}
    for node_id in kept:
        rot(gc_cluster, node_id, cid)
    assert await really_held(coord, cid) == set(nodes)  # present, all three

    repair = Repair(coord)  # one pass owner: its lease is its own from pass to pass
    report = await repair.repair_once()
    assert report is not None
    assert report.trimmed == 0
    assert await intact(coord, victim, cid)  # the one good copy is still there

    for _ in range(PASSES):  # bounded: each pass copies what the last one found missing
        good = {n for n in nodes if await intact(coord, nodes[n], cid)}
        if len(good) >= coord.rf:
            break
        await repair.repair_once()
    good = {n for n in nodes if await intact(coord, nodes[n], cid)}
    assert victim.node_id in good
    assert len(good) >= coord.rf
    assert await recorded(coord, cid) <= await really_held(coord, cid)
