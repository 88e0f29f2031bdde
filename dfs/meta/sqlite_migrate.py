"""Opening a SQLite metadata database: a new one gets the schema of ``dfs.meta.sqlite_schema``;
one in the layout before issue 19 (text ids, one manifest row per chunk, a locations table
with its by-node index, ``file_hashes``) is converted to it in the open's transaction.

Chosen over keeping both layouts: the store then has one set of queries, and the conversion
runs once, at the first open by a new version (it reads every row, so it takes as long as a
VACUUM of the database would). A database is in the old layout when it has a ``files`` table
and no ``labels`` table. Old layouts that predate a column (``chunks.unref_at``,
``files.mode``/``mtime``) or a table are first completed the way the old code did; a
compact database made before a column of ``_NEW_COLUMNS`` (``files.for_object``) gets it.

``connect`` opens the connection itself. Several processes open one file at once (the API,
every node, ``dfs-admin``), and ``PRAGMA journal_mode=WAL`` takes its lock without SQLite's
busy handler, so an open beside another one can fail at once with "database is locked":
the mode is read first (WAL is a property of the file, so after the first open nothing is
converted and no lock taken) and a busy open is tried again, with backoff, for ``OPEN_BUDGET``.
"""

from __future__ import annotations

import collections
import sqlite3
from pathlib import Path

from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential_jitter

from dfs.meta.base import FILE_COMPLETE, ManifestEntry
from dfs.meta.sqlite_codec import (
    STATE_COMPLETE,
    STATE_PENDING,
    Labels,
    chunk_prefix,
    node_text,
    pack_file_id,
    pack_hex,
    pack_page,
)
from dfs.meta.sqlite_schema import create_tables

_LEGACY = {
    "files": "file_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, name TEXT NOT NULL, size INTEGER "
    "NOT NULL, sha256 TEXT NOT NULL, chunker TEXT NOT NULL, state TEXT NOT NULL, created_at "
    "REAL NOT NULL, chunk_count INTEGER NOT NULL",
    "manifest": "file_id TEXT NOT NULL, idx INTEGER NOT NULL, offset INTEGER NOT NULL, "
    "size INTEGER NOT NULL, chunk_id TEXT NOT NULL, PRIMARY KEY (file_id, idx)",
    "chunks": "chunk_id TEXT PRIMARY KEY, size INTEGER NOT NULL, refcount INTEGER NOT NULL, "
    "created_at REAL NOT NULL",
    "locations": "chunk_id TEXT NOT NULL, node_id TEXT NOT NULL, created_at REAL NOT NULL, "
    "PRIMARY KEY (chunk_id, node_id)",
    "tenant_chunks": "tenant TEXT NOT NULL, chunk_id TEXT NOT NULL, refcount INTEGER NOT NULL, "
    "PRIMARY KEY (tenant, chunk_id)",
    "file_hashes": "tenant TEXT NOT NULL, sha256 TEXT NOT NULL, file_id TEXT NOT NULL, "
    "PRIMARY KEY (tenant, sha256)",
}
_LEGACY_COLUMNS = {
    "files": (
        ("mode", "INTEGER"),
        ("mtime", "REAL"),
        ("sha256_verified", "INTEGER NOT NULL DEFAULT 0"),
    ),
    "chunks": (("unref_at", "REAL NOT NULL DEFAULT 0"),),
}


OPEN_BUDGET = 30.0  # seconds an open keeps trying while other processes hold the lock
BUSY_TIMEOUT_MS = 30000


def connect(path: Path) -> sqlite3.Connection:
    """A connection to the database at ``path`` in WAL mode with its schema current."""
    path.parent.mkdir(parents=True, exist_ok=True)
    retrying = Retrying(
        stop=stop_after_delay(OPEN_BUDGET),
        wait=wait_exponential_jitter(multiplier=0.01, max=0.5),
        retry=retry_if_exception(_is_busy),
        reraise=True,
    )
    return retrying(_connect_once, path)


def _is_busy(exc: BaseException) -> bool:
    text = str(exc)
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def _connect_once(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    try:
        conn.row_factory = sqlite3.Row
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("BEGIN IMMEDIATE")
        try:
            open_schema(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    except BaseException:
        conn.close()
        raise
    return conn


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def open_schema(conn: sqlite3.Connection) -> None:
    """Create what is missing, converting an old layout first (in the caller's transaction)."""
    tables = _tables(conn)
    if "files" in tables and "labels" not in tables:
        _convert(conn, tables)
    create_tables(conn)
    _add_columns(conn)


_NEW_COLUMNS = {"files": (("for_object", "INTEGER NOT NULL DEFAULT 0"),)}
"""Columns added to the compact layout after it shipped: a database made before one gets
it at open (SQLite adds a column with a constant default without rewriting a row)."""


def _add_columns(conn: sqlite3.Connection) -> None:
    for name, columns in _NEW_COLUMNS.items():
        have = {r[1] for r in conn.execute(f"PRAGMA table_info({name})")}
        for col, kind in columns:
            if col not in have:
                conn.execute(f"ALTER TABLE {name} ADD COLUMN {col} {kind}")


def _convert(conn: sqlite3.Connection, tables: set[str]) -> None:
    for name, columns in _LEGACY.items():
        if name not in tables:
            conn.execute(f"CREATE TABLE {name} ({columns}) WITHOUT ROWID")
        have = {r[1] for r in conn.execute(f"PRAGMA table_info({name})")}
        for col, kind in _LEGACY_COLUMNS.get(name, ()):
            if col not in have:
                conn.execute(f"ALTER TABLE {name} ADD COLUMN {col} {kind}")
        conn.execute(f"ALTER TABLE {name} RENAME TO legacy_{name}")
    for index in ("files_by_tenant", "files_by_hash", "locations_by_node"):
        conn.execute(f"DROP INDEX IF EXISTS {index}")
    create_tables(conn)
    labels = Labels()
    _convert_files(conn, labels)
    _convert_chunks(conn, labels)
    for name in _LEGACY:
        conn.execute(f"DROP TABLE legacy_{name}")


def _convert_files(conn: sqlite3.Connection, labels: Labels) -> None:
    named = {r[0] for r in conn.execute("SELECT file_id FROM legacy_file_hashes")}
    rows = conn.execute(
        "SELECT file_id, tenant, name, size, sha256, chunker, state, created_at, chunk_count,"
        " mode, mtime, sha256_verified FROM legacy_files"
    ).fetchall()
    # the files file_hashes named (one per content entry: claimed, verified) commit "first":
    # find_file_by_sha256 keeps naming them
    done = sorted(
        (r for r in rows if r[6] == FILE_COMPLETE), key=lambda r: (r[0] not in named, r[7], r[0])
    )
    seq = {r[0]: n for n, r in enumerate(done, start=1)}
    for r in rows:
        entries = [
            ManifestEntry(o, s, c)
            for o, s, c in conn.execute(
                "SELECT offset, size, chunk_id FROM legacy_manifest WHERE file_id=? ORDER BY idx",
                (r[0],),
            )
        ]
        complete = r[6] == FILE_COMPLETE
        conn.execute(
            "INSERT INTO files (file_id, tenant, name, size, sha256, chunker, state,"
            " created_at, chunk_count, mode, mtime, seq, manifest, sha256_verified)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                pack_file_id(r[0]),
                labels.id(conn, r[1]),
                r[2],
                r[3],
                pack_hex(r[4]),
                labels.id(conn, r[5]),
                STATE_COMPLETE if complete else STATE_PENDING,
                r[7],
                r[8],
                r[9],
                r[10],
                seq.get(r[0]),
                pack_page(entries, 0, r[4]),
                r[11],
            ),
        )
    conn.execute("INSERT OR REPLACE INTO counters VALUES ('commit_seq', ?)", (len(done),))


def _convert_chunks(conn: sqlite3.Connection, labels: Labels) -> None:
    nodes: dict[str, set[int]] = collections.defaultdict(set)
    for chunk_id, node_id in conn.execute("SELECT chunk_id, node_id FROM legacy_locations"):
        nodes[chunk_id].add(labels.id(conn, node_id))
    refs: dict[str, list[tuple[int, int]]] = collections.defaultdict(list)
    for tenant, chunk_id, count in conn.execute(
        "SELECT tenant, chunk_id, refcount FROM legacy_tenant_chunks ORDER BY refcount DESC"
    ):
        refs[chunk_id].append((labels.id(conn, tenant), count))
    for chunk_id, size, refcount, created, unref in conn.execute(
        "SELECT chunk_id, size, refcount, created_at, unref_at FROM legacy_chunks"
    ).fetchall():
        key = pack_hex(chunk_id)
        owner, owner_refs = refs[chunk_id].pop(0) if refs.get(chunk_id) else (None, 0)
        conn.execute(
            "INSERT INTO chunks VALUES (?,?,?,?,?,?,?,?)",
            (key, size, refcount, created, unref, node_text(nodes[chunk_id]), owner, owner_refs),
        )
        conn.executemany(
            "INSERT OR IGNORE INTO node_chunks VALUES (?,?)",
            ((n, chunk_prefix(key)) for n in nodes[chunk_id]),
        )
    conn.executemany(
        "INSERT INTO tenant_chunks VALUES (?,?,?)",
        ((t, pack_hex(c), n) for c, rest in refs.items() for t, n in rest),
    )
