"""S3 access keys on SQLite: the ``access_keys`` table (``dfs.meta.sqlite_schema``).

A mixin of ``SqliteMetadataStore``, kept apart so that the store's module stays small; the
records hold sealed secrets only (``dfs.access_keys`` seals and opens them).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from dfs.meta.base import AccessKeyRecord

T = TypeVar("T")


def _record(row: sqlite3.Row) -> AccessKeyRecord:
    return AccessKeyRecord(**{k: row[k] for k in row.keys()})  # noqa: SIM118


class SqliteAccessKeysMixin:
    if TYPE_CHECKING:  # provided by SqliteMetadataStore

        @property
        def _db(self) -> sqlite3.Connection: ...
        async def _run(self, fn: Callable[[], T]) -> T: ...
        async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

    async def put_access_key(self, rec: AccessKeyRecord) -> None:
        await self._run(
            lambda: self._db.execute(
                "INSERT INTO access_keys VALUES (?,?,?,?,?)",
                (rec.access_key_id, rec.tenant, rec.sealed_secret, rec.label, rec.created_at),
            )
        )

    async def get_access_key(self, access_key_id: str) -> AccessKeyRecord | None:
        def op(db: sqlite3.Connection) -> AccessKeyRecord | None:
            row = db.execute(
                "SELECT * FROM access_keys WHERE access_key_id=?", (access_key_id,)
            ).fetchone()
            return None if row is None else _record(row)

        return await self._read(op)

    async def list_access_keys(self, tenant: str | None = None) -> list[AccessKeyRecord]:
        def op(db: sqlite3.Connection) -> list[AccessKeyRecord]:
            where, args = ("WHERE tenant=?", (tenant,)) if tenant is not None else ("", ())
            rows = db.execute(
                f"SELECT * FROM access_keys {where} ORDER BY created_at, access_key_id", args
            )
            return [_record(r) for r in rows]

        return await self._read(op)

    async def delete_access_key(self, access_key_id: str) -> bool:
        def op() -> bool:
            cur = self._db.execute(
                "DELETE FROM access_keys WHERE access_key_id=?", (access_key_id,)
            )
            return cur.rowcount > 0

        return await self._run(op)
