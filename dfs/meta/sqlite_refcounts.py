"""Reference counting in the SQLite metadata store: what commit and delete do to refcounts,
the tenants' references and the counters, always inside the caller's write transaction.

Apart from ``dfs.meta.sqlite`` because it is the one piece of the store with real logic: a
commit counts each distinct chunk as stored (first reference) or as a duplicate avoided, and
a delete is its exact inverse, so the Stats counters stay exact. Both run under
``BEGIN IMMEDIATE``, so the refcounts they read cannot change before they write. A manifest
is counted page by page (a chunk first referenced on one page is a duplicate on the next),
which gives the same counts as counting the whole file at once and keeps memory to a page.

A tenant's references to a chunk live in the chunk's row for the first tenant that
referenced it (``owner``, ``owner_refs``: the common case of one tenant costs no row of its
own) and in ``tenant_chunks`` for every other tenant.
"""

from __future__ import annotations

import collections
import dataclasses
import sqlite3
from collections.abc import Iterable, Sequence

from dfs.errors import FileNotFound
from dfs.meta.base import FILE_COMPLETE, FileRecord, ManifestEntry
from dfs.meta.sqlite_codec import STATE_COMPLETE, Labels, pack_file_id, pack_hex
from dfs.meta.sqlite_manifests import (
    drop_manifest,
    file_row,
    file_rows,
    insert_file,
    manifest_pages,
    pages_of,
)
from dfs.meta.sqlite_schema import file_record


@dataclasses.dataclass
class _Deltas:
    stored: int = 0
    unique: int = 0
    dups: int = 0

    def rows(self, files: int, size: int, sign: int) -> list[tuple[str, int]]:
        return [
            ("total_files", files),
            ("logical_bytes", sign * size),
            ("stored_bytes", sign * self.stored),
            ("unique_chunks", sign * self.unique),
            ("duplicates_avoided", sign * self.dups),
        ]


def page_refs(page: Iterable[ManifestEntry]) -> list[tuple[str, int, int]]:
    """(chunk_id, references, size) of each distinct chunk of a page."""
    counts: collections.Counter[str] = collections.Counter()
    sizes: dict[str, int] = {}
    for e in page:
        counts[e.chunk_id] += 1
        sizes[e.chunk_id] = max(sizes.get(e.chunk_id, 0), e.size)
    return [(c, n, sizes[c]) for c, n in counts.items()]


def _add_ref(
    db: sqlite3.Connection, tenant: int, chunk: str, count: int, size: int, now: float
) -> int:
    """Add ``count`` references of ``tenant``; returns the refcount before. One upsert (SET
    expressions read the row as it was): the first tenant to reference the chunk becomes
    its owner; any other tenant's references go to ``tenant_chunks``."""
    key = pack_hex(chunk)
    after, owner = db.execute(
        "INSERT INTO chunks (chunk_id, size, refcount, created_at, owner, owner_refs) "
        "VALUES (?,?,?,?,?,?) ON CONFLICT(chunk_id) DO UPDATE SET "
        "refcount = refcount + excluded.refcount, "
        "owner_refs = CASE WHEN owner IS NULL OR owner = excluded.owner "
        "THEN owner_refs + excluded.owner_refs ELSE owner_refs END, "
        "owner = CASE WHEN owner IS NULL THEN excluded.owner ELSE owner END "
        "RETURNING refcount, owner",
        (key, size, count, now, tenant, count),
    ).fetchone()
    if owner != tenant:
        db.execute(
            "INSERT INTO tenant_chunks VALUES (?,?,?) ON CONFLICT(tenant, chunk_id) "
            "DO UPDATE SET refcount = refcount + excluded.refcount",
            (tenant, key, count),
        )
    return int(after) - count


def _drop_ref(db: sqlite3.Connection, tenant: int, chunk: str, count: int, now: float) -> int:
    """Drop ``count`` references of ``tenant``; returns the refcount after."""
    key = pack_hex(chunk)
    row = db.execute("SELECT refcount, owner FROM chunks WHERE chunk_id=?", (key,)).fetchone()
    after = max(int(row[0]) - count, 0) if row is not None else 0
    if row is not None and row[1] == tenant:
        db.execute(
            "UPDATE chunks SET refcount = ?, owner_refs = MAX(owner_refs - ?, 0) WHERE chunk_id=?",
            (after, count, key),
        )
    else:
        db.execute("UPDATE chunks SET refcount = ? WHERE chunk_id=?", (after, key))
        db.execute(
            "UPDATE tenant_chunks SET refcount = refcount - ? WHERE tenant=? AND chunk_id=?",
            (count, tenant, key),
        )
    if after == 0:
        db.execute("UPDATE chunks SET unref_at = ? WHERE chunk_id=?", (now, key))
    return after


def _bump_counters(db: sqlite3.Connection, rows: list[tuple[str, int]]) -> None:
    db.executemany(
        "INSERT INTO counters VALUES (?,?) ON CONFLICT(name) "
        "DO UPDATE SET value = value + excluded.value",
        rows,
    )


def _next_seq(db: sqlite3.Connection, n: int = 1) -> int:
    """Take ``n`` commit sequence numbers; the last of them (the first is ``last - n + 1``)."""
    row = db.execute(
        "INSERT INTO counters VALUES ('commit_seq', ?) ON CONFLICT(name) "
        "DO UPDATE SET value = value + excluded.value RETURNING value",
        (n,),
    ).fetchone()
    return int(row[0])


def commit_one(db: sqlite3.Connection, labels: Labels, file_id: str, now: float) -> FileRecord:
    """commit_file's work inside the caller's write transaction."""
    (rec,) = commit_many(db, labels, [file_id], now)
    if rec is None:
        raise FileNotFound(f"no file {file_id}")
    return rec


def _count_refs(
    db: sqlite3.Connection,
    tenant: int,
    pages: Iterable[Sequence[ManifestEntry]],
    now: float,
    d: _Deltas,
) -> None:
    """Add a file's references, page by page, counting into ``d``."""
    for page in pages:
        for chunk, count, size in page_refs(page):
            if _add_ref(db, tenant, chunk, count, size, now) > 0:
                d.dups += count
            else:
                d.dups += count - 1
                d.stored += size
                d.unique += 1


def create_committed(
    db: sqlite3.Connection,
    labels: Labels,
    files: Sequence[tuple[FileRecord, Sequence[ManifestEntry]]],
    now: float,
) -> list[FileRecord]:
    """create_and_commit_files' work inside the caller's write transaction: each file
    inserted complete (its sequence number taken up front, in order) and its references
    counted from the manifest in hand, as ``commit_many`` would count them; no row is read
    back."""
    d = _Deltas()
    first = _next_seq(db, len(files)) - len(files) + 1
    size = 0
    out = []
    for i, (rec, manifest) in enumerate(files):
        insert_file(db, labels, rec, manifest, seq=first + i)
        _count_refs(db, labels.id(db, rec.tenant), (manifest,), now, d)
        size += rec.size
        out.append(dataclasses.replace(rec, state=FILE_COMPLETE))
    _bump_counters(db, d.rows(len(files), size, 1))
    return out


def commit_many(
    db: sqlite3.Connection, labels: Labels, file_ids: Sequence[str], now: float
) -> list[FileRecord | None]:
    """commit_files' work inside the caller's write transaction: each file (None if it
    does not exist) counted in order, exactly as commits one after the other (a chunk two
    of them share is stored by the first, a duplicate for the second); the counters bumped
    and the commit sequence numbers taken once for them all, in the files' order."""
    out: list[FileRecord | None] = []
    d = _Deltas()
    newly: dict[str, None] = {}  # committed here, in order
    size = 0
    rows = file_rows(db, file_ids, with_manifest=True)
    for file_id in file_ids:
        row = rows.get(pack_file_id(file_id))
        if row is None:
            out.append(None)
            continue
        rec = file_record(db, labels, row)
        if row[6] != STATE_COMPLETE and file_id not in newly:
            _count_refs(db, int(row[1]), pages_of(db, file_id, row), now, d)
            newly[file_id] = None
            size += rec.size
        out.append(rec if rec.state == "complete" else dataclasses.replace(rec, state="complete"))
    if newly:
        _bump_counters(db, d.rows(len(newly), size, 1))
        first = _next_seq(db, len(newly)) - len(newly) + 1
        db.executemany(
            "UPDATE files SET state=?, seq=? WHERE file_id=?",
            [(STATE_COMPLETE, first + i, pack_file_id(f)) for i, f in enumerate(newly)],
        )
    return out


def delete_one(
    db: sqlite3.Connection, labels: Labels, file_id: str, tenant: str, now: float
) -> FileRecord:
    """delete_file's work: a complete file's references dropped exactly (the inverse of
    ``commit_one``), then the file and its manifest."""
    row = file_row(db, file_id)
    if row is None:
        raise FileNotFound(f"no file {file_id}")
    rec = file_record(db, labels, row)
    if rec.tenant != tenant:
        raise FileNotFound(f"no file {file_id}")
    if row[6] == STATE_COMPLETE:
        d = _Deltas()
        for page in manifest_pages(db, file_id):
            for chunk, count, size in page_refs(page):
                if _drop_ref(db, int(row[1]), chunk, count, now) > 0:
                    d.dups += count
                else:
                    d.dups += count - 1
                    d.stored += size
                    d.unique += 1
        _bump_counters(db, d.rows(-1, rec.size, -1))
    key = pack_file_id(file_id)
    drop_manifest(db, key)
    db.execute("DELETE FROM files WHERE file_id=?", (key,))
    return rec


def mark_verified(db: sqlite3.Connection, labels: Labels, file_id: str) -> FileRecord | None:
    """mark_sha256_verified's work inside the caller's write transaction: the file gets the
    flag and the next commit seq, so it joins the verified files after those already there
    (the verified lookup keeps naming the first), and leaves the claims' lookup by itself."""
    row = file_row(db, file_id)
    if row is None or row[6] != STATE_COMPLETE:
        return None
    if not row[11]:
        db.execute(
            "UPDATE files SET sha256_verified = 1, seq = ? WHERE file_id=?",
            (_next_seq(db), pack_file_id(file_id)),
        )
    return dataclasses.replace(file_record(db, labels, row), sha256_verified=True)
