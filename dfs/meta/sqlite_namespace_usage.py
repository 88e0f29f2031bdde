"""What a version change does to file links and usage counters in the SQLite namespace,
always inside the caller's write transaction (so counters never drift from the versions).

Versions share files by a link count (``ns_file_links``): each version with a file adds one
link; when the last link goes the file is deleted exactly as ``delete_file`` deletes it
(``drop_refs``: chunk refcounts, the tenant's chunk set, the Stats counters, the content
index), in the same transaction. So a copy or restore within a tenant costs one row, and an
overwrite releases the old file's chunks exactly once.

Usage: each version adds to five ``ns_usage`` rows (the tenant, its bucket, the bucket's
top-level prefix, the extension tenant-wide and in the bucket). ``stored_bytes`` of the
tenant and bucket rows counts each distinct chunk once: ``ns_scope_chunks`` holds, per
scope (a tenant or a bucket: ``scope_id``), how many manifest entries of live versions point
at a chunk, and a chunk's bytes are added when that count leaves 0 and taken off when it
returns to 0. A file's chunks enter a scope's set with the scope's first version linking the
file (``ns_scope_links`` counts them) and leave with its last, so a restore, or a copy within a bucket, changes one
row however many chunks the file has. Prefix and type rows keep no chunk set (their
stored_bytes stays 0, as the port says).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from dfs.meta.namespace import NewObject, Usage
from dfs.meta.sqlite_codec import Packed, pack_file_id, pack_hex, rows_in
from dfs.meta.sqlite_namespace_files import StoreFiles
from dfs.meta.sqlite_namespace_schema import TENANT_WIDE, scope_id
from dfs.meta.sqlite_usage_deltas import UsageDeltas
from dfs.namespace_rules import extension, top_prefix

_USAGE_COLUMNS = "objects, versions, delete_markers, logical_bytes, stored_bytes"


def link_file(db: sqlite3.Connection, file_id: str) -> None:
    if file_id:
        db.execute(
            "INSERT INTO ns_file_links VALUES (?, 1) ON CONFLICT(file_id) "
            "DO UPDATE SET links = links + 1",
            (pack_file_id(file_id),),
        )


def unlink_file(files: StoreFiles, file_id: str, now: float) -> bool:
    """Drop one link; on the last one delete the file as delete_file does. True if deleted."""
    if not file_id:
        return False
    db = files.db
    key = (pack_file_id(file_id),)
    row = db.execute("SELECT links FROM ns_file_links WHERE file_id=?", key).fetchone()
    if row is not None and row[0] > 1:
        db.execute("UPDATE ns_file_links SET links = links - 1 WHERE file_id=?", key)
        return False
    db.execute("DELETE FROM ns_file_links WHERE file_id=?", key)
    return files.delete_released(file_id, now)


def _add_usage(
    db: sqlite3.Connection,
    tenant: str,
    bucket: str,
    key: str,
    deltas: tuple[int, ...],
    sums: UsageDeltas | None = None,
) -> None:
    """Add (objects, versions, delete_markers, logical_bytes) to the key's five groups, or
    to ``sums`` (a group commit's, written before its COMMIT)."""
    ext = extension(key)
    groups = (
        (TENANT_WIDE, "all", ""),
        (bucket, "all", ""),
        (bucket, "prefix", top_prefix(key)),
        (TENANT_WIDE, "type", ext),
        (bucket, "type", ext),
    )
    if sums is not None:
        for b, grp, name in groups:
            sums.add((tenant, b, grp, name), deltas)
        return
    db.executemany(
        f"INSERT INTO ns_usage (tenant, bucket, grp, name, {_USAGE_COLUMNS}) "
        "VALUES (?,?,?,?,?,?,?,?,0) ON CONFLICT(tenant, bucket, grp, name) DO UPDATE SET "
        "objects = objects + excluded.objects, versions = versions + excluded.versions, "
        "delete_markers = delete_markers + excluded.delete_markers, "
        "logical_bytes = logical_bytes + excluded.logical_bytes",
        [(tenant, b, grp, name, *deltas) for b, grp, name in groups],
    )


def _scope_links(db: sqlite3.Connection, ident: tuple[int, Packed], sign: int) -> int:
    """Add ``sign`` to the versions of one scope linking one file; the count before."""
    if sign > 0:  # one statement: a link in never deletes the row
        row = db.execute(
            "INSERT INTO ns_scope_links VALUES (?,?,?) ON CONFLICT(scope, file_id) "
            "DO UPDATE SET links = links + excluded.links RETURNING links",
            (*ident, sign),
        ).fetchone()
        return int(row[0]) - sign
    cur = db.execute(
        "SELECT links FROM ns_scope_links WHERE scope=? AND file_id=?", ident
    ).fetchone()
    before = int(cur[0]) if cur is not None else 0
    if before + sign > 0:
        db.execute("INSERT OR REPLACE INTO ns_scope_links VALUES (?,?,?)", (*ident, before + sign))
    else:
        db.execute("DELETE FROM ns_scope_links WHERE scope=? AND file_id=?", ident)
    return before


def _add_chunks(
    db: sqlite3.Connection, scope: int, refs: list[tuple[str, int, int]], sign: int
) -> int:
    """Count a file's chunks into (sign 1) or out of (sign -1) one scope's chunk set; the
    change of the scope's stored bytes (a chunk's size when it enters or leaves the set)."""
    stored = 0
    if sign > 0:  # one statement per chunk: entering never deletes a row
        for chunk_id, count, size in refs:
            row = db.execute(
                "INSERT INTO ns_scope_chunks VALUES (?,?,?) ON CONFLICT(scope, chunk_id) "
                "DO UPDATE SET refs = refs + excluded.refs RETURNING refs",
                (scope, pack_hex(chunk_id), count),
            ).fetchone()
            if int(row[0]) == count:  # it was not in the set
                stored += size
        return stored
    for chunk_id, count, size in refs:
        ident = (scope, pack_hex(chunk_id))  # 32 bytes, not 64 hex characters
        cur = db.execute(
            "SELECT refs FROM ns_scope_chunks WHERE scope=? AND chunk_id=?", ident
        ).fetchone()
        before = int(cur[0]) if cur is not None else 0
        after = before + sign * count
        if after > 0:
            db.execute("INSERT OR REPLACE INTO ns_scope_chunks VALUES (?,?,?)", (*ident, after))
        else:
            db.execute("DELETE FROM ns_scope_chunks WHERE scope=? AND chunk_id=?", ident)
        if before <= 0 < after:
            stored += size
        elif after <= 0 < before:
            stored -= size
    return stored


def _add_stored(files: StoreFiles, tenant: str, bucket: str, file_id: str, sign: int) -> None:
    """A version linking ``file_id`` came (sign 1) or went (sign -1): the file's chunks enter
    the tenant's and the bucket's chunk sets with the scope's first version linking it and
    leave with its last, so more versions of one file (restores, copies) cost one row each."""
    db = files.db
    refs: list[tuple[str, int, int]] | None = None  # the manifest, read once for both scopes
    for scope in (TENANT_WIDE, bucket):
        ident = scope_id(db, files.labels, tenant, scope)
        before = _scope_links(db, (ident, pack_file_id(file_id)), sign)
        if before == (0 if sign > 0 else 1):  # the first link in, or the last one out
            refs = files.chunks(file_id) if refs is None else refs
            stored = _add_chunks(db, ident, refs, sign)
            if stored and files.usage is not None:
                files.usage.add((tenant, scope, "all", ""), (0, 0, 0, 0, stored))
            elif stored:
                db.execute(
                    "UPDATE ns_usage SET stored_bytes = stored_bytes + ? "
                    "WHERE tenant=? AND bucket=? AND grp='all' AND name=''",
                    (stored, tenant, scope),
                )


def count_version(
    files: StoreFiles,
    tenant: str,
    bucket: str,
    key: str,
    *,
    file_id: str,
    size: int,
    is_marker: bool,
    sign: int,
    current: int = 0,
) -> None:
    """A version (or marker) of the key was added (sign 1) or removed (sign -1); with
    ``current``, the key's current objects changed by that much (``count_current``)."""
    db, sums = files.db, files.usage
    if is_marker:
        _add_usage(db, tenant, bucket, key, (current, 0, sign, 0), sums)
        return
    _add_usage(db, tenant, bucket, key, (current, sign, 0, sign * size), sums)
    if file_id:
        _add_stored(files, tenant, bucket, file_id, sign)


@dataclass(frozen=True, slots=True)
class FreshLink:
    """A link ``count_fresh_links`` counts: ``obj`` (its file's size in it) and its file's
    chunk references (``StoreFiles.chunks``'s; none for an empty object)."""

    obj: NewObject
    refs: list[tuple[str, int, int]]


def count_fresh_links(
    files: StoreFiles, tenant: str, bucket: str, links: Sequence[FreshLink]
) -> None:
    """``link_file`` and ``count_version`` of new versions of ``bucket``, each the first of
    its key (so one more current object) and the first to link its file (so the file's
    chunks enter both scopes): the same rows and sums, in a few statements for them all.
    A chunk several of the files share enters each scope's set once."""
    db = files.db
    sums = UsageDeltas() if files.usage is None else files.usage
    linked = [(pack_file_id(k.obj.file_id),) for k in links if k.obj.file_id]
    db.executemany(
        "INSERT INTO ns_file_links VALUES (?, 1) ON CONFLICT(file_id) "
        "DO UPDATE SET links = links + 1",
        linked,
    )
    refs: dict[Packed, tuple[int, int]] = {}  # chunk: (references, size)
    # the keys' usage summed by their groups' names (top prefix, extension) first: one
    # ``_add_usage`` per pair, through a key of it (the same five rows as each of its keys)
    groups: dict[tuple[str, str], tuple[str, int, int]] = {}
    for k in links:
        named = (top_prefix(k.obj.key), extension(k.obj.key))
        _, n, size = groups.get(named, ("", 0, 0))
        groups[named] = (k.obj.key, n + 1, size + k.obj.size)
        for chunk_id, count, size in k.refs:
            key = pack_hex(chunk_id)
            refs[key] = (refs.get(key, (0, 0))[0] + count, size)
    for key, n, size in groups.values():
        _add_usage(db, tenant, bucket, key, (n, n, 0, size), sums)
    for scope in (TENANT_WIDE, bucket) if linked else ():  # empty objects: no scope
        ident = scope_id(db, files.labels, tenant, scope)
        db.executemany(
            "INSERT INTO ns_scope_links VALUES (?,?,1) ON CONFLICT(scope, file_id) "
            "DO UPDATE SET links = links + 1",
            [(ident, f) for (f,) in linked],
        )
        sql = (
            "SELECT chunk_id FROM ns_scope_chunks WHERE scope=? AND refs > 0 "
            "AND chunk_id IN ({marks})"
        )
        held = {r[0] for r in rows_in(db, sql, list(refs), (ident,))}
        db.executemany(
            "INSERT INTO ns_scope_chunks VALUES (?,?,?) ON CONFLICT(scope, chunk_id) "
            "DO UPDATE SET refs = refs + excluded.refs",
            [(ident, c, n) for c, (n, _) in refs.items()],
        )
        stored = sum(size for c, (_, size) in refs.items() if c not in held)
        if stored:
            sums.add((tenant, scope, "all", ""), (0, 0, 0, 0, stored))
    if files.usage is None:
        sums.flush(db)


def count_current(db: sqlite3.Connection, tenant: str, bucket: str, key: str, delta: int) -> None:
    """The key gained (1) or lost (-1) a current, non-marker version."""
    if delta:
        _add_usage(db, tenant, bucket, key, (delta, 0, 0, 0))


def _usage(values: Sequence[int] | None) -> Usage:
    return Usage() if values is None else Usage(*(int(v) for v in values))


def read_usage(db: sqlite3.Connection, tenant: str, bucket: str | None) -> Usage:
    row = db.execute(
        f"SELECT {_USAGE_COLUMNS} FROM ns_usage WHERE tenant=? AND bucket=? "
        "AND grp='all' AND name=''",
        (tenant, bucket or TENANT_WIDE),
    ).fetchone()
    return _usage(None if row is None else tuple(row))


def read_usage_groups(
    db: sqlite3.Connection, tenant: str, bucket: str | None, grp: str
) -> dict[str, Usage]:
    rows = db.execute(
        f"SELECT name, {_USAGE_COLUMNS} FROM ns_usage WHERE tenant=? AND bucket=? AND grp=? "
        "AND (objects OR versions OR delete_markers OR logical_bytes) ORDER BY name",
        (tenant, bucket or TENANT_WIDE, grp),
    )
    return {r[0]: _usage(tuple(r)[1:]) for r in rows}
