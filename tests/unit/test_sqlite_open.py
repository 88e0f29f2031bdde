"""Opening one fresh SQLite metadata file from many connections at once (the API, every node
and ``dfs-admin`` do, at a cluster's start): ``PRAGMA journal_mode=WAL`` takes its lock
without SQLite's busy handler, so before ``dfs.meta.sqlite_migrate.connect`` tried a busy
open again, about one round in ten failed with "database is locked" (seen in CI as a node
exiting at start)."""

from __future__ import annotations

import threading
from pathlib import Path

from dfs.meta.sqlite_migrate import connect

OPENERS = 16
ROUNDS = 30


def _open_together(path: Path) -> list[str]:
    errors: list[str] = []
    start = threading.Barrier(OPENERS)

    def open_one() -> None:
        start.wait(timeout=10)
        try:
            conn = connect(path)
        except Exception as exc:  # every failure is what the test counts
            errors.append(repr(exc))
            return
        try:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if mode != "wal":
                errors.append(f"journal_mode {mode}")
        finally:
            conn.close()

    threads = [threading.Thread(target=open_one) for _ in range(OPENERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive(), "an open hung"
    return errors


def test_many_opens_of_one_fresh_file_all_succeed_in_wal_mode(tmp_path: Path) -> None:
    for i in range(ROUNDS):
        path = tmp_path / f"round{i}" / "meta.db"
        assert _open_together(path) == [], f"round {i}"
        conn = connect(path)
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        finally:
            conn.close()
        assert {"files", "labels", "nodes"} <= tables
