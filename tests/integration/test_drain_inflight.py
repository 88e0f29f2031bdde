"""Uploads in flight when a drain begins: copies on the draining node never count.

A drain says done once the chunks recorded on the node have their copies elsewhere; an
upload that began before it may have placed chunks on the node that no row names yet. Before,
such an upload kept placing new chunks there, and its commit counted those copies: the
operator who removed the node once the drain said done left the file's chunks short of
copies. Now the sender stops placing on a node once it drains, the API copies a chunk whose
only extra copy is on a draining node to a writable one before the commit counts it, and an
upload whose copies left with the node (already gone) is committed only once the API has
copied each chunk from its remaining copy to another writable node (a top-up, as after any
lost copy: ``dfs.api.draining_copies``), never on the copies that left.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

import pytest

from dfs.api import ingest as ingest_module
from dfs.api.coordinator import Coordinator
from dfs.api.ingest import Ingested, ingest
from dfs.api.repair import Repair
from dfs.chunking import ChunkerProfile
from tests.integration.conftest import running_cluster
from tests.integration.test_ingest_grace import stalling_reader
from tests.integration.test_ingest_small import _reader

pytestmark = pytest.mark.integration

MIB = 1 << 20
LIMIT = 1 << 30
CLUSTER: dict[str, Any] = {
    "n": 3,
    "rf": 2,
    "api_cfg": {"maintenance": False, "drain_settle": 0.0},  # the settle: test_drain_settle
    "node_cfg": {"heartbeat_timeout": 30.0},  # the test holds the loop while it drains
}


async def drain_until_done(coord: Coordinator, node_id: str) -> dict[str, Any]:
    """Start draining ``node_id`` and run repair passes until its status says done
    (bounded: a pass moves every chunk it finds, so two are enough)."""
    await coord.drains.set_draining(node_id, True)
    for _ in range(5):
        status = await coord.drains.status(node_id, coord.rf)
        if status["done"]:
            return status
        await Repair(coord).repair_once()
    raise AssertionError(f"drain of {node_id} never done: {status}")


async def real_copies(coord: Coordinator, ingested: Ingested, but: str) -> dict[str, set[str]]:
    """Each chunk of the file: the nodes other than ``but`` that really hold it."""
    ids = {e.chunk_id: e.size for e in ingested.manifest}
    live = [n for n in await coord.live_nodes() if n.node_id != but]
    return await coord.holders(ids, live)


async def test_an_ingest_stalled_while_a_node_drains_leaves_nothing_only_there(
    tmp_path: Path,
) -> None:
    async with running_cluster(tmp_path, **CLUSTER) as c:
        coord = c.api.coordinator
        await coord.meta.create_tenant("alice", coord.clock())
        data = random.Random(8).randbytes(16 * MIB)
        statuses: list[dict[str, Any]] = []

        async def drain_meanwhile() -> None:
            statuses.append(await drain_until_done(coord, "node1"))

        read = stalling_reader(data, 6 * MIB, drain_meanwhile)
        done = await ingest(coord, "alice", "big", read, ChunkerProfile.default(), LIMIT)
        assert statuses  # the drain ran, and said done, while the body streamed
        assert done.created
        where = await coord.meta.get_locations([e.chunk_id for e in done.manifest])
        after = [e.chunk_id for e in done.manifest if e.offset >= 6 * MIB]
        assert after
        assert all("node1" not in where[c] for c in after)  # nothing new on a draining node
        held = await real_copies(coord, done, but="node1")
        assert all(len(nodes) >= coord.rf for nodes in held.values()), held
        assert (await coord.drains.status("node1", coord.rf))["done"]


async def test_an_ingest_whose_copies_left_with_a_drained_node_is_topped_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The operator removes the node once the drain says done, before the ingest commits:
    the copies it was acknowledged there are gone, so nothing is committed on them; the
    commit copies each such chunk from its other copy first."""
    async with running_cluster(tmp_path, **CLUSTER) as c:
        coord = c.api.coordinator
        await coord.meta.create_tenant("alice", coord.clock())
        data = random.Random(9).randbytes(8 * MIB)
        commit = ingest_module.commit_ingested
        drained = c.nodes.pop(0)

        async def drain_remove_then_commit(*args: Any, **kwargs: Any) -> Ingested:
            await drain_until_done(coord, "node1")
            await drained.stop()  # done: the operator stops and removes node1
            return await commit(*args, **kwargs)

        monkeypatch.setattr(ingest_module, "commit_ingested", drain_remove_then_commit)
        done = await ingest(coord, "alice", "b", _reader(data), ChunkerProfile.default(), LIMIT)
        assert done.created
        assert await coord.find_by_sha256("alice", hashlib.sha256(data).hexdigest()) is not None
        held = await real_copies(coord, done, but="node1")
        assert all(len(nodes) >= coord.rf for nodes in held.values()), held
