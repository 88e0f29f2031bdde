"""The ``ns_usage`` changes of a group commit's writes, summed in memory and written once per
row just before the group's COMMIT (``dfs.meta.sqlite_group``).

Every new version adds to five usage rows (the tenant, its bucket, the bucket's top-level
prefix, the extension tenant-wide and in the bucket) and to the stored bytes of two; a batch
of links into one bucket (``POST /objects-link``) touches the same few rows again and again.
Summing them in the group's transaction and writing each row once keeps the counters as
exact as before (they are written in the same transaction as the versions they count; each
write sums into its own ``UsageDeltas``, merged into the group's only once it succeeded, so a
write rolled back to its savepoint takes its deltas with it), with
a few statements per group instead of several per version. Nothing in a group's writes
reads ``ns_usage``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

Row = tuple[str, str, str, str]  # tenant, bucket, grp, name
"""An ``ns_usage`` row's key; its deltas are objects, versions, delete_markers,
logical_bytes and stored_bytes."""


class UsageDeltas:
    def __init__(self) -> None:
        self.rows: dict[Row, list[int]] = {}

    def add(self, row: Row, deltas: Sequence[int]) -> None:
        """Add ``deltas`` (objects, versions, delete_markers, logical_bytes[, stored])."""
        got = self.rows.setdefault(row, [0, 0, 0, 0, 0])
        for i, d in enumerate(deltas):
            got[i] += d

    def merge(self, other: UsageDeltas) -> None:
        for row, deltas in other.rows.items():
            self.add(row, deltas)

    def flush(self, db: sqlite3.Connection) -> None:
        """Write every row's sum (in the caller's transaction) and start again."""
        rows = [(*k, *v) for k, v in self.rows.items() if any(v)]
        self.rows = {}
        if rows:
            db.executemany(
                "INSERT INTO ns_usage (tenant, bucket, grp, name, objects, versions, "
                "delete_markers, logical_bytes, stored_bytes) VALUES (?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT(tenant, bucket, grp, name) DO UPDATE SET "
                "objects = objects + excluded.objects, versions = versions + excluded.versions, "
                "delete_markers = delete_markers + excluded.delete_markers, "
                "logical_bytes = logical_bytes + excluded.logical_bytes, "
                "stored_bytes = stored_bytes + excluded.stored_bytes",
                rows,
            )
