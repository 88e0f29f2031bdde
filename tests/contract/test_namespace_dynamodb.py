"""DynamoDB-only behaviour of the namespace the shared contract cannot see: listing 1,000
keys in pages of 50 and its metadata calls per listed key, jobs left by a crashed writer,
replayed jobs, and the races a conditional write must settle (on moto's server)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from dfs.errors import FileNotFound, Unavailable
from dfs.meta import open_metadata_store
from dfs.meta.base import FileRecord
from dfs.meta.dynamo import DynamoMetadataStore
from dfs.meta.dynamo import store_namespace_codec as nc
from dfs.meta.dynamo.codec import S, refs_of
from dfs.meta.dynamo.store_namespace_jobs import JOB_MARK_TTL
from dfs.meta.namespace import (
    VERSIONING_ENABLED,
    BucketRecord,
    NewObject,
    ObjectVersion,
)
from tests.conftest import DYNAMODB_ENV
from tests.contract.test_metadata_store import cid, new_file

KEYS = 1000
PAGE = 50


@pytest.fixture
async def store(moto_endpoint: str) -> AsyncIterator[DynamoMetadataStore]:
    url = f"dynamodb://?endpoint_url={moto_endpoint}&table_prefix=t{uuid.uuid4().hex[:12]}-"
    s = await open_metadata_store(url + "&create_tables=1", {**os.environ, **DYNAMODB_ENV})
    assert isinstance(s, DynamoMetadataStore)
    try:
        yield s
    finally:
        await s.close()


async def complete_file(
    store: DynamoMetadataStore, chunks: list[tuple[str, int]], tenant: str = "t1"
) -> FileRecord:
    rec, manifest = new_file("f", chunks, tenant=tenant)
    await store.create_file(rec, manifest)
    return await store.commit_file(rec.file_id, 1.0)


async def put_many(store: DynamoMetadataStore, bucket: str, keys: list[str]) -> None:
    sem = asyncio.Semaphore(8)

    async def one(key: str) -> None:
        async with sem:
            await store.put_object(NewObject(bucket, key, "", 0), 1.0)

    await asyncio.gather(*(one(k) for k in keys))


async def test_1000_keys_list_in_pages_of_50(store: DynamoMetadataStore) -> None:
    await store.create_bucket(BucketRecord("big", "t1", 1.0))
    keys = [f"k{i:04d}" for i in range(KEYS // 2)]
    keys += [f"dir/sub{i % 10}/f{i:04d}" for i in range(KEYS // 2 - 20)]
    keys += [f"dir/f{i:02d}" for i in range(20)]
    await put_many(store, "big", keys)

    before, listed, token, pages = store.calls, [], None, 0
    while True:
        page = await store.list_objects("big", token=token, limit=PAGE)
        assert len(page.objects) <= PAGE
        listed += [o.key for o in page.objects]
        pages += 1
        token = page.next_token
        if token is None:
            break
    calls = store.calls - before
    assert listed == sorted(keys, key=str.encode)
    assert pages == KEYS // PAGE
    # one Query per page, and the bucket's GetItem on the first
    assert calls == pages + 1
    print(f"\nmetadata calls per listed key: {calls / len(listed):.3f} ({calls} for {len(listed)})")

    # versions: keys of one version are answered from their heads, one Query a page too
    before, versions, token = store.calls, 0, None
    while True:
        page = await store.list_versions("big", token=token, limit=PAGE)
        versions += len(page.objects)
        token = page.next_token
        if token is None:
            break
    assert versions == KEYS
    assert store.calls - before == KEYS // PAGE + 1
    print(f"list_versions: {(store.calls - before) / KEYS:.3f} calls per listed version")

    # a delimiter listing of the folder: 10 sub-folders and 20 files, pages of 7
    before, entries, token = store.calls, [], None
    while True:
        page = await store.list_objects("big", prefix="dir/", delimiter="/", token=token, limit=7)
        assert len(page.objects) + len(page.common_prefixes) <= 7
        entries += page.common_prefixes + [o.key for o in page.objects]
        token = page.next_token
        if token is None:
            break
    assert sorted(entries) == sorted([f"dir/sub{i}/" for i in range(10)] + keys[-20:])
    print(f"delimiter listing: {store.calls - before} calls for {len(entries)} entries")
    assert len(entries) == len(set(entries))


async def test_a_crashed_writer_leaves_jobs_the_sweep_finishes_once(
    store: DynamoMetadataStore,
) -> None:
    await store.create_bucket(BucketRecord("b", "t1", 1.0))
    old = await complete_file(store, [(cid("a"), 10), (cid("b"), 20)])
    new = await complete_file(store, [(cid("a"), 10), (cid("c"), 5)])
    await store.put_object(NewObject("b", "k", old.file_id, 30), 2.0)

    # the overwrite's transaction commits, then the writer dies before running its jobs
    plan_obj = NewObject("b", "k", new.file_id, 15)
    original = store._run_jobs

    async def crash(jobs: object, now: float) -> None:
        raise RuntimeError("crash")

    store._run_jobs = crash  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await store.put_object(plan_obj, 3.0)
    store._run_jobs = original  # type: ignore[method-assign]
    assert (await store.get_object("b", "k")).file_id == new.file_id
    await store.get_file(old.file_id)  # not released yet

    pending = [
        job
        for shard in range(16)
        for job in await store._rq.run(store._ns_query, "namespace", f"jobs#{shard:02d}")
    ]
    assert len(pending) == 2
    assert await store.finish_namespace_jobs(4.0) == 2  # add new's chunks; drop + release old
    with pytest.raises(FileNotFound):
        await store.get_file(old.file_id)
    # running the same jobs again (a second sweeper) changes nothing
    for job in pending:
        await store._run_job(job, 5.0)
    assert await store.finish_namespace_jobs(6.0) == 0
    usage = await store.usage("t1")
    assert (usage.objects, usage.versions, usage.logical_bytes, usage.stored_bytes) == (
        1,
        1,
        15,
        15,
    )
    stats = await store.get_stats()
    assert (stats.total_files, stats.stored_bytes, stats.unique_chunks) == (1, 15, 2)


async def test_concurrent_puts_both_become_versions_when_enabled(
    store: DynamoMetadataStore,
) -> None:
    await store.create_bucket(BucketRecord("v", "t1", 1.0, versioning=VERSIONING_ENABLED))
    files = [await complete_file(store, [(cid(f"v{i}"), 10)]) for i in range(5)]
    puts = [store.put_object(NewObject("v", "k", f.file_id, 10), 2.0) for f in files]
    done = await asyncio.gather(*puts)
    listing = await store.list_versions("v")
    assert len(listing.objects) == 5
    assert sum(v.is_latest for v in listing.objects) == 1
    assert listing.objects[0].is_latest
    assert {v.version_id for v in listing.objects} == {r.version.version_id for r in done}
    usage = await store.usage("t1", "v")
    assert (usage.objects, usage.versions, usage.logical_bytes, usage.stored_bytes) == (
        1,
        5,
        50,
        50,
    )


async def test_concurrent_overwrites_release_each_replaced_file_once(
    store: DynamoMetadataStore,
) -> None:
    await store.create_bucket(BucketRecord("u", "t1", 1.0))
    files = [await complete_file(store, [(cid("shared"), 7), (cid(f"u{i}"), 10)]) for i in range(5)]
    done = await asyncio.gather(
        *(store.put_object(NewObject("u", "k", f.file_id, 17), 2.0) for f in files)
    )
    released = [r.released_file_id for r in done if r.released_file_id]
    assert len(released) == len(set(released)) == 4
    winner = (await store.get_object("u", "k")).file_id
    assert winner not in released
    stats = await store.get_stats()
    assert (stats.total_files, stats.stored_bytes, stats.unique_chunks) == (1, 17, 2)
    chunks = await store.get_chunks([cid("shared")])
    assert chunks[cid("shared")].refcount == 1
    usage = await store.usage("t1")
    assert (usage.objects, usage.versions, usage.logical_bytes, usage.stored_bytes) == (
        1,
        1,
        17,
        17,
    )


async def test_delete_racing_copies_leaves_exact_counts(store: DynamoMetadataStore) -> None:
    await store.create_bucket(BucketRecord("c", "t1", 1.0))
    f = await complete_file(store, [(cid("x"), 10), (cid("y"), 20)])
    await store.put_object(NewObject("c", "src", f.file_id, 30), 2.0)

    async def copy(i: int) -> ObjectVersion | None:
        try:
            dst = NewObject("c", f"dst{i}", "", 0)
            return (await store.copy_object("c", "src", None, dst, 3.0)).version
        except Exception:
            return None

    results = await asyncio.gather(
        *(copy(i) for i in range(4)), store.delete_object("c", "src", None, 3.0)
    )
    copies = [r for r in results[:4] if r is not None]
    linked = len(copies)
    stats = await store.get_stats()
    chunks = await store.get_chunks([cid("x"), cid("y")])
    usage = await store.usage("t1")
    if linked:
        assert stats.total_files == 1
        assert {c.refcount for c in chunks.values()} == {1}
        assert (usage.objects, usage.logical_bytes, usage.stored_bytes) == (linked, 30 * linked, 30)
    else:
        assert stats.total_files == 0
        assert all(c.refcount == 0 for c in chunks.values())
        assert (usage.objects, usage.stored_bytes) == (0, 0)


async def test_a_copy_into_another_tenant_gets_its_own_file(store: DynamoMetadataStore) -> None:
    await store.create_bucket(BucketRecord("mine", "t1", 1.0))
    await store.create_bucket(BucketRecord("theirs", "t2", 1.0))
    f = await complete_file(store, [(cid("p"), 10)])
    await store.put_object(NewObject("mine", "a", f.file_id, 10), 2.0)
    got = await store.copy_object("mine", "a", None, NewObject("theirs", "b", "", 0), 3.0)
    assert got.version.file_id != f.file_id
    assert (await store.get_file(got.version.file_id)).tenant == "t2"
    assert (await store.usage("t2")).stored_bytes == 10
    assert (await store.usage("t1")).stored_bytes == 10
    await store.delete_object("mine", "a", None, 4.0)
    assert (await store.usage("t2")).stored_bytes == 10
    assert (await store.get_chunks([cid("p")]))[cid("p")].refcount == 1
    assert dataclasses.replace(got.version).key == "b"


async def test_a_release_first_finishes_the_files_other_jobs(store: DynamoMetadataStore) -> None:
    """A job left behind still needs the file's manifest: the release runs it first."""
    for name in ("b1", "b2"):
        await store.create_bucket(BucketRecord(name, "t1", 1.0))
    f = await complete_file(store, [(cid("m"), 10), (cid("n"), 20)])
    for name in ("b1", "b2"):
        await store.put_object(NewObject(name, "k", f.file_id, 30), 2.0)
    original = store._run_jobs

    async def crash(jobs: object, now: float) -> None:
        raise RuntimeError("crash")

    store._run_jobs = crash  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await store.delete_object("b1", "k", None, 3.0)  # leaves "drop f from b1's chunks"
    store._run_jobs = original  # type: ignore[method-assign]
    assert (await store.usage("t1", "b1")).stored_bytes == 30

    await store.delete_object("b2", "k", None, 4.0)  # the last link: releases f
    with pytest.raises(FileNotFound):
        await store.get_file(f.file_id)
    assert await store.finish_namespace_jobs(5.0) == 0
    for scope in ("b1", "b2", None):
        usage = await store.usage("t1", scope)
        assert (usage.objects, usage.logical_bytes, usage.stored_bytes) == (0, 0, 0), scope
    stats = await store.get_stats()
    assert (stats.total_files, stats.stored_bytes) == (0, 0)


async def test_a_job_of_many_batches_marks_each_once_outside_the_job_item(
    store: DynamoMetadataStore,
) -> None:
    """A large file's job is many transactions. Each batch's done mark is an item of its
    own (on real DynamoDB, transactions that all wrote the job item cancelled each other);
    a replay of the job finds every mark and changes nothing, and a mark that an earlier
    version left on the job item (``d0``) still counts."""
    await store.create_bucket(BucketRecord("b", "t1", 1.0))
    chunks = [(cid(f"big{i}"), 100 + i) for i in range(150)]  # 4 batches of 48 for 2 scopes
    f = await complete_file(store, chunks)
    size = sum(n for _, n in chunks)
    original = store._run_jobs
    left: list[Any] = []

    async def keep(jobs: Any, now: float) -> None:
        left.extend(jobs)

    store._run_jobs = keep  # type: ignore[method-assign]
    await store.put_object(NewObject("b", "k", f.file_id, size), 2.0)
    store._run_jobs = original  # type: ignore[method-assign]
    [job] = left
    assert not any(a.startswith("d") and a[1:].isdigit() for a in job)

    # the first batch as an earlier version applied it: its mark on the job item
    first = refs_of(await store.get_manifest(f.file_id))[:48]  # the job's batch 0
    await store._rq.run(store._job_batch, job, 0, first, [("t:t1", 1), ("b:b", 1)], True)
    job_then = {**job, "d0": {"N": "1"}}
    marks = await store._rq.run(store._ns_query, "namespace", f"jobdone#{job['s']['S']}")
    mark0 = {"p": marks[0]["p"], "s": marks[0]["s"]}
    table = store.tables["namespace"]
    await store._rq.run(lambda: store._rq.call("delete_item", TableName=table, Key=mark0))
    written: list[tuple[str, str]] = []
    transact = store._rq.transact

    def recording(actions: list[Any], token: str | None = None) -> None:
        for a in actions:
            body = next(iter(a.values()))
            key = body.get("Key") or {k: body["Item"][k] for k in ("p", "s")}
            written.append((key["p"]["S"], key["s"]["S"]))
        transact(actions, token)

    store._rq.transact = recording  # type: ignore[method-assign]
    await store._run_job(job_then, 3.0)  # batch 0 is skipped: d0 says it is applied
    store._rq.transact = transact  # type: ignore[method-assign]
    # no batch's transaction writes the job item (concurrent ones would cancel each other)
    assert written
    assert (job["p"]["S"], job["s"]["S"]) not in written
    # and batches in flight together move different usage rows of a scope
    rows = [s for p, s in written if p == nc.usage_partition("b:b")]
    assert len(rows) == 3 == len(set(rows))
    for scope in ("b", None):
        assert (await store.usage("t1", scope)).stored_bytes == size, scope
    marks = await store._rq.run(store._ns_query, "namespace", f"jobdone#{job['s']['S']}")
    assert [m["s"]["S"] for m in marks] == ["00000000", "00000001", "00000002", "00000003"]
    # they expire a week after their job was finished, not after they were written
    assert all(int(m["expires"]["N"]) == int(3.0 + JOB_MARK_TTL) for m in marks)

    await store._run_job(job_then, 4.0)  # a runner that read the job before it finished
    for scope in ("b", None):
        assert (await store.usage("t1", scope)).stored_bytes == size, scope
    await store.delete_object("b", "k", None, 5.0)  # releases f: 4 batches again
    for scope in ("b", None):
        assert (await store.usage("t1", scope)).stored_bytes == 0, scope
    with pytest.raises(FileNotFound):
        await store.get_file(f.file_id)


async def test_a_pending_jobs_marks_do_not_expire_before_it_is_finished(
    store: DynamoMetadataStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job left half done (a batch kept losing races, a crashed writer) may stay pending
    longer than a mark's TTL: its marks get their ``expires`` only once it is finished."""
    await store.create_bucket(BucketRecord("b", "t1", 1.0))
    chunks = [(cid(f"half{i}"), 200 + i) for i in range(150)]  # 4 batches
    f = await complete_file(store, chunks)
    size = sum(n for _, n in chunks)
    real = store._job_batch

    def failing(job: Any, no: int, refs: Any, ops: Any, apart: bool) -> None:
        if no == 3:
            raise Unavailable("stored-bytes accounting kept losing races; try again")
        if no == 0:
            time.sleep(0.3)  # a slow transaction, still running when batch 3 fails
        real(job, no, refs, ops, apart)

    monkeypatch.setattr(store, "_job_batch", failing)
    with pytest.raises(Unavailable):
        await store.put_object(NewObject("b", "k", f.file_id, size), 2.0)
    [job] = [
        j
        for shard in range(nc.JOB_SHARDS)
        for j in await store._rq.run(store._ns_query, "namespace", f"jobs#{shard:02d}")
    ]

    async def marks() -> list[dict[str, Any]]:
        got = await store._rq.run(store._ns_query, "namespace", f"jobdone#{job['s']['S']}")
        return list(got)

    assert len(await marks()) == 3  # the run ended with its other batches
    assert not any("expires" in m for m in await marks())  # kept while the job is pending

    monkeypatch.setattr(store, "_job_batch", real)
    assert await store.finish_namespace_jobs(9 * 86400.0) == 1  # the sweep, days later
    done = await marks()
    assert len(done) == 4
    assert {int(m["expires"]["N"]) for m in done} == {int(9 * 86400.0 + JOB_MARK_TTL)}
    for scope in ("b", None):
        assert (await store.usage("t1", scope)).stored_bytes == size, scope
    await store.delete_object("b", "k", None, 9 * 86400.0 + 1)
    for scope in ("b", None):
        assert (await store.usage("t1", scope)).stored_bytes == 0, scope


async def test_a_failing_job_does_not_hold_back_the_sweep(
    store: DynamoMetadataStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.create_bucket(BucketRecord("b", "t1", 1.0))
    stuck = await complete_file(store, [(cid("stuck"), 10)])
    fine = await complete_file(store, [(cid("fine"), 20)])

    async def crash(jobs: object, now: float) -> None:
        raise RuntimeError("crash")

    original = store._run_jobs
    store._run_jobs = crash  # type: ignore[method-assign]
    for key, f in (("a", stuck), ("b", fine)):
        with pytest.raises(RuntimeError):
            await store.put_object(NewObject("b", key, f.file_id, f.size), 2.0)
    store._run_jobs = original  # type: ignore[method-assign]
    real = store._job_batch

    def failing(job: Any, no: int, refs: Any, ops: Any, apart: bool) -> None:
        if job["fid"]["S"] == stuck.file_id:
            raise Unavailable("stored-bytes accounting kept losing races; try again")
        real(job, no, refs, ops, apart)

    monkeypatch.setattr(store, "_job_batch", failing)
    assert await store.finish_namespace_jobs(3.0) == 1  # the other job finished anyway
    assert (await store.usage("t1", "b")).stored_bytes == 20
    monkeypatch.setattr(store, "_job_batch", real)
    assert await store.finish_namespace_jobs(4.0) == 1  # and the stuck one on the next
    assert (await store.usage("t1", "b")).stored_bytes == 30


def _as_written_before(item: dict[str, Any]) -> dict[str, Any]:
    """A version item as the store wrote it before defaults were left out and ids packed:
    every attribute, ids as text, the key as ``k``, a head item's ``lsk``."""
    v = nc.version_record("old", item, True)
    old = {a: val for a, val in item.items() if a not in ("fid", "sha", "et", "um", "tg", "sw")}
    pairs = [[a, b] for a, b in v.user_metadata], [[a, b] for a, b in v.tags]
    return {
        **old,
        "fid": S(v.file_id),
        "sha": S(v.sha256),
        "et": S(v.etag),
        "um": S(json.dumps(pairs[0])),
        "tg": S(json.dumps(pairs[1])),
        "ac": S(v.access),
        "sw": S(json.dumps(list(v.shared_with))),
        "k": S(v.key),
        "vid": S(v.version_id),
        **({"lsk": S(v.version_id)} if item["p"]["S"].startswith("head#") else {}),
    }


async def test_version_items_written_before_packing_read_the_same(
    store: DynamoMetadataStore,
) -> None:
    """Version, head and listed items with every attribute and ids as text (the layout
    before) read back as the compact ones did, and later writes over them keep exact
    counts."""
    await store.create_bucket(BucketRecord("old", "t1", 1.0, versioning=VERSIONING_ENABLED))
    rec = await complete_file(store, [(cid("old1"), 10)])
    first = await store.put_object(
        NewObject("old", "a/k", rec.file_id, 0, "etag-1", rec.sha256, "text/plain", (("m", "1"),)),
        2.0,
    )
    await store.put_object(
        NewObject("old", "a/k", rec.file_id, 0, rec.sha256, rec.sha256, tags=(("t", "v"),)), 3.0
    )
    await store.put_object(NewObject("old", "b", "", 0, access="public-read"), 4.0)
    compact = [
        await store.get_object("old", "a/k", first.version.version_id),
        await store.get_object("old", "a/k"),
        *(await store.list_versions("old")).objects,
        *(await store.list_objects("old")).objects,
    ]
    table = store.tables["objects"]
    items = list(store._rq.paginate("scan", TableName=table))
    versions = [i for i in items if "sz" in i]
    assert any("B" in i["fid"] for i in versions if "fid" in i)  # packed ids were written
    for item in versions:
        store._rq.call("put_item", TableName=table, Item=_as_written_before(item))
    again = [
        await store.get_object("old", "a/k", first.version.version_id),
        await store.get_object("old", "a/k"),
        *(await store.list_versions("old")).objects,
        *(await store.list_objects("old")).objects,
    ]
    assert again == compact
    assert again[0].user_metadata == (("m", "1"),)
    assert again[0].etag == "etag-1"
    assert again[1].etag == rec.sha256
    assert again[1].tags == (("t", "v"),)
    await store.update_object("old", "a/k", None, tags=[("t", "w")])
    assert (await store.get_object("old", "a/k")).tags == (("t", "w"),)
    for v in (await store.list_versions("old")).objects:
        await store.delete_object("old", v.key, v.version_id, 5.0)
    await store.finish_namespace_jobs(6.0)
    usage = await store.usage("t1", "old")
    assert (usage.objects, usage.versions, usage.stored_bytes) == (0, 0, 0)
