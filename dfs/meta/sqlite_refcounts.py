"""Reference counting in the SQLite metadata store: what commit and delete do to refcounts,
the tenants' references and the counters, always inside the caller's write transaction.

Apart from ``dfs.meta.sqlite`` because it is the one piece of the store with real logic: a
commit counts each distinct chunk as stored (first reference) or as a duplicate avoided, and
a delete is its exact inverse, so the Stats counters stay exact. Both run under
``BEGIN IMMEDIATE``, so the refcounts they read cannot change before they write. A manifest
is counted page by page (a chunk first referenced on one page is a duplicate on the next),
which gives the same counts as counting the whole file at once; references are written at
most ``REFS_PER_WRITE`` at a time, which keeps memory bounded for a paged upload of any size.

A tenant's references to a chunk live in the chunk's row for the first tenant that
referenced it (``owner``, ``owner_refs``: the common case of one tenant costs no row of its
own) and in ``tenant_chunks`` for every other tenant.
"""

from __future__ import annotations

import collections
import dataclasses
import operator
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from dfs.errors import FileNotFound, IncompleteUpload
from dfs.meta.base import FILE_COMPLETE, FileRecord, ManifestEntry
from dfs.meta.sqlite_chunks import NewChunks, collected_of, insert_new_chunks
from dfs.meta.sqlite_codec import (
    STATE_COMPLETE,
    Labels,
    Packed,
    pack_file_id,
    pack_hex,
    rows_in,
)
from dfs.meta.sqlite_manifests import (
    drop_manifest,
    file_row,
    file_rows,
    insert_files,
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


_RECORD_FIELDS = [f.name for f in dataclasses.fields(FileRecord)]
_record_values = operator.attrgetter(*_RECORD_FIELDS)
_STATE_AT = _RECORD_FIELDS.index("state")


def _completed(rec: FileRecord) -> FileRecord:
    """``rec`` complete: ``dataclasses.replace`` by position (half its cost, a commit of a
    batch of small files answers thousands of records)."""
    values = list(_record_values(rec))
    values[_STATE_AT] = FILE_COMPLETE
    return FileRecord(*values)


def page_refs(page: Sequence[ManifestEntry]) -> list[tuple[str, int, int]]:
    """(chunk_id, references, size) of each distinct chunk of a page."""
    if len(page) == 1:  # a small file's whole manifest: nothing to count
        (e,) = page
        return [(e.chunk_id, 1, e.size)]
    counts: collections.Counter[str] = collections.Counter()
    sizes: dict[str, int] = {}
    for e in page:
        counts[e.chunk_id] += 1
        sizes[e.chunk_id] = max(sizes.get(e.chunk_id, 0), e.size)
    return [(c, n, sizes[c]) for c, n in counts.items()]


_ADD_REF = (
    "INSERT INTO chunks (chunk_id, size, refcount, created_at, owner, owner_refs, nodes) "
    "VALUES (?,?,?,?,?,?,?) ON CONFLICT(chunk_id) DO UPDATE SET "
    "refcount = refcount + excluded.refcount, "
    "owner_refs = CASE WHEN owner IS NULL OR owner = excluded.owner "
    "THEN owner_refs + excluded.owner_refs ELSE owner_refs END, "
    "owner = CASE WHEN owner IS NULL THEN excluded.owner ELSE owner END"
)
"""Add references of a tenant to a chunk: the first tenant to reference it becomes its
owner; the owner's references are counted in the row itself (``owner_refs``). ``nodes``
is written only by an insert: a chunk's copies when it is new (``NewChunks``), else ''."""


def _chunk_states(db: sqlite3.Connection, keys: Sequence[Packed]) -> dict[Packed, list[Any]]:
    """[refcount, owner] of each existing chunk row of ``keys``."""
    sql = "SELECT chunk_id, refcount, owner FROM chunks WHERE chunk_id IN ({marks})"
    return {key: [int(refcount), owner] for key, refcount, owner in rows_in(db, sql, keys)}


def _add_refs(
    db: sqlite3.Connection,
    refs: Sequence[tuple[int, str, int, int]],
    now: float,
    d: _Deltas,
    fresh: NewChunks,
) -> None:
    """Add the references ``refs`` ((tenant, chunk_id, count, size) each, in commit order),
    counting into ``d`` exactly as one ``_ADD_REF`` after the other would: the rows they
    touch are read once (the caller's ``BEGIN IMMEDIATE`` keeps them as read), each
    reference's refcount before it and the chunk's owner are followed in memory, and the
    upserts run in one ``executemany`` (a statement each cost more than the rows). A chunk
    of ``fresh`` (new to the store, its row not inserted yet: read as absent, which is
    what a row of no reference and no owner counts as) is inserted by its first reference
    with its copies, and leaves ``fresh``."""
    keys = [pack_hex(c) for _t, c, _n, _s in refs]
    state = _chunk_states(db, list(dict.fromkeys(keys)))
    absent = [k for k in dict.fromkeys(keys) if k not in state and k not in fresh]
    if absent and (collected := collected_of(db, absent)):
        # garbage collection deleted the row (and is deleting its copies) after the
        # caller found the chunk held: a reference would make a row with no copy. Nothing
        # is written (the caller's transaction rolls back): the file stays pending, the
        # client sends the chunks again, and their copies make a new row.
        raise IncompleteUpload(
            f"{len(collected)} chunks were garbage-collected meanwhile; send them and"
            " finalize again",
            missing=sorted(collected)[:100],
        )
    chunk_rows = []
    other_rows = []
    for key, (tenant, _chunk, count, size) in zip(keys, refs, strict=True):
        got = state.get(key)
        if got is None:
            got = state[key] = [0, tenant]
        elif got[1] is None:
            got[1] = tenant
        if got[0] > 0:
            d.dups += count
        else:
            d.dups += count - 1
            d.stored += size
            d.unique += 1
        got[0] += count
        got_new = fresh.pop(key, None)
        chunk_rows.append((key, size, count, now, tenant, count, got_new[1] if got_new else ""))
        if got[1] != tenant:
            other_rows.append((tenant, key, count))
    db.executemany(_ADD_REF, chunk_rows)
    if other_rows:
        db.executemany(
            "INSERT INTO tenant_chunks VALUES (?,?,?) ON CONFLICT(tenant, chunk_id) "
            "DO UPDATE SET refcount = refcount + excluded.refcount",
            other_rows,
        )


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


def commit_one(
    db: sqlite3.Connection, labels: Labels, file_id: str, now: float, for_object: bool = False
) -> FileRecord:
    """commit_file's work inside the caller's write transaction."""
    (rec,) = commit_many(db, labels, [file_id], now, for_object)
    if rec is None:
        raise FileNotFound(f"no file {file_id}")
    return rec


REFS_PER_WRITE = 10_000
"""References ``_RefWriter`` holds before it writes them (one read and one ``executemany``)."""


class _RefWriter:
    """References added in commit order and written ``REFS_PER_WRITE`` at a time: each
    write reads the rows as the previous ones left them, so the counts are those of adding
    the references one by one."""

    def __init__(self, db: sqlite3.Connection, now: float, fresh: NewChunks | None = None) -> None:
        self.db, self.now, self.d = db, now, _Deltas()
        self.refs: list[tuple[int, str, int, int]] = []
        self.fresh: NewChunks = {} if fresh is None else fresh

    def add(self, tenant: int, pages: Iterable[Sequence[ManifestEntry]]) -> None:
        """A file's references, page by page."""
        for page in pages:
            self.refs += [(tenant, c, n, size) for c, n, size in page_refs(page)]
            if len(self.refs) >= REFS_PER_WRITE:
                self.flush()

    def flush(self) -> None:
        if self.refs:
            _add_refs(self.db, self.refs, self.now, self.d, self.fresh)
            self.refs = []

    def finish(self) -> None:
        """The last references written, then the new chunks none of them named."""
        self.flush()
        if self.fresh:
            insert_new_chunks(self.db, self.fresh, self.now)
            self.fresh = {}


def create_committed(
    db: sqlite3.Connection,
    labels: Labels,
    files: Sequence[tuple[FileRecord, Sequence[ManifestEntry]]],
    now: float,
    for_object: bool = False,
) -> list[FileRecord]:
    """create_and_commit_files' work inside the caller's write transaction: each file
    inserted complete (its sequence number taken up front, in order; marked ``for_object``
    when asked) and its references counted from the manifest in hand, as ``commit_many``
    would count them; no row is read back."""
    first = _next_seq(db, len(files)) - len(files) + 1
    insert_files(db, labels, files, first, for_object)
    refs = _RefWriter(db, now)
    for rec, manifest in files:
        refs.add(labels.id(db, rec.tenant), (manifest,))
    refs.flush()
    size = sum(rec.size for rec, _m in files)
    _bump_counters(db, refs.d.rows(len(files), size, 1))
    return [_completed(rec) for rec, _m in files]


def commit_many(
    db: sqlite3.Connection,
    labels: Labels,
    file_ids: Sequence[str],
    now: float,
    for_object: bool = False,
    fresh: NewChunks | None = None,
) -> list[FileRecord | None]:
    """commit_files' work inside the caller's write transaction: each file (None if it
    does not exist) counted in order, exactly as commits one after the other (a chunk two
    of them share is stored by the first, a duplicate for the second); the counters bumped
    and the commit sequence numbers taken once for them all, in the files' order. Each file
    committed here is marked ``for_object`` in the same row update when asked. ``fresh``:
    rows of chunks new to the store that ``add_locations`` left to insert here, each with
    its first reference (or alone, when no file of the commit names it)."""
    out: list[FileRecord | None] = []
    refs = _RefWriter(db, now, fresh)
    newly: dict[str, None] = {}  # committed here, in order
    size = 0
    rows = file_rows(db, file_ids, with_manifest=True)
    for file_id in file_ids:
        row = rows.get(file_id)
        if row is None:
            out.append(None)
            continue
        rec = file_record(db, labels, row, FILE_COMPLETE)
        if row[6] != STATE_COMPLETE and file_id not in newly:
            refs.add(int(row[1]), pages_of(db, file_id, row))
            newly[file_id] = None
            size += rec.size
        out.append(rec)
    mark = int(for_object)
    refs.finish()
    if newly:
        _bump_counters(db, refs.d.rows(len(newly), size, 1))
        first = _next_seq(db, len(newly)) - len(newly) + 1
        db.executemany(
            "UPDATE files SET state=?, seq=?, for_object=max(for_object, ?) WHERE file_id=?",
            [(STATE_COMPLETE, first + i, mark, rows[f][0]) for i, f in enumerate(newly)],
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
