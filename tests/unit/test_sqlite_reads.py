"""``SqliteMetadataStore``'s reads (``dfs.meta.sqlite_reads``): short ones on the event loop's
thread see what the worker thread committed just before (read-your-writes) and take no hop
to a thread, going off the loop when its connection finds the database busy; no read waits
long behind a write that waits for another process's write lock."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dfs.errors import BucketNotFound, FileNotFound
from dfs.ids import new_file_id
from dfs.meta.namespace import VERSIONING_ENABLED, BucketRecord
from dfs.meta.sqlite import LOOP_READ_MAX_IDS, SqliteMetadataStore
from dfs.meta.sqlite_reads import LoopReads


def on_threads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the threads the loop's reads run on, as they run."""
    seen: list[str] = []
    real = LoopReads.run

    def run(self: LoopReads, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        seen.append(threading.current_thread().name)
        return real(self, fn)

    monkeypatch.setattr(LoopReads, "run", run)
    return seen


async def test_a_read_on_the_loop_sees_the_write_just_committed(
    meta: SqliteMetadataStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = on_threads(monkeypatch)
    with pytest.raises(BucketNotFound):
        await meta.get_bucket("b")
    await meta.create_bucket(BucketRecord("b", "acme", 1.0))
    assert (await meta.get_bucket("b")).tenant == "acme"
    await meta.update_bucket("b", "acme", versioning=VERSIONING_ENABLED)
    b, v = await meta.get_bucket_and_object("b", "k")
    assert (b.versioning, v) == (VERSIONING_ENABLED, None)
    assert await meta.owned_chunks("acme", ["ab" * 32]) == set()
    assert await meta.find_file_by_sha256("acme", "ab" * 32) is None
    assert await meta.get_locations(["ab" * 32]) == {"ab" * 32: set()}
    with pytest.raises(FileNotFound):
        await meta.get_file(new_file_id(), "acme")
    assert seen == [threading.current_thread().name] * 7  # the loop's thread, no hop
    many = [f"{i:064x}" for i in range(LOOP_READ_MAX_IDS + 1)]
    await meta.owned_chunks("acme", many)
    await meta.get_locations(many)
    assert len(seen) == 7  # many ids: off the loop, which must not stall


async def test_a_busy_database_sends_the_read_off_the_loop(
    meta: SqliteMetadataStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await meta.create_bucket(BucketRecord("b", "acme", 1.0))

    def busy(self: LoopReads, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(LoopReads, "run", busy)
    calls = meta.calls
    assert (await meta.get_bucket("b")).tenant == "acme"
    assert meta.calls == calls + 1  # read once, off the loop


async def test_reads_do_not_wait_behind_a_write_waiting_for_another_process(
    meta: SqliteMetadataStore, tmp_path: Path
) -> None:
    """Another process holds the write lock (a gateway stopped inside its transaction): this
    store's writes wait for it, for up to the busy timeout each, and its reads, queued on the
    worker behind such a write, are taken over by the reader threads after ``WORKER_HELD``."""
    await meta.create_bucket(BucketRecord("b", "acme", 1.0))
    other = sqlite3.connect(tmp_path / "meta.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # the other process's write lock, held
    try:
        write = asyncio.create_task(meta.create_bucket(BucketRecord("late", "acme", 2.0)))
        await asyncio.sleep(0)  # the write is on the worker now, waiting for the lock
        reads = asyncio.gather(
            meta.list_buckets("acme"),
            meta.list_files("acme", limit=10),
            meta.get_token("0" * 64),
            meta.list_live_nodes(0.0),
            meta.get_files([new_file_id()], "acme"),
        )
        buckets, files, token, nodes, records = await asyncio.wait_for(reads, timeout=10)
        assert [b.name for b in buckets] == ["b"]
        assert (files, token, nodes, records) == ([], None, [], {})
        assert not write.done()  # still waiting for the lock
    finally:
        other.execute("COMMIT")
        other.close()
    await asyncio.wait_for(write, timeout=30)
    assert [b.name for b in await meta.list_buckets("acme")] == ["b", "late"]
