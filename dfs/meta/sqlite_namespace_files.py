"""The namespace's view of the SQLite store's files: the one module of the namespace that
reads or writes the ``files`` and ``manifest`` tables (everything else keeps to ``ns_*``).

Kept to one small class so that a change of the file layout changes the namespace here only:
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


class StoreFiles:
    """The store's files as the namespace uses them, on one write transaction's connection."""

    def __init__(self, db: sqlite3.Connection, insert_file: InsertFile) -> None:
        self.db = db
        self._insert_file = insert_file

    def linkable_size(self, file_id: str, tenant: str) -> int:
        """The size of a complete file of ``tenant`` that a version may link."""
        row = self.db.execute(
            "SELECT tenant, state, size FROM files WHERE file_id=?", (file_id,)
        ).fetchone()
        if row is None or row[0] != tenant:
            raise FileNotFound(f"no file {file_id}")
        if row[1] != FILE_COMPLETE:
            raise Conflict(f"file {file_id} is not complete")
        return int(row[2])

    def chunks(self, file_id: str) -> list[tuple[str, int, int]]:
        """(chunk_id, references, size) of each distinct chunk of the file's manifest."""
        return _refs(self.db, file_id)

    def delete_released(self, file_id: str, now: float) -> bool:
        """Delete a file whose last version went, as delete_file does; False if gone."""
        db = self.db
        row = db.execute("SELECT * FROM files WHERE file_id=?", (file_id,)).fetchone()
        if row is None:  # deleted by id meanwhile (the seed's DELETE /file)
            return False
        if row["state"] == FILE_COMPLETE:
            drop_refs(db, row, now)
            repoint_hash(db, row)
        db.execute("DELETE FROM manifest WHERE file_id=?", (file_id,))
        db.execute("DELETE FROM files WHERE file_id=?", (file_id,))
        return True

    def copy(self, file_id: str, tenant: str, name: str, now: float) -> str:
        """A new complete file of ``tenant`` with the manifest of ``file_id``, counted by
        ``commit_one`` like any commit (refcounts, the tenant's chunk set, Stats); its id."""
        db = self.db
        src = file_record(db.execute("SELECT * FROM files WHERE file_id=?", (file_id,)).fetchone())
        manifest = [
            ManifestEntry(r[0], r[1], r[2])
            for r in db.execute(
                "SELECT offset, size, chunk_id FROM manifest WHERE file_id=? ORDER BY idx",
                (file_id,),
            )
        ]
        rec = dataclasses.replace(
            src, file_id=str(uuid.uuid4()), tenant=tenant, name=name, created_at=now
        )
        self._insert_file(db, rec, manifest)
        commit_one(db, rec.file_id, now)
        return rec.file_id
