"""``SqliteMetadataStore``'s reads on the event loop's thread (``dfs.meta.sqlite_loop_reads``):
they see what the worker thread committed just before (read-your-writes), take no hop to the
worker, and go to the worker instead when the loop's connection finds the database busy."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from typing import Any

import pytest

from dfs.errors import BucketNotFound, FileNotFound
from dfs.ids import new_file_id
from dfs.meta.namespace import VERSIONING_ENABLED, BucketRecord
from dfs.meta.sqlite import LOOP_READ_MAX_IDS, SqliteMetadataStore
from dfs.meta.sqlite_loop_reads import LoopReads


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
    assert len(seen) == 7  # many ids: on the worker, the loop must not stall


async def test_a_busy_database_sends_the_read_to_the_worker(
    meta: SqliteMetadataStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await meta.create_bucket(BucketRecord("b", "acme", 1.0))

    def busy(self: LoopReads, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(LoopReads, "run", busy)
    calls = meta.calls
    assert (await meta.get_bucket("b")).tenant == "acme"
    assert meta.calls == calls + 1  # read once, by the worker
