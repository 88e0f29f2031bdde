"""The usage history (``dfs.meta.usage_history``) on SQLite: the ``usage_samples`` table,
keyed (tenant, at). A mixin of ``SqliteMetadataStore``, kept apart so the store's module
stays small."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from dfs.meta.usage_history import UsageSample

T = TypeVar("T")

SCHEMA = """CREATE TABLE IF NOT EXISTS usage_samples (
    tenant TEXT NOT NULL, at INTEGER NOT NULL, objects INTEGER NOT NULL,
    logical_bytes INTEGER NOT NULL, stored_bytes INTEGER NOT NULL, PRIMARY KEY (tenant, at)
) WITHOUT ROWID"""


def apply_usage_history_schema(conn: sqlite3.Connection) -> None:
    conn.execute(SCHEMA)


class SqliteUsageHistoryMixin:
    if TYPE_CHECKING:  # provided by SqliteMetadataStore

        @property
        def _db(self) -> sqlite3.Connection: ...
        async def _run(self, fn: Callable[[], T]) -> T: ...
        async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

    async def add_usage_samples(self, samples: Sequence[UsageSample]) -> None:
        rows = [(s.tenant, s.at, s.objects, s.logical_bytes, s.stored_bytes) for s in samples]
        await self._run(
            lambda: self._db.executemany(
                "INSERT OR REPLACE INTO usage_samples VALUES (?,?,?,?,?)", rows
            )
        )

    async def usage_samples(self, tenant: str, since: float, limit: int) -> list[UsageSample]:
        def op(db: sqlite3.Connection) -> list[UsageSample]:
            rows = db.execute(
                "SELECT tenant, at, objects, logical_bytes, stored_bytes FROM usage_samples"
                " WHERE tenant=? AND at>=? ORDER BY at DESC LIMIT ?",
                (tenant, since, limit),
            ).fetchall()
            return [UsageSample(*r) for r in reversed(rows)]

        return await self._read(op)

    async def prune_usage_samples(self, tenant: str, before: float) -> int:
        def op() -> int:
            cur = self._db.execute(
                "DELETE FROM usage_samples WHERE tenant=? AND at<?", (tenant, before)
            )
            return cur.rowcount

        return await self._run(op)
