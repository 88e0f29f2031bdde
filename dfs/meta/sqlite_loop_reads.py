"""Short SQLite reads on the event loop's own thread, for ``SqliteMetadataStore``.

The store runs every operation on one worker thread (its connection lives there); for a read
of a few point lookups (a HeadObject's bucket and version) the hop to that thread and back
costs more CPU than the read itself. ``LoopReads`` keeps a second, read-only connection for
the event loop's thread and runs such reads in a read transaction on it. In WAL mode a
reader never waits for the writer, and a new read transaction sees every commit made before
it began (the worker's included: read-your-writes holds); should the database be busy all
the same, the read fails within ``BUSY_MS`` (``sqlite3.OperationalError``) and the store
runs it on its worker instead, so the loop never stalls on a lock.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

BUSY_MS = 20
"""How long a read on the loop's thread waits for a lock before it gives up."""


def in_snapshot(db: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """``fn`` in one read transaction: every statement sees the same committed state."""
    db.execute("BEGIN")
    try:
        return fn(db)
    finally:
        db.execute("COMMIT")


class LoopReads:
    """A read-only connection per thread that reads here (the event loop's: in practice
    one), each opened at its first read."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._mine = threading.local()
        self._all: list[sqlite3.Connection] = []  # to close them all, from any thread
        self._closed = False

    def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` in a read transaction on this thread's connection;
        ``sqlite3.OperationalError`` when the database is busy."""
        if self._closed:  # the store is closing: no new connection that nothing would close
            raise sqlite3.OperationalError("closed")
        conn: sqlite3.Connection | None = getattr(self._mine, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self._path,
                timeout=BUSY_MS / 1000,
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
