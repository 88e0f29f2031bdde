"""Finalize records the copies its has-chunks round found in the commit's own write (one
metadata transaction, one fsync per batch): every chunk of a batch of small files is then
recorded on the nodes that hold it, with no separate ``add_locations`` write."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from dfs.chunking import ChunkerProfile
from dfs.client import Client
from dfs.client.local_files import walk
from dfs.meta.base import Location
from tests.integration.conftest import ADMIN_TOKEN, InProcessCluster

pytestmark = pytest.mark.integration


async def test_a_batch_records_its_copies_with_its_commit(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    meta = inproc.api.coordinator.meta
    separate: list[list[Location]] = []
    real_add = meta.add_locations

    async def add_locations(locations: list[Location], now: float) -> None:
        separate.append(list(locations))
        await real_add(locations, now)

    monkeypatch.setattr(meta, "add_locations", add_locations)
    src = tmp_path / "src"
    src.mkdir()
    rng = random.Random(5)
    for i in range(20):
        (src / f"f{i}").write_bytes(rng.randbytes(rng.randrange(1, 5000)))
    async with Client(inproc.api.url, token=ADMIN_TOKEN, file_cache=False) as c:
        results = await c.upload_many(list(walk([src])), profile=ChunkerProfile.fixed(8192))
    assert len(results) == 20
    assert separate == []  # the copies came with the commit, not in a write of their own
    chunk_ids = [r.sha256 for r in results]  # one chunk each: its id is the file's sha256
    holders = await meta.get_locations(chunk_ids)
    assert all(len(holders[c]) == 2 for c in chunk_ids)  # RF 2 of 3 nodes, all recorded
    assert all(holders[c] <= {n.cfg.node_id for n in inproc.nodes} for c in chunk_ids)
