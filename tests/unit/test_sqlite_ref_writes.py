"""The SQLite store writes a commit's references in bounded batches
(``dfs.meta.sqlite_refcounts.REFS_PER_WRITE``): the counts, refcounts and tenants' ownership
must be those of writing them all at once, whatever the batch size, including chunks shared
between files and tenants and repeated inside a file."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from dfs.meta import sqlite_refcounts
from dfs.meta.base import FileRecord, Location, ManifestEntry, Stats
from dfs.meta.sqlite import SqliteMetadataStore


def _cid(n: int) -> str:
    return hashlib.sha256(f"chunk-{n}".encode()).hexdigest()


def _file(i: int, tenant: str, chunks: list[int]) -> tuple[FileRecord, list[ManifestEntry]]:
    manifest = [ManifestEntry(10 * k, 10, _cid(c)) for k, c in enumerate(chunks)]
    rec = FileRecord(
        file_id=f"00000000-0000-4000-8000-{i:012d}",
        name=f"f{i}",
        size=10 * len(chunks),
        sha256=hashlib.sha256(f"file-{i}".encode()).hexdigest(),
        chunker="fixed:10",
        tenant=tenant,
        created_at=1.0,
        chunk_count=len(chunks),
    )
    return rec, manifest


# chunks shared between files and tenants, and repeated inside one file
FILES = [
    _file(1, "alpha", [1, 2, 3, 1]),
    _file(2, "beta", [2, 3, 4]),
    _file(3, "alpha", [4, 5, 5, 5]),
    _file(4, "beta", [6]),
]
LATER = [_file(5, "beta", [1, 6, 7]), _file(6, "alpha", [7, 7])]


async def _counted(
    path: Path, per_write: int, monkeypatch: pytest.MonkeyPatch
) -> tuple[Stats, dict[str, int], dict[str, set[str]]]:
    monkeypatch.setattr(sqlite_refcounts, "REFS_PER_WRITE", per_write)
    store = await SqliteMetadataStore.open(f"sqlite://{path}")
    try:
        await store.create_files(FILES)
        done = await store.commit_files([rec.file_id for rec, _ in FILES], 2.0)
        assert all(r is not None and r.state == "complete" for r in done)
        await store.create_and_commit_files(LATER, 3.0)
        ids = [_cid(n) for n in range(1, 8)]
        refs = {c: info.refcount for c, info in (await store.get_chunks(ids)).items()}
        owned = {t: await store.owned_chunks(t, ids) for t in ("alpha", "beta")}
        return await store.get_stats(), refs, owned
    finally:
        await store.close()


async def test_bounded_reference_writes_count_as_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = await _counted(tmp_path / "whole.db", 10_000, monkeypatch)
    for per_write in (1, 2, 3):
        assert await _counted(tmp_path / f"by{per_write}.db", per_write, monkeypatch) == whole
    stats, refs, owned = whole
    assert refs == {
        _cid(1): 3,
        _cid(2): 2,
        _cid(3): 2,
        _cid(4): 2,
        _cid(5): 3,
        _cid(6): 2,
        _cid(7): 3,
    }
    assert owned["alpha"] == {_cid(n) for n in (1, 2, 3, 4, 5, 7)}
    assert owned["beta"] == {_cid(n) for n in (1, 2, 3, 4, 6, 7)}
    assert stats.unique_chunks == 7
    assert stats.total_files == 6


def _tables(path: Path) -> dict[str, list[tuple[object, ...]]]:
    db = sqlite3.connect(path)
    try:
        return {
            t: db.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()
            for t in ("chunks", "node_chunks", "tenant_chunks", "counters", "labels")
        }
    finally:
        db.close()


# copies found by a finalize: new chunks its files name (one of them on two nodes), a chunk
# an earlier commit stored (a copy more), and a new chunk that no committed file names
COPIES = [
    Location(_cid(1), "n1", 10),
    Location(_cid(2), "n1", 10),
    Location(_cid(2), "n2", 10),
    Location(_cid(3), "n1", 10),
    Location(_cid(6), "n2", 10),
    Location(_cid(9), "n1", 10),
]


async def _finalized(path: Path, together: bool) -> dict[str, list[tuple[object, ...]]]:
    store = await SqliteMetadataStore.open(f"sqlite://{path}")
    try:
        await store.create_and_commit_files([FILES[3]], 1.5)  # chunk 6 stored before
        await store.create_files(FILES[:3])
        ids = [rec.file_id for rec, _ in FILES[:3]] + ["00000000-0000-4000-8000-000000000099"]
        if together:
            done = await store.commit_files(ids, 2.0, locations=COPIES)
        else:
            await store.add_locations(COPIES, 2.0)
            done = await store.commit_files(ids, 2.0)
        assert [r is not None for r in done] == [True, True, True, False]
    finally:
        await store.close()
    return _tables(path)


async def test_new_chunks_written_with_their_first_reference_as_in_two_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A commit with the copies it found inserts a new chunk's row with its first reference
    (``add_locations``' ``fresh``): every row as when the copies were recorded first."""
    apart = await _finalized(tmp_path / "apart.db", together=False)
    for per_write in (10_000, 1):
        monkeypatch.setattr(sqlite_refcounts, "REFS_PER_WRITE", per_write)
        assert await _finalized(tmp_path / f"together{per_write}.db", together=True) == apart
    chunks = {row[0]: row for row in apart["chunks"]}
    assert len(chunks) == 7  # chunks 1-6 and 9
    n1 = str(dict((label, i) for i, label in apart["labels"])["n1"])
    first = chunks[bytes.fromhex(_cid(1))]
    assert (first[2], first[5]) == (2, n1)  # two references, its copy on n1
    assert chunks[bytes.fromhex(_cid(4))][5] == ""  # referenced, no copy recorded
    unnamed = chunks[bytes.fromhex(_cid(9))]
    assert (unnamed[2], unnamed[5]) == (0, n1)  # a copy no file names: no reference
