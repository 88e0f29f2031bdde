"""Repair's trim never deletes a copy an upload may still commit on.

An upload (``POST /upload``, S3 PUTs, ``dfs.api.ingest``) records the copies the nodes
acknowledged without asking them again, within the commit window (0.9 x DFS_GC_GRACE of its
start). A trim that deleted such a copy in between left the upload recording a copy that is
not there (a phantom): repair then counted it, and a committed chunk could sit on one real
copy with repair satisfied. The trim's delete now carries ``min_age`` = DFS_GC_GRACE (the
node keeps a copy written or re-sent more recently) and a copy kept is recorded again.

Zones make the race common: placement puts one copy in each zone, the trim drops the
lowest-ranked holder whatever its zone, so an upload's copy is often the trim's victim. The
repair pass runs at the exact step (inside the upload's commit), never by timing.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from dfs import auth
from dfs import durability_policy as policy
from dfs.api import ingest as ingest_mod
from dfs.api.app import start_api
from dfs.api.coordinator import Coordinator
from dfs.api.ingest import ingest
from dfs.api.repair import Repair
from dfs.auth import hash_token
from dfs.chunking import ChunkerProfile
from dfs.config import ApiConfig, NodeConfig
from dfs.node.app import start_node
from tests.integration.conftest import ADMIN_TOKEN, SECRET, InProcessCluster
from tests.integration.test_ingest_small import _reader
from tests.integration.test_phantom_locations import copy_to_third, live, really_held, recorded

pytestmark = pytest.mark.integration

SIZE = 30_000
DEADLINE = 30.0


@pytest.fixture
def api_cfg() -> dict[str, Any]:
    return {}


@pytest.fixture
async def zoned(tmp_path: Path, api_cfg: dict[str, Any]) -> AsyncIterator[InProcessCluster]:
    """node1 and node2 in zone a, node3 alone in zone b; factor 2; the test drives repair."""
    meta_url = f"sqlite://{tmp_path / 'meta.db'}"
    cfg = {"maintenance": False, "inventory_pages_per_pass": 0, "repair_grace": 0.0, **api_cfg}
    api = await start_api(
        ApiConfig(
            port=0,
            data_dir=tmp_path / "api",
            meta_url=meta_url,
            replication_factor=2,
            cluster_secret=SECRET,
            admin_token_hash=hash_token(ADMIN_TOKEN),
            **cfg,
        )
    )
    c = InProcessCluster(api, [], tmp_path)
    try:
        for i, zone in ((1, "a"), (2, "a"), (3, "b")):
            node_cfg = NodeConfig(
                node_id=f"node{i}",
                port=0,
                data_dir=tmp_path / f"node{i}",
                meta_url=meta_url,
                cluster_secret=SECRET,
                zone=zone,
                heartbeat_interval=0.5,
                heartbeat_timeout=120.0,
            )
            c.nodes.append(await start_node(node_cfg))
        for tenant in ("alice", "bob"):
            await api.coordinator.meta.create_tenant(tenant, api.coordinator.clock())
        yield c
    finally:
        for n in c.nodes:
            await n.stop()
        await api.stop()


async def body_trimmed_on_node3(coord: Coordinator) -> tuple[bytes, str]:
    """A one-chunk body whose lowest-ranked node (the trim's victim among all three) is
    node3, the only zone-b node: placement always puts one of its copies there."""
    nodes = list((await live(coord)).values())
    for seed in range(200):
        data = random.Random(seed).randbytes(SIZE)
        cid = hashlib.sha256(data).hexdigest()
        (victim,) = policy.trim_victims(cid, nodes, 2)
        if victim.node_id == "node3":
            return data, cid
    raise AssertionError("no body found whose trim victim is node3")


async def surplus_on_node3(coord: Coordinator) -> tuple[bytes, str]:
    """alice's file: 2 copies (one on node3), then a third (a node repaired around came
    back): one surplus copy, node3's the one to trim."""
    data, cid = await body_trimmed_on_node3(coord)
    await ingest(coord, "alice", "a.bin", _reader(data), ChunkerProfile.default(), 1 << 30)
    assert "node3" in await recorded(coord, cid)
    await copy_to_third(coord, cid, SIZE)
    assert (
        await recorded(coord, cid) == await really_held(coord, cid) == {"node1", "node2", "node3"}
    )
    return data, cid


async def upload_with_repair_in_commit(
    coord: Coordinator, monkeypatch: pytest.MonkeyPatch, data: bytes
) -> list[int]:
    """bob uploads the same bytes (the nodes store and acknowledge them again); a repair
    pass of another process runs after the acknowledgements, before bob's commit. Returns
    what that pass trimmed."""
    commit = ingest_mod.commit_ingested
    trimmed: list[int] = []

    async def repair_then_commit(*args: Any, **kw: Any) -> Any:
        report = await Repair(coord, owner="api-other").repair_once()
        assert report is not None
        trimmed.append(report.trimmed)
        return await commit(*args, **kw)

    monkeypatch.setattr(ingest_mod, "commit_ingested", repair_then_commit)
    await ingest(coord, "bob", "b.bin", _reader(data), ChunkerProfile.default(), 1 << 30)
    monkeypatch.setattr(ingest_mod, "commit_ingested", commit)
    return trimmed


async def test_a_trim_keeps_the_copy_an_upload_in_flight_was_acknowledged_for(
    zoned: InProcessCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    coord = zoned.api.coordinator
    data, cid = await surplus_on_node3(coord)
    assert await upload_with_repair_in_commit(coord, monkeypatch, data) == [0]
    # bob committed on node3's acknowledgement: the copy is there, and recorded
    real = await really_held(coord, cid)
    assert real == {"node1", "node2", "node3"}
    assert await recorded(coord, cid) == real
    # a zone-a holder goes for good: repair counts real copies only, and finds 2
    gone = next(n for n in zoned.nodes if n.cfg.node_id == "node2")
    await gone.stop()
    zoned.nodes.remove(gone)
    await coord.meta.deregister_node("node2", coord.clock() - 1)
    report = await Repair(coord, owner="api-other").repair_once()
    assert report is not None
    assert len(await really_held(coord, cid)) >= 2
    assert await recorded(coord, cid) - {"node2"} == await really_held(coord, cid)


async def aged(coord: Coordinator, node_id: str, cid: str, age: float) -> None:
    """Wait until ``node_id``'s copy of ``cid`` is ``age`` seconds old by the node's own
    clock (what its delete's ``min_age`` compares with)."""
    node = (await live(coord))[node_id]
    cap = coord.cap(auth.OP_LIST, auth.ANY_CHUNK, node_id)
    deadline = time.monotonic() + DEADLINE
    while True:
        page, _ = await coord.nodes.list_chunks(node.url, cap=cap, after="", limit=1000)
        if dict(page).get(cid, 0.0) >= age:
            return
        assert time.monotonic() < deadline, f"{node_id}'s copy of {cid[:12]} never aged"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("api_cfg", [{"gc_grace": 1.0}])
async def test_a_copy_re_sent_within_the_grace_stays_and_goes_once_older(
    zoned: InProcessCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    coord = zoned.api.coordinator
    data, cid = await surplus_on_node3(coord)
    await aged(coord, "node3", cid, 1.2)
    # node3's copy is past the grace, but bob's upload re-sends it: the trim must keep it
    # (it trims an older copy instead, or none), and what is recorded is what is held
    trimmed = await upload_with_repair_in_commit(coord, monkeypatch, data)
    held = await really_held(coord, cid)
    assert "node3" in held
    assert await recorded(coord, cid) == held
    assert len(held) == 3 - sum(trimmed) >= coord.rf
    # once past the grace (nothing in flight can commit on them), any surplus goes
    for node_id in held:
        await aged(coord, node_id, cid, 1.2)
    report = await Repair(coord, owner="api-other").repair_once()
    assert report is not None
    assert report.trimmed == len(held) - coord.rf
    assert await recorded(coord, cid) == await really_held(coord, cid)
    assert len(await really_held(coord, cid)) == coord.rf
