"""DynamoDB's content entry (file_hashes: the tenant's first complete file with some
sha256, and a set of the others a delete hands the entry to) stays within one item's
400 KB however many files of a tenant hold the same bytes (about 11,000 ids filled it
before, and every commit of that content then failed): the set is bounded, every commit
path goes on once it is full, and the lookup never names a deleted file."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

import dfs.meta.dynamo.store_commit as store_commit
from dfs.meta.base import FILE_COMPLETE, FileRecord, ManifestEntry
from dfs.meta.dynamo import DynamoMetadataStore, codec
from dfs.meta.dynamo.store_refcounts import CHUNKS_PER_TX
from dfs.meta.namespace import BucketRecord, NewObject
from tests.contract.test_metadata_store import cid, new_file

# ids in a set before it was bounded: past the bound, below the item's 400 KB (moto refuses
# an update that would pass 400 KB before it looks at its condition)
SEEDED = 1_000


@pytest.fixture
def store(dynamo_store: DynamoMetadataStore) -> DynamoMetadataStore:
    return dynamo_store  # conftest.py's: a store on moto, tables of its own


def _same(name: str, content: list[tuple[str, int]], verified: bool = True) -> FileRecord:
    """A file named ``name`` whose sha256 is that of its content (its first chunk)."""
    rec, _ = new_file(content[0][0], content, verified=verified)
    return dataclasses.replace(rec, name=name)


def _manifest(content: list[tuple[str, int]]) -> list[ManifestEntry]:
    return new_file("any", content)[1]


async def _entry(store: DynamoMetadataStore, rec: FileRecord, verified: bool = True) -> dict:
    key = store._hash_key(dataclasses.replace(rec, sha256_verified=verified))
    got = await store._rq.run(
        lambda: store._rq.call(
            "get_item", TableName=store.tables["file_hashes"], Key=key, ConsistentRead=True
        )
    )
    return dict(got.get("Item", {}))


async def _seed(store: DynamoMetadataStore, rec: FileRecord, n: int = SEEDED) -> None:
    """The entry's set as commits made before it was bounded left it: ``n`` more ids."""
    ids = [str(uuid.uuid4()) for _ in range(n)]
    await store._rq.run(
        lambda: store._rq.call(
            "update_item",
            TableName=store.tables["file_hashes"],
            Key=store._hash_key(rec),
            UpdateExpression="SET #f = if_not_exists(#f, :f) ADD #files :fs",
            ExpressionAttributeNames={"#f": "file_id", "#files": "files"},
            ExpressionAttributeValues={":f": {"S": ids[0]}, ":fs": {"SS": ids}},
        )
    )


async def test_every_commit_path_goes_on_past_a_full_set(store: DynamoMetadataStore) -> None:
    small = [(cid("full-small"), 10)]
    big = [(cid(("full-big", i)), 10) for i in range(CHUNKS_PER_TX + 2)]
    first = _same("first", small)
    await store.create_file(first, _manifest(small))
    await store.commit_file(first.file_id, 2.0)
    await _seed(store, first)
    for n in range(3):  # one transaction per small file
        rec = _same(f"small{n}", small)
        await store.create_file(rec, _manifest(small))
        assert (await store.commit_file(rec.file_id, 3.0)).state == FILE_COMPLETE
    made = await store.create_and_commit_files([(_same("again", small), _manifest(small))], 4.0)
    assert made[0].state == FILE_COMPLETE
    await store.create_bucket(BucketRecord("b", "t1", 1.0))
    obj = _same("obj", small)
    put = await store.create_and_put_object(
        obj, _manifest(small), [], NewObject("b", "k", obj.file_id, 10, owner="t1"), 5.0
    )
    assert put.version.file_id == obj.file_id
    # a big file: batches, then committing -> complete with the entry
    first_big = _same("big0", big)
    await store.create_file(first_big, _manifest(big))
    await store.commit_file(first_big.file_id, 2.0)
    await _seed(store, first_big)
    rec = _same("big1", big)
    await store.create_file(rec, _manifest(big))
    assert (await store.commit_file(rec.file_id, 6.0)).state == FILE_COMPLETE
    # the claim's entry handed to the verified one, already full
    claimed = _same("claimed", small, verified=False)
    await store.create_file(claimed, _manifest(small))
    await store.commit_file(claimed.file_id, 7.0)
    assert (await store.mark_sha256_verified(claimed.file_id)) is not None
    assert (await store.get_file(claimed.file_id)).sha256_verified
    for rec in (first, first_big):  # neither set grew past what was seeded
        assert len(codec.string_set(await _entry(store, rec), "files")) == SEEDED + 1
    found = await store.find_file_by_sha256("t1", first.sha256)
    assert found is not None
    assert found.file_id == first.file_id
    stats = await store.get_stats()
    assert stats.total_files == 9


async def test_a_bounded_set_never_names_a_deleted_file(
    store: DynamoMetadataStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_commit, "HASH_CANDIDATES", 2)
    content = [(cid("bounded"), 10)]
    recs = [_same(f"f{i}", content) for i in range(4)]
    for rec in recs:
        await store.create_file(rec, _manifest(content))
        await store.commit_file(rec.file_id, 2.0)
    entry = await _entry(store, recs[0])
    assert entry["file_id"]["S"] == recs[0].file_id
    assert codec.string_set(entry, "files") == {recs[0].file_id, recs[1].file_id}

    async def named() -> str | None:
        found = await store.find_file_by_sha256("t1", recs[0].sha256)
        return None if found is None else found.file_id

    await store.delete_file(recs[0].file_id, "t1", 3.0)
    assert await named() == recs[1].file_id
    # f2 and f3 were committed while the set was full: the last member's delete drops the
    # entry, and the lookup misses them (whole-file dedup lost, never a wrong answer)
    await store.delete_file(recs[1].file_id, "t1", 4.0)
    assert await named() is None
    await store.delete_file(recs[2].file_id, "t1", 5.0)
    assert await named() is None
    later = _same("later", content)
    await store.create_file(later, _manifest(content))
    await store.commit_file(later.file_id, 6.0)
    assert await named() == later.file_id
    await store.delete_file(recs[3].file_id, "t1", 7.0)
    assert await named() == later.file_id


@pytest.mark.parametrize("distinct", [1, CHUNKS_PER_TX + 2], ids=["small", "big"])
async def test_a_file_marked_verified_while_it_is_deleted_leaves_no_entry(
    store: DynamoMetadataStore, distinct: int
) -> None:
    """mark_sha256_verified moves a file's content entry from the claim's to the verified
    one between a delete's read of the file and its transaction: the delete, which hands on
    the entry of the file as it read it (the claim's), must not go through and leave the
    verified entry naming the deleted file (every later commit of those bytes keeps a named
    file, ``if_not_exists``: the lookup by content missed them for good)."""
    content = [(cid(("race-verified", distinct, i)), 10) for i in range(distinct)]
    gone, keep = _same("gone", content, verified=False), _same("keep", content, verified=False)
    for rec in (gone, keep):
        await store.create_file(rec, _manifest(content))
        await store.commit_file(rec.file_id, 2.0)
    guard = store._link_guard
    raced: list[int] = []

    def mark_first(file_id: str) -> list:
        if not raced:  # the delete has read the file unverified: mark it now
            raced.append(1)
            store._move_to_verified(gone)
        return guard(file_id)

    store._link_guard = mark_first  # type: ignore[method-assign]
    await store.delete_file(gone.file_id, "t1", 3.0)
    assert raced == [1]
    assert await store.find_file_by_sha256("t1", gone.sha256, verified=True) is None
    assert "file_id" not in await _entry(store, gone)  # the verified entry went with it
    await store.mark_sha256_verified(keep.file_id)
    found = await store.find_file_by_sha256("t1", gone.sha256, verified=True)
    assert found is not None
    assert found.file_id == keep.file_id
