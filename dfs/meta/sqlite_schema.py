"""The SQLite metadata store's schema: its tables, created on open, and migrations, and
how its rows read as records.

Kept apart from ``dfs.meta.sqlite`` (the store) so the layout can be read, and changed, in
one place. Tables (all ``WITHOUT ROWID`` where the key is the access path):

| table     | key                  | columns                                                    |
|-----------|----------------------|------------------------------------------------------------|
| nodes     | node_id              | host, port, zone, capacity/used bytes, status,             |
|           |                      | last_heartbeat, expires_at, disk_id                        |
| files     | file_id              | tenant, name, size, sha256, chunker, state, created_at,    |
|           |                      | chunk_count, mode, mtime (NULL when the upload gave none), |
|           |                      | sha256_verified (1: the API hashed the bytes)              |
| manifest  | (file_id, idx)       | offset, size, chunk_id                                     |
| chunks    | chunk_id             | size, refcount, created_at, unref_at (refcount last hit 0) |
| locations | (chunk_id, node_id)  | created_at; index by (node_id, chunk_id) for repair        |
| counters  | name                 | value                                                      |
| tenant_chunks | (tenant, chunk_id) | refcount: references from the tenant's complete files      |
| tenants   | tenant               | created_at                                                 |
| file_hashes | (tenant, sha256)   | file_id: the oldest complete file with that content (delete |
|           |                      | re-points it, in its transaction); sha256 is the entry key |
|           |                      | (``sha256_entry``: verified files apart from claims)       |
| tokens    | token_hash           | tenant, role, label, created_at                            |
| access_keys | access_key_id      | tenant, sealed_secret, label, created_at (S3 keys)         |
| node_boots | node_id             | boot, seq (integers): the node's last accepted heartbeat   |
|           |                      | (replays; node_sequences, with per-boot nonces, is dropped) |
| leases    | name                 | owner, expires_at, info (repair's lease and progress)      |
"""

from __future__ import annotations

import sqlite3

from dfs.meta.base import FileRecord, NodeRecord
from dfs.meta.sqlite_namespace_schema import apply_namespace_schema

SCHEMA = """
CREATE TABLE IF NOT EXISTS nodes (
    node_id TEXT PRIMARY KEY, host TEXT NOT NULL, port INTEGER NOT NULL, zone TEXT NOT NULL,
    capacity_bytes INTEGER NOT NULL, used_bytes INTEGER NOT NULL, status TEXT NOT NULL,
    last_heartbeat REAL NOT NULL, expires_at REAL NOT NULL, disk_id TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS files (
    file_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, name TEXT NOT NULL, size INTEGER NOT NULL,
    sha256 TEXT NOT NULL, chunker TEXT NOT NULL, state TEXT NOT NULL, created_at REAL NOT NULL,
    chunk_count INTEGER NOT NULL, mode INTEGER, mtime REAL,
    sha256_verified INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS files_by_tenant ON files (tenant, state, file_id);
CREATE INDEX IF NOT EXISTS files_by_hash ON files (tenant, sha256);
CREATE TABLE IF NOT EXISTS manifest (
    file_id TEXT NOT NULL, idx INTEGER NOT NULL, offset INTEGER NOT NULL, size INTEGER NOT NULL,
    chunk_id TEXT NOT NULL, PRIMARY KEY (file_id, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS chunks (
    chunk_id TEXT PRIMARY KEY, size INTEGER NOT NULL, refcount INTEGER NOT NULL,
    created_at REAL NOT NULL, unref_at REAL NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS locations (
    chunk_id TEXT NOT NULL, node_id TEXT NOT NULL, created_at REAL NOT NULL,
    PRIMARY KEY (chunk_id, node_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS locations_by_node ON locations (node_id, chunk_id);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tenant_chunks (
    tenant TEXT NOT NULL, chunk_id TEXT NOT NULL, refcount INTEGER NOT NULL,
    PRIMARY KEY (tenant, chunk_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS file_hashes (
    tenant TEXT NOT NULL, sha256 TEXT NOT NULL, file_id TEXT NOT NULL,
    PRIMARY KEY (tenant, sha256)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tenants (tenant TEXT PRIMARY KEY, created_at REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tokens (
    token_hash TEXT PRIMARY KEY, tenant TEXT NOT NULL, role TEXT NOT NULL, label TEXT NOT NULL,
    created_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS access_keys (
    access_key_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, sealed_secret TEXT NOT NULL,
    label TEXT NOT NULL, created_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS node_boots (
    node_id TEXT PRIMARY KEY, boot INTEGER NOT NULL, seq INTEGER NOT NULL
) WITHOUT ROWID;
DROP TABLE IF EXISTS node_sequences;
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at REAL NOT NULL, info TEXT NOT NULL
) WITHOUT ROWID;
"""


def apply_schema(conn: sqlite3.Connection) -> None:
    """Create what is missing and migrate older databases (inside the caller's transaction)."""
    for stmt in SCHEMA.split(";"):
        if stmt.strip():
            conn.execute(stmt)
    cols = {r[1] for r in conn.execute("PRAGMA table_info(chunks)")}
    if "unref_at" not in cols:  # a database made before delete existed
        conn.execute("ALTER TABLE chunks ADD COLUMN unref_at REAL NOT NULL DEFAULT 0")
    cols = {r[1] for r in conn.execute("PRAGMA table_info(nodes)")}
    if "disk_id" not in cols:  # a database made before nodes named their disks
        conn.execute("ALTER TABLE nodes ADD COLUMN disk_id TEXT NOT NULL DEFAULT ''")
    cols = {r[1] for r in conn.execute("PRAGMA table_info(files)")}
    # a database made before files kept mode and mtime: appended, so the column order
    # (and INSERT ... VALUES) is the same as a new database's
    for col, kind in (
        ("mode", "INTEGER"),
        ("mtime", "REAL"),
        ("sha256_verified", "INTEGER NOT NULL DEFAULT 0"),  # before files were verified
    ):
        if col not in cols:
            conn.execute(f"ALTER TABLE files ADD COLUMN {col} {kind}")
    apply_namespace_schema(conn)  # the ns_* tables (dfs.meta.sqlite_namespace_schema)


def node_record(row: sqlite3.Row) -> NodeRecord:
    return NodeRecord(**{k: row[k] for k in row.keys()})  # noqa: SIM118 - sqlite3.Row


def file_record(row: sqlite3.Row) -> FileRecord:
    fields = {k: row[k] for k in row.keys()}  # noqa: SIM118 - sqlite3.Row
    fields["sha256_verified"] = bool(fields.get("sha256_verified", 0))
    return FileRecord(**fields)
