"""``create_and_commit_files`` on every backend: files recorded complete in one step count
exactly as ``create_files`` + ``commit_files`` would, are found, listed and deleted like any
committed file, and never half-exist."""

from __future__ import annotations

import asyncio

import pytest

from dfs.errors import Conflict
from dfs.meta.base import FILE_COMPLETE, FILE_PENDING, Location, MetadataStore
from tests.contract.test_metadata_store import cid, new_file


async def test_counts_like_create_then_commit(meta: MetadataStore) -> None:
    a, ma = new_file("a", [(cid(1), 10), (cid(2), 20), (cid(1), 10)])
    b, mb = new_file("b", [(cid(2), 20), (cid(3), 5)])
    c, mc = new_file("c", [(cid(3), 5)], tenant="t2")
    done = await meta.create_and_commit_files([(a, ma), (b, mb), (c, mc)], 5.0)
    assert [d.file_id for d in done] == [a.file_id, b.file_id, c.file_id]
    assert all(d.state == FILE_COMPLETE for d in done)
    assert (done[0].name, done[0].size, done[0].sha256) == ("a", 40, a.sha256)
    for rec, manifest in ((a, ma), (b, mb), (c, mc)):
        assert (await meta.get_file(rec.file_id, rec.tenant)).state == FILE_COMPLETE
        assert await meta.get_manifest(rec.file_id) == manifest
    stats = await meta.get_stats()
    assert (stats.total_files, stats.logical_bytes) == (3, 40 + 25 + 5)
    assert (stats.stored_bytes, stats.unique_chunks) == (35, 3)
    assert stats.duplicates_avoided == 3  # cid(1) inside a, cid(2) in b, cid(3) in c
    chunks = await meta.get_chunks([cid(1), cid(2), cid(3)])
    assert {k: v.refcount for k, v in chunks.items()} == {cid(1): 2, cid(2): 2, cid(3): 2}
    assert await meta.owned_chunks("t1", [cid(1), cid(2), cid(3)]) == {cid(1), cid(2), cid(3)}
    assert await meta.owned_chunks("t2", [cid(1), cid(2), cid(3)]) == {cid(3)}
    found = await meta.find_file_by_sha256("t1", a.sha256)
    assert found is not None
    assert found.file_id == a.file_id
    listed = {f.file_id for f in await meta.list_files("t1", limit=10)}
    assert listed == {a.file_id, b.file_id}
    # nothing is left pending for garbage collection to find
    assert await meta.stale_pending_files(1e12, limit=10) == []
    # committing one again changes nothing
    again = await meta.commit_files([a.file_id], 6.0)
    assert again[0] is not None
    assert again[0].state == FILE_COMPLETE
    assert (await meta.get_stats()).total_files == 3


async def test_records_the_copies_given_with_the_files(meta: MetadataStore) -> None:
    a, ma = new_file("a", [(cid(1), 10), (cid(2), 20)])
    locs = [Location(cid(1), "n1", 10), Location(cid(1), "n2", 10), Location(cid(2), "n2", 20)]
    (done,) = await meta.create_and_commit_files([(a, ma)], 3.0, locations=locs)
    assert done.state == FILE_COMPLETE
    assert await meta.get_locations([cid(1), cid(2)]) == {cid(1): {"n1", "n2"}, cid(2): {"n2"}}
    chunks = await meta.get_chunks([cid(1), cid(2)])
    assert {k: (v.refcount, v.size) for k, v in chunks.items()} == {
        cid(1): (1, 10),
        cid(2): (1, 20),
    }
    stats = await meta.get_stats()  # the copies change no count: only the file does
    assert (stats.total_files, stats.stored_bytes, stats.unique_chunks) == (1, 30, 2)
    assert set(await meta.node_chunks("n2", limit=10)) == {cid(1), cid(2)}


async def test_commit_files_records_the_copies_given(meta: MetadataStore) -> None:
    # finalize records the copies its has-chunks round found in the commit's own write
    a, ma = new_file("a", [(cid(1), 10), (cid(2), 20)])
    await meta.create_files([(a, ma)])
    locs = [Location(cid(1), "n1", 10), Location(cid(2), "n1", 20), Location(cid(2), "n2", 20)]
    calls = getattr(meta, "calls", None)
    (done,) = await meta.commit_files([a.file_id], 3.0, locations=locs)
    if type(meta).__name__ == "SqliteMetadataStore":  # copies and commit: one transaction
        assert meta.calls - calls == 1  # type: ignore[attr-defined]
    assert done is not None
    assert done.state == FILE_COMPLETE
    assert await meta.get_locations([cid(1), cid(2)]) == {cid(1): {"n1"}, cid(2): {"n1", "n2"}}
    chunks = await meta.get_chunks([cid(1), cid(2)])
    assert {k: (v.refcount, v.size) for k, v in chunks.items()} == {
        cid(1): (1, 10),
        cid(2): (1, 20),
    }
    assert set(await meta.node_chunks("n2", limit=10)) == {cid(2)}
    stats = await meta.get_stats()
    assert (stats.total_files, stats.stored_bytes, stats.unique_chunks) == (1, 30, 2)


async def test_commit_files_of_no_file_still_records_the_copies(meta: MetadataStore) -> None:
    # every file of a finalize failed its checks: the copies found are still recorded
    assert await meta.commit_files([], 1.0, locations=[Location(cid(7), "n1", 7)]) == []
    assert await meta.get_locations([cid(7)]) == {cid(7): {"n1"}}
    assert (await meta.get_stats()).total_files == 0


async def test_delete_is_the_exact_inverse(meta: MetadataStore) -> None:
    a, ma = new_file("a", [(cid(1), 10), (cid(2), 20)])
    b, mb = new_file("b", [(cid(2), 20)])
    await meta.create_and_commit_files([(a, ma), (b, mb)], 1.0)
    await meta.delete_file(a.file_id, "t1", 2.0)
    await meta.delete_file(b.file_id, "t1", 2.0)
    stats = await meta.get_stats()
    assert (stats.total_files, stats.logical_bytes, stats.stored_bytes) == (0, 0, 0)
    assert (stats.unique_chunks, stats.duplicates_avoided) == (0, 0)
    chunks = await meta.get_chunks([cid(1), cid(2)])
    assert {k: v.refcount for k, v in chunks.items()} == {cid(1): 0, cid(2): 0}
    assert await meta.find_file_by_sha256("t1", a.sha256) is None


async def test_refuses_an_existing_id(meta: MetadataStore) -> None:
    a, ma = new_file("a")
    await meta.create_file(a, ma)
    with pytest.raises(Conflict):
        await meta.create_and_commit_files([(a, ma)], 1.0)
    assert (await meta.get_file(a.file_id)).state == FILE_PENDING  # untouched
    stats = await meta.get_stats()
    assert (stats.total_files, stats.stored_bytes) == (0, 0)
    assert await meta.owned_chunks("t1", [cid(1), cid(2)]) == set()


async def test_big_manifests_count_exactly(meta: MetadataStore) -> None:
    # more entries and distinct chunks than one DynamoDB transaction or inline manifest holds
    big, mbig = new_file("big", [(cid(f"b{i}"), 7) for i in range(300)])
    small, msmall = new_file("small", [(cid("b0"), 7)])
    done = await meta.create_and_commit_files([(big, mbig), (small, msmall)], 1.0)
    assert [d.state for d in done] == [FILE_COMPLETE, FILE_COMPLETE]
    assert await meta.get_manifest(big.file_id) == mbig
    stats = await meta.get_stats()
    assert (stats.total_files, stats.stored_bytes, stats.unique_chunks) == (2, 2100, 300)
    assert stats.duplicates_avoided == 1


async def test_racing_commits_of_the_same_content_stay_exact(meta: MetadataStore) -> None:
    pending = [new_file(f"p{i}", [(cid("x"), 100), (cid("y"), 50)]) for i in range(6)]
    await meta.create_files(pending)
    direct = [new_file(f"d{i}", [(cid("x"), 100), (cid("y"), 50)]) for i in range(6)]
    await asyncio.gather(
        meta.commit_files([rec.file_id for rec, _ in pending], 1.0),
        meta.create_and_commit_files(direct[:3], 1.0),
        meta.create_and_commit_files(direct[3:], 1.0),
    )
    stats = await meta.get_stats()
    assert (stats.total_files, stats.stored_bytes, stats.unique_chunks) == (12, 150, 2)
    assert stats.duplicates_avoided == 12 * 2 - 2
    chunks = await meta.get_chunks([cid("x"), cid("y")])
    assert (chunks[cid("x")].refcount, chunks[cid("y")].refcount) == (12, 12)
