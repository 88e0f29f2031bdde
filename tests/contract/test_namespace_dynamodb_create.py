"""DynamoDB-only behaviour of ``create_and_put_object`` (``store_namespace_create``): a small
PutObject's file and link in one transaction (a refusal writes nothing), a file too big for
it in two writes with an intent item, and a writer that crashed between those two writes
(its first half called directly), resolved by ``finish_namespace_jobs`` after the grace
period (on moto's server)."""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError

import dfs.meta.dynamo.store_namespace_codec as nc
from dfs.errors import FileNotFound, KeyExists
from dfs.meta import open_metadata_store
from dfs.meta.base import FILE_COMPLETE, Location
from dfs.meta.dynamo import DynamoMetadataStore
from dfs.meta.dynamo.store_namespace_create import UNLINKED_GRACE
from dfs.meta.namespace import VERSIONING_ENABLED, BucketRecord, NewObject, Usage
from tests.conftest import DYNAMODB_ENV
from tests.contract.test_metadata_store import cid, new_file


@pytest.fixture
async def store(moto_endpoint: str) -> AsyncIterator[DynamoMetadataStore]:
    url = f"dynamodb://?endpoint_url={moto_endpoint}&table_prefix=t{uuid.uuid4().hex[:12]}-"
    s = await open_metadata_store(url + "&create_tables=1", {**os.environ, **DYNAMODB_ENV})
    assert isinstance(s, DynamoMetadataStore)
    try:
        yield s
    finally:
        await s.close()


def calls(store: DynamoMetadataStore) -> Counter[str]:
    return Counter(store.calls_by_operation)


async def intents(store: DynamoMetadataStore) -> list[str]:
    return [
        item["s"]["S"]
        for shard in range(nc.UNLINKED_SHARDS)
        for item in await store._rq.run(store._ns_query, "namespace", f"unlinked#{shard:02d}")
    ]


async def test_a_small_put_is_one_transaction_and_a_refusal_writes_nothing(
    store: DynamoMetadataStore,
) -> None:
    await store.create_bucket(BucketRecord("b", "t1", 1.0))
    rec, manifest = new_file("k", [(cid("one"), 10)])
    obj = NewObject("b", "k", rec.file_id, 10, sha256=rec.sha256, owner="t1")
    before = calls(store)
    await store.create_and_put_object(
        rec, manifest, [Location(cid("one"), "n1", 10)], obj, 2.0, if_absent=True
    )
    made = calls(store) - before
    print(f"\ncreate_and_put_object of a one-chunk file: {dict(made)}")
    # the copies (BatchWriteItem, UpdateItem), one read and the one write of file and link,
    # then the stored-bytes job (the file's item, the counts, its transaction, its delete)
    assert made["TransactWriteItems"] == 2
    assert sum(made.values()) == 8
    assert (await store.get_file(rec.file_id, "t1")).state == FILE_COMPLETE
    assert (await store.get_object("b", "k")).file_id == rec.file_id
    assert await store.usage("t1", "b") == Usage(1, 1, 0, 10, 10)

    loser, loser_manifest = new_file("k", [(cid("two"), 20)])
    before = calls(store)
    with pytest.raises(KeyExists):
        await store.create_and_put_object(
            loser,
            loser_manifest,
            [],
            NewObject("b", "k", loser.file_id, 20, owner="t1"),
            3.0,
            if_absent=True,
        )
    assert set(calls(store) - before) == {"BatchGetItem"}  # read, refused, nothing written
    with pytest.raises(FileNotFound):
        await store.get_file(loser.file_id)
    stats = await store.get_stats()
    assert (stats.total_files, stats.logical_bytes, stats.stored_bytes) == (1, 10, 10)
    assert await store.usage("t1", "b") == Usage(1, 1, 0, 10, 10)
    assert await intents(store) == []


async def test_a_file_too_big_for_one_transaction_takes_two_writes(
    store: DynamoMetadataStore,
) -> None:
    await store.create_bucket(BucketRecord("b", "t1", 1.0))
    chunks = [(cid(("big", i)), 3) for i in range(60)]  # more than one transaction holds
    rec, manifest = new_file("k", chunks)
    obj = NewObject("b", "k", rec.file_id, 180, owner="t1")
    await store.create_and_put_object(rec, manifest, [], obj, 2.0)
    assert (await store.get_object("b", "k")).file_id == rec.file_id
    assert await intents(store) == []

    refused, refused_manifest = new_file("k", [(cid(("other", i)), 3) for i in range(60)])
    obj = NewObject("b", "k", refused.file_id, 180, owner="t1")
    with pytest.raises(KeyExists):
        await store.create_and_put_object(refused, refused_manifest, [], obj, 3.0, if_absent=True)
    with pytest.raises(FileNotFound):
        await store.get_file(refused.file_id)
    assert await intents(store) == []
    stats = await store.get_stats()
    assert (stats.total_files, stats.unique_chunks, stats.stored_bytes) == (1, 60, 180)


async def test_a_crash_between_the_two_writes_is_resolved_after_the_grace_period(
    store: DynamoMetadataStore,
) -> None:
    await store.create_bucket(BucketRecord("b", "t1", 1.0))

    async def first_half(chunk: str, now: float) -> str:
        """What ``_create_then_link`` writes before its link, then the writer dies."""
        rec, manifest = new_file("k", [(cid(chunk), 7)])
        await store._rq.run(store._put_intent, nc.unlinked_key(rec.file_id), rec, now)
        await store.create_and_commit_files([(rec, manifest)], now)
        return rec.file_id

    abandoned = await first_half("abandoned", 10.0)
    linked = await first_half("linked", 10.0)
    # another upload of the same bytes linked the second file before the sweep
    await store.put_object(NewObject("b", "other", linked, 7, owner="t1"), 11.0)
    assert sorted(await intents(store)) == sorted([abandoned, linked])

    assert await store.finish_namespace_jobs(10.0 + UNLINKED_GRACE - 1) == 0
    await store.get_file(abandoned, "t1")  # a writer may still be between its two writes

    assert await store.finish_namespace_jobs(10.0 + UNLINKED_GRACE) == 2
    with pytest.raises(FileNotFound):
        await store.get_file(abandoned)
    assert (await store.get_file(linked, "t1")).state == FILE_COMPLETE
    assert await intents(store) == []
    stats = await store.get_stats()
    assert (stats.total_files, stats.logical_bytes, stats.stored_bytes) == (1, 7, 7)
    assert (await store.usage("t1")).stored_bytes == 7
    assert await store.finish_namespace_jobs(20.0 + UNLINKED_GRACE) == 0


async def test_a_resent_transaction_that_had_succeeded_is_taken_as_done(
    store: DynamoMetadataStore,
) -> None:
    """The answer to the one transaction is lost (a read timeout after DynamoDB applied it):
    the retry policy sends it again, which is cancelled (the file exists, the head moved);
    the file is ours (its manifest id), so the put succeeded, once (in a versioned bucket a
    second round would have made a second version)."""
    await store.create_bucket(BucketRecord("b", "t1", 1.0, versioning=VERSIONING_ENABLED))
    client = store._rq.client
    send = client.transact_write_items
    lost: list[int] = []

    def applied_then_lost(**params: Any) -> Any:
        answer = send(**params)
        if not lost:
            lost.append(1)
            raise ReadTimeoutError(endpoint_url="dynamodb")
        return answer

    client.transact_write_items = applied_then_lost
    rec, manifest = new_file("k", [(cid("resent"), 10)])
    made = await store.create_and_put_object(
        rec, manifest, [], NewObject("b", "k", rec.file_id, 10, owner="t1"), 2.0
    )
    client.transact_write_items = send
    assert lost == [1]
    got = await store.get_object("b", "k")
    assert (got.file_id, got.version_id) == (rec.file_id, made.version.version_id)
    stats = await store.get_stats()
    assert (stats.total_files, stats.stored_bytes) == (1, 10)
    assert await store.usage("t1", "b") == Usage(1, 1, 0, 10, 10)


async def test_a_crash_inside_a_big_files_commit_is_finished_then_deleted(
    store: DynamoMetadataStore,
) -> None:
    """The writer died while committing a big file (claimed, no batch applied): the sweep
    finishes the commit (resumable) and then deletes the file, so every counter returns."""
    await store.create_bucket(BucketRecord("b", "t1", 1.0))
    rec, manifest = new_file("k", [(cid(("half", i)), 2) for i in range(60)])
    await store._rq.run(store._put_intent, nc.unlinked_key(rec.file_id), rec, 10.0)
    await store.create_file(rec, manifest)
    await store._rq.run(store._claim, rec.file_id)  # pending -> committing, then the crash
    assert await store.finish_namespace_jobs(10.0 + UNLINKED_GRACE) == 1
    with pytest.raises(FileNotFound):
        await store.get_file(rec.file_id)
    stats = await store.get_stats()
    assert (stats.total_files, stats.logical_bytes, stats.stored_bytes) == (0, 0, 0)
    assert stats.unique_chunks == 0
    assert await intents(store) == []
