"""An ingest (``POST /upload``, S3 PutObject and UploadPart, the multipart re-chunk) whose
body streams longer than GC's grace: the chunks it sent first have no chunk row and no
pending file until the commit, so the orphan sweep deletes them once they are older than
the grace. The commit is refused (``RequestTimeout``) past 0.9 x DFS_GC_GRACE from the first
chunk sent, as finalize refuses a client's upload that old: never answered complete on the
copies the nodes acknowledged back then, nothing written, and the body sent again is stored.
A quick upload is untouched. The grace is 2 s here: the nodes age their copies by the wall
clock, so the tests wait it out for real."""

from __future__ import annotations

import asyncio
import hashlib
import io
import random
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from dfs import ids
from dfs.api import download_plans
from dfs.api import ingest as ingest_module
from dfs.api.coordinator import Coordinator
from dfs.api.file_stream import verified_bytes
from dfs.api.gc import GarbageCollector, GcReport
from dfs.api.ingest import ingest
from dfs.chunking import ChunkerProfile
from dfs.errors import FileNotFound, RequestTimeout
from tests.integration.conftest import InProcessCluster, running_cluster
from tests.integration.test_ingest_small import _reader

pytestmark = pytest.mark.integration

MIB = 1 << 20
LIMIT = 1 << 30
GRACE = 2.0
TINY_GRACE = {"maintenance": False, "gc_grace": GRACE, "orphan_interval": 0.01}
"""GC driven by the test (``gc_once``), the orphan sweep at every pass but the first."""
PATIENT_NODES = {"heartbeat_timeout": 30.0}
"""The test holds the event loop at times: the nodes stay live meanwhile."""


async def sweep_orphans(coord: Coordinator) -> GcReport:
    """Garbage collection with its orphan sweep of every live node, as it runs every
    DFS_ORPHAN_INTERVAL (the first pass of a collector only starts that interval)."""
    gc = GarbageCollector(coord)
    await gc.gc_once()
    # the second pass sweeps once DFS_ORPHAN_INTERVAL (0.01 s) has passed since the first:
    # a wait the interval defines (five times it), not one hoped to be long enough
    await asyncio.sleep(5 * TINY_GRACE["orphan_interval"])
    report = await gc.gc_once()
    assert report is not None
    return report


async def read_file(coord: Coordinator, file_id: str, tenant: str) -> bytes:
    """The complete file's bytes, each chunk verified (ChunkNotFound for a lost chunk)."""
    rec = await coord.get_complete_file(file_id, tenant)
    got = bytearray()
    async for piece in verified_bytes(coord, await download_plans.plan_of(coord, rec), None):
        got += piece
    return bytes(got)


def stalling_reader(
    data: bytes, at: int, meanwhile: Callable[[], Coroutine[Any, Any, None]]
) -> Callable[[int], Coroutine[Any, Any, bytes]]:
    """``read(n)`` over ``data`` that, once ``at`` bytes are read, runs ``meanwhile`` (a
    slow client's pause) before handing out the rest."""
    state = {"pos": 0, "stalled": False}

    async def read(n: int) -> bytes:
        if state["pos"] >= at and not state["stalled"]:
            state["stalled"] = True
            await meanwhile()
        out = data[state["pos"] : state["pos"] + n]
        state["pos"] += len(out)
        return out

    return read


def chunk_ids(data: bytes) -> set[str]:
    return {c.chunk_id for c in ChunkerProfile.default().split(io.BytesIO(data))}


@pytest.mark.parametrize("owned_tail", [False, True], ids=["sent-here", "finalized"])
async def test_a_body_streaming_past_the_grace_is_refused_not_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, owned_tail: bool
) -> None:
    """``owned_tail``: the tenant holds the body's last chunks already, so not every chunk
    comes with a receipt and the file goes through ``create_uploads`` and finalize (with the
    copies the 201s named) instead of the one-write commit."""
    async with running_cluster(
        tmp_path, n=2, rf=2, api_cfg=TINY_GRACE, node_cfg=PATIENT_NODES
    ) as c:
        coord, meta = c.api.coordinator, c.api.meta
        await coord.meta.create_tenant("alice", coord.clock())
        data = random.Random(3).randbytes(12 * MIB)
        profile = ChunkerProfile.default()
        if owned_tail:
            tail = await ingest(coord, "alice", "tail", _reader(data[6 * MIB :]), profile, LIMIT)
            assert chunk_ids(data) & {e.chunk_id for e in tail.manifest}
        made: list[str] = []

        def recorded_id() -> str:
            made.append(ids.new_file_id())
            return made[-1]

        monkeypatch.setattr(ingest_module, "new_file_id", recorded_id)
        swept: list[GcReport] = []

        async def client_pauses() -> None:
            await asyncio.sleep(GRACE + 0.5)  # the chunks sent so far age past the grace
            swept.append(await sweep_orphans(coord))

        read = stalling_reader(data, 8 * MIB, client_pauses)
        with pytest.raises(RequestTimeout, match="GC_GRACE"):
            await ingest(coord, "alice", "slow.bin", read, profile, LIMIT)
        assert swept
        assert swept[0].orphans_deleted > 0  # the early chunks were really gone
        with pytest.raises(FileNotFound):
            await meta.get_file(made[-1])  # nothing half-written: no file, pending or not
        assert await meta.stale_pending_files(1e12, limit=10) == []
        assert await coord.find_by_sha256("alice", hashlib.sha256(data).hexdigest()) is None
        # sent again (quickly): stored, and every chunk is there
        again = await ingest(coord, "alice", "slow.bin", _reader(data), profile, LIMIT)
        assert again.created
        assert await read_file(coord, str(again.body["file_id"]), "alice") == data


@pytest.mark.parametrize("owned_tail", [False, True], ids=["sent-here", "finalized"])
async def test_a_quick_upload_is_stored_as_before(
    inproc: InProcessCluster, owned_tail: bool
) -> None:
    coord = inproc.api.coordinator
    await coord.meta.create_tenant("alice", coord.clock())
    data = random.Random(4).randbytes(12 * MIB)
    profile = ChunkerProfile.default()
    if owned_tail:
        await ingest(coord, "alice", "tail", _reader(data[6 * MIB :]), profile, LIMIT)
    done = await ingest(coord, "alice", "quick.bin", _reader(data), profile, LIMIT)
    assert done.created
    assert (done.record is None) == owned_tail  # one write only when it sent every chunk
    assert await read_file(coord, str(done.body["file_id"]), "alice") == data
    small = random.Random(5).randbytes(10_000)  # one chunk, no chunker thread
    one = await ingest(coord, "alice", "small.bin", _reader(small), profile, LIMIT)
    assert await read_file(coord, str(one.body["file_id"]), "alice") == small


async def test_gc_keeps_the_copies_an_ingest_resent_of_a_chunk_it_collects(
    tmp_path: Path,
) -> None:
    """A file deleted about a grace ago is sent again through the API (``POST /upload``, an
    S3 PUT): the ingest re-sends chunks whose rows are unreferenced and about to pass the
    grace, and has no pending file for GC to see until it commits. A GC pass in between
    collects those rows, but must leave the copies the ingest was acknowledged (written
    within 0.9 x the grace): the ingest then commits on them and every byte is there.
    Before, GC deleted every copy re-sent more than DELETE_MARGIN (2 s) before its pass, and
    the ingest was answered complete over chunks no node held."""
    grace = 5.0  # the ingest must still commit (within 0.9 x grace) after copies age past 2 s
    cfg = {**TINY_GRACE, "gc_grace": grace}
    async with running_cluster(tmp_path, n=2, rf=2, api_cfg=cfg, node_cfg=PATIENT_NODES) as c:
        coord = c.api.coordinator
        await coord.meta.create_tenant("alice", coord.clock())
        profile = ChunkerProfile.default()
        body = random.Random(5).randbytes(8 * MIB)
        first = await ingest(coord, "alice", "v1", _reader(body), profile, LIMIT)
        await coord.delete_file(str(first.body["file_id"]), "alice")
        # the rows pass the grace while the second ingest streams: it starts 3.5 s before
        await asyncio.sleep(grace - 3.0)
        reports: list[GcReport | None] = []

        async def gc_meanwhile() -> None:
            # the rows are past the grace, the copies re-sent more than DELETE_MARGIN ago
            await asyncio.sleep(3.5)
            reports.append(await GarbageCollector(coord).gc_once())

        again = body + random.Random(6).randbytes(4 * MIB)
        read = stalling_reader(again, 10 * MIB, gc_meanwhile)
        second = await ingest(coord, "alice", "v1-again", read, profile, LIMIT)
        (report,) = reports
        assert report is not None
        assert report.collected > 0  # the scenario happened: GC took the rows mid-ingest
        assert second.created
        assert await read_file(coord, str(second.body["file_id"]), "alice") == again
