"""Garbage collection racing a commit on DynamoDB, interleaved deterministically.

GC deletes a chunk whose refcount is 0 past the grace (``delete_chunk_if_unreferenced``)
and then has the nodes delete their copies. A commit that takes a reference to that chunk
must not land over the deleted item: the caller checked the copies before (finalize's
has-chunks round, recorded copies it does not send again), so a commit that recreated the
item would leave a complete file pointing at a chunk with no copy recorded, whose copies
GC is deleting. The commit is refused instead (IncompleteUpload naming the chunk, nothing
committed), and a re-send, whose copies ``add_locations`` records, lets it through.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import aiohttp
import pytest

import dfs.meta.dynamo.store_chunks as store_chunks
from dfs.api import paged_uploads
from dfs.api.coordinator import Coordinator
from dfs.config import ApiConfig
from dfs.errors import FileNotFound, IncompleteUpload, KeyNotFound
from dfs.meta.base import (
    FILE_COMPLETE,
    FILE_PENDING,
    FileRecord,
    Location,
    ManifestEntry,
    MetadataStore,
)
from dfs.meta.dynamo import DynamoMetadataStore
from dfs.meta.dynamo.store_refcounts import CHUNKS_PER_TX
from dfs.meta.namespace import BucketRecord, NewObject
from dfs.transport.node_client import NodeClient
from tests.contract.test_metadata_store import cid, new_file

X = cid("gc-race")
CUTOFF = 10.0  # GC's cutoff (now - grace): every chunk made at 1.0 is past it


@pytest.fixture
def store(dynamo_store: DynamoMetadataStore) -> DynamoMetadataStore:
    return dynamo_store  # conftest.py's: a store on moto, tables of its own


async def _unreferenced(store: MetadataStore, chunks: Iterable[str], node: str = "n1") -> None:
    """Chunks with a copy on ``node`` and no reference since 1.0: GC may collect them."""
    await store.add_locations([Location(c, node, 3) for c in chunks], 1.0)


async def _pending(store: MetadataStore, chunks: Sequence[str]) -> FileRecord:
    rec, manifest = new_file("up", [(c, 3) for c in chunks])
    await store.create_file(rec, manifest)
    return rec


async def _assert_refused(store: MetadataStore, rec: FileRecord, exc: IncompleteUpload) -> None:
    """The commit named X missing and left the file pending, X uncollected, nothing counted."""
    assert exc.details["missing"] == [X]
    assert (await store.get_file(rec.file_id)).state == FILE_PENDING
    assert await store.get_chunks([X]) == {}
    assert (await store.get_locations([X]))[X] == set()
    stats = await store.get_stats()
    assert (stats.total_files, stats.unique_chunks, stats.stored_bytes) == (0, 0, 0)
    assert X not in await store.owned_chunks("t1", [X], ever=True)


async def test_a_commit_after_gc_collected_a_chunk_it_saw_is_refused(
    store: DynamoMetadataStore,
) -> None:
    """finalize saw X's copy recorded (so it sends no new location), GC collects X and
    tells n1 to delete it, then the commit runs."""
    await _unreferenced(store, [X])
    rec = await _pending(store, [X])
    assert (await store.get_locations([X]))[X] == {"n1"}  # what finalize relied on
    assert await store.delete_chunk_if_unreferenced(X, CUTOFF) == {"n1"}
    with pytest.raises(IncompleteUpload) as exc:
        await store.commit_file(rec.file_id, 11.0)
    await _assert_refused(store, rec, exc.value)


async def test_gc_between_the_commits_read_and_its_write(
    store: DynamoMetadataStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commit reads X (refcount 0, so it expects to be the first referencer), GC
    collects X, then the commit's transaction runs."""
    await _unreferenced(store, [X])
    rec = await _pending(store, [X])
    loop = asyncio.get_running_loop()
    transact = store._rq.transact
    collected: list[set[str] | None] = []

    def gc_first(actions: list[dict[str, Any]], token: str | None = None) -> None:
        if not collected:  # on the commit's worker thread: GC runs on the loop meanwhile
            gc = store.delete_chunk_if_unreferenced(X, CUTOFF)
            collected.append(asyncio.run_coroutine_threadsafe(gc, loop).result())
        transact(actions, token)

    monkeypatch.setattr(store._rq, "transact", gc_first)
    with pytest.raises(IncompleteUpload) as exc:
        await store.commit_file(rec.file_id, 11.0)
    assert collected == [{"n1"}]
    await _assert_refused(store, rec, exc.value)


async def test_gc_between_add_locations_and_the_commit(
    store: DynamoMetadataStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """commit_files records the copy finalize found on n2, GC collects X (its row is old
    and unreferenced, recording a copy does not make it young), then the files commit."""
    await _unreferenced(store, [X])
    rec = await _pending(store, [X])
    add_locations = store.add_locations
    collected: list[set[str] | None] = []

    async def then_gc(locations: Iterable[Location], now: float) -> None:
        await add_locations(locations, now)
        collected.append(await store.delete_chunk_if_unreferenced(X, CUTOFF))

    monkeypatch.setattr(store, "add_locations", then_gc)
    with pytest.raises(IncompleteUpload) as exc:
        await store.commit_files([rec.file_id], 11.0, locations=[Location(X, "n2", 3)])
    assert collected == [{"n1", "n2"}]
    await _assert_refused(store, rec, exc.value)


async def test_a_resend_after_gc_records_the_chunk_anew(store: DynamoMetadataStore) -> None:
    """The client sends X again: finalize finds the copy, ``add_locations`` records it on a
    new item (its grace counts from now) and the commit goes through; GC then leaves it."""
    await _unreferenced(store, [X])
    rec = await _pending(store, [X])
    assert await store.delete_chunk_if_unreferenced(X, CUTOFF) == {"n1"}
    with pytest.raises(IncompleteUpload):
        await store.commit_file(rec.file_id, 11.0)
    (done,) = await store.commit_files([rec.file_id], 12.0, locations=[Location(X, "n3", 3)])
    assert done is not None
    assert done.state == FILE_COMPLETE
    assert (await store.get_locations([X]))[X] == {"n3"}
    chunk = (await store.get_chunks([X]))[X]
    assert (chunk.refcount, chunk.size, chunk.created_at) == (1, 3, 12.0)
    assert await store.delete_chunk_if_unreferenced(X, 100.0) is None  # referenced
    stats = await store.get_stats()
    assert (stats.total_files, stats.unique_chunks, stats.stored_bytes) == (1, 1, 3)
    await store.delete_file(rec.file_id, "t1", 13.0)
    assert await store.delete_chunk_if_unreferenced(X, 12.5) is None  # unreferenced at 13.0
    assert await store.delete_chunk_if_unreferenced(X, 14.0) == {"n3"}


async def test_create_and_commit_files_refuses_a_collected_chunk(
    store: DynamoMetadataStore,
) -> None:
    await _unreferenced(store, [X])
    assert await store.delete_chunk_if_unreferenced(X, CUTOFF) == {"n1"}
    rec, manifest = new_file("held", [(X, 3)])
    with pytest.raises(IncompleteUpload) as exc:
        await store.create_and_commit_files([(rec, manifest)], 11.0)
    assert exc.value.details["missing"] == [X]
    with pytest.raises(FileNotFound):
        await store.get_file(rec.file_id)
    assert await store.get_chunks([X]) == {}


async def test_a_put_object_refuses_a_collected_chunk(store: DynamoMetadataStore) -> None:
    """The namespace's one-transaction create (PutObject, a copy into another tenant)."""
    await store.create_bucket(BucketRecord("gcb", "t1", created_at=1.0))
    await _unreferenced(store, [X])
    assert await store.delete_chunk_if_unreferenced(X, CUTOFF) == {"n1"}
    rec, manifest = new_file("obj", [(X, 3)])
    obj = NewObject("gcb", "k", rec.file_id, rec.size)
    with pytest.raises(IncompleteUpload) as exc:
        await store.create_and_put_object(rec, manifest, [], obj, 11.0)
    assert exc.value.details["missing"] == [X]
    with pytest.raises(KeyNotFound):
        await store.get_object("gcb", "k")
    with pytest.raises(FileNotFound):
        await store.get_file(rec.file_id)
    assert await store.get_chunks([X]) == {}


async def test_a_big_commit_stops_at_a_collected_chunk_and_resumes(
    store: DynamoMetadataStore,
) -> None:
    """A file committed in batches: the batch holding the collected chunk is refused and
    the file stays pending (committing); once the chunk is sent again, the commit resumes
    and counts every chunk once."""
    chunks = [cid(("big", i)) for i in range(CHUNKS_PER_TX + 2)]
    last = chunks[-1]
    await _unreferenced(store, chunks)
    rec = await _pending(store, chunks)
    assert await store.delete_chunk_if_unreferenced(last, CUTOFF) == {"n1"}
    with pytest.raises(IncompleteUpload) as exc:
        await store.commit_file(rec.file_id, 11.0)
    assert exc.value.details["missing"] == [last]
    assert (await store.get_file(rec.file_id)).state == FILE_PENDING
    assert await store.get_chunks([last]) == {}
    await store.add_locations([Location(last, "n2", 3)], 12.0)
    assert (await store.commit_file(rec.file_id, 13.0)).state == FILE_COMPLETE
    got = await store.get_chunks(chunks)
    assert len(got) == len(chunks)
    assert {c.refcount for c in got.values()} == {1}
    stats = await store.get_stats()
    assert (stats.total_files, stats.unique_chunks) == (1, len(chunks))
    assert stats.stored_bytes == 3 * len(chunks)


async def test_gc_still_deletes_a_big_commit_left_at_a_collected_chunk(
    store: DynamoMetadataStore,
) -> None:
    """Nobody comes back for it: GC's sweep of stale uploads finishes the commit (the
    collected chunk counted on a new item with no copy) and deletes the file, every
    reference taken back, instead of failing every pass."""
    chunks = [cid(("stale", i)) for i in range(CHUNKS_PER_TX + 2)]
    await _unreferenced(store, chunks)
    rec = await _pending(store, chunks)
    assert await store.delete_chunk_if_unreferenced(chunks[0], CUTOFF) == {"n1"}
    with pytest.raises(IncompleteUpload):
        await store.commit_file(rec.file_id, 11.0)
    assert await store.delete_pending_file(rec.file_id, 20.0, 30.0)
    with pytest.raises(FileNotFound):
        await store.get_file(rec.file_id)
    got = await store.get_chunks(chunks)
    assert len(got) == len(chunks)  # the collected one on a new item, unreferenced again
    assert {c.refcount for c in got.values()} == {0}
    stats = await store.get_stats()
    assert (stats.total_files, stats.unique_chunks, stats.stored_bytes) == (0, 0, 0)


async def test_collected_chunks_stay_invisible_and_go_after_a_while(
    store: DynamoMetadataStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What GC leaves of a collected chunk is seen by no read (not scan_chunks, not
    get_chunks, not get_locations), and a scan past ``TOMBSTONE_TTL`` removes it."""
    keep = cid("gc-kept")
    await _unreferenced(store, [X, keep])
    assert await store.delete_chunk_if_unreferenced(X, CUTOFF) == {"n1"}
    assert [c.chunk_id for c in await store.scan_chunks(limit=10)] == [keep]
    assert [c.chunk_id for c in await store.scan_chunks(limit=1)] == [keep]
    assert set(await store.get_chunks([X, keep])) == {keep}
    assert await store.delete_chunk_if_unreferenced(X, CUTOFF) is None  # gone already

    def raw() -> dict[str, Any]:
        table = store.tables["chunks"]
        return dict(store._rq.call("get_item", TableName=table, Key={"chunk_id": {"S": X}}))

    assert "Item" in await store._rq.run(raw)  # kept while a commit may still race GC
    # kept a day, or the grace (now - cutoff: this test's cutoff is decades ago) if longer
    later = store_chunks.wall_clock() + 2 * (store_chunks.wall_clock() - CUTOFF)
    monkeypatch.setattr(store_chunks, "wall_clock", lambda: later)
    assert [c.chunk_id for c in await store.scan_chunks(limit=10)] == [keep]
    assert "Item" not in await store._rq.run(raw)


async def test_both_backends_refuse_a_commit_over_a_collected_chunk(meta: MetadataStore) -> None:
    """The same contract on every backend (``MetadataStore``, delete_chunk_if_unreferenced)."""
    await _unreferenced(meta, [X])
    rec = await _pending(meta, [X])
    assert await meta.delete_chunk_if_unreferenced(X, CUTOFF) == {"n1"}
    with pytest.raises(IncompleteUpload) as exc:
        await meta.commit_file(rec.file_id, 11.0)
    await _assert_refused(meta, rec, exc.value)


def _older_api_writes(store: DynamoMetadataStore, chunk_id: str) -> None:
    """What an API process older than tombstones writes for an upload that re-sent a chunk
    (its copy, then its first reference): expressions that know nothing of ``gone``, as a
    rolling upgrade runs them beside new processes."""
    table, key = store.tables["chunks"], {"chunk_id": {"S": chunk_id}}
    names = {"#size": "size", "#created_at": "created_at", "#refcount": "refcount"}
    store._rq.call(
        "update_item",
        TableName=table,
        Key=key,
        UpdateExpression="SET #size = if_not_exists(#size, :s), "
        "#created_at = if_not_exists(#created_at, :t), "
        "#refcount = if_not_exists(#refcount, :zero) ADD #nodes :ns",
        ExpressionAttributeNames={**names, "#nodes": "nodes"},
        ExpressionAttributeValues={
            ":s": {"N": "3"},
            ":t": {"N": "20"},
            ":zero": {"N": "0"},
            ":ns": {"SS": ["n2"]},
        },
    )
    store._rq.call(
        "update_item",
        TableName=table,
        Key=key,
        UpdateExpression="SET #refcount = :c, #size = if_not_exists(#size, :s), "
        "#created_at = if_not_exists(#created_at, :t)",
        ConditionExpression="attribute_not_exists(#refcount) OR #refcount = :zero",
        ExpressionAttributeNames=names,
        ExpressionAttributeValues={
            ":c": {"N": "1"},
            ":s": {"N": "3"},
            ":t": {"N": "21"},
            ":zero": {"N": "0"},
        },
    )


async def test_a_tombstone_an_older_process_wrote_a_chunk_over_is_a_chunk(
    store: DynamoMetadataStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """During a rolling upgrade an older API process records a copy and a reference on a
    tombstone (its writes leave ``gone`` in place): the item is a referenced chunk, seen by
    every read, committed on, and never dropped as a tombstone (it was: hidden, refused,
    then deleted a day later with its reference)."""
    await _unreferenced(store, [X])
    assert await store.delete_chunk_if_unreferenced(X, CUTOFF) == {"n1"}
    await store._rq.run(_older_api_writes, store, X)
    assert (await store.get_chunks([X]))[X].refcount == 1
    assert X in {c.chunk_id for c in await store.scan_chunks(limit=10)}
    assert (await store.get_locations([X]))[X] == {"n2"}
    rec = await _pending(store, [X])
    assert (await store.commit_file(rec.file_id, 22.0)).state == FILE_COMPLETE
    later = store_chunks.wall_clock() + 2 * (store_chunks.wall_clock() - CUTOFF)
    monkeypatch.setattr(store_chunks, "wall_clock", lambda: later)
    await store.scan_chunks(limit=10)  # a scan that drops old tombstones keeps it
    assert (await store.get_chunks([X]))[X].refcount == 2
    assert (await store.get_locations([X]))[X] == {"n2"}


async def test_a_paged_finish_refused_over_a_collected_chunk_finishes_later(
    store: DynamoMetadataStore,
) -> None:
    """A paged file's finish seals it, then its commit (big: several transactions, the file
    ``committing`` meanwhile) is refused over a chunk GC took and whose copies no live node
    holds. Once the chunk's copies are recorded again, the next finish commits it (before,
    it sealed again, and a file no longer pending was refused for ever)."""
    chunks = [cid(("paged", i)) for i in range(CHUNKS_PER_TX + 2)]
    await store.add_locations([Location(c, n, 3) for c in chunks for n in ("n1", "n2")], 1.0)
    rec = FileRecord(
        file_id=str(uuid.uuid4()),
        name="paged",
        size=0,
        sha256="",
        chunker="fastcdc-v1",
        tenant="t1",
        created_at=40.0,
    )
    await store.create_file(rec, [])
    entries = [ManifestEntry(3 * i, 3, c) for i, c in enumerate(chunks)]
    await store.append_manifest_page(rec.file_id, 0, entries)
    await store.mark_page_proven(rec.file_id, 0)
    assert await store.delete_chunk_if_unreferenced(chunks[-1], CUTOFF) == {"n1", "n2"}
    cfg = ApiConfig(cluster_secret=b"s" * 32, replication_factor=2)
    async with aiohttp.ClientSession() as session:
        coord = Coordinator(cfg, store, NodeClient(session), clock=lambda: 50.0)
        size, sha256 = 3 * len(chunks), "ab" * 32
        with pytest.raises(IncompleteUpload):  # no live node holds the collected chunk
            await paged_uploads.finish(coord, rec.file_id, size, sha256, "t1")
        await store.add_locations([Location(chunks[-1], n, 3) for n in ("n1", "n2")], 51.0)
        body = await paged_uploads.finish(coord, rec.file_id, size, sha256, "t1")
    assert body["state"] == "complete"
    assert (await store.get_chunks(chunks[-1:]))[chunks[-1]].refcount == 1
