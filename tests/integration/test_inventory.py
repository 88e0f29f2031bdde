"""Repair against the disks, in process (``dfs.api.repair`` with ``dfs.api.inventory``): the
inventory's cursor walks a node's chunks a bounded window per pass, kept in the repair lease
across passes, and a node whose disk identity changed has its locations forgotten."""

from __future__ import annotations

import hashlib
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dfs.api import inventory
from dfs.api.context import REPAIR
from dfs.chunking import ChunkerProfile
from dfs.client import Client
from dfs.config import DEFAULT_PACK_THRESHOLD
from dfs.node.disk_identity import disk_id_path, read_disk_id
from dfs.node.heartbeat import heartbeat_once
from tests.e2e.node_disk import chunk_file as disk_chunk_file
from tests.integration.conftest import ADMIN_TOKEN, InProcessCluster, running_cluster

pytestmark = pytest.mark.integration

CHUNK = DEFAULT_PACK_THRESHOLD  # the smallest chunk a node stores as a file of its own,
# which these tests remove behind the node's back


@pytest.fixture
async def two(tmp_path: Path) -> AsyncIterator[InProcessCluster]:
    """2 nodes at factor 2, repair driven by the test, one inventory page per pass."""
    cfg = {"maintenance": False, "inventory_pages_per_pass": 1}
    async with running_cluster(tmp_path, n=2, rf=2, api_cfg=cfg) as c:
        yield c


def chunk_file(c: InProcessCluster, node: int, chunk_id: str) -> Path:
    return disk_chunk_file(c.base, node, chunk_id)


def good(c: InProcessCluster, node: int, chunk_id: str) -> bool:
    try:
        return hashlib.sha256(chunk_file(c, node, chunk_id).read_bytes()).hexdigest() == chunk_id
    except FileNotFoundError:
        return False


async def upload(c: InProcessCluster, tmp_path: Path, chunks: int) -> list[str]:
    src = tmp_path / "in.bin"
    src.write_bytes(random.Random(chunks).randbytes(chunks * CHUNK))
    async with Client(c.api.url, token=ADMIN_TOKEN) as client:
        up = await client.upload(src, profile=ChunkerProfile.fixed(CHUNK))
        plan = await client.api.download_plan(up.file_id)
    return sorted({str(ch["sha256"]) for ch in plan["chunks"]})


async def test_inventory_walks_a_window_per_pass_and_repairs_what_is_gone(
    two: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inventory, "PAGE", 2)
    ids = await upload(two, tmp_path, 7)
    assert len(ids) == 7
    gone = [ids[1], ids[4]]  # in the first window, and in the third
    for c in gone:
        chunk_file(two, 1, c).unlink()
    repair = two.api.runner.app[REPAIR]
    first = await repair.repair_once()  # a full pass: every chunk row, the first window
    assert first is not None
    assert first.inventory_cursors == {"node1": ids[1], "node2": ids[1]}
    assert (first.inventory_checked, first.inventory_missing) == (4, 1)
    assert (first.under_replicated, first.repaired) == (1, 1)
    assert good(two, 1, ids[1])
    assert not good(two, 1, ids[4])  # not reached yet: the cost per pass is bounded
    cursors = [first.inventory_cursors.get("node1", "")]
    found = first.inventory_missing
    for _ in range(10):
        rep = await repair.repair_once()  # targeted passes: the cursor comes from the lease
        assert rep is not None
        found += rep.inventory_missing
        cursors.append(rep.inventory_cursors.get("node1", ""))
        if not cursors[-1]:
            break
    assert cursors == [ids[1], ids[3], ids[5], ""]  # 7 ids, 2 a pass: 4 passes a cycle
    assert found == 2
    assert all(good(two, n, c) for n in (1, 2) for c in ids)


async def test_another_disk_identity_forgets_the_nodes_locations(
    two: InProcessCluster, tmp_path: Path
) -> None:
    ids = await upload(two, tmp_path, 3)
    repair = two.api.runner.app[REPAIR]
    first = await repair.repair_once()
    assert first is not None
    old = read_disk_id(two.base / "node1")
    assert first.disks["node1"] == old
    # the identity goes (the chunks stay): the next heartbeat carries a new one
    disk_id_path(two.base / "node1").unlink()
    node = two.nodes[0]
    await heartbeat_once(node.cfg, node.port, node.store, node.registrar)
    rep = await repair.repair_once()
    assert rep is not None
    assert rep.disks_replaced == ["node1"]
    assert rep.disk_locations_forgotten == len(ids)
    assert rep.disks["node1"] not in ("", old)
    # the copies still there are found again by has-chunks in the same pass: nothing copied
    assert (rep.rediscovered, rep.repaired) == (len(ids), 0)
    locs = await two.api.coordinator.meta.get_locations(ids)
    assert all(locs[c] == {"node1", "node2"} for c in ids)
    again = await repair.repair_once()
    assert again is not None
    assert again.disks_replaced == []
