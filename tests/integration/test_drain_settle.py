"""A drain says done only once commits that counted copies before it began have landed.

Each API process caches the set of draining nodes for ``CACHE_SECONDS``. A commit in another
process could count its copies on a node against a set read just before that node's drain
began, and write after a status pass had read the node's chunks: had that pass answered
``done``, the operator's removal of the node would have taken a copy the commit counted. Now
every commit checks the set again just before its write (``DrainSet.relied_on``: a node it
counted a copy on that began draining since has it count again without that node), and
``done`` waits ``settle`` seconds from the drain's start. The start times travel in the
lease beside the ids, in a form an older API process still reads.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from dfs.api import drain as drain_module
from dfs.api import ingest as ingest_module
from dfs.api import paged_uploads
from dfs.api.drain import DRAIN_LEASE, DrainSet
from dfs.api.ingest import ingest
from dfs.chunking import ChunkerProfile
from dfs.client import Client
from dfs.client.paged_upload import StreamingUploadPipeline
from dfs.meta import open_metadata_store
from tests.integration.conftest import ADMIN_TOKEN, running_cluster
from tests.integration.test_ingest_small import _reader

pytestmark = pytest.mark.integration

MIB = 1 << 20


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_a_drain_is_done_only_once_it_settled(tmp_path: Path) -> None:
    meta = await open_metadata_store(f"sqlite://{tmp_path / 'meta.db'}")
    try:
        clock = Clock(1000.0)
        drains = DrainSet(meta, clock, settle=60.0)
        await drains.set_draining("node1", True)
        clock.now = 1030.0
        status = await drains.status("node1", 2)
        assert (status["short"], status["done"], status["settles_at"]) == (0, False, 1060.0)
        await drains.set_draining("node1", True)  # started again: the start time stays
        clock.now = 1060.0
        status = await drains.status("node1", 2)
        assert (status["done"], status["settles_at"]) == (True, 1060.0)
        await drains.set_draining("node1", False)
        assert (await drains.status("node1", 2))["settles_at"] is None
        await drains.set_draining("node1", True)  # a new drain settles anew
        status = await drains.status("node1", 2)
        assert (status["done"], status["settles_at"]) == (False, 1120.0)
    finally:
        await meta.close()


async def test_start_times_in_a_lease_older_api_processes_still_read(tmp_path: Path) -> None:
    meta = await open_metadata_store(f"sqlite://{tmp_path / 'meta.db'}")
    try:
        # a set an older API process wrote: the ids alone; a drain of unknown start settles
        # from when it is first seen, written back
        assert await meta.acquire_lease(DRAIN_LEASE, "drain-old", 0.0, 3600.0, '["node1"]')
        clock = Clock(5000.0)
        drains = DrainSet(meta, clock, settle=60.0)
        status = await drains.status("node1", 2)
        assert (status["done"], status["settles_at"]) == (False, 5060.0)
        await drains.set_draining("node2", True)
        lease = await meta.get_lease(DRAIN_LEASE)
        assert lease is not None
        raw = json.loads(lease.info)
        # what an older process reads: every string an id; the object's text names no node
        assert {str(n) for n in raw} >= {"node1", "node2"}
        assert raw[-1] == {"since": {"node1": 5000.0, "node2": 5000.0}}
        # that older process writing its set back (the object as a string) loses no drain
        old = json.dumps(sorted(str(n) for n in raw))
        assert await meta.acquire_lease(DRAIN_LEASE, "drain-old2", lease.expires_at, 3600.0, old)
        again = DrainSet(meta, Clock(5001.0), settle=60.0)
        assert await again.ids() == frozenset({"node1", "node2"})
        # their start times are lost: both settle anew from now, never at once
        assert (await again.status("node2", 2))["settles_at"] == 5061.0
        assert (await again.status("node1", 2))["settles_at"] == 5061.0
    finally:
        await meta.close()


async def test_a_commit_checks_the_set_again_once_its_cache_is_old(tmp_path: Path) -> None:
    meta = await open_metadata_store(f"sqlite://{tmp_path / 'meta.db'}")
    try:
        clock = Clock(1000.0)
        here, admin = DrainSet(meta, clock), DrainSet(meta, clock)
        counted_against = await here.ids()
        await admin.set_draining("node1", True)  # another API process, a moment later
        # cached: the settle covers this write
        assert not await here.relied_on(counted_against, ["node1", "node2"])
        clock.now += drain_module.CACHE_SECONDS
        assert await here.relied_on(counted_against, ["node1", "node2"])
        assert await here.relied_on(counted_against, {"c1": {"node2"}, "c2": {"node1"}})
        assert not await here.relied_on(counted_against, ["node2"])  # not one it counted
        assert not await here.relied_on(await here.ids(), ["node1"])  # counted again
    finally:
        await meta.close()


async def test_an_ingest_whose_node_began_draining_before_its_write_counts_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The drain begins (through another API process) after the ingest counted its copies
    and before its one-write commit: that commit is not made on them; the general path
    counts the copies again without the draining node (moving a chunk off it first)."""
    cfg: dict[str, Any] = {"maintenance": False, "drain_settle": 0.0}
    async with running_cluster(tmp_path, n=3, rf=2, api_cfg=cfg) as c:
        coord = c.api.coordinator
        await coord.meta.create_tenant("alice", coord.clock())
        monkeypatch.setattr(drain_module, "CACHE_SECONDS", 0.0)  # every read a fresh one
        other_process = DrainSet(coord.meta, coord.clock)
        sent_here, ids = ingest_module._sent_here, coord.drains.ids
        counted: list[bool] = []

        def counting(*args: Any) -> bool:
            counted.append(True)  # its copies counted: the drain begins right after
            return sent_here(*args)

        async def drain_begins_meanwhile() -> frozenset[str]:
            if counted and not await other_process.ids():
                await other_process.set_draining("node1", True)
            return await ids()

        monkeypatch.setattr(ingest_module, "_sent_here", counting)
        monkeypatch.setattr(coord.drains, "ids", drain_begins_meanwhile)
        data = random.Random(4).randbytes(3 * MIB)
        profile = ChunkerProfile.default()
        done = await ingest(coord, "alice", "f", _reader(data), profile, 1 << 30)
        assert await coord.drains.ids() == frozenset({"node1"})
        assert done.created
        where = await coord.meta.get_locations([e.chunk_id for e in done.manifest])
        assert all(len(nodes - {"node1"}) >= coord.rf for nodes in where.values()), where


async def test_a_paged_upload_proven_before_a_drain_is_counted_again_at_its_finish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A paged upload's pages are proven with copies on a node; the node begins draining
    before ``finish``. Its chunks are referenced by no complete file yet, so the drain's
    status counts none of them and says done at once; the finish then counts the copies
    again without the draining node, topping up each chunk short of them."""
    cfg: dict[str, Any] = {"maintenance": False, "drain_settle": 0.0}
    async with running_cluster(tmp_path, n=3, rf=2, api_cfg=cfg) as c:
        coord = c.api.coordinator
        finish = paged_uploads.finish
        statuses: list[dict[str, Any]] = []

        async def drained_before(*args: Any, **kwargs: Any) -> dict[str, Any]:
            await coord.drains.set_draining("node1", True)
            statuses.append(await coord.drains.status("node1", coord.rf))
            return await finish(*args, **kwargs)

        monkeypatch.setattr(paged_uploads, "finish", drained_before)
        monkeypatch.setattr(StreamingUploadPipeline, "paged_bytes", 1000)  # page by page
        src = tmp_path / "big.bin"
        src.write_bytes(random.Random(5).randbytes(3 * MIB))
        async with Client(c.api.url, token=ADMIN_TOKEN) as cl:
            up = await cl.upload(src)
        assert statuses[0]["done"]  # the pending file's chunks were not counted
        ids = {e.chunk_id: e.size for e in await coord.meta.get_manifest(up.file_id)}
        others = [n for n in await coord.live_nodes() if n.node_id != "node1"]
        held = await coord.holders(ids, others)
        assert all(len(nodes) >= coord.rf for nodes in held.values()), held
