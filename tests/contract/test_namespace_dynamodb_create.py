"""DynamoDB-only behaviour of ``create_and_put_object`` (``store_namespace_create``): a small
PutObject's file and link in one transaction (a refusal writes nothing), a file too big for
it in two writes with an intent item, and a writer that crashed between those two writes
(its first half called directly), resolved by ``finish_namespace_jobs`` after the grace
period (on moto's server)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError

import dfs.meta.dynamo.store_namespace_codec as nc
import dfs.meta.dynamo.store_namespace_create as create_module
from dfs.errors import FileNotFound, KeyExists, KeyNotFound, Unavailable
from dfs.meta import open_metadata_store
from dfs.meta.base import FILE_COMPLETE, FileRecord, Location
from dfs.meta.dynamo import DynamoMetadataStore
from dfs.meta.dynamo.codec import UNLINKED_ATTR
from dfs.meta.dynamo.requests import Cancelled
from dfs.meta.dynamo.store_namespace_create import UNLINKED_GRACE
from dfs.meta.dynamo.store_namespace_write import Change, KeyState
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


async def marked_unlinked(store: DynamoMetadataStore, file_id: str) -> bool:
    """Whether the file's item still carries the ``unl`` mark of a file not linked yet."""
    return UNLINKED_ATTR in await store._file_item(file_id, ("file_id", UNLINKED_ATTR))


async def first_half(store: DynamoMetadataStore, chunk: str, now: float) -> FileRecord:
    """What ``_create_then_link`` writes before its link (then the writer dies): the intent
    and the file, complete and marked unlinked. Named after its chunk: its own content."""
    rec, manifest = new_file(chunk, [(cid(chunk), 7)])
    await store._rq.run(store._put_intent, nc.unlinked_key(rec.file_id), rec, now)
    await store._create_committed(rec, manifest, now, unlinked=True)
    return rec


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

    abandoned = (await first_half(store, "abandoned", 10.0)).file_id
    linked = (await first_half(store, "linked", 10.0)).file_id
    # the second writer linked its file, then died before settling it
    await store.put_object(NewObject("b", "other", linked, 7, owner="t1"), 11.0)
    # its link cleared its mark in the same transaction: found by content (as linked) already
    linked_found = await store.find_file_by_sha256("t1", cid("linked"), linked=True)
    assert linked_found is not None
    assert linked_found.file_id == linked
    assert await store.find_file_by_sha256("t1", cid("abandoned")) is None  # still marked
    assert sorted(await intents(store)) == sorted([abandoned, linked])

    assert await store.finish_namespace_jobs(10.0 + UNLINKED_GRACE - 1) == 0
    await store.get_file(abandoned, "t1")  # a writer may still be between its two writes

    assert await store.finish_namespace_jobs(10.0 + UNLINKED_GRACE) == 2
    with pytest.raises(FileNotFound):
        await store.get_file(abandoned)
    assert (await store.get_file(linked, "t1")).state == FILE_COMPLETE
    assert not await marked_unlinked(store, linked)  # settled
    assert await store.find_file_by_sha256("t1", cid("linked")) is None  # linked: never
    assert await intents(store) == []
    stats = await store.get_stats()
    assert (stats.total_files, stats.logical_bytes, stats.stored_bytes) == (1, 7, 7)
    assert (await store.usage("t1")).stored_bytes == 7
    assert await store.finish_namespace_jobs(20.0 + UNLINKED_GRACE) == 0


async def test_a_resent_transaction_that_had_succeeded_is_taken_as_done(
    store: DynamoMetadataStore,
) -> None:
    """The answer to the one transaction is lost (a read timeout after DynamoDB applied it):
    the retry policy sends it again with the same ClientRequestToken, which DynamoDB answers
    as done for 10 minutes (moto ignores the token); past that window (and on moto) the
    resend is cancelled (the file exists, the head moved), the file is ours (its manifest
    id), so the put succeeded, once (in a versioned bucket a second round would have made a
    second version)."""
    await store.create_bucket(BucketRecord("b", "t1", 1.0, versioning=VERSIONING_ENABLED))
    client = store._rq.client
    send = client.transact_write_items
    lost: list[int] = []
    tokens: list[str | None] = []

    def applied_then_lost(**params: Any) -> Any:
        tokens.append(params.get("ClientRequestToken"))
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
    # the create's transaction and its resend, then the stored-bytes job's
    assert tokens[0] is not None
    assert tokens[:2] == [tokens[0], tokens[0]]
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


async def test_a_file_not_linked_yet_is_not_found_by_content(
    store: DynamoMetadataStore,
) -> None:
    """Between the two writes (or after a crash there) the file is complete, but no lookup
    by content hands it out: the sweep may delete it. Linked and settled, it is not either:
    it is the namespace's (the release of its last version deletes it)."""
    await store.create_bucket(BucketRecord("b", "t1", 1.0))
    rec = await first_half(store, "held", 10.0)
    assert (await store.get_file(rec.file_id, "t1")).state == FILE_COMPLETE
    for verified in (True, False):
        assert await store.find_file_by_sha256("t1", rec.sha256, verified=verified) is None
    await store.put_object(NewObject("b", "k", rec.file_id, 7, owner="t1"), 11.0)
    await store._settle_linked(rec.file_id, nc.unlinked_key(rec.file_id))
    assert not await marked_unlinked(store, rec.file_id)
    # linked now: the namespace's, so still never found by content (its release deletes it)
    assert await store.find_file_by_sha256("t1", rec.sha256) is None
    assert await intents(store) == []

    # the whole two-write path: settled once it returns, and not found by content
    big, big_manifest = new_file("big", [(cid(("held", i)), 3) for i in range(60)])
    await store.create_and_put_object(
        big, big_manifest, [], NewObject("b", "big", big.file_id, 180, owner="t1"), 12.0
    )
    assert not await marked_unlinked(store, big.file_id)
    assert await store.find_file_by_sha256("t1", big.sha256) is None
    assert await intents(store) == []


async def test_a_failed_cleanup_leaves_the_outcome_and_the_intent_to_the_sweep(
    store: DynamoMetadataStore,
) -> None:
    """Dropping the intent fails (DynamoDB unreachable by then): the PUT still answers its
    own outcome (success, or its own refusal), and the sweep settles what is left."""
    await store.create_bucket(BucketRecord("b", "t1", 1.0))

    def unreachable(key: Any) -> None:
        raise Unavailable("dynamodb unreachable")

    store._drop_intent = unreachable  # type: ignore[method-assign]
    rec, manifest = new_file("kept", [(cid(("kept", i)), 3) for i in range(60)])
    await store.create_and_put_object(
        rec, manifest, [], NewObject("b", "k", rec.file_id, 180, owner="t1"), 2.0
    )
    refused, refused_manifest = new_file("refused", [(cid(("refused", i)), 3) for i in range(60)])
    with pytest.raises(KeyExists):
        await store.create_and_put_object(
            refused,
            refused_manifest,
            [],
            NewObject("b", "k", refused.file_id, 180, owner="t1"),
            3.0,
            if_absent=True,
        )
    with pytest.raises(FileNotFound):
        await store.get_file(refused.file_id)
    del store._drop_intent  # the class's again
    assert sorted(await intents(store)) == sorted([rec.file_id, refused.file_id])

    assert await store.finish_namespace_jobs(3.0 + UNLINKED_GRACE) == 2
    assert await intents(store) == []
    assert (await store.get_object("b", "k")).file_id == rec.file_id
    assert not await marked_unlinked(store, rec.file_id)
    assert await store.find_file_by_sha256("t1", rec.sha256) is None  # linked: never
    stats = await store.get_stats()
    assert (stats.total_files, stats.stored_bytes) == (1, 180)


async def test_a_stale_link_read_reads_again(store: DynamoMetadataStore) -> None:
    """Another writer overwrites the key between the create's head read and its link read:
    the replaced file's link count, read after, would go below 0. The round reads again
    (as put_object's does) instead of answering Conflict to an unversioned overwrite."""
    await store.create_bucket(BucketRecord("b", "t1", 1.0))
    x, xm = new_file("x", [(cid("x"), 5)])
    y, ym = new_file("y", [(cid("y"), 6)])
    await store.create_and_commit_files([(x, xm), (y, ym)], 1.0)
    await store.put_object(NewObject("b", "k", x.file_id, 5, owner="t1"), 1.5)
    loop = asyncio.get_running_loop()
    link_actions = store._link_actions
    raced: list[int] = []

    def racing(st: Any, ch: Any, fresh: str | None = None) -> Any:
        if not raced:  # once, on the worker thread between the two reads
            raced.append(1)
            plan = store._put_plan(NewObject("b", "k", y.file_id, 6, owner="t1"), 1.7, False, None)
            got = store._change_round("b", "k", plan)
            assert got is not None
            asyncio.run_coroutine_threadsafe(store._run_jobs(got[1], 1.7), loop).result(60)
        return link_actions(st, ch, fresh)

    store._link_actions = racing  # type: ignore[method-assign]
    z, zm = new_file("z", [(cid("z"), 7)])
    await store.create_and_put_object(
        z, zm, [Location(cid("z"), "n1", 7)], NewObject("b", "k", z.file_id, 7, owner="t1"), 2.0
    )
    assert raced == [1]
    assert (await store.get_object("b", "k")).file_id == z.file_id
    stats = await store.get_stats()  # x and y released by the overwrites, z stays
    assert (stats.total_files, stats.logical_bytes, stats.stored_bytes) == (1, 7, 7)
    assert await store.usage("t1", "b") == Usage(1, 1, 0, 7, 7)


async def test_the_sweep_leaves_a_file_being_released_to_its_release(
    store: DynamoMetadataStore,
) -> None:
    """An intent outlived its file's link (its drop failed); the object is deleted and the
    release job has not run when the sweep comes: the sweep only drops the intent, and the
    release then deletes the file and its tenant's and bucket's chunk counts."""
    await store.create_bucket(BucketRecord("b", "t1", 1.0))
    f, fm = new_file("rel", [(cid("rel"), 9)])
    await store._rq.run(store._put_intent, nc.unlinked_key(f.file_id), f, 10.0)
    await store._create_committed(f, fm, 10.0, unlinked=True)
    await store.put_object(NewObject("b", "k", f.file_id, 9, owner="t1"), 11.0)
    assert (await store.usage("t1")).stored_bytes == 9

    def delete(st: KeyState) -> Change:
        assert st.latest is not None
        return Change(latest=None, nsk=None, removes=[st.latest])

    got = await store._rq.run(store._change_round, "b", "k", delete)  # its jobs not run
    assert got is not None
    assert any("rel" in j for j in got[1])
    assert await store.finish_namespace_jobs(10.0 + UNLINKED_GRACE) >= 1
    assert await intents(store) == []
    stats = await store.get_stats()
    assert (stats.total_files, stats.stored_bytes) == (0, 0)
    assert (await store.usage("t1")).stored_bytes == 0
    assert (await store.usage("t1", "b")).stored_bytes == 0


async def test_one_intent_that_fails_holds_up_no_other(store: DynamoMetadataStore) -> None:
    await store.create_bucket(BucketRecord("b", "t1", 1.0))
    failing = await first_half(store, "failing", 10.0)
    other = await first_half(store, "other", 10.0)
    delete_file = store.delete_file

    async def unreachable_for_one(file_id: str, tenant: str, now: float) -> FileRecord:
        if file_id == failing.file_id:
            raise Unavailable("dynamodb unreachable")
        return await delete_file(file_id, tenant, now)

    store.delete_file = unreachable_for_one  # type: ignore[method-assign]
    assert await store.finish_namespace_jobs(10.0 + UNLINKED_GRACE) == 1
    with pytest.raises(FileNotFound):
        await store.get_file(other.file_id)
    assert await intents(store) == [failing.file_id]
    del store.delete_file
    assert await store.finish_namespace_jobs(11.0 + UNLINKED_GRACE) == 1
    assert await intents(store) == []
    assert (await store.get_stats()).total_files == 0


async def test_rounds_lost_on_refcount_guesses_answer_unavailable(
    store: DynamoMetadataStore,
) -> None:
    """Every round's transaction loses a refcount guess (a chunk's count moving under each
    read): the rounds run out with Unavailable (retry later), as commit_file's do, not a
    Conflict about the key; nothing is written."""
    await store.create_bucket(BucketRecord("b", "t1", 1.0))
    rec, manifest = new_file("raced", [(cid("raced"), 4)])

    def cancelled(actions: list[Any], token: str | None = None) -> None:
        raise Cancelled(["None", "ConditionalCheckFailed"] + ["None"] * (len(actions) - 2))

    store._rq.transact = cancelled  # type: ignore[method-assign]
    with pytest.raises(Unavailable):
        await store.create_and_put_object(
            rec, manifest, [], NewObject("b", "k", rec.file_id, 4, owner="t1"), 2.0
        )
    del store._rq.transact
    with pytest.raises(FileNotFound):
        await store.get_file(rec.file_id)
    with pytest.raises(KeyNotFound):
        await store.get_object("b", "k")


async def copy_source(store: DynamoMetadataStore, name: str, chunks: int) -> FileRecord:
    """Buckets ``s`` (of t1, holding ``k``: a file of ``chunks`` chunks) and ``d`` (of t2,
    holding ``k``: another file), for copies across tenants."""
    await store.create_bucket(BucketRecord("s", "t1", 1.0))
    await store.create_bucket(BucketRecord("d", "t2", 1.0))
    src, src_manifest = new_file(name, [(cid((name, i)), 8) for i in range(chunks)])
    await store.create_and_commit_files([(src, src_manifest)], 1.0)
    await store.put_object(NewObject("s", "k", src.file_id, src.size, owner="t1"), 1.5)
    taken, taken_manifest = new_file("taken", [(cid("taken"), 3)], tenant="t2")
    await store.create_and_commit_files([(taken, taken_manifest)], 1.0)
    await store.put_object(NewObject("d", "k", taken.file_id, 3, owner="t2"), 1.5)
    return src


async def test_a_small_copy_across_tenants_is_one_transaction(
    store: DynamoMetadataStore,
) -> None:
    """The copy's own file (the destination tenant's) and its link are one transaction: a
    refused copy writes nothing, and no crash can leave the file without its link."""
    src = await copy_source(store, "small", 1)
    before = calls(store)
    with pytest.raises(KeyExists):
        await store.copy_object("s", "k", None, NewObject("d", "k", "", 0), 2.0, if_absent=True)
    written = {"TransactWriteItems", "PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"}
    assert not set(calls(store) - before) & written
    before = calls(store)
    made = await store.copy_object("s", "k", None, NewObject("d", "k2", "", 0), 3.0)
    # the copy's file and link, then its stored-bytes job: no second write for the file
    assert (calls(store) - before)["TransactWriteItems"] == 2
    own = await store.get_file(made.version.file_id, "t2")
    assert (own.state, own.size) == (FILE_COMPLETE, src.size)
    assert await store.get_manifest(own.file_id) == await store.get_manifest(src.file_id)
    assert (await store.get_stats()).total_files == 3  # src, taken, the copy's own
    assert await intents(store) == []


async def test_a_copy_that_crashed_before_its_link_is_swept(
    store: DynamoMetadataStore,
) -> None:
    """A copy across tenants of a file too big for one transaction: its own file is
    recorded, then the writer dies before the link. The intent put before the file lets
    the sweep delete it after the grace period, with every counter it moved."""
    src = await copy_source(store, "big", 60)
    before = await store.get_stats()
    owned_before = await store.owned_chunks("t2", [cid(("big", i)) for i in range(60)])
    reached = asyncio.Event()

    async def dies(obj: NewObject, now: float, **kw: Any) -> Any:
        reached.set()
        await asyncio.Event().wait()  # the process is gone: this never returns

    store.put_object = dies  # type: ignore[method-assign]
    copy = asyncio.create_task(store.copy_object("s", "k", None, NewObject("d", "k2", "", 0), 10.0))
    try:
        await asyncio.wait_for(reached.wait(), 60)
        del store.put_object
        assert len(await store.list_files("t2", limit=10)) == 2  # taken, the copy's own
        assert await store.find_file_by_sha256("t2", src.sha256) is None  # marked
        await store.finish_namespace_jobs(10.0 + UNLINKED_GRACE)
        assert [f.name for f in await store.list_files("t2", limit=10)] == ["taken"]
        after = await store.get_stats()
        assert (after.total_files, after.stored_bytes) == (before.total_files, before.stored_bytes)
        assert await store.owned_chunks("t2", [cid(("big", i)) for i in range(60)]) == (
            owned_before
        )
        assert await intents(store) == []
    finally:
        copy.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await copy


async def test_a_big_copys_own_file_is_not_found_by_content_until_linked(
    store: DynamoMetadataStore,
) -> None:
    """A copy across tenants in two writes: its own file is recorded first, and deleted
    again when the link is refused; until linked, no upload of the same bytes by that
    tenant may adopt it. Linked, it is found by content."""
    src = await copy_source(store, "copied", 60)
    put_object = store.put_object
    seen: list[FileRecord | None] = []

    async def looking(obj: NewObject, now: float, **kw: Any) -> Any:
        seen.append(await store.find_file_by_sha256("t2", src.sha256))
        return await put_object(obj, now, **kw)

    store.put_object = looking  # type: ignore[method-assign]
    with pytest.raises(KeyExists):
        await store.copy_object("s", "k", None, NewObject("d", "k", "", 0), 2.0, if_absent=True)
    await store.copy_object("s", "k", None, NewObject("d", "k2", "", 0), 3.0)
    del store.put_object
    assert seen == [None, None]
    assert not await marked_unlinked(store, (await store.get_object("d", "k2")).file_id)
    assert await store.find_file_by_sha256("t2", src.sha256) is None  # linked: never
    assert (await store.get_stats()).total_files == 3  # src, taken, the copy's own
    assert await intents(store) == []


async def test_each_key_change_carries_its_own_token_and_a_resend_the_same(
    store: DynamoMetadataStore,
) -> None:
    """``put_object``'s transaction (any key change) carries a ClientRequestToken of its
    round, so that a resend after a lost answer is a no-op on DynamoDB instead of a second
    change planned on the first's result; the retry policy resends it with that token."""
    await store.create_bucket(BucketRecord("b", "t1", 1.0, versioning=VERSIONING_ENABLED))
    one, one_manifest = new_file("one", [(cid("one"), 4)])
    two, two_manifest = new_file("two", [(cid("two"), 5)])
    await store.create_and_commit_files([(one, one_manifest), (two, two_manifest)], 1.0)
    client = store._rq.client
    send = client.transact_write_items
    tokens: list[str | None] = []
    dropped: list[int] = []

    def recorded(**params: Any) -> Any:
        tokens.append(params.get("ClientRequestToken"))
        if not dropped:  # the first request is lost before DynamoDB sees it
            dropped.append(1)
            raise ReadTimeoutError(endpoint_url="dynamodb")
        return send(**params)

    client.transact_write_items = recorded
    try:
        await store.put_object(NewObject("b", "k", one.file_id, 4, owner="t1"), 2.0)
        await store.put_object(NewObject("b", "k", two.file_id, 5, owner="t1"), 3.0)
    finally:
        client.transact_write_items = send
    assert tokens[0] is not None
    assert tokens[1] == tokens[0]  # the resend of the lost request
    # the jobs' follow-up transactions carry none; each key change its own
    assert len({t for t in tokens if t is not None}) == 2
    versions = await store.list_versions("b")
    assert [v.file_id for v in versions.objects] == [two.file_id, one.file_id]


async def test_a_copys_failed_cleanup_never_replaces_its_outcome(
    store: DynamoMetadataStore,
) -> None:
    """A refused copy in two writes deletes its own file; when that delete fails, the copy
    still answers its own refusal, and the sweep deletes the file after the grace period."""
    src = await copy_source(store, "copied", 60)

    async def unreachable(file_id: str, tenant: str, now: float) -> Any:
        raise Unavailable("dynamodb unreachable")

    made = await store.copy_object("s", "k", None, NewObject("d", "k2", "", 0), 2.0)
    store.delete_file = unreachable  # type: ignore[method-assign]
    with pytest.raises(KeyExists):  # its own refusal, not the cleanup's error
        await store.copy_object("s", "k", None, NewObject("d", "k", "", 0), 3.0, if_absent=True)
    del store.delete_file
    assert len(await store.list_files("t2", limit=10)) == 3  # taken, the copy, the refused
    await store.finish_namespace_jobs(3.0 + UNLINKED_GRACE)
    assert len(await store.list_files("t2", limit=10)) == 2
    got = await store.get_object("d", "k2")
    assert got.file_id == made.version.file_id
    assert (await store.get_file(got.file_id, "t2")).state == FILE_COMPLETE
    found = await store.find_file_by_sha256("t2", src.sha256, linked=True)  # mark went with it
    assert found is not None
    assert found.file_id == got.file_id
    assert await intents(store) == []


async def test_young_intents_never_starve_an_older_one(
    store: DynamoMetadataStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More intents still in their grace period than one pass reads, all sorting before an
    abandoned one of the same shard: each pass goes on after the last intent the previous
    one read, so the abandoned file is deleted within a few passes, not never."""
    monkeypatch.setattr(create_module, "INTENTS_PER_PASS", 3)
    await store.create_bucket(BucketRecord("b", "t1", 1.0))
    old = await first_half(store, "starved", 10.0)
    while old.file_id < "c":  # room below it for the young ones
        await store.delete_file(old.file_id, "t1", 10.0)
        await store._rq.run(store._drop_intent, nc.unlinked_key(old.file_id))
        old = await first_half(store, "starved", 10.0)
    shard = nc.unlinked_key(old.file_id)["p"]["S"]
    young: list[str] = []
    while len(young) < 7:
        file_id = str(uuid.uuid4())
        if file_id < old.file_id and nc.unlinked_key(file_id)["p"]["S"] == shard:
            young.append(file_id)
    late = 10.0 + UNLINKED_GRACE
    for file_id in young:  # put just now: in their grace period for every pass below
        rec, _ = new_file(file_id)
        await store._rq.run(
            store._put_intent, nc.unlinked_key(file_id), replace(rec, file_id=file_id), late
        )
    passes = 0
    while old.file_id in await intents(store):
        assert passes < 4, "the abandoned intent was never reached"
        await store.finish_namespace_jobs(late + passes)
        passes += 1
    with pytest.raises(FileNotFound):
        await store.get_file(old.file_id)
    assert sorted(await intents(store)) == sorted(young)
