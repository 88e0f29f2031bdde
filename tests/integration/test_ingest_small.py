"""The API's ingest (``POST /upload``, S3 PutObject) on its small-object path: a body no
longer than the chunker's minimum is one chunk hashed once without the chunker thread, and
finalize takes the copies from the primary's own 201 instead of asking every live node;
around the boundary the chunked path takes over with the bytes already read. Whatever the
path, the stored manifest is what the chunker would make and the file reads back exact."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from typing import Any

import pytest

from dfs import auth
from dfs.api import download_plans
from dfs.api.bodies import ADMIN_TENANT, DEFAULT_TENANT, UploadRequest
from dfs.chunking import ChunkerProfile
from dfs.errors import IncompleteUpload
from dfs.ids import new_file_id
from dfs.meta.base import ManifestEntry
from tests.integration.conftest import SECRET, InProcessCluster
from tests.integration.test_seed_api import req

pytestmark = pytest.mark.integration

MIN = ChunkerProfile.default().min_size


class HasChunksCount:
    """Counts the coordinator's has-chunks calls; each goes on to the real node."""

    def __init__(self, inproc: InProcessCluster, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        nodes = inproc.api.coordinator.nodes
        real = nodes.has_chunks

        async def counted(*args: Any, **kw: Any) -> set[str]:
            self.calls += 1
            return await real(*args, **kw)

        monkeypatch.setattr(nodes, "has_chunks", counted)


async def upload(api: str, data: bytes, name: str) -> dict[str, Any]:
    status, body, _ = await req("POST", f"{api}/upload?filename={name}", data=data)
    assert status == 201, body
    return dict(body)


async def read_back(api: str, file_id: str) -> bytes:
    status, body, _ = await req("GET", f"{api}/download/{file_id}")
    assert status == 200, body
    status, got, _ = await req("GET", body["download_url"], token=None)
    assert status == 200
    return bytes(got)


async def test_small_body_is_one_chunk_committed_without_asking_the_nodes(
    inproc: InProcessCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    api, meta = inproc.api.url, inproc.api.meta
    spy = HasChunksCount(inproc, monkeypatch)
    data = random.Random(1).randbytes(10_000)
    body = await upload(api, data, "small.bin")
    digest = hashlib.sha256(data).hexdigest()
    assert body["sha256"] == digest
    assert await meta.get_manifest(body["file_id"]) == [ManifestEntry(0, len(data), digest)]
    assert spy.calls == 0  # the primary's 201 named both copies
    assert len((await meta.get_locations([digest]))[digest]) == 2  # recorded all the same
    assert await read_back(api, body["file_id"]) == data
    status, again, _ = await req("POST", f"{api}/upload?filename=again", data=data)
    assert status == 409  # the same bytes again: the file already stored
    assert again["file_id"] == body["file_id"]


@pytest.mark.parametrize("size", [1, MIN - 1, MIN, MIN + 1, 3 * MIN + 12345])
async def test_sizes_around_the_minimum_chunk_read_back_exact(
    inproc: InProcessCluster, size: int
) -> None:
    api, meta = inproc.api.url, inproc.api.meta
    data = random.Random(size).randbytes(size)
    body = await upload(api, data, f"s{size}")
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    manifest = await meta.get_manifest(body["file_id"])
    pieces = [data[e.offset : e.offset + e.size] for e in manifest]
    assert b"".join(pieces) == data
    assert [e.chunk_id for e in manifest] == [hashlib.sha256(p).hexdigest() for p in pieces]
    if size <= MIN:
        assert len(manifest) == 1
    rec = await meta.get_file(body["file_id"], ADMIN_TENANT)
    # a download plan of a one-chunk file needs no manifest read: the same manifest
    assert download_plans.single_chunk(rec) == (manifest if len(manifest) == 1 else None)
    assert await read_back(api, body["file_id"]) == data


async def _pending_with_receipt(inproc: InProcessCluster, data: bytes) -> tuple[str, str]:
    """A pending file of one chunk that no node holds, with a valid receipt for it."""
    coord = inproc.api.coordinator
    chunk = hashlib.sha256(data).hexdigest()
    file_id = new_file_id()
    manifest: Sequence[ManifestEntry] = [ManifestEntry(0, len(data), chunk)]
    r = UploadRequest("x", len(data), chunk, str(ChunkerProfile.default()), list(manifest))
    await coord.create_uploads([(file_id, r)], DEFAULT_TENANT)
    return file_id, chunk


async def test_too_few_copies_named_still_asks_the_nodes(inproc: InProcessCluster) -> None:
    coord = inproc.api.coordinator
    file_id, chunk = await _pending_with_receipt(inproc, b"never sent")
    receipts = {chunk: auth.mint_receipt(SECRET, file_id, chunk)}
    with pytest.raises(IncompleteUpload):  # one named copy of 2: the nodes say none
        await coord.finalize_upload(file_id, receipts, copies={chunk: {"node1"}})
    with pytest.raises(IncompleteUpload):
        await coord.finalize_upload(file_id, receipts)
