"""The SQLite store's compact layout (issue 19 item 4): a database in the layout before it
is converted at open with nothing lost, and the packing of manifests round-trips."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
import uuid
from pathlib import Path

import pytest

from dfs.errors import Conflict, FileNotFound, KeyNotFound
from dfs.meta.base import FILE_COMPLETE, FILE_PENDING, FileRecord, ManifestEntry
from dfs.meta.namespace import BucketRecord, NewObject
from dfs.meta.sqlite import SqliteMetadataStore
from dfs.meta.sqlite_codec import pack_page, unpack_page


def cid(n: int | str) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


_OLD = """
CREATE TABLE files (
    file_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, name TEXT NOT NULL, size INTEGER NOT NULL,
    sha256 TEXT NOT NULL, chunker TEXT NOT NULL, state TEXT NOT NULL, created_at REAL NOT NULL,
    chunk_count INTEGER NOT NULL, mode INTEGER, mtime REAL
) WITHOUT ROWID;
CREATE INDEX files_by_tenant ON files (tenant, state, file_id);
CREATE INDEX files_by_hash ON files (tenant, sha256);
CREATE TABLE manifest (
    file_id TEXT NOT NULL, idx INTEGER NOT NULL, offset INTEGER NOT NULL, size INTEGER NOT NULL,
    chunk_id TEXT NOT NULL, PRIMARY KEY (file_id, idx)
) WITHOUT ROWID;
CREATE TABLE chunks (
    chunk_id TEXT PRIMARY KEY, size INTEGER NOT NULL, refcount INTEGER NOT NULL,
    created_at REAL NOT NULL, unref_at REAL NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE locations (
    chunk_id TEXT NOT NULL, node_id TEXT NOT NULL, created_at REAL NOT NULL,
    PRIMARY KEY (chunk_id, node_id)
) WITHOUT ROWID;
CREATE INDEX locations_by_node ON locations (node_id, chunk_id);
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE tenant_chunks (
    tenant TEXT NOT NULL, chunk_id TEXT NOT NULL, refcount INTEGER NOT NULL,
    PRIMARY KEY (tenant, chunk_id)
) WITHOUT ROWID;
CREATE TABLE file_hashes (
    tenant TEXT NOT NULL, sha256 TEXT NOT NULL, file_id TEXT NOT NULL,
    PRIMARY KEY (tenant, sha256)
) WITHOUT ROWID;
"""


def _old_database(path: Path) -> tuple[str, str, str]:
    """Two complete files of tenant t1 with the same content (the second committed first,
    as file_hashes says), a pending one, and t2 referencing a chunk too."""
    first, second, pending = (str(uuid.uuid4()) for _ in range(3))
    conn = sqlite3.connect(path)
    conn.executescript(_OLD)
    files = [
        (first, "t1", "a", 30, cid("ab"), "fixed:4096", FILE_COMPLETE, 1.0, 2, 0o644, 5.5),
        (second, "t1", "b", 30, cid("ab"), "fixed:4096", FILE_COMPLETE, 2.0, 2, None, None),
        (pending, "t2", "c", 10, cid(1), "fixed:4096", FILE_PENDING, 3.0, 1, None, None),
    ]
    conn.executemany("INSERT INTO files VALUES (?,?,?,?,?,?,?,?,?,?,?)", files)
    for f in (first, second):
        conn.execute("INSERT INTO manifest VALUES (?,?,?,?,?)", (f, 0, 0, 10, cid(1)))
        conn.execute("INSERT INTO manifest VALUES (?,?,?,?,?)", (f, 1, 10, 20, cid(2)))
    conn.execute("INSERT INTO manifest VALUES (?,?,?,?,?)", (pending, 0, 0, 10, cid(1)))
    conn.executemany(
        "INSERT INTO chunks VALUES (?,?,?,?,?)", [(cid(1), 10, 3, 1.0, 0), (cid(2), 20, 2, 1.0, 0)]
    )
    conn.executemany(
        "INSERT INTO locations VALUES (?,?,?)",
        [(cid(1), "n1", 1.0), (cid(1), "n2", 1.0), (cid(2), "n2", 1.0)],
    )
    conn.executemany(
        "INSERT INTO tenant_chunks VALUES (?,?,?)",
        [("t1", cid(1), 2), ("t1", cid(2), 2), ("t2", cid(1), 1)],
    )
    conn.execute("INSERT INTO file_hashes VALUES (?,?,?)", ("t1", cid("ab"), second))
    stats = {"total_files": 2, "logical_bytes": 60, "stored_bytes": 30, "unique_chunks": 2}
    conn.executemany("INSERT INTO counters VALUES (?,?)", stats.items())
    conn.commit()
    conn.close()
    return first, second, pending


async def test_old_layout_is_converted_at_open(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    first, second, pending = _old_database(path)
    meta = await SqliteMetadataStore.open(f"sqlite://{path}")
    try:
        got = await meta.get_file(first, tenant="t1")
        assert (got.name, got.state, got.mode, got.mtime) == ("a", FILE_COMPLETE, 0o644, 5.5)
        assert await meta.get_manifest(first) == [
            ManifestEntry(0, 10, cid(1)),
            ManifestEntry(10, 20, cid(2)),
        ]
        assert (await meta.get_file(pending)).state == FILE_PENDING
        assert await meta.recent_pending_chunks(0.0) == {cid(1)}
        found = await meta.find_file_by_sha256("t1", cid("ab"), verified=False)
        assert found is not None
        assert found.file_id == second
        assert [f.file_id for f in await meta.list_files("t1", limit=10)] == sorted([first, second])
        assert await meta.owned_chunks("t1", [cid(1), cid(2)]) == {cid(1), cid(2)}
        assert await meta.owned_chunks("t2", [cid(1), cid(2)]) == {cid(1)}
        assert await meta.get_locations([cid(1), cid(2)]) == {
            cid(1): {"n1", "n2"},
            cid(2): {"n2"},
        }
        assert await meta.node_chunks("n2", limit=10) == sorted([cid(1), cid(2)])
        assert (await meta.get_stats()).stored_bytes == 30
        # deleting the named file hands the content entry to the other one, exactly
        await meta.delete_file(second, "t1", 9.0)
        found = await meta.find_file_by_sha256("t1", cid("ab"), verified=False)
        assert found is not None
        assert found.file_id == first
        await meta.delete_file(first, "t1", 9.0)
        assert {c.chunk_id: c.refcount for c in await meta.scan_chunks(limit=10)} == {
            cid(1): 1,
            cid(2): 0,
        }
        assert await meta.owned_chunks("t1", [cid(1), cid(2)], ever=True) == {cid(1), cid(2)}
        assert await meta.owned_chunks("t1", [cid(1), cid(2)]) == set()
    finally:
        await meta.close()
    # opening again finds the new layout and changes nothing
    meta = await SqliteMetadataStore.open(f"sqlite://{path}")
    try:
        assert (await meta.get_file(pending)).name == "c"
    finally:
        await meta.close()


def test_manifest_pages_round_trip() -> None:
    whole = [ManifestEntry(0, 7, cid(1))]
    assert len(pack_page(whole, 0, cid(1))) == 2  # the file's own sha256: its size alone
    assert unpack_page(pack_page(whole, 0, cid(1)), 0, cid(1)) == whole
    packed = [ManifestEntry(100, 300, cid(1)), ManifestEntry(400, 1, cid(2))]
    assert len(pack_page(packed, 100)) == 1 + 2 + 32 + 1 + 32
    assert unpack_page(pack_page(packed, 100), 100) == packed
    odd = [ManifestEntry(0, 5, "not-hex"), ManifestEntry(9, 5, cid(3))]
    assert unpack_page(pack_page(odd, 0), 0) == odd
    assert unpack_page(pack_page([], 0, cid(1)), 0, cid(1)) == []


async def test_a_label_of_a_rolled_back_write_is_forgotten(tmp_path: Path) -> None:
    """A tenant first seen by a write that fails gets no id the next label could take."""
    meta = await SqliteMetadataStore.open(f"sqlite://{tmp_path / 'm.db'}")
    try:
        rec = FileRecord(str(uuid.uuid4()), "a", 0, cid("a"), "fixed:4096", tenant="t1")
        await meta.create_file(rec, [])
        clash = FileRecord(rec.file_id, "b", 0, cid("b"), "fixed:8192", tenant="t2")
        with pytest.raises(Conflict):
            await meta.create_file(clash, [])
        other = FileRecord(str(uuid.uuid4()), "c", 0, cid("c"), "fixed:4096", tenant="t3")
        await meta.create_file(other, [])
        clash2 = FileRecord(str(uuid.uuid4()), "d", 0, cid("d"), "fixed:8192", tenant="t2")
        await meta.create_file(clash2, [])
        assert (await meta.get_file(other.file_id)).tenant == "t3"
        assert (await meta.get_file(clash2.file_id)).tenant == "t2"
        assert (await meta.get_file(clash2.file_id)).chunker == "fixed:8192"
    finally:
        await meta.close()


_TEXT_SCOPES = """
CREATE TABLE ns_chunk_refs (
    tenant TEXT NOT NULL, bucket TEXT NOT NULL, chunk_id TEXT NOT NULL, refs INTEGER NOT NULL,
    PRIMARY KEY (tenant, bucket, chunk_id)
) WITHOUT ROWID;
CREATE TABLE ns_scope_files (
    tenant TEXT NOT NULL, bucket TEXT NOT NULL, file_id TEXT NOT NULL, links INTEGER NOT NULL,
    PRIMARY KEY (tenant, bucket, file_id)
) WITHOUT ROWID;
INSERT INTO ns_chunk_refs SELECT 't1', CASE WHEN scope < 0 THEN '' ELSE 'bkt' END,
    lower(hex(chunk_id)), refs FROM ns_scope_chunks;
INSERT INTO ns_scope_files SELECT 't1', CASE WHEN scope < 0 THEN '' ELSE 'bkt' END,
    file_id, links FROM ns_scope_links;
DELETE FROM ns_scope_chunks;
DELETE FROM ns_scope_links;
"""
"""The scope tables of the first namespace layout, filled from this layout's rows."""


async def test_namespace_ids_as_text_are_converted_at_open(tmp_path: Path) -> None:
    """Counting rows of a database written with names and ids as text (tenant and bucket
    names, hex chunk ids, file ids as UUID strings) are keyed by scope ids and the ids' bytes
    from the next open on, and the links and usage they count stay exact afterwards."""
    path = tmp_path / "ns.db"
    meta = await SqliteMetadataStore.open(f"sqlite://{path}")
    try:
        rec = FileRecord(str(uuid.uuid4()), "k", 30, cid("f"), "fixed:4096", "t1", 1.0, 2)
        await meta.create_file(rec, [ManifestEntry(0, 10, cid(1)), ManifestEntry(10, 20, cid(2))])
        await meta.commit_file(rec.file_id, 1.0)
        await meta.create_bucket(BucketRecord("bkt", "t1", 1.0))
        await meta.put_object(NewObject("bkt", "k", rec.file_id, 30), 2.0)
    finally:
        await meta.close()
    conn = sqlite3.connect(path)  # as the first layout: the same rows, names and ids as text
    with conn:
        conn.executescript(_TEXT_SCOPES)
        conn.execute("UPDATE ns_file_links SET file_id = ?", (rec.file_id,))
        conn.execute("UPDATE ns_scope_files SET file_id = ?", (rec.file_id,))
        conn.execute("DELETE FROM ns_sequence WHERE name LIKE 'layout:%'")
    conn.close()
    assert _read(path, "SELECT COUNT(*) FROM ns_chunk_refs") == [(4,)]
    meta = await SqliteMetadataStore.open(f"sqlite://{path}")
    try:
        tables = "SELECT name FROM sqlite_master WHERE name IN ('ns_chunk_refs', 'ns_scope_files')"
        assert _read(path, tables) == []
        assert _read(path, "SELECT typeof(chunk_id), COUNT(*) FROM ns_scope_chunks") == [
            ("blob", 4)
        ]
        for table in ("ns_file_links", "ns_scope_links"):
            assert _read(path, f"SELECT DISTINCT typeof(file_id) FROM {table}") == [("blob",)]
        assert (await meta.usage("t1", "bkt")).stored_bytes == 30
        await meta.delete_object("bkt", "k", None, 3.0)
        assert (await meta.usage("t1", "bkt")).stored_bytes == 0
        assert (await meta.usage("t1")).stored_bytes == 0
        for table in ("ns_scope_chunks", "ns_file_links", "ns_scope_links"):
            assert _read(path, f"SELECT COUNT(*) FROM {table}") == [(0,)]
        with pytest.raises(FileNotFound):  # the last version's release deleted the file
            await meta.get_file(rec.file_id)
    finally:
        await meta.close()


def _read(path: Path, sql: str) -> list[tuple[object, ...]]:
    """Rows of ``sql`` read beside the open store (WAL: a second reader sees its commits)."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


UUID_2 = str(uuid.UUID(int=2))
SHA_2 = "3377870dfeaaa7adf79a374d2702a3fdb13e5e5ea0dd8aa95a802ad39044a92f"
OLD_VERSIONS = Path(__file__).parent / "fixtures" / "sqlite_namespace_before_packed_versions.sql"
"""A database dumped by the code before version rows packed their ids (made by its own
``put_object``/``delete_object``/``update_bucket``: versioned, suspended with a null version
over a versioned one, unversioned, a delete marker, tags, metadata, a second tenant)."""


async def test_versions_with_ids_as_text_are_converted_at_open(tmp_path: Path) -> None:
    """Every version of the old database reads back by id and in listings as it was written,
    its rows hold packed ids, the index by version id is gone, and the links and usage it
    counted stay exact through later writes."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(OLD_VERSIONS.read_text())
    old = conn.execute(
        "SELECT bucket, key, version_id, file_id, sha256, etag, is_marker, tags, rank"
        " FROM ns_versions ORDER BY bucket, key, rank"
    ).fetchall()
    conn.close()
    assert len(old) == 8
    assert "null" in {r[2] for r in old if r[0] == "susp"}
    meta = await SqliteMetadataStore.open(f"sqlite://{path}")
    try:
        assert _read(path, "SELECT name FROM sqlite_master WHERE name='ns_versions_by_id'") == []
        kinds = "SELECT DISTINCT typeof(file_id), typeof(sha256) FROM ns_versions WHERE is_marker=0"
        assert _read(path, kinds) == [("blob", "blob")]
        listed = []
        for bucket in ("other", "plain", "susp", "vers"):
            listed += (await meta.list_versions(bucket)).objects
        got = [(v.bucket, v.key, v.version_id, v.file_id, v.sha256) for v in listed]
        assert got == [tuple(r[:5]) for r in old]
        for b, key, vid, file_id, sha, etag, marker, tags, _rank in old:
            v = await meta.get_object(b, key, vid)
            assert v.is_delete_marker == bool(marker)
            assert (v.version_id, v.file_id, v.sha256) == (vid, file_id, sha)
            assert v.etag == (sha if etag == "=" else etag)
            assert v.tags == tuple(tuple(p) for p in json.loads(tags))
        await _old_versions_stay_counted(meta, path)
    finally:
        await meta.close()


async def _old_versions_stay_counted(meta: SqliteMetadataStore, path: Path) -> None:
    """New versions beside the converted ones; then every version deleted by id leaves no
    links, no stored bytes and no files."""
    susp = await meta.put_object(NewObject("susp", "s", "", 0), 20.0)  # replaces the null one
    assert susp.version.version_id == "null"
    fresh = await meta.put_object(NewObject("vers", "a", UUID_2, 0, "e", SHA_2), 21.0)
    assert (await meta.get_object("vers", "a")).version_id == fresh.version.version_id
    assert _read(path, "SELECT typeof(version_id) FROM ns_versions WHERE rank = -10") == [("blob",)]
    with pytest.raises(KeyNotFound):  # an id that spells a rank but not this row's bytes
        await meta.get_object("vers", "a", fresh.version.version_id[:12] + "0" * 12)
    for bucket in ("other", "plain", "susp", "vers"):
        for v in (await meta.list_versions(bucket)).objects:
            await meta.delete_object(bucket, v.key, v.version_id, 30.0)
        tenant = "t2" if bucket == "other" else "t1"
        assert (await meta.usage(tenant, bucket)).stored_bytes == 0
    assert (await meta.usage("t1")).versions == 0
    for table in (
        "ns_versions",
        "ns_current",
        "ns_file_links",
        "ns_scope_links",
        "ns_scope_chunks",
    ):
        assert _read(path, f"SELECT COUNT(*) FROM {table}") == [(0,)]
    for n in range(1, 6):  # the last version of each file released it
        with pytest.raises(FileNotFound):
            await meta.get_file(str(uuid.UUID(int=n)))


async def test_a_database_without_for_object_gets_it_at_open(tmp_path: Path) -> None:
    """A compact database made before ``files.for_object``: the column is added at open,
    its files unmarked (found by content as before), and a commit for an object marks."""
    path = tmp_path / "m.db"
    meta = await SqliteMetadataStore.open(f"sqlite://{path}")
    old = FileRecord(str(uuid.uuid4()), "a", 1, cid("x"), "fixed:4096", tenant="t1")
    old = dataclasses.replace(old, chunk_count=1, sha256_verified=True)
    try:
        await meta.create_and_commit_files([(old, [ManifestEntry(0, 1, cid(1))])], 1.0)
    finally:
        await meta.close()
    conn = sqlite3.connect(path)
    conn.execute("ALTER TABLE files DROP COLUMN for_object")
    conn.commit()
    conn.close()
    meta = await SqliteMetadataStore.open(f"sqlite://{path}")
    try:
        found = await meta.find_file_by_sha256("t1", cid("x"))
        assert found is not None
        assert found.file_id == old.file_id
        new = dataclasses.replace(old, file_id=str(uuid.uuid4()), sha256=cid("y"))
        await meta.create_and_commit_files(
            [(new, [ManifestEntry(0, 1, cid(1))])], 2.0, for_object=True
        )
        assert await meta.find_file_by_sha256("t1", cid("y")) is None
    finally:
        await meta.close()
