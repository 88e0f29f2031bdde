"""Reference counting in the SQLite metadata store: what commit and delete do to refcounts,
counters and the content index, always inside the caller's write transaction.

Apart from ``dfs.meta.sqlite`` because it is the one piece of the store with real logic: a
commit counts each distinct chunk as stored (first reference) or as a duplicate avoided, and
a delete is its exact inverse, so the Stats counters stay exact. Both run under
``BEGIN IMMEDIATE``, so the refcounts they read cannot change before they write.
"""

from __future__ import annotations

import dataclasses
import sqlite3

from dfs.errors import FileNotFound
from dfs.meta.base import FILE_COMPLETE, FileRecord, sha256_entry
from dfs.meta.sqlite_schema import file_record


def _refs(db: sqlite3.Connection, file_id: str) -> list[tuple[str, int, int]]:
    """(chunk_id, references, size) of each distinct chunk of a file's manifest."""
    rows = db.execute(
        "SELECT chunk_id, COUNT(*), MAX(size) FROM manifest WHERE file_id=? GROUP BY chunk_id",
        (file_id,),
    )
    return [(r[0], r[1], r[2]) for r in rows]


def _refcount(db: sqlite3.Connection, chunk_id: str) -> int:
    cur = db.execute("SELECT refcount FROM chunks WHERE chunk_id=?", (chunk_id,)).fetchone()
    return int(cur[0]) if cur is not None else 0


def commit_one(db: sqlite3.Connection, file_id: str, now: float) -> FileRecord:
    """commit_file's work inside the caller's write transaction."""
    row = db.execute("SELECT * FROM files WHERE file_id=?", (file_id,)).fetchone()
    if row is None:
        raise FileNotFound(f"no file {file_id}")
    if row["state"] == FILE_COMPLETE:
        return file_record(row)
    refs = _refs(db, file_id)
    dups = stored = unique = 0
    for chunk_id, count, size in refs:
        before = _refcount(db, chunk_id)
        if before > 0:
            dups += count
        else:
            dups += count - 1
            stored += size
            unique += 1
        db.execute(
            "INSERT INTO chunks (chunk_id, size, refcount, created_at) "
            "VALUES (?,?,?,?) ON CONFLICT(chunk_id) "
            "DO UPDATE SET refcount = refcount + excluded.refcount",
            (chunk_id, size, count, now),
        )
        db.execute(
            "INSERT INTO tenant_chunks VALUES (?,?,?) ON CONFLICT(tenant, chunk_id) "
            "DO UPDATE SET refcount = refcount + excluded.refcount",
            (row["tenant"], chunk_id, count),
        )
    deltas = {
        "total_files": 1,
        "logical_bytes": row["size"],
        "stored_bytes": stored,
        "unique_chunks": unique,
        "duplicates_avoided": dups,
    }
    db.executemany(
        "INSERT INTO counters VALUES (?,?) ON CONFLICT(name) "
        "DO UPDATE SET value = value + excluded.value",
        deltas.items(),
    )
    db.execute("UPDATE files SET state=? WHERE file_id=?", (FILE_COMPLETE, file_id))
    # the first complete file with this content keeps the entry (verified files and claims
    # each their own)
    db.execute(
        "INSERT OR IGNORE INTO file_hashes VALUES (?,?,?)",
        (row["tenant"], _entry(row), file_id),
    )
    return dataclasses.replace(file_record(row), state=FILE_COMPLETE)


def _entry(row: sqlite3.Row) -> str:
    return sha256_entry(row["sha256"], bool(row["sha256_verified"]))


def mark_verified(db: sqlite3.Connection, file_id: str) -> FileRecord | None:
    """mark_sha256_verified's work inside the caller's write transaction: the file leaves
    its claim's content entry (handed on as a delete would) and joins the verified one."""
    row = db.execute("SELECT * FROM files WHERE file_id=?", (file_id,)).fetchone()
    if row is None or row["state"] != FILE_COMPLETE:
        return None
    if not row["sha256_verified"]:
        repoint_hash(db, row)
        db.execute("UPDATE files SET sha256_verified=1 WHERE file_id=?", (file_id,))
        db.execute(
            "INSERT OR IGNORE INTO file_hashes VALUES (?,?,?)",
            (row["tenant"], sha256_entry(row["sha256"], True), file_id),
        )
    return dataclasses.replace(file_record(row), sha256_verified=True)


def find_by_entry(
    db: sqlite3.Connection, tenant: str, sha256: str, verified: bool
) -> FileRecord | None:
    """The complete file the (tenant, sha256, verified) content entry names, if any."""
    row = db.execute(
        "SELECT f.* FROM file_hashes h JOIN files f ON f.file_id = h.file_id "
        "WHERE h.tenant=? AND h.sha256=? AND f.state=? AND f.sha256_verified=?",
        (tenant, sha256_entry(sha256, verified), FILE_COMPLETE, int(verified)),
    ).fetchone()
    return None if row is None else file_record(row)


def repoint_hash(db: sqlite3.Connection, row: sqlite3.Row) -> None:
    """If file_hashes names the file being deleted, name the tenant's oldest other complete
    file with the same content instead, or drop the entry (same transaction as the delete)."""
    key = (row["tenant"], _entry(row))
    cur = db.execute("SELECT file_id FROM file_hashes WHERE tenant=? AND sha256=?", key).fetchone()
    if cur is None or cur[0] != row["file_id"]:
        return
    other = db.execute(
        "SELECT file_id FROM files WHERE tenant=? AND sha256=? AND sha256_verified=? "
        "AND state=? AND file_id != ? ORDER BY created_at, file_id LIMIT 1",
        (row["tenant"], row["sha256"], row["sha256_verified"], FILE_COMPLETE, row["file_id"]),
    ).fetchone()
    if other is None:
        db.execute("DELETE FROM file_hashes WHERE tenant=? AND sha256=?", key)
    else:
        db.execute("UPDATE file_hashes SET file_id=? WHERE tenant=? AND sha256=?", (other[0], *key))


def drop_refs(db: sqlite3.Connection, row: sqlite3.Row, now: float) -> None:
    """The exact inverse of commit_file's counting."""
    refs = _refs(db, row["file_id"])
    dups = stored = unique = 0
    for chunk_id, count, size in refs:
        before = _refcount(db, chunk_id)
        if before - count > 0:
            dups += count
            db.execute(
                "UPDATE chunks SET refcount = refcount - ? WHERE chunk_id=?", (count, chunk_id)
            )
        else:
            dups += count - 1
            stored += size
            unique += 1
            db.execute(
                "UPDATE chunks SET refcount = 0, unref_at = ? WHERE chunk_id=?",
                (now, chunk_id),
            )
        db.execute(
            "UPDATE tenant_chunks SET refcount = refcount - ? WHERE tenant=? AND chunk_id=?",
            (count, row["tenant"], chunk_id),
        )
    deltas = {
        "total_files": -1,
        "logical_bytes": -row["size"],
        "stored_bytes": -stored,
        "unique_chunks": -unique,
        "duplicates_avoided": -dups,
    }
    db.executemany(
        "UPDATE counters SET value = value + ? WHERE name=?",
        ((v, k) for k, v in deltas.items()),
    )
