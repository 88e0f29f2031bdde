"""Tenants and API tokens on SQLite: the ``tenants`` and ``tokens`` tables
(``dfs.meta.sqlite_schema``).

A mixin of ``SqliteMetadataStore``, kept apart so that the store's module stays small; a
token is stored by its hash only (``dfs.auth`` hashes it).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from dfs.meta.base import TokenRecord

T = TypeVar("T")


class SqliteTokensMixin:
    if TYPE_CHECKING:  # provided by SqliteMetadataStore

        @property
        def _db(self) -> sqlite3.Connection: ...
        async def _run(self, fn: Callable[[], T]) -> T: ...
        async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

    async def create_tenant(self, tenant: str, now: float) -> None:
        await self._run(lambda: self._db.execute("INSERT INTO tenants VALUES (?,?)", (tenant, now)))

    async def tenant_exists(self, tenant: str) -> bool:
        def op(db: sqlite3.Connection) -> bool:
            row = db.execute("SELECT 1 FROM tenants WHERE tenant=?", (tenant,)).fetchone()
            return row is not None

        return await self._read(op)

    async def list_tenants(self) -> list[str]:
        def op(db: sqlite3.Connection) -> list[str]:
            return [r[0] for r in db.execute("SELECT tenant FROM tenants ORDER BY tenant")]

        return await self._read(op)

    async def put_token(self, rec: TokenRecord) -> None:
        await self._run(
            lambda: self._db.execute(
                "INSERT INTO tokens VALUES (?,?,?,?,?)",
                (rec.token_hash, rec.tenant, rec.role, rec.label, rec.created_at),
            )
        )

    async def get_token(self, token_hash: str) -> TokenRecord | None:
        def op(db: sqlite3.Connection) -> TokenRecord | None:
            row = db.execute("SELECT * FROM tokens WHERE token_hash=?", (token_hash,)).fetchone()
            return None if row is None else TokenRecord(**{k: row[k] for k in row.keys()})  # noqa: SIM118

        return await self._read(op)

    async def list_tokens(self, tenant: str | None = None) -> list[TokenRecord]:
        def op(db: sqlite3.Connection) -> list[TokenRecord]:
            where, args = ("WHERE tenant=?", (tenant,)) if tenant is not None else ("", ())
            rows = db.execute(f"SELECT * FROM tokens {where} ORDER BY created_at, token_hash", args)
            return [TokenRecord(**{k: r[k] for k in r.keys()}) for r in rows]  # noqa: SIM118

        return await self._read(op)

    async def delete_token(self, token_hash: str) -> bool:
        def op() -> bool:
            cur = self._db.execute("DELETE FROM tokens WHERE token_hash=?", (token_hash,))
            return cur.rowcount > 0

        return await self._run(op)
