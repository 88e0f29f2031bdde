"""One disk is one copy, whatever number of node ids serve it.

Two node processes started on one data directory (a copied unit file, a mount mistake)
announce the same disk identity under two node ids. Repair counted a chunk recorded on both
as two copies, so chunks with one physical copy were never repaired, and a trim could delete
"the surplus" through one id and so the only copy of the other. Now repair lets the smallest
id stand for the disk: only its copies count, only it is a target, and nothing is trimmed
through the other (``durability_policy.shared_disks``; the report names them).
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dfs.api.app import start_api
from dfs.api.ingest import ingest
from dfs.api.repair import Repair
from dfs.auth import hash_token
from dfs.chunking import ChunkerProfile
from dfs.config import ApiConfig, NodeConfig
from dfs.node.app import start_node
from tests.integration.conftest import ADMIN_TOKEN, SECRET, InProcessCluster
from tests.integration.test_ingest_small import _reader
from tests.integration.test_phantom_locations import copy_to_third, really_held
from tests.integration.test_trim_commit_window import aged

pytestmark = pytest.mark.integration


@pytest.fixture
async def one_disk_twice(tmp_path: Path) -> AsyncIterator[InProcessCluster]:
    """node1 and node2 on one data directory, node3 on its own; factor 2."""
    meta_url = f"sqlite://{tmp_path / 'meta.db'}"
    api = await start_api(
        ApiConfig(
            port=0,
            data_dir=tmp_path / "api",
            meta_url=meta_url,
            replication_factor=2,
            cluster_secret=SECRET,
            admin_token_hash=hash_token(ADMIN_TOKEN),
            maintenance=False,
            inventory_pages_per_pass=0,
            gc_grace=1.0,  # copies older than this may be trimmed
        )
    )
    c = InProcessCluster(api, [], tmp_path)
    try:
        for node_id, d in (("node1", "shared"), ("node2", "shared"), ("node3", "own")):
            cfg = NodeConfig(
                node_id=node_id,
                port=0,
                data_dir=tmp_path / d,
                meta_url=meta_url,
                cluster_secret=SECRET,
                heartbeat_interval=0.5,
                heartbeat_timeout=60.0,
            )
            c.nodes.append(await start_node(cfg))
        await api.coordinator.meta.create_tenant("alice", api.coordinator.clock())
        yield c
    finally:
        for n in c.nodes:
            await n.stop()
        await api.stop()


async def test_chunks_on_one_disk_under_two_ids_are_repaired(
    one_disk_twice: InProcessCluster,
) -> None:
    coord = one_disk_twice.api.coordinator
    ids: set[str] = set()
    for i in range(30):
        data = random.Random(i).randbytes(30_000)
        done = await ingest(
            coord, "alice", f"f{i}", _reader(data), ChunkerProfile.default(), 1 << 30
        )
        ids |= {e.chunk_id for e in done.manifest}
    where = await coord.meta.get_locations(sorted(ids))
    one_disk = sorted(c for c in ids if where[c] == {"node1", "node2"})
    assert one_disk  # placement chose node1 + node2 for some: one physical copy each
    disks = {n.node_id: n.disk_id for n in await coord.live_nodes()}
    assert disks["node1"] == disks["node2"] != disks["node3"]

    repair = Repair(coord)
    report = await repair.repair_once()
    assert report is not None
    assert report.shared_disks == {"node2": "node1"}
    assert report.under_replicated == len(one_disk)
    assert report.repaired == len(one_disk)
    for cid in one_disk:  # a second physical copy, on the other disk
        assert "node3" in await really_held(coord, cid)
    again = await repair.repair_once()  # targeted: reads the sharing id's chunks too
    assert again is not None
    assert again.scope == "targeted"
    assert (again.under_replicated, again.trimmed) == (0, 0)


async def test_no_trim_deletes_through_the_id_that_shares_a_disk(
    one_disk_twice: InProcessCluster,
) -> None:
    """A chunk recorded on all three ids looks like one copy too many; deleting node2's
    "copy" would delete node1's, leaving one."""
    coord = one_disk_twice.api.coordinator
    for i in range(30):
        data = random.Random(100 + i).randbytes(30_000)
        done = await ingest(
            coord, "alice", f"g{i}", _reader(data), ChunkerProfile.default(), 1 << 30
        )
        (cid,) = {e.chunk_id for e in done.manifest}
        if await really_held(coord, cid) != {"node1", "node2", "node3"}:
            await copy_to_third(coord, cid, 30_000)
            break
    else:
        raise AssertionError("every body was placed on all three ids")
    for node_id in ("node1", "node3"):  # old enough to trim: only the disk sharing stops it
        await aged(coord, node_id, cid, 1.2)
    report = await Repair(coord).repair_once()
    assert report is not None
    assert report.trimmed == 0
    assert await really_held(coord, cid) == {"node1", "node2", "node3"}
