"""The metadata contract for a file's mode and mtime (issue 16), on every backend, and the
SQLite migration that adds their columns to a database made before they existed.

Kept apart from ``test_metadata_store.py`` (already near the module size limit); the
``meta`` fixture of ``conftest.py`` runs it on SQLite and on DynamoDB (moto).
"""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

from dfs.meta.base import MetadataStore
from dfs.meta.sqlite import SqliteMetadataStore
from tests.contract.test_metadata_store import new_file


async def test_mode_and_mtime_round_trip(meta: MetadataStore) -> None:
    rec, manifest = new_file("kept")
    rec = dataclasses.replace(rec, mode=0o640, mtime=1_000_000_000.25)
    await meta.create_file(rec, manifest)
    assert (await meta.get_file(rec.file_id)).mode == 0o640
    assert (await meta.get_file(rec.file_id)).mtime == 1_000_000_000.25
    done = await meta.commit_file(rec.file_id, 2.0)
    assert (done.mode, done.mtime) == (0o640, 1_000_000_000.25)
    got = await meta.get_file(rec.file_id, tenant=rec.tenant)
    assert (got.mode, got.mtime) == (0o640, 1_000_000_000.25)
    found = await meta.find_file_by_sha256(rec.tenant, rec.sha256)
    assert found is not None
    assert (found.mode, found.mtime) == (0o640, 1_000_000_000.25)


async def test_mode_and_mtime_are_absent_when_not_given(meta: MetadataStore) -> None:
    rec, manifest = new_file("plain")
    await meta.create_file(rec, manifest)
    await meta.commit_file(rec.file_id, 2.0)
    got = await meta.get_file(rec.file_id)
    assert (got.mode, got.mtime) == (None, None)


_OLD_FILES = """CREATE TABLE files (
    file_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, name TEXT NOT NULL, size INTEGER NOT NULL,
    sha256 TEXT NOT NULL, chunker TEXT NOT NULL, state TEXT NOT NULL, created_at REAL NOT NULL,
    chunk_count INTEGER NOT NULL
) WITHOUT ROWID"""


async def test_sqlite_database_without_the_columns_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute(_OLD_FILES)
    conn.execute(
        "INSERT INTO files VALUES (?,?,?,?,?,?,?,?,?)",
        ("old-file", "t1", "a", 0, "0" * 64, "fixed:4096", "complete", 1.0, 0),
    )
    conn.commit()
    conn.close()
    meta = await SqliteMetadataStore.open(f"sqlite://{path}")
    try:
        old = await meta.get_file("old-file")
        assert (old.name, old.mode, old.mtime) == ("a", None, None)
        assert old.sha256_verified is False  # a file of before: its sha256 was a claim
        rec, manifest = new_file("new")
        await meta.create_file(dataclasses.replace(rec, mode=0o755, mtime=12.5), manifest)
        got = await meta.get_file(rec.file_id)
        assert (got.mode, got.mtime) == (0o755, 12.5)
    finally:
        await meta.close()
