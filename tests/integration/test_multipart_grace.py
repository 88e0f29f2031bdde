"""A multipart object's part-edge chunks spliced and sent ahead as its parts arrive
(``dfs.api.multipart_ahead``) have no chunk row and no pending file until Complete: the
orphan sweep deletes them once they are older than GC's grace. Once the first was sent more
than 0.9 x DFS_GC_GRACE ago, that state is not used: nothing more is sent ahead, and Complete
reads the edges back from the parts and sends them again (``multipart_assemble.assemble``),
so the object reads back byte for byte. A quick upload still commits what was spliced ahead
without reading the edges back."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

import pytest

from dfs.api import multipart_assemble
from dfs.api.ingest import Ingested
from dfs.api.multipart import Multipart
from dfs.meta.multipart import MultipartUpload, UploadPart
from tests.integration.conftest import InProcessCluster, running_cluster
from tests.integration.test_ingest_grace import (
    GRACE,
    PATIENT_NODES,
    TINY_GRACE,
    read_file,
    sweep_orphans,
)
from tests.integration.test_ingest_small import _reader

pytestmark = pytest.mark.integration

MIB = 1 << 20


async def put_part(mp: Multipart, u: MultipartUpload, number: int, data: bytes) -> UploadPart:
    """UploadPart as the gateway runs it: ingested through the hashing tap, recorded, then
    hashed and spliced ahead (the new edge chunks sent)."""
    tap = mp.chains.tap(u.upload_id, number)
    try:
        file_id, size, chunks = await mp.ingest_part(u, number, tap.reading(_reader(data)))
        part = UploadPart(number, file_id, size, "0" * 32, time.time())
        await mp.record_part(u, part)
        await mp.hashed(u, tap, (file_id, size, chunks))
    finally:
        tap.release()
    return part


class AssembleCalls:
    """Counts Complete's fallback: the object assembled from its parts, edges read back."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        real = multipart_assemble.assemble

        async def counted(*args: Any, **kw: Any) -> Ingested:
            self.calls += 1
            return await real(*args, **kw)

        monkeypatch.setattr(multipart_assemble, "assemble", counted)


@pytest.mark.parametrize("late", ["last-part", "complete"])
async def test_edge_chunks_sent_ahead_past_the_grace_are_sent_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, late: str
) -> None:
    """``late``: the client is slow with its last part (the splice ahead stops sending), or
    with its Complete (Complete does not take what was sent ahead)."""
    async with running_cluster(
        tmp_path, n=2, rf=2, api_cfg=TINY_GRACE, node_cfg=PATIENT_NODES
    ) as c:
        coord = c.api.coordinator
        await coord.meta.create_tenant("alice", coord.clock())
        mp = Multipart(coord)
        fallback = AssembleCalls(monkeypatch)
        u = await mp.create("alice", "bkt", "obj")
        data = random.Random(9).randbytes(11 * MIB)
        await put_part(mp, u, 1, data[: 5 * MIB])
        await put_part(mp, u, 2, data[5 * MIB : 10 * MIB])
        if late == "complete":
            await put_part(mp, u, 3, data[10 * MIB :])
        await asyncio.sleep(GRACE + 0.5)  # the edge chunks sent ahead age past the grace
        assert (await sweep_orphans(coord)).orphans_deleted > 0
        if late == "last-part":
            await put_part(mp, u, 3, data[10 * MIB :])
        made = await mp.assemble(u, await mp.begin_complete(u))
        assert made.created
        assert await read_file(coord, str(made.body["file_id"]), "alice") == data
        assert fallback.calls == 1  # the edges read back from the parts and sent again


async def test_a_quick_multipart_upload_commits_its_splice_ahead(
    inproc: InProcessCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    coord = inproc.api.coordinator
    await coord.meta.create_tenant("alice", coord.clock())
    mp = Multipart(coord)
    fallback = AssembleCalls(monkeypatch)
    u = await mp.create("alice", "bkt", "obj")
    data = random.Random(10).randbytes(11 * MIB)
    for number, (start, end) in enumerate([(0, 5), (5, 10), (10, 11)], 1):
        await put_part(mp, u, number, data[start * MIB : end * MIB])
    made = await mp.assemble(u, await mp.begin_complete(u))
    assert made.created
    assert fallback.calls == 0  # the edges were not read back
    assert await read_file(coord, str(made.body["file_id"]), "alice") == data
