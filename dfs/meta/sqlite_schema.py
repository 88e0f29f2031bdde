"""The SQLite metadata store's schema: its tables, created on open, and how its rows read as
records. Databases in the layout before issue 19 are converted at open
(``dfs.meta.sqlite_migrate``).

Kept apart from ``dfs.meta.sqlite`` (the store) so the layout can be read, and changed, in
one place. The layout is made small (``bench/meta_size.py`` measures it; values are packed
as ``dfs.meta.sqlite_codec`` says: ids as bytes, labels as integers, a manifest as one blob).
Tables (all ``WITHOUT ROWID``: the key is the access path):

| table     | key                  | columns                                                    |
|-----------|----------------------|------------------------------------------------------------|
| labels    | id (rowid)           | label: tenants, chunker profiles and node ids, interned    |
| nodes     | node_id              | host, port, zone, capacity/used bytes, status,             |
|           |                      | last_heartbeat, expires_at, disk_id, boot + seq (the node  |
|           |                      | call that wrote it: an earlier call's write never wins)    |
| files     | file_id              | tenant, name, size, sha256, chunker, state (0 pending, 1   |
|           |                      | complete), created_at, chunk_count, mode, mtime (NULL when |
|           |                      | the upload gave none), seq (commit order), manifest (the   |
|           |                      | blob of the entries given at create_file), sha256_verified |
|           |                      | (1: the API hashed the bytes), for_object (1: committed    |
|           |                      | for an object version, never named by content)            |
| manifest_pages | (file_id, page) | start (offset of its first entry), entries (blob), proven |
|           |                      | (a paged upload's later pages, ``append_manifest_page``)   |
| chunks    | chunk_id             | size, refcount, created_at, unref_at (refcount last hit 0),|
|           |                      | nodes (label ids of the copies), owner + owner_refs (the   |
|           |                      | first tenant to reference it, and its references)          |
| chunk_tombstones | chunk_id      | gone_at: where GC deleted a row; a commit refuses the chunk |
|           |                      | until a copy makes a row again (``sqlite_chunks``)         |
| node_chunks | (node, prefix)     | the by-node index for repair: a node's chunks by the first |
|           |                      | 8 bytes of their ids (exact answers come from ``chunks``)  |
| tenant_chunks | (tenant, chunk_id) | refcount: references from complete files of tenants other |
|           |                      | than the chunk's owner                                     |
| counters  | name                 | value (the Stats fields, and ``commit_seq``)               |
| tenants   | tenant               | created_at                                                 |
| tokens    | token_hash           | tenant, role, label, created_at                            |
| access_keys | access_key_id      | tenant, sealed_secret, label, created_at (S3 keys)         |
| node_boots | node_id             | boot, seq (integers): the node's last accepted heartbeat   |
|           |                      | (replays; node_sequences, with per-boot nonces, is dropped) |
| leases    | name                 | owner, expires_at, info (repair's lease and progress)      |
| s3_uploads, s3_upload_parts | upload_id | S3 multipart uploads (``sqlite_multipart``)      |
| usage_samples | (tenant, at)     | objects, logical_bytes, stored_bytes: the usage history    |

Indexes: ``files_by_tenant`` (tenant, file_id) of complete files (listings);
``files_by_hash`` (tenant, sha256_verified, first 8 bytes of sha256, seq) of complete files:
the file ``find_file_by_sha256`` names is the tenant's complete file with that content and
that verified flag committed first (lowest seq; ``mark_sha256_verified`` gives the file the
next seq, so it joins the verified files last), so a delete needs no pointer to move.
"""

from __future__ import annotations

import sqlite3

from dfs.meta.base import FileRecord, NodeRecord
from dfs.meta.sqlite_codec import Labels, state_name, unpack_file_id, unpack_hex
from dfs.meta.sqlite_multipart import apply_multipart_schema
from dfs.meta.sqlite_namespace_schema import apply_namespace_schema
from dfs.meta.sqlite_usage_history import apply_usage_history_schema

SCHEMA = """
CREATE TABLE IF NOT EXISTS labels (id INTEGER PRIMARY KEY, label TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS nodes (
    node_id TEXT PRIMARY KEY, host TEXT NOT NULL, port INTEGER NOT NULL, zone TEXT NOT NULL,
    capacity_bytes INTEGER NOT NULL, used_bytes INTEGER NOT NULL, status TEXT NOT NULL,
    last_heartbeat REAL NOT NULL, expires_at REAL NOT NULL, disk_id TEXT NOT NULL DEFAULT '',
    boot INTEGER NOT NULL DEFAULT 0, seq INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS files (
    file_id PRIMARY KEY, tenant INTEGER NOT NULL, name TEXT NOT NULL, size INTEGER NOT NULL,
    sha256 NOT NULL, chunker INTEGER NOT NULL, state INTEGER NOT NULL, created_at REAL NOT NULL,
    chunk_count INTEGER NOT NULL, mode INTEGER, mtime REAL, seq INTEGER, manifest BLOB,
    sha256_verified INTEGER NOT NULL DEFAULT 0, for_object INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS files_by_tenant ON files (tenant, file_id) WHERE state = 1;
CREATE INDEX IF NOT EXISTS files_by_hash
    ON files (tenant, sha256_verified, substr(sha256, 1, 8), seq) WHERE state = 1;
CREATE TABLE IF NOT EXISTS manifest_pages (
    file_id NOT NULL, page INTEGER NOT NULL, start INTEGER NOT NULL, entries BLOB NOT NULL,
    proven INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (file_id, page)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS chunks (
    chunk_id PRIMARY KEY, size INTEGER NOT NULL, refcount INTEGER NOT NULL,
    created_at REAL NOT NULL, unref_at REAL NOT NULL DEFAULT 0, nodes TEXT NOT NULL DEFAULT '',
    owner INTEGER, owner_refs INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS chunk_tombstones (chunk_id PRIMARY KEY, gone_at REAL NOT NULL)
    WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS chunk_tombstones_by_age ON chunk_tombstones (gone_at);
CREATE TABLE IF NOT EXISTS node_chunks (
    node INTEGER NOT NULL, prefix NOT NULL, PRIMARY KEY (node, prefix)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tenant_chunks (
    tenant INTEGER NOT NULL, chunk_id NOT NULL, refcount INTEGER NOT NULL,
    PRIMARY KEY (tenant, chunk_id)
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

FILE_COLUMNS = (
    "file_id, tenant, name, size, sha256, chunker, state, created_at, chunk_count, mode, mtime,"
    " sha256_verified"
)
"""What ``file_record`` reads (``SELECT {FILE_COLUMNS} FROM files``)."""

_BY_HASH = (
    f"SELECT {FILE_COLUMNS} FROM files WHERE tenant=? AND sha256_verified=? "
    "AND substr(sha256, 1, 8)=? AND state = 1 AND sha256=? "
)
FIND_BY_HASH = {
    False: _BY_HASH + "AND for_object = 0 AND NOT EXISTS "
    "(SELECT 1 FROM ns_file_links l WHERE l.file_id = files.file_id AND l.links > 0) "
    "ORDER BY seq LIMIT 1",
    True: _BY_HASH + "ORDER BY seq LIMIT 1",
}
"""``find_file_by_sha256``'s query (tenant, verified, sha256[:8], sha256) by its ``linked``,
on the ``files_by_hash`` index: the first committed file that no object version links and
that was not committed for one (``for_object``: its link follows the commit; a linked file
is the namespace's: the release of its last version deletes it), or with ``linked`` the
first committed file."""


NODE_COLUMNS = (  # NodeRecord's fields, in order
    "node_id, host, port, zone, capacity_bytes, used_bytes, status, last_heartbeat,"
    " expires_at, disk_id, boot, seq"
)
UPSERT_NODE_UNORDERED = (
    f"INSERT OR REPLACE INTO nodes ({NODE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
)
UPSERT_NODE = (
    f"INSERT INTO nodes ({NODE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
    " ON CONFLICT(node_id) DO UPDATE SET host=excluded.host, port=excluded.port,"
    " zone=excluded.zone, capacity_bytes=excluded.capacity_bytes,"
    " used_bytes=excluded.used_bytes, status=excluded.status,"
    " last_heartbeat=excluded.last_heartbeat, expires_at=excluded.expires_at,"
    " disk_id=excluded.disk_id, boot=excluded.boot, seq=excluded.seq"
    " WHERE (nodes.boot, nodes.seq) < (excluded.boot, excluded.seq)"
)
"""A node call's write (``upsert_node``): it replaces only an entry an earlier call, or
none, wrote (``NodeRecord.boot``)."""
DEREGISTER_NODE = (
    "UPDATE nodes SET expires_at = MIN(expires_at, ?), status = ?, boot = ?, seq = ?"
    " WHERE node_id = ? AND (boot, seq) < (?, ?)"
)
DEREGISTER_NODE_UNORDERED = (
    "UPDATE nodes SET expires_at = MIN(expires_at, ?), status = ? WHERE node_id = ?"
)


def create_tables(conn: sqlite3.Connection) -> None:
    for stmt in SCHEMA.split(";"):
        if stmt.strip():
            conn.execute(stmt)
    cols = {r[1] for r in conn.execute("PRAGMA table_info(nodes)")}
    if "disk_id" not in cols:  # a database made before nodes named their disks
        conn.execute("ALTER TABLE nodes ADD COLUMN disk_id TEXT NOT NULL DEFAULT ''")
    for col in ("boot", "seq"):  # made before entries recorded the call that wrote them
        if col not in cols:
            conn.execute(f"ALTER TABLE nodes ADD COLUMN {col} INTEGER NOT NULL DEFAULT 0")
    apply_namespace_schema(conn)  # the ns_* tables (dfs.meta.sqlite_namespace_schema)
    apply_multipart_schema(conn)  # the s3_upload* tables (dfs.meta.sqlite_multipart)
    apply_usage_history_schema(conn)  # usage_samples (dfs.meta.sqlite_usage_history)


_NODE_FIELDS = frozenset(NODE_COLUMNS.replace(" ", "").split(","))


def node_record(row: sqlite3.Row) -> NodeRecord:
    # the columns this version knows: one a later version adds does not break this reader
    known = (k for k in row.keys() if k in _NODE_FIELDS)  # noqa: SIM118 - sqlite3.Row
    return NodeRecord(**{k: row[k] for k in known})


def file_record(
    db: sqlite3.Connection, labels: Labels, row: sqlite3.Row, state: str | None = None
) -> FileRecord:
    """A row of ``SELECT {FILE_COLUMNS}`` as a FileRecord; in ``state`` when one is given
    (a commit's answer: cheaper than a ``dataclasses.replace`` of the record)."""
    return FileRecord(
        file_id=unpack_file_id(row[0]),
        tenant=labels.name(db, row[1]),
        name=row[2],
        size=row[3],
        sha256=unpack_hex(row[4]),
        chunker=labels.name(db, row[5]),
        state=state or state_name(row[6]),
        created_at=row[7],
        chunk_count=row[8],
        mode=row[9],
        mtime=row[10],
        sha256_verified=bool(row[11]),
    )
