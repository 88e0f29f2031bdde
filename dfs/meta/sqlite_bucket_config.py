"""Bucket-configuration documents (``dfs.meta.bucket_config``) on SQLite: the
``bucket_config`` table, created by this mixin on its first use (``IF NOT EXISTS``), so the
store's schema module and its migrations stay untouched."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

T = TypeVar("T")

_DDL = (
    "CREATE TABLE IF NOT EXISTS bucket_config (bucket TEXT NOT NULL, kind TEXT NOT NULL, "
    "generation TEXT NOT NULL, document TEXT NOT NULL, PRIMARY KEY (bucket, kind)) WITHOUT ROWID"
)


class SqliteBucketConfigMixin:
    if TYPE_CHECKING:  # provided by SqliteMetadataStore

        @property
        def _db(self) -> sqlite3.Connection: ...
        async def _run(self, fn: Callable[[], T]) -> T: ...

    _bucket_config_ready = False

    def _bucket_config(self) -> sqlite3.Connection:
        db = self._db
        if not self._bucket_config_ready:
            db.execute(_DDL)
            self._bucket_config_ready = True
        return db

    async def put_bucket_config(
        self, bucket: str, generation: str, kind: str, document: str
    ) -> None:
        await self._run(
            lambda: self._bucket_config().execute(
                "INSERT OR REPLACE INTO bucket_config VALUES (?,?,?,?)",
                (bucket, kind, generation, document),
            )
        )

    async def get_bucket_config(self, bucket: str, generation: str, kind: str) -> str | None:
        def op() -> str | None:
            row = (
                self._bucket_config()
                .execute(
                    "SELECT document FROM bucket_config WHERE bucket=? AND kind=? AND generation=?",
                    (bucket, kind, generation),
                )
                .fetchone()
            )
            return None if row is None else str(row["document"])

        return await self._run(op)

    async def delete_bucket_config(self, bucket: str, kind: str) -> None:
        await self._run(
            lambda: self._bucket_config().execute(
                "DELETE FROM bucket_config WHERE bucket=? AND kind=?", (bucket, kind)
            )
        )
