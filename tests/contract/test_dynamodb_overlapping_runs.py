"""Overlapping runs of one big file's delete or commit on DynamoDB, interleaved
deterministically through two store objects on the same tables (two API processes).

A file of more than ``CHUNKS_PER_TX`` distinct chunks is deleted (and committed) batch by
batch, each batch made exactly-once by its marker item. The runner that finishes deletes
the file item and then the markers, so a second runner (a client's retried DELETE, GC's
sweep of stale uploads beside a slow writer) that had read the file before must count
nothing: a chunk shared with another file must keep that file's reference.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from dfs.errors import FileNotFound
from dfs.meta import open_metadata_store
from dfs.meta.base import FILE_COMPLETE
from dfs.meta.dynamo import DynamoMetadataStore, codec
from dfs.meta.dynamo.store_refcounts import CHUNKS_PER_TX
from tests.contract.test_dynamodb_store import ENV
from tests.contract.test_metadata_store import cid, new_file

WAIT = 20.0  # seconds: the deadline of every wait on the other runner


@pytest.fixture
async def pair(moto_endpoint: str) -> AsyncIterator[tuple[DynamoMetadataStore, ...]]:
    url = f"dynamodb://?endpoint_url={moto_endpoint}&table_prefix=t{uuid.uuid4().hex[:12]}-"
    env = {**os.environ, **ENV}
    first = await open_metadata_store(url + "&create_tables=1", env)
    second = await open_metadata_store(url, env)
    assert isinstance(first, DynamoMetadataStore)
    assert isinstance(second, DynamoMetadataStore)
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


def _content(tag: str) -> list[tuple[str, int]]:
    return [(cid((tag, i)), 10) for i in range(CHUNKS_PER_TX + 12)]  # two batches


def _waiting(event: threading.Event) -> None:
    assert event.wait(WAIT), "the other runner did not get there in time"


def _hook_after(store: Any, name: str, event: threading.Event) -> None:
    """``store.name`` (a worker-thread method) sets ``event`` once it has returned."""
    real: Callable[..., Any] = getattr(store, name)

    def hooked(*args: Any) -> Any:
        out = real(*args)
        event.set()
        return out

    setattr(store, name, hooked)


async def _refcounts(store: DynamoMetadataStore, content: list[tuple[str, int]]) -> set[int]:
    chunks = await store.get_chunks([c for c, _ in content])
    return {c.refcount for c in chunks.values()}


async def test_a_second_delete_that_read_the_file_deleting_drops_nothing(
    pair: tuple[DynamoMetadataStore, DynamoMetadataStore],
) -> None:
    """The second runner reads the file (deleting) and its manifest, then the first runner
    finishes the whole delete (file item, then markers) before the second applies a batch."""
    s1, s2 = pair
    content = _content("twice")
    keep, mk = new_file("keep", content)
    gone, mg = new_file("gone", content)
    for rec, m in ((keep, mk), (gone, mg)):
        await s1.create_file(rec, m)
        await s1.commit_file(rec.file_id, 2.0)
    assert await _refcounts(s1, content) == {2}

    claimed, second_read = threading.Event(), threading.Event()
    _hook_after(s1, "_claim_delete", claimed)
    real_batch = s1._unref_batch

    def batch_after_second_read(*args: Any) -> None:
        _waiting(second_read)
        real_batch(*args)

    s1._unref_batch = batch_after_second_read  # type: ignore[method-assign]
    first = asyncio.create_task(s1.delete_file(gone.file_id, "t1", 3.0))
    await asyncio.to_thread(_waiting, claimed)

    real_manifest = s2._manifest_of

    async def manifest_then_wait(item: Any) -> Any:
        got = await real_manifest(item)
        second_read.set()
        await asyncio.wait_for(asyncio.shield(first), WAIT)  # the first one finishes
        return got

    s2._manifest_of = manifest_then_wait  # type: ignore[method-assign]
    with pytest.raises(FileNotFound):
        await s2.delete_file(gone.file_id, "t1", 3.0)
    assert (await first).file_id == gone.file_id

    assert await _refcounts(s1, content) == {1}  # "keep"'s reference, once each
    assert (await s1.get_file(keep.file_id)).state == FILE_COMPLETE
    stats = await s1.get_stats()
    assert (stats.total_files, stats.unique_chunks, stats.stored_bytes) == (1, len(content), 600)
    assert await s1.owned_chunks("t1", [c for c, _ in content]) == {c for c, _ in content}


async def test_the_loser_of_the_claim_stops(
    pair: tuple[DynamoMetadataStore, DynamoMetadataStore],
) -> None:
    """Both runners read the file complete; the second's claim finds it claimed by the
    first and stops there (no batch of its own), and the first deletes the file."""
    s1, s2 = pair
    content = _content("claim")
    keep, mk = new_file("keep", content)
    gone, mg = new_file("gone", content)
    for rec, m in ((keep, mk), (gone, mg)):
        await s1.create_file(rec, m)
        await s1.commit_file(rec.file_id, 2.0)

    second_read, claimed = threading.Event(), threading.Event()
    real_first_claim = s1._claim_delete

    def claim_after_second_read(rec: Any) -> None:
        _waiting(second_read)
        real_first_claim(rec)
        claimed.set()

    s1._claim_delete = claim_after_second_read  # type: ignore[method-assign]
    real_manifest = s2._manifest_of

    async def manifest_then_go_on(item: Any) -> Any:
        got = await real_manifest(item)
        assert item["state"]["S"] == FILE_COMPLETE
        second_read.set()
        return got

    s2._manifest_of = manifest_then_go_on  # type: ignore[method-assign]
    real_claim = s2._claim_delete

    def claim_after_first(rec: Any) -> None:
        _waiting(claimed)
        real_claim(rec)

    s2._claim_delete = claim_after_first  # type: ignore[method-assign]
    second_batches: list[int] = []
    s2._unref_batch = lambda *a: second_batches.append(a[2])  # type: ignore[method-assign]
    first = asyncio.create_task(s1.delete_file(gone.file_id, "t1", 3.0))
    with pytest.raises(FileNotFound):
        await s2.delete_file(gone.file_id, "t1", 3.0)
    await first
    assert second_batches == []
    assert await _refcounts(s1, content) == {1}
    with pytest.raises(FileNotFound):
        await s1.get_file(gone.file_id)


async def test_a_commit_runner_that_read_the_file_committing_counts_nothing_after_its_delete(
    pair: tuple[DynamoMetadataStore, DynamoMetadataStore],
) -> None:
    """The second commit runner read the file committing; the first completes it and the
    file is deleted (markers gone) before the second applies its batches: they count
    nothing, so no chunk keeps a reference of a deleted file."""
    s1, s2 = pair
    content = _content("commit")
    rec, manifest = new_file("c", content)
    await s1.create_file(rec, manifest)
    assert await s1._rq.run(s1._claim, rec.file_id) == codec.FILE_COMMITTING
    real_manifest = s2._manifest_of
    read, go = asyncio.Event(), asyncio.Event()

    async def manifest_then_wait(item: Any) -> Any:
        got = await real_manifest(item)
        read.set()
        await asyncio.wait_for(go.wait(), WAIT)
        return got

    s2._manifest_of = manifest_then_wait  # type: ignore[method-assign]
    second = asyncio.create_task(s2.commit_file(rec.file_id, 3.0))
    await asyncio.wait_for(read.wait(), WAIT)
    assert (await s1.commit_file(rec.file_id, 3.0)).state == FILE_COMPLETE
    await s1.delete_file(rec.file_id, "t1", 4.0)
    go.set()
    with pytest.raises(FileNotFound):
        await second
    assert await _refcounts(s1, content) == {0}
    stats = await s1.get_stats()
    assert (stats.total_files, stats.unique_chunks, stats.stored_bytes) == (0, 0, 0)
