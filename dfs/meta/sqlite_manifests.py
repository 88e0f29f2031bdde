"""Files and their manifests in the SQLite metadata store: writing a file with the manifest
it was created with (one blob in its row), appending the pages of a paged upload, reading a
manifest back (whole, page by page, or one page), and sealing a paged upload.

Every function runs on the caller's connection, inside its transaction where it writes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence

from dfs.errors import Conflict, FileNotFound
from dfs.meta.base import FILE_COMPLETE, FileRecord, ManifestEntry
from dfs.meta.sqlite_codec import (
    STATE_COMPLETE,
    STATE_PENDING,
    Labels,
    pack_file_id,
    pack_hex,
    pack_page,
    page_end,
    rows_in,
    unpack_hex,
    unpack_page,
)
from dfs.meta.sqlite_schema import FILE_COLUMNS, file_record


def insert_file(
    db: sqlite3.Connection,
    labels: Labels,
    rec: FileRecord,
    manifest: Sequence[ManifestEntry],
    seq: int | None = None,
) -> None:
    """A new pending file with its manifest in its row (Conflict, via IntegrityError, if the
    id is taken); complete already with commit sequence number ``seq`` when one is given
    (the caller counts its references in the same transaction)."""
    insert_files(db, labels, [(rec, manifest)], seq)


def insert_files(
    db: sqlite3.Connection,
    labels: Labels,
    files: Sequence[tuple[FileRecord, Sequence[ManifestEntry]]],
    first_seq: int | None = None,
    for_object: bool = False,
) -> None:
    """``insert_file`` of many files in one ``executemany`` (a statement per file cost more
    than the rows); complete with sequence numbers ``first_seq``, ``first_seq + 1``, ...
    in order when ``first_seq`` is given (and marked ``for_object`` when asked: see
    ``commit_many``)."""
    state = STATE_PENDING if first_seq is None else STATE_COMPLETE
    rows = [
        (
            pack_file_id(rec.file_id),
            labels.id(db, rec.tenant),
            rec.name,
            rec.size,
            pack_hex(rec.sha256),
            labels.id(db, rec.chunker),
            state,
            rec.created_at,
            len(manifest),
            rec.mode,
            rec.mtime,
            pack_page(manifest, 0, rec.sha256),
            int(rec.sha256_verified),
            None if first_seq is None else first_seq + i,
            int(for_object or rec.for_object),
        )
        for i, (rec, manifest) in enumerate(files)
    ]
    db.executemany(
        "INSERT INTO files (file_id, tenant, name, size, sha256, chunker, state, created_at,"
        " chunk_count, mode, mtime, manifest, sha256_verified, seq, for_object)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        rows,
    )


def file_row(
    db: sqlite3.Connection, file_id: str, with_manifest: bool = False
) -> sqlite3.Row | None:
    """``FILE_COLUMNS`` of a file (then its first manifest blob if ``with_manifest``: for
    ``pages_of``), or None."""
    columns = f"{FILE_COLUMNS}, manifest" if with_manifest else FILE_COLUMNS
    return db.execute(  # type: ignore[no-any-return]
        f"SELECT {columns} FROM files WHERE file_id=?", (pack_file_id(file_id),)
    ).fetchone()


def file_rows(
    db: sqlite3.Connection, file_ids: Sequence[str], with_manifest: bool = False
) -> dict[str, sqlite3.Row]:
    """``file_row`` of many ids in a few statements (one per ``ROWS_PER_SELECT``), by id;
    missing ids are absent. A batch's finalize reads each of its files twice (``pending``,
    ``commit_many``): a statement per file cost more than the rows."""
    columns = f"{FILE_COLUMNS}, manifest" if with_manifest else FILE_COLUMNS
    ids = {pack_file_id(f): f for f in file_ids}  # each id packed once
    keys = list(ids)
    sql = f"SELECT {columns} FROM files WHERE file_id IN ({{marks}})"
    return {ids[row[0]]: row for row in rows_in(db, sql, keys)}


def pages_of(
    db: sqlite3.Connection, file_id: str, row: sqlite3.Row
) -> Iterable[Sequence[ManifestEntry]]:
    """The manifest pages of a file whose row (``file_row(..., with_manifest=True)``) is in
    hand: a file created whole has them all in the row, read no more; a paged upload's
    pages are read as ``manifest_pages`` reads them, one at a time."""
    first = unpack_page(row[12], 0, unpack_hex(row[4]))
    if first and len(first) == row[8]:
        return [first]
    return manifest_pages(db, file_id)


def get_record(
    db: sqlite3.Connection, labels: Labels, file_id: str, tenant: str | None = None
) -> FileRecord:
    row = file_row(db, file_id)
    if row is None:
        raise FileNotFound(f"no file {file_id}")
    rec = file_record(db, labels, row)
    if tenant is not None and rec.tenant != tenant:
        raise FileNotFound(f"no file {file_id}")
    return rec


def get_records(
    db: sqlite3.Connection, labels: Labels, file_ids: Sequence[str], tenant: str | None
) -> dict[str, FileRecord]:
    """``get_record`` of many ids (rows read ``ROWS_PER_SELECT`` at a time); the ids it
    would refuse are left out."""
    rows = file_rows(db, file_ids)
    found = ((f, rows.get(f)) for f in file_ids)
    recs = {f: file_record(db, labels, r) for f, r in found if r is not None}
    return {f: r for f, r in recs.items() if tenant is None or r.tenant == tenant}


def pending(
    db: sqlite3.Connection, labels: Labels, file_ids: Sequence[str], tenant: str
) -> list[tuple[FileRecord, list[ManifestEntry]] | None]:
    """``pending_uploads``: each file's record (None if not the tenant's) and, for a file not
    complete whose sha256 is claimed, its manifest (one read of the row for both when the
    file was created whole)."""
    out: list[tuple[FileRecord, list[ManifestEntry]] | None] = []
    rows = file_rows(db, file_ids, with_manifest=True)
    for file_id in file_ids:
        row = rows.get(file_id)
        rec = None if row is None else file_record(db, labels, row)
        if row is None or rec is None or rec.tenant != tenant:
            out.append(None)
            continue
        whole = rec.state != FILE_COMPLETE and bool(rec.sha256)
        out.append((rec, [e for p in pages_of(db, file_id, row) for e in p] if whole else []))
    return out


def manifest_pages(db: sqlite3.Connection, file_id: str) -> Iterator[list[ManifestEntry]]:
    """A file's manifest page by page (the entries it was created with, then each appended
    page); FileNotFound for unknown ids. Pages are read one at a time."""
    key = pack_file_id(file_id)
    row = db.execute(
        "SELECT sha256, manifest, chunk_count FROM files WHERE file_id=?", (key,)
    ).fetchone()
    if row is None:
        raise FileNotFound(f"no file {file_id}")
    first = unpack_page(row[1], 0, unpack_hex(row[0]))
    if first:
        yield first
        if len(first) == row[2]:
            return  # created whole: a paged upload's pages come after an empty first one
    page = -1
    while True:
        nxt = db.execute(
            "SELECT page, start, entries FROM manifest_pages WHERE file_id=? AND page > ? "
            "ORDER BY page LIMIT 1",
            (key, page),
        ).fetchone()
        if nxt is None:
            return
        page = nxt[0]
        yield unpack_page(nxt[2], nxt[1])


def manifest(db: sqlite3.Connection, file_id: str) -> list[ManifestEntry]:
    return [e for page in manifest_pages(db, file_id) for e in page]


def manifests(db: sqlite3.Connection, file_ids: Sequence[str]) -> dict[str, list[ManifestEntry]]:
    """``manifest`` of many ids, their rows read ``ROWS_PER_SELECT`` at a time (a restore
    plans hundreds of files per request); FileNotFound for an unknown id."""
    rows = file_rows(db, file_ids, with_manifest=True)
    out: dict[str, list[ManifestEntry]] = {}
    for file_id in file_ids:
        row = rows.get(file_id)
        if row is None:
            raise FileNotFound(f"no file {file_id}")
        out[file_id] = [e for page in pages_of(db, file_id, row) for e in page]
    return out


def _pending_key(db: sqlite3.Connection, file_id: str) -> bytes | str:
    key = pack_file_id(file_id)
    row = db.execute("SELECT state FROM files WHERE file_id=?", (key,)).fetchone()
    if row is None:
        raise FileNotFound(f"no file {file_id}")
    if row[0] != STATE_PENDING:
        raise Conflict(f"file {file_id} is not pending")
    return key


def append_page(
    db: sqlite3.Connection, file_id: str, page: int, entries: Sequence[ManifestEntry]
) -> None:
    """Page ``page`` of a pending file's manifest: the same page again is a no-op, other
    entries under its number a Conflict."""
    key = _pending_key(db, file_id)
    start = entries[0].offset if entries else 0
    blob = pack_page(entries, start)
    old = db.execute(
        "SELECT start, entries FROM manifest_pages WHERE file_id=? AND page=?", (key, page)
    ).fetchone()
    if old is not None:
        if (old[0], bytes(old[1])) != (start, blob):
            raise Conflict(f"page {page} of file {file_id} was appended with other entries")
        return
    sealed = db.execute("SELECT sha256 FROM files WHERE file_id=?", (key,)).fetchone()
    if sealed is not None and sealed[0]:  # seal_file fixed its pages: no new one
        raise Conflict(f"file {file_id} is sealed: no page can be added")
    db.execute(
        "INSERT INTO manifest_pages (file_id, page, start, entries) VALUES (?,?,?,?)",
        (key, page, start, blob),
    )


def get_page(db: sqlite3.Connection, file_id: str, page: int) -> tuple[list[ManifestEntry], bool]:
    """An appended page's entries and whether it was proven; FileNotFound if it is missing."""
    row = db.execute(
        "SELECT start, entries, proven FROM manifest_pages WHERE file_id=? AND page=?",
        (pack_file_id(file_id), page),
    ).fetchone()
    if row is None:
        raise FileNotFound(f"no page {page} of file {file_id}")
    return unpack_page(row[1], row[0]), bool(row[2])


def mark_proven(db: sqlite3.Connection, file_id: str, page: int) -> None:
    key = _pending_key(db, file_id)
    cur = db.execute("UPDATE manifest_pages SET proven=1 WHERE file_id=? AND page=?", (key, page))
    if cur.rowcount == 0:
        raise FileNotFound(f"no page {page} of file {file_id}")


def seal(
    db: sqlite3.Connection, labels: Labels, file_id: str, size: int, sha256: str
) -> FileRecord:
    """A paged upload's size, sha256 and chunk count, once its pages are whole: numbered from
    0 without a gap, each proven, each starting where the one before ended, ``size`` bytes
    in all. Conflict otherwise."""
    key = _pending_key(db, file_id)
    count = offset = 0
    for no, (page, start, blob, proven) in enumerate(
        db.execute(
            "SELECT page, start, entries, proven FROM manifest_pages WHERE file_id=? ORDER BY page",
            (key,),
        ).fetchall()
    ):
        if page != no or start != offset or not proven:
            raise Conflict(f"page {no} of file {file_id} is missing or not proven")
        entries = unpack_page(blob, start)
        offset = page_end(entries, start)
        count += len(entries)
    if offset != size:
        raise Conflict(f"the pages of file {file_id} hold {offset} bytes, not {size}")
    db.execute(
        "UPDATE files SET size=?, sha256=?, chunk_count=? WHERE file_id=?",
        (size, pack_hex(sha256), count, key),
    )
    return get_record(db, labels, file_id)


def drop_manifest(db: sqlite3.Connection, key: bytes | str) -> None:
    db.execute("DELETE FROM manifest_pages WHERE file_id=?", (key,))
