"""The SQLite store's reads on read-only connections of their own, for ``SqliteMetadataStore``.

The store runs its writes on one worker thread, whose connection waits up to the busy
timeout (30 s) for the write lock whenever another process holds it: a gateway or an API
stopped inside a transaction, a long migration. A read queued on that worker would wait
behind every such write, so downloads, listings and logins would stall with the uploads.
So:

- ``LoopReads``: short reads of a few point lookups (a HeadObject's bucket and version, a
  small file's chunks) run on the event loop's own thread, where the hop to a thread and
  back would cost more CPU than the read itself. Should the database be busy, such a read
  fails within ``BUSY_MS`` (``sqlite3.OperationalError``) and goes on as the others do.
- Every other read (listings, manifests, plans' lookups, GC's and repair's scans) is queued
  on the worker, in one read transaction; should the worker not start it within
  ``WORKER_HELD`` (held by a write waiting for a lock, or by writes queued behind one), a
  reader thread of ``ReaderThreads`` (``READ_THREADS``) takes it over and the worker skips
  it when its turn comes; while one operation has held the worker that long, reads go to
  the reader threads at once. Not always there: in WAL mode a connection's page cache is dropped
  whenever another connection has written, so a reader connection rereads the pages each
  read needs after every write, where the writer's own stays warm (measured: reads always
  on the reader threads cost a bucket backup's API ~25% more CPU, bench/README.md).

The loop's and the reader threads' connections (``ReadConnections``) have ``query_only`` on;
on every connection, the worker's included, each read runs in one read transaction
(``in_snapshot``): every statement of it sees the same committed state. In WAL mode a reader never waits for the writer, and a read transaction that
begins after a write's COMMIT sees it (the worker's included: read-your-writes holds for a
caller that awaited the write). A reader sees committed rows only, so the labels its reads
learn are the committed ones (the store keeps a ``Labels`` apart for them).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from dfs.meta.sqlite_migrate import BUSY_TIMEOUT_MS

T = TypeVar("T")

BUSY_MS = 20
"""How long a read on the loop's thread waits for a lock before it gives up."""
WORKER_HELD = 0.25
"""Seconds one operation may hold the store's worker before reads stop queueing behind it
(a write transaction takes milliseconds; one waiting for another process's lock, seconds)."""
READ_THREADS = 2
"""Threads for the reads that do not run on the loop: a long scan (GC's, repair's) on one
leaves the other to the requests."""


def in_snapshot(db: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """``fn`` in one read transaction: every statement sees the same committed state. The
    transaction is ended whatever happens (rolled back if its COMMIT fails), so the
    connection, the worker's writer too, is never left inside it."""
    db.execute("BEGIN")
    try:
        return fn(db)
    finally:
        _end(db)


def _end(db: sqlite3.Connection) -> None:
    try:
        db.execute("COMMIT")
    except sqlite3.Error:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        if db.in_transaction:
            raise


class ReadConnections:
    """A read-only connection per thread that reads through it, each opened at its first
    read and waiting at most ``busy_ms`` for a lock."""

    def __init__(self, path: Path, busy_ms: int) -> None:
        self._path = path
        self._busy_ms = busy_ms
        self._mine = threading.local()
        self._all: list[sqlite3.Connection] = []  # to close them all, from any thread
        self._closed = False

    def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` in a read transaction on this thread's connection;
        ``sqlite3.OperationalError`` when the database is busy or the store closed."""
        if self._closed:  # the store is closing: no new connection that nothing would close
            raise sqlite3.OperationalError("closed")
        conn: sqlite3.Connection | None = getattr(self._mine, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self._path,
                timeout=self._busy_ms / 1000,
                isolation_level=None,
                check_same_thread=False,  # only closed by another thread, never shared
            )
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA query_only=ON")
            self._mine.conn = conn
            self._all.append(conn)
        try:
            return in_snapshot(conn, fn)
        except sqlite3.Error:
            if conn.in_transaction:  # its COMMIT failed: a connection left in a read
                self._mine.conn = None  # transaction would fail every later BEGIN
                self._all.remove(conn)
                conn.close()
            raise

    def close(self) -> None:
        self._closed = True
        for conn in self._all:
            conn.close()
        self._all.clear()
        self._mine = threading.local()


class LoopReads(ReadConnections):
    """The event loop's connection (in practice one thread reads here)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, BUSY_MS)


class ReaderThreads:
    """``READ_THREADS`` threads, each reading through a connection of its own."""

    def __init__(self, path: Path) -> None:
        self._conns = ReadConnections(path, BUSY_TIMEOUT_MS)
        self._pool = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="sqlite-read")
        self._closed = False

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` in a read transaction on a reader thread; ``sqlite3.OperationalError``
        when the database stays busy or the store is closed."""
        try:
            if self._closed:
                raise RuntimeError("closed")
            ran = asyncio.get_running_loop().run_in_executor(self._pool, self._conns.run, fn)
        except RuntimeError:  # closed, or shut down since the check
            raise sqlite3.OperationalError("closed") from None
        return await ran

    def close(self) -> None:
        """Let the reads in progress end, then close the connections (blocking)."""
        self._closed = True
        self._pool.shutdown(wait=True)
        self._conns.close()
