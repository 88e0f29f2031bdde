"""The namespace's view of the SQLite store's files: the one module of the namespace that
reads or writes the ``files`` table and the manifests (everything else keeps to ``ns_*``).

Kept to one small class so that a change of the file layout changes the namespace here only:
is a file linkable, which chunks does it reference, delete a released file exactly as
``delete_file`` does, and copy a file into another tenant as a committed file of its own.
``delete_unlinked`` is ``delete_file`` itself: it refuses a file that a version links.
All run inside the caller's write transaction. The layout itself (packed ids, interned
labels, manifest blobs) is ``dfs.meta.sqlite_schema``'s; this module goes through the
store's own functions for it.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Sequence

from dfs.errors import Conflict, FileNotFound
from dfs.ids import new_file_id
from dfs.meta.base import FileRecord, Location, ManifestEntry
from dfs.meta.sqlite_chunks import add_locations
from dfs.meta.sqlite_codec import STATE_COMPLETE, Labels, pack_file_id
from dfs.meta.sqlite_manifests import get_record, insert_file, manifest, manifest_pages
from dfs.meta.sqlite_refcounts import commit_one, create_committed, delete_one, page_refs
from dfs.meta.sqlite_usage_deltas import UsageDeltas

LINKED = "file {} is linked by an object version; delete the object instead"


def delete_unlinked(
    db: sqlite3.Connection, labels: Labels, file_id: str, tenant: str, now: float
) -> FileRecord:
    """delete_file's work, in its transaction: Conflict while a version links the file
    (``ns_file_links``; the namespace's own release drops the link row before deleting)."""
    key = (pack_file_id(file_id),)
    row = db.execute("SELECT links FROM ns_file_links WHERE file_id=?", key).fetchone()
    if row is not None and row[0] > 0:
        if get_record(db, labels, file_id).tenant != tenant:  # FileNotFound if gone
            raise FileNotFound(f"no file {file_id}")
        raise Conflict(LINKED.format(file_id))
    return delete_one(db, labels, file_id, tenant, now)


class StoreFiles:
    """The store's files as the namespace uses them, on one write transaction's connection."""

    def __init__(
        self, db: sqlite3.Connection, labels: Labels, usage: UsageDeltas | None = None
    ) -> None:
        self.db = db
        self.labels = labels
        # a group commit's usage sums (``dfs.meta.sqlite_usage_deltas``), written before its
        # COMMIT; None: each change of usage written at once
        self.usage = usage

    def linkable_size(self, file_id: str, tenant: str) -> int:
        """The size of a complete file of ``tenant`` that a version may link."""
        row = self.db.execute(
            "SELECT tenant, state, size FROM files WHERE file_id=?", (pack_file_id(file_id),)
        ).fetchone()
        if row is None or self.labels.name(self.db, row[0]) != tenant:
            raise FileNotFound(f"no file {file_id}")
        if row[1] != STATE_COMPLETE:
            raise Conflict(f"file {file_id} is not complete")
        return int(row[2])

    def create_committed(
        self,
        rec: FileRecord,
        entries: Sequence[ManifestEntry],
        locations: Sequence[Location],
        now: float,
    ) -> FileRecord:
        """``create_and_commit_files`` for one file, its copies with it, in the caller's
        transaction (a PutObject's new file and its version commit together)."""
        add_locations(self.db, self.labels, locations, now)
        (done,) = create_committed(self.db, self.labels, [(rec, entries)], now)
        return done

    def chunks(self, file_id: str) -> list[tuple[str, int, int]]:
        """(chunk_id, references, size) of each distinct chunk of the file's manifest."""
        counts: dict[str, list[int]] = {}
        for page in manifest_pages(self.db, file_id):
            for chunk, count, size in page_refs(page):
                got = counts.setdefault(chunk, [0, 0])
                got[0] += count
                got[1] = max(got[1], size)
        return [(c, n, size) for c, (n, size) in counts.items()]

    def delete_released(self, file_id: str, now: float) -> bool:
        """Delete a file whose last version went, as delete_file does; False if gone."""
        try:
            rec = get_record(self.db, self.labels, file_id)
        except FileNotFound:  # deleted by id meanwhile (the seed's DELETE /file)
            return False
        delete_one(self.db, self.labels, file_id, rec.tenant, now)
        return True

    def copy(self, file_id: str, tenant: str, name: str, now: float) -> str:
        """A new complete file of ``tenant`` with the manifest of ``file_id``, counted by
        ``commit_one`` like any commit (refcounts, the tenant's chunk set, Stats); its id."""
        db = self.db
        src = get_record(db, self.labels, file_id)
        rec = dataclasses.replace(
            src, file_id=new_file_id(), tenant=tenant, name=name, created_at=now
        )
        insert_file(db, self.labels, rec, manifest(db, file_id))
        commit_one(db, self.labels, rec.file_id, now)
        return rec.file_id
