"""The namespace's view of the SQLite store's files: the one module of the namespace that
reads or writes the ``files`` and ``manifest`` tables (everything else keeps to ``ns_*``).

Kept to four functions so that a change of the file layout changes the namespace here only:
is a file linkable, which chunks does it reference, delete a released file exactly as
``delete_file`` does, and copy a file into another tenant as a committed file of its own.
All run inside the caller's write transaction.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import uuid
from collections.abc import Callable, Sequence

from dfs.errors import Conflict, FileNotFound
from dfs.meta.base import FILE_COMPLETE, FileRecord, ManifestEntry
from dfs.meta.sqlite_refcounts import _refs, commit_one, drop_refs, repoint_hash
from dfs.meta.sqlite_schema import file_record

# the store's own file insert (files + manifest rows), for copies into another tenant
InsertFile = Callable[[sqlite3.Connection, FileRecord, Sequence[ManifestEntry]], None]


def linkable_size(db: sqlite3.Connection, file_id: str, tenant: str) -> int:
    """The size of a complete file of ``tenant`` that a version may link."""
    row = db.execute("SELECT tenant, state, size FROM files WHERE file_id=?", (file_id,)).fetchone()
    if row is None or row[0] != tenant:
        raise FileNotFound(f"no file {file_id}")
    if row[1] != FILE_COMPLETE:
        raise Conflict(f"file {file_id} is not complete")
    return int(row[2])


def file_chunks(db: sqlite3.Connection, file_id: str) -> list[tuple[str, int, int]]:
    """(chunk_id, references, size) of each distinct chunk of the file's manifest."""
    return _refs(db, file_id)


def delete_released(db: sqlite3.Connection, file_id: str, now: float) -> bool:
    """Delete a file whose last version went, as delete_file does; False if already gone."""
    row = db.execute("SELECT * FROM files WHERE file_id=?", (file_id,)).fetchone()
    if row is None:  # deleted by id meanwhile (the seed's DELETE /file)
        return False
    if row["state"] == FILE_COMPLETE:
        drop_refs(db, row, now)
        repoint_hash(db, row)
    db.execute("DELETE FROM manifest WHERE file_id=?", (file_id,))
    db.execute("DELETE FROM files WHERE file_id=?", (file_id,))
    return True


def copy_file(
    db: sqlite3.Connection,
    file_id: str,
    tenant: str,
    name: str,
    insert_file: InsertFile,
    now: float,
) -> str:
    """A new complete file of ``tenant`` with the manifest of ``file_id``, counted by
    ``commit_one`` like any commit (refcounts, the tenant's chunk set, Stats); its id."""
    src = file_record(db.execute("SELECT * FROM files WHERE file_id=?", (file_id,)).fetchone())
    manifest = [
        ManifestEntry(r[0], r[1], r[2])
        for r in db.execute(
            "SELECT offset, size, chunk_id FROM manifest WHERE file_id=? ORDER BY idx", (file_id,)
        )
    ]
    rec = dataclasses.replace(
        src, file_id=str(uuid.uuid4()), tenant=tenant, name=name, created_at=now
    )
    insert_file(db, rec, manifest)
    commit_one(db, rec.file_id, now)
    return rec.file_id
