"""Chunks read while a restore still lists its files (``dfs.client.early_reads``, issue 19):
verified, bounded by their budget, and used by the download instead of reading them again."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from dfs.client import Client
from dfs.client.local_files import LocalFile
from dfs.client.plans import EarlyPlans
from tests.integration.conftest import ADMIN_TOKEN, InProcessCluster

pytestmark = pytest.mark.integration


def _files(src: Path) -> dict[str, bytes]:
    src.mkdir()
    content = {f"f{i}": bytes([i]) * (1000 * (i + 1)) for i in range(4)}
    for name, data in content.items():
        (src / name).write_bytes(data)
    return content


async def test_early_chunks_are_verified_bounded_and_used(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    content = _files(tmp_path / "src")
    local = [LocalFile(tmp_path / "src" / n, n, len(d)) for n, d in content.items()]
    async with Client(inproc.api.url, token=ADMIN_TOKEN, resume=False) as cl:
        ups = await cl.upload_many(local)
        ids = [u.file_id for u in ups]
        # a budget of the first two files: the third does not fit, nothing after it is read
        budget = len(content["f0"]) + len(content["f1"])
        few = cl.early_chunks(budget)
        early = EarlyPlans(cl.api, True, 4, few)
        early.start(ids)
        plans = await early.take()
        got = await few.take()
        assert sum(map(len, got.values())) <= budget
        assert set(got) == {str(c["sha256"]) for i in ids[:2] for c in plans[i]["chunks"]}
        assert all(hashlib.sha256(data).hexdigest() == cid for cid, data in got.items())

        every = cl.early_chunks()
        early = EarlyPlans(cl.api, True, 4, every)
        early.start(ids)
        plans = await early.take()
        chunks = await every.take()
        assert set(chunks) == {str(c["sha256"]) for p in plans.values() for c in p["chunks"]}
        for node in inproc.nodes:  # the download can only use the bytes read before
            await node.stop()
        inproc.nodes = []
        out = tmp_path / "out"
        todo = [(u.file_id, out / u.name) for u in ups]
        results = await cl.download_many(todo, plans=plans, chunks=chunks)
        assert sorted(r.name for r in results) == sorted(content)
        for name, data in content.items():
            assert (out / name).read_bytes() == data
        assert chunks == {}  # each taken by the file that needed it


async def test_cancelled_early_reads_keep_nothing(inproc: InProcessCluster, tmp_path: Path) -> None:
    content = _files(tmp_path / "src")
    local = [LocalFile(tmp_path / "src" / n, n, len(d)) for n, d in content.items()]
    async with Client(inproc.api.url, token=ADMIN_TOKEN, resume=False) as cl:
        ids = [u.file_id for u in await cl.upload_many(local)]
        chunks = cl.early_chunks()
        early = EarlyPlans(cl.api, True, 2, chunks)
        early.start(ids)
        await early.cancel()
        assert await early.take() == {}
        assert await chunks.take() == {}
