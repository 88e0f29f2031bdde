"""One contract suite for every MetadataStore implementation (see dfs/meta/base.py).

Backends are parametrized in ``conftest.py`` as the ``meta`` fixture.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid

import pytest

from dfs.errors import Conflict, FileNotFound
from dfs.meta.base import (
    FILE_COMPLETE,
    FILE_PENDING,
    FileRecord,
    Location,
    ManifestEntry,
    MetadataStore,
    NodeRecord,
)


def cid(n: int | str) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


def new_file(name: str = "f", chunks: list[tuple[str, int]] | None = None, tenant: str = "t1"):
    chunks = chunks if chunks is not None else [(cid(1), 10), (cid(2), 20)]
    manifest, off = [], 0
    for chunk_id, size in chunks:
        manifest.append(ManifestEntry(off, size, chunk_id))
        off += size
    rec = FileRecord(
        file_id=str(uuid.uuid4()),
        name=name,
        size=off,
        sha256=cid(name),
        chunker="fixed:4096",
        tenant=tenant,
        created_at=1.0,
        chunk_count=len(manifest),
    )
    return rec, manifest


async def test_live_nodes_filter_on_expiry(meta: MetadataStore) -> None:
    await meta.upsert_node(NodeRecord("n1", "127.0.0.1", 1, expires_at=100.0))
    await meta.upsert_node(NodeRecord("n2", "127.0.0.1", 2, expires_at=200.0))
    live = await meta.list_live_nodes(150.0)
    assert [n.node_id for n in live] == ["n2"]
    assert {n.node_id for n in await meta.list_nodes()} == {"n1", "n2"}
    # a heartbeat replaces the entry
    await meta.upsert_node(NodeRecord("n1", "127.0.0.1", 1, used_bytes=7, expires_at=300.0))
    live = await meta.list_live_nodes(150.0)
    assert [(n.node_id, n.used_bytes) for n in live] == [("n1", 7), ("n2", 0)]
    await meta.remove_node("n1")
    await meta.remove_node("unknown")
    assert [n.node_id for n in await meta.list_live_nodes(0.0)] == ["n2"]


async def test_create_get_manifest(meta: MetadataStore) -> None:
    rec, manifest = new_file()
    await meta.create_file(rec, manifest)
    got = await meta.get_file(rec.file_id)
    assert got.state == FILE_PENDING
    assert (got.name, got.size, got.sha256, got.chunk_count) == ("f", 30, rec.sha256, 2)
    assert await meta.get_manifest(rec.file_id) == manifest
    with pytest.raises(Conflict):
        await meta.create_file(rec, manifest)
    with pytest.raises(FileNotFound):
        await meta.get_file(str(uuid.uuid4()))
    with pytest.raises(FileNotFound):
        await meta.get_file(rec.file_id, tenant="other")
    with pytest.raises(FileNotFound):
        await meta.get_manifest(str(uuid.uuid4()))


async def test_commit_counts_and_is_idempotent(meta: MetadataStore) -> None:
    a, ma = new_file("a", [(cid(1), 10), (cid(2), 20), (cid(1), 10)])
    b, mb = new_file("b", [(cid(2), 20), (cid(3), 5)])
    await meta.create_file(a, ma)
    await meta.create_file(b, mb)
    assert (await meta.commit_file(a.file_id, 5.0)).state == FILE_COMPLETE
    assert (await meta.commit_file(a.file_id, 6.0)).state == FILE_COMPLETE  # no double count
    await meta.commit_file(b.file_id, 7.0)
    stats = await meta.get_stats()
    assert stats.total_files == 2
    assert stats.logical_bytes == 40 + 25
    assert stats.stored_bytes == 10 + 20 + 5
    assert stats.unique_chunks == 3
    assert stats.duplicates_avoided == 2  # cid(1) again inside a, cid(2) again in b
    assert stats.total_bytes_saved == 65 - 35
    chunks = await meta.get_chunks([cid(1), cid(2), cid(3), cid(4)])
    assert {k: v.refcount for k, v in chunks.items()} == {cid(1): 2, cid(2): 2, cid(3): 1}
    with pytest.raises(FileNotFound):
        await meta.commit_file(str(uuid.uuid4()), 1.0)


async def test_concurrent_commits_of_identical_content(meta: MetadataStore) -> None:
    files = [new_file(f"same{i}", [(cid("x"), 100), (cid("y"), 50)]) for i in range(8)]
    for rec, manifest in files:
        await meta.create_file(rec, manifest)
    await asyncio.gather(*(meta.commit_file(rec.file_id, 1.0) for rec, _ in files))
    stats = await meta.get_stats()
    assert (stats.total_files, stats.logical_bytes, stats.stored_bytes) == (8, 1200, 150)
    assert stats.duplicates_avoided == 14
    chunks = await meta.get_chunks([cid("x"), cid("y")])
    assert [chunks[cid("x")].refcount, chunks[cid("y")].refcount] == [8, 8]


async def test_list_files_pages_complete_files_of_tenant(meta: MetadataStore) -> None:
    ids = []
    for i in range(7):
        rec, manifest = new_file(f"f{i}")
        await meta.create_file(rec, manifest)
        await meta.commit_file(rec.file_id, 1.0)
        ids.append(rec.file_id)
    pending, pm = new_file("pending")
    await meta.create_file(pending, pm)
    other, om = new_file("other", tenant="t2")
    await meta.create_file(other, om)
    await meta.commit_file(other.file_id, 1.0)
    seen: list[str] = []
    after = None
    for _ in range(10):
        page = await meta.list_files("t1", limit=3, after=after)
        if not page:
            break
        seen += [f.file_id for f in page]
        after = page[-1].file_id
    assert seen == sorted(ids)


async def test_locations(meta: MetadataStore) -> None:
    await meta.add_locations([Location(cid(1), "n1", 10), Location(cid(1), "n2", 10)], 1.0)
    await meta.add_locations([Location(cid(1), "n1", 10)], 2.0)  # idempotent
    locs = await meta.get_locations([cid(1), cid(2)])
    assert locs == {cid(1): {"n1", "n2"}, cid(2): set()}
    chunks = await meta.get_chunks([cid(1)])
    assert chunks[cid(1)].size == 10
    assert chunks[cid(1)].refcount == 0
    await meta.remove_locations([Location(cid(1), "n1", 10), Location(cid(9), "n1", 1)])
    assert (await meta.get_locations([cid(1)])) == {cid(1): {"n2"}}


async def test_many_locations_in_one_call(meta: MetadataStore) -> None:
    ids = [cid(i) for i in range(1200)]
    await meta.add_locations([Location(c, "n1", 1) for c in ids], 1.0)
    locs = await meta.get_locations(ids)
    assert len(locs) == 1200
    assert all(v == {"n1"} for v in locs.values())
