"""The SQLite namespace's tables, and how their rows read as namespace records.

Apart from ``dfs.meta.sqlite_schema`` (files, chunks, nodes) so that the namespace can be
read and changed in one place; ``apply_schema`` there calls ``apply_namespace_schema``.

| table         | key                          | columns                                        |
|---------------|------------------------------|------------------------------------------------|
| ns_buckets    | name                         | tenant, created_at, versioning, access         |
| ns_grants     | (grantee, bucket)            | grant (read / read-write); index by bucket     |
| ns_versions   | (bucket, key, rank)          | version_id, file_id, size, created_at,         |
|               |                              | is_marker, etag ("=": the sha256), sha256,     |
|               |                              | content_type, and                              |
|               |                              | JSON user_metadata, tags, shared_with, access, |
|               |                              | headers (added later: ``_add_headers``);       |
|               |                              | ids packed (``VERSIONS_PACKED``)               |
| ns_current    | (bucket, key)                | rank: the latest version, only while it is     |
|               |                              | not a delete marker (what list_objects walks)  |
| ns_file_links | file_id (``pack_file_id``)   | links: versions linking the file               |
| ns_scope_links| (scope, file_id)             | links: versions of a scope linking the file    |
| ns_scope_chunks| (scope, chunk_id as its 32  | refs: manifest entries of the files of a scope |
|               | bytes)                       | on the chunk                                   |
| ns_usage      | (tenant, bucket, grp, name)  | objects, versions, delete_markers,             |
|               |                              | logical_bytes, stored_bytes                    |
| ns_sequence   | name                         | value: the last version sequence number; and   |
|               |                              | ``FILE_IDS_PACKED``, ``VERSIONS_PACKED``:      |
|               |                              | layout markers                                 |

``rank`` is minus a store-wide sequence number taken when the version is written: within a
key, ascending rank is newest first, so both listings read one index in order. Keys are
TEXT compared by SQLite's BINARY collation, memcmp of UTF-8: S3's byte order.

A scope (``scope_id``) is a bucket, as its label id (``dfs.meta.sqlite_codec.Labels``), or a
whole tenant, as minus its label id: one small integer where the rows of
``ns_scope_files`` and ``ns_chunk_refs`` (their layout before) held the tenant and bucket
names (a bucket name is unique, so it implies its tenant); those are moved at open.

A version id spells its rank (12 hex digits) and 6 random bytes (12 more), so a version row
stores only the random bytes and a lookup by id is a primary-key read at (bucket, key,
rank): no index by version id (it cost as much as a third of the row). The ``null``
version (and any id that does not spell its row's rank) stays text, found by reading the
key's versions. The file id is stored as ``pack_file_id`` (16 bytes) and the sha256 as its
32 bytes, as in the store's own tables. Empty tags, metadata and sharing are stored as ""
and private access as "" (rows written before hold "[]" and "private": both read the same).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from dfs.errors import InvalidRequest
from dfs.meta.namespace import ACCESS_PRIVATE, BucketRecord, ObjectVersion, encodable_text
from dfs.meta.sqlite_codec import (
    Labels,
    Packed,
    pack_file_id,
    pack_hex,
    unpack_file_id,
    unpack_hex,
)

NAMESPACE_SCHEMA = """
CREATE TABLE IF NOT EXISTS ns_buckets (
    name TEXT PRIMARY KEY, tenant TEXT NOT NULL, created_at REAL NOT NULL,
    versioning TEXT NOT NULL, access TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ns_buckets_by_tenant ON ns_buckets (tenant, name);
CREATE TABLE IF NOT EXISTS ns_grants (
    grantee TEXT NOT NULL, bucket TEXT NOT NULL, grant TEXT NOT NULL,
    PRIMARY KEY (grantee, bucket)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ns_grants_by_bucket ON ns_grants (bucket);
CREATE TABLE IF NOT EXISTS ns_versions (
    bucket TEXT NOT NULL, key TEXT NOT NULL, rank INTEGER NOT NULL, version_id TEXT NOT NULL,
    file_id TEXT NOT NULL, size INTEGER NOT NULL, created_at REAL NOT NULL,
    is_marker INTEGER NOT NULL, etag TEXT NOT NULL, sha256 TEXT NOT NULL,
    content_type TEXT NOT NULL, user_metadata TEXT NOT NULL, tags TEXT NOT NULL,
    access TEXT NOT NULL, shared_with TEXT NOT NULL, headers TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (bucket, key, rank)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ns_current (
    bucket TEXT NOT NULL, key TEXT NOT NULL, rank INTEGER NOT NULL, PRIMARY KEY (bucket, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ns_file_links (
    file_id TEXT PRIMARY KEY, links INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ns_scope_links (
    scope INTEGER NOT NULL, file_id NOT NULL, links INTEGER NOT NULL, PRIMARY KEY (scope, file_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ns_scope_chunks (
    scope INTEGER NOT NULL, chunk_id NOT NULL, refs INTEGER NOT NULL, PRIMARY KEY (scope, chunk_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ns_usage (
    tenant TEXT NOT NULL, bucket TEXT NOT NULL, grp TEXT NOT NULL, name TEXT NOT NULL,
    objects INTEGER NOT NULL, versions INTEGER NOT NULL, delete_markers INTEGER NOT NULL,
    logical_bytes INTEGER NOT NULL, stored_bytes INTEGER NOT NULL,
    PRIMARY KEY (tenant, bucket, grp, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ns_sequence (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
"""

VERSION_COLUMNS = (
    "bucket, key, rank, version_id, file_id, size, created_at, is_marker, etag, sha256,"
    " content_type, user_metadata, tags, access, shared_with, headers"
)


def apply_namespace_schema(conn: sqlite3.Connection) -> None:
    """Create the namespace tables that are missing (inside the caller's transaction), and
    convert the rows of the counting tables written with ids as text."""
    for stmt in NAMESPACE_SCHEMA.split(";"):
        if stmt.strip():
            conn.execute(stmt)
    _file_ids_as_bytes(conn)
    _scopes_as_labels(conn)
    _pack_versions(conn)
    _add_headers(conn)


def _add_headers(conn: sqlite3.Connection) -> None:
    """``ns_versions.headers`` (the stored response headers) came after the table: a
    database made before it gets the column, its rows reading as no headers (``''``)."""
    have = {r[1] for r in conn.execute("PRAGMA table_info(ns_versions)")}
    if "headers" not in have:
        conn.execute("ALTER TABLE ns_versions ADD COLUMN headers TEXT NOT NULL DEFAULT ''")


FILE_IDS_PACKED = "layout:file-ids-packed"
"""The ``ns_sequence`` row that says ``ns_file_links`` keys files by ``pack_file_id`` (16
bytes for a canonical UUID), not by the id's 36 characters."""

TENANT_WIDE = ""  # the bucket of tenant-wide usage rows (bucket names have 3+ characters)


def _file_ids_as_bytes(conn: sqlite3.Connection) -> None:
    """Convert the file ids of ``ns_file_links`` once (a marker row says it is done: an id
    that is not a canonical UUID stays text, so no row can tell)."""
    done = conn.execute("SELECT 1 FROM ns_sequence WHERE name=?", (FILE_IDS_PACKED,)).fetchone()
    if done is not None:
        return
    conn.create_function("dfs_pack_file_id", 1, pack_file_id, deterministic=True)
    conn.execute(
        "UPDATE ns_file_links SET file_id = dfs_pack_file_id(file_id)"
        " WHERE typeof(file_id) = 'text'"
    )
    conn.execute("INSERT INTO ns_sequence VALUES (?, 1)", (FILE_IDS_PACKED,))


def scope_id(db: sqlite3.Connection, labels: Labels, tenant: str, bucket: str) -> int:
    """The ``scope`` of a bucket, or of the whole tenant when ``bucket`` is ``TENANT_WIDE``
    (negative: a tenant and a bucket of the same name are different scopes)."""
    return -labels.id(db, tenant) if bucket == TENANT_WIDE else labels.id(db, bucket)


def _scopes_as_labels(conn: sqlite3.Connection) -> None:
    """Move the rows of ``ns_scope_files`` and ``ns_chunk_refs`` (tenant and bucket names,
    ids as text in the oldest) to ``ns_scope_links`` and ``ns_scope_chunks``, once: the old
    tables are dropped in the same transaction."""
    old = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    labels = Labels()
    if "ns_scope_files" in old:
        rows = conn.execute("SELECT tenant, bucket, file_id, links FROM ns_scope_files")
        conn.executemany(
            "INSERT INTO ns_scope_links VALUES (?,?,?)",
            [
                (scope_id(conn, labels, t, b), f if isinstance(f, bytes) else pack_file_id(f), n)
                for t, b, f, n in rows.fetchall()
            ],
        )
        conn.execute("DROP TABLE ns_scope_files")
    if "ns_chunk_refs" in old:
        rows = conn.execute("SELECT tenant, bucket, chunk_id, refs FROM ns_chunk_refs")
        conn.executemany(
            "INSERT INTO ns_scope_chunks VALUES (?,?,?)",
            [
                (scope_id(conn, labels, t, b), c if isinstance(c, bytes) else pack_hex(c), n)
                for t, b, c, n in rows.fetchall()
            ],
        )
        conn.execute("DROP TABLE ns_chunk_refs")


VERSIONS_PACKED = "layout:versions-packed"
"""The ``ns_sequence`` row that says ``ns_versions`` rows hold packed ids (``pack_version``)
and the table has no index by version id."""

_VERSION_ID = re.compile(r"[0-9a-f]{24}")
_RANK_BASE = 1 << 48


def new_version_id(rank: int) -> str:
    """A version id for a new version: its rank's 12 hex digits, then 6 random bytes.
    Newer versions have lower ranks, so lower hex: version ids of a key sort newest first."""
    return f"{_RANK_BASE + rank:012x}{secrets.token_hex(6)}"


def parse_version_id(version_id: str) -> tuple[int, bytes] | None:
    """(rank, random bytes) of an id ``new_version_id`` could have made, else None."""
    if not _VERSION_ID.fullmatch(version_id):
        return None
    return int(version_id[:12], 16) - _RANK_BASE, bytes.fromhex(version_id[12:])


def pack_version_id(rank: int, version_id: str) -> Packed:
    """The ``version_id`` column's value: the random bytes when the id spells ``rank``."""
    parsed = parse_version_id(version_id)
    return parsed[1] if parsed is not None and parsed[0] == rank else version_id


def unpack_version_id(rank: int, stored: Packed) -> str:
    if isinstance(stored, bytes):
        return f"{_RANK_BASE + rank:012x}{stored.hex()}"
    return stored


def _pack_versions(conn: sqlite3.Connection) -> None:
    """Pack the ids of ``ns_versions`` rows written before ``VERSIONS_PACKED`` and drop the
    index by version id, once (one statement in the open's transaction; a marker row says
    it is done)."""
    done = conn.execute("SELECT 1 FROM ns_sequence WHERE name=?", (VERSIONS_PACKED,)).fetchone()
    if done is not None:
        return
    conn.execute("DROP INDEX IF EXISTS ns_versions_by_id")
    conn.create_function("dfs_pack_file_id", 1, pack_file_id, deterministic=True)
    conn.create_function("dfs_pack_hex", 1, pack_hex, deterministic=True)
    conn.create_function("dfs_pack_version_id", 2, pack_version_id, deterministic=True)
    packed = {  # each column only where it is still text: a second pass changes nothing
        "file_id": "dfs_pack_file_id(file_id)",
        "sha256": "dfs_pack_hex(sha256)",
        "version_id": "dfs_pack_version_id(rank, version_id)",
    }
    sets = ", ".join(
        f"{col} = CASE WHEN typeof({col}) = 'text' THEN {fn} ELSE {col} END"
        for col, fn in packed.items()
    )
    conn.execute(f"UPDATE ns_versions SET {sets}")
    conn.execute("INSERT INTO ns_sequence VALUES (?, 1)", (VERSIONS_PACKED,))


SAME_AS_SHA256 = "="
"""What ``ns_versions.etag`` holds when the etag is the version's sha256 (the native API's
etag, most versions): one byte instead of 64 again. No etag dfs or S3 makes is "="."""


def stored_etag(etag: str, sha256: str) -> str:
    """The ``etag`` column's value for a version's etag and sha256."""
    return SAME_AS_SHA256 if sha256 and etag == sha256 else etag


def etag_of(row: sqlite3.Row) -> str:
    """A version row's etag (rows written before ``SAME_AS_SHA256`` hold it in full)."""
    etag: str = row["etag"]
    return row_sha256(row) if etag == SAME_AS_SHA256 else etag


def row_file_id(row: sqlite3.Row) -> str:
    """A version row's file id ("" for a delete marker)."""
    return unpack_file_id(row["file_id"])


def row_sha256(row: sqlite3.Row) -> str:
    return unpack_hex(row["sha256"])


def row_version_id(row: sqlite3.Row) -> str:
    return unpack_version_id(row["rank"], row["version_id"])


def _compact_json(value: list[Any]) -> str:
    """``value`` as compact JSON by orjson (~10x the standard encoder on these short lists,
    which it builds an encoder for at every call); what orjson refuses (a lone surrogate)
    by the standard one, whose escapes both decoders read back the same."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, separators=(",", ":"))


def _read_json(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # a lone surrogate, written escaped by ``json``
        return json.loads(text)


def pairs_json(items: tuple[tuple[str, str], ...]) -> str:
    """Tags or user metadata as stored: "" when there are none (most versions)."""
    return _compact_json([list(p) for p in items]) if items else ""


def names_json(names: Sequence[str]) -> str:
    """``shared_with`` as stored: "" when the version is shared with no one."""
    return _compact_json(sorted(set(names))) if names else ""


def stored_access(access: str) -> str:
    """The ``access`` column's value: "" for private (most versions)."""
    return "" if access == ACCESS_PRIVATE else access


def _pairs(text: str) -> tuple[tuple[str, str], ...]:
    if text in ("", "[]"):  # rows written before "" meant none hold "[]"
        return ()
    return tuple((str(k), str(v)) for k, v in _read_json(text))


def version_record(row: sqlite3.Row, is_latest: bool) -> ObjectVersion:
    shared = row["shared_with"]
    return ObjectVersion(
        bucket=row["bucket"],
        key=row["key"],
        version_id=row_version_id(row),
        file_id=row_file_id(row),
        size=row["size"],
        created_at=row["created_at"],
        is_latest=is_latest,
        is_delete_marker=bool(row["is_marker"]),
        etag=etag_of(row),
        sha256=row_sha256(row),
        content_type=row["content_type"],
        user_metadata=_pairs(row["user_metadata"]),
        tags=_pairs(row["tags"]),
        access=row["access"] or ACCESS_PRIVATE,
        shared_with=() if shared in ("", "[]") else tuple(_read_json(shared)),
        headers=_pairs(row["headers"]),
    )


def bucket_record(row: sqlite3.Row, grants: list[tuple[str, str]]) -> BucketRecord:
    return BucketRecord(
        name=row["name"],
        tenant=row["tenant"],
        created_at=row["created_at"],
        versioning=row["versioning"],
        access=row["access"],
        grants=tuple(sorted(grants)),
    )


def encode_token(state: dict[str, Any]) -> str:
    """An opaque continuation token: where the listing resumes."""
    return base64.urlsafe_b64encode(json.dumps(state).encode()).decode().rstrip("=")


def decode_token(token: str | None) -> dict[str, Any]:
    if not token:
        return {}
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        state = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("invalid continuation token", field="token") from None
    if not isinstance(state, dict) or not _token_state(state):
        raise InvalidRequest("invalid continuation token", field="token")
    return state


def _token_state(state: dict[str, Any]) -> bool:
    """Whether a decoded token is one ``encode_token`` could have made (a key ``k``,
    with a version's ``r`` in a versions listing, or a common prefix ``p``; none: from the
    start): a forged one is refused, never met as a wrong type or an overflow in a query."""
    if not set(state) <= {"k", "r", "p"} or ("k" in state and "p" in state):
        return False
    if "r" in state:
        r = state["r"]
        if "k" not in state or type(r) is not int or not -(1 << 63) <= r < 1 << 63:
            return False
    return all(encodable_text(state[f]) for f in ("k", "p") if f in state)
