"""The API's ingest (``POST /upload``, S3 PutObject) on its small-object path: a body no
longer than the chunker's minimum is one chunk hashed once without the chunker thread, and
finalize takes the copies from the primary's own 201 instead of asking every live node;
around the boundary the chunked path takes over with the bytes already read. Whatever the
path, the stored manifest is what the chunker would make and the file reads back exact. A
file whose every chunk ingest sent itself is recorded complete in one metadata write, under
finalize's rules (receipts, copies, a concurrent identical upload), and linked without
reading it back."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import pytest

from dfs import auth
from dfs.api import download_plans
from dfs.api.bodies import ADMIN_TENANT, DEFAULT_TENANT, Principal, UploadRequest
from dfs.api.ingest import ChunkSender, commit_ingested, ingest
from dfs.api.namespace_bodies import ObjectFields
from dfs.api.namespace_service import Namespace, namespace_store
from dfs.chunking import ChunkerProfile
from dfs.errors import DfsError, FileNotFound, IncompleteUpload
from dfs.ids import new_file_id
from dfs.meta.base import FileRecord, ManifestEntry
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


class MetaWrites:
    """Counts the coordinator's metadata writes of a file; each goes on to the real store."""

    NAMES = ("create_files", "commit_files", "add_locations", "create_and_commit_files")

    def __init__(self, inproc: InProcessCluster, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[str] = []
        meta = inproc.api.coordinator.meta
        for name in self.NAMES:
            monkeypatch.setattr(meta, name, self._counted(name, getattr(meta, name)))

    def _counted(self, name: str, real: Any) -> Any:
        async def counted(*args: Any, **kw: Any) -> Any:
            self.calls.append(name)
            return await real(*args, **kw)

        return counted


async def test_sent_body_is_recorded_complete_in_one_write(
    inproc: InProcessCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    api, meta = inproc.api.url, inproc.api.meta
    writes = MetaWrites(inproc, monkeypatch)
    data = random.Random(2).randbytes(12_345)
    body = await upload(api, data, "one-write.bin")
    assert writes.calls == ["create_and_commit_files"]  # its copies recorded with it
    digest = hashlib.sha256(data).hexdigest()
    assert len((await meta.get_locations([digest]))[digest]) == 2
    assert (await meta.get_chunks([digest]))[digest].refcount == 1
    assert await meta.stale_pending_files(1e12, limit=10) == []  # never pending
    assert await read_back(api, body["file_id"]) == data


async def _sent(inproc: InProcessCluster, data: bytes) -> tuple[ChunkSender, UploadRequest]:
    coord = inproc.api.coordinator
    sender = ChunkSender(coord, ADMIN_TENANT, new_file_id(), await coord.writable_nodes())
    digest = hashlib.sha256(data).hexdigest()
    await sender.send(digest, data)
    await sender.drain()
    manifest = [ManifestEntry(0, len(data), digest)]
    profile = str(ChunkerProfile.default())
    return sender, UploadRequest("x", len(data), digest, profile, manifest, sha256_verified=True)


async def test_concurrent_identical_upload_is_not_duplicated(inproc: InProcessCluster) -> None:
    coord, meta = inproc.api.coordinator, inproc.api.meta
    data = random.Random(3).randbytes(9_000)
    first, r = await _sent(inproc, data)
    second, _ = await _sent(inproc, data)  # sent before the first committed: both fresh
    a = await commit_ingested(
        coord, ADMIN_TENANT, first.file_id, r, first.receipts, copies=first.copies, fresh=True
    )
    b = await commit_ingested(
        coord, ADMIN_TENANT, second.file_id, r, second.receipts, copies=second.copies, fresh=True
    )
    assert a.created
    assert not b.created
    assert b.body["file_id"] == first.file_id  # the one committed first answers
    with pytest.raises(FileNotFound):
        await meta.get_file(second.file_id)  # nothing half-written for the second
    assert (await meta.get_chunks([r.sha256]))[r.sha256].refcount == 1


async def test_copies_short_of_the_factor_take_the_checked_path(
    inproc: InProcessCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    coord = inproc.api.coordinator
    sent, r = await _sent(inproc, random.Random(4).randbytes(7_000))
    one = {c: set(list(nodes)[:1]) for c, nodes in sent.copies.items()}
    spy = HasChunksCount(inproc, monkeypatch)
    writes = MetaWrites(inproc, monkeypatch)
    done = await commit_ingested(
        coord, ADMIN_TENANT, sent.file_id, r, sent.receipts, copies=one, fresh=True
    )
    assert done.created
    assert spy.calls == 3  # every live node asked, as finalize asks
    assert "create_and_commit_files" not in writes.calls
    assert writes.calls[:1] == ["create_files"]
    assert "commit_files" in writes.calls


async def test_a_chunk_without_its_receipt_is_never_committed_directly(
    inproc: InProcessCluster,
) -> None:
    coord = inproc.api.coordinator
    sent, r = await _sent(inproc, random.Random(5).randbytes(6_000))
    other = new_file_id()  # receipts name the file they were sent for: not this one
    with pytest.raises(IncompleteUpload):
        await commit_ingested(
            coord, ADMIN_TENANT, other, r, sent.receipts, copies=sent.copies, fresh=True
        )


async def test_link_trusts_only_the_callers_own_fresh_file(
    inproc: InProcessCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    coord = inproc.api.coordinator
    store = namespace_store(coord.meta)
    assert store is not None
    ns = Namespace(store, coord)
    alice = Principal("alice", auth.ROLE_USER)
    for t in ("alice", "bob"):
        await coord.meta.create_tenant(t, coord.clock())
    b = await ns.create_bucket(alice, "fresh", None, None)
    data = random.Random(6).randbytes(5_000)
    mine = await ingest(coord, "alice", "x", _reader(data), ChunkerProfile.default(), 1 << 20)
    assert mine.record is not None  # recorded complete in one write
    reads: list[str] = []
    real = coord.meta.get_file

    async def get_file(*args: Any, **kw: Any) -> FileRecord:
        reads.append("get_file")
        return await real(*args, **kw)

    monkeypatch.setattr(coord.meta, "get_file", get_file)
    made = await ns.link(
        alice, "fresh", "k", mine.record.file_id, ObjectFields(), read=b, written=mine.record
    )
    assert made.version.file_id == mine.record.file_id
    assert reads == []  # neither the bucket nor the file read again
    theirs = await ingest(coord, "bob", "y", _reader(data), ChunkerProfile.default(), 1 << 20)
    assert theirs.record is not None
    with pytest.raises(DfsError):  # bob's record, handed in, is not taken for alice's file
        await ns.link(
            alice, "fresh", "k2", theirs.record.file_id, ObjectFields(), written=theirs.record
        )
    assert reads == ["get_file"]  # it was looked up, as alice's, and not found


def _reader(data: bytes) -> Callable[[int], Coroutine[Any, Any, bytes]]:
    left = [data]

    async def read(n: int) -> bytes:
        out, left[0] = left[0][:n], left[0][n:]
        return out

    return read
