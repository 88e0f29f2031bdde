"""The node registry on SQLite: the ``nodes`` table (one row per node: its address, room,
zone, disk and the ``(boot, seq)`` of the call that wrote it) and ``node_boots`` (each node's
last accepted heartbeat sequence), for ``SqliteMetadataStore``.

A mixin, kept apart so that the store's module stays small. Every write is one statement,
so a check of the ``(boot, seq)`` and the write it guards are atomic (``UPSERT_NODE``,
``DEREGISTER_NODE``: a late heartbeat never overwrites a newer entry or the deregistration).
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from dfs.meta.base import NODE_DOWN, NodeRecord
from dfs.meta.sqlite_schema import (
    DEREGISTER_NODE,
    DEREGISTER_NODE_UNORDERED,
    UPSERT_NODE,
    UPSERT_NODE_UNORDERED,
    node_record,
)

T = TypeVar("T")


class SqliteNodesMixin:
    if TYPE_CHECKING:  # provided by SqliteMetadataStore

        @property
        def _db(self) -> sqlite3.Connection: ...
        async def _run(self, fn: Callable[[], T]) -> T: ...
        async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

    async def upsert_node(self, node: NodeRecord) -> bool:
        values = dataclasses.astuple(node)  # in NODE_COLUMNS' order
        # one statement: the check of the entry's (boot, seq) and the write are atomic
        sql = UPSERT_NODE if node.boot or node.seq else UPSERT_NODE_UNORDERED
        return bool(await self._run(lambda: self._db.execute(sql, values).rowcount))

    async def remove_node(self, node_id: str) -> None:
        await self._run(lambda: self._db.execute("DELETE FROM nodes WHERE node_id=?", (node_id,)))

    async def deregister_node(self, node_id: str, now: float, boot: int = 0, seq: int = 0) -> None:
        args: tuple[object, ...]
        if boot or seq:
            sql, args = DEREGISTER_NODE, (now, NODE_DOWN, boot, seq, node_id, boot, seq)
        else:
            sql, args = DEREGISTER_NODE_UNORDERED, (now, NODE_DOWN, node_id)
        await self._run(lambda: self._db.execute(sql, args))

    async def list_live_nodes(self, now: float) -> list[NodeRecord]:
        def op(db: sqlite3.Connection) -> list[NodeRecord]:
            rows = db.execute("SELECT * FROM nodes WHERE expires_at > ? ORDER BY node_id", (now,))
            return [node_record(r) for r in rows]

        return await self._read(op)

    async def list_nodes(self) -> list[NodeRecord]:
        def op(db: sqlite3.Connection) -> list[NodeRecord]:
            return [node_record(r) for r in db.execute("SELECT * FROM nodes ORDER BY node_id")]

        return await self._read(op)

    async def advance_node_sequence(self, node_id: str, boot: int, seq: int) -> bool:
        def op() -> bool:
            # one statement: atomic, so two API processes cannot both accept the same beat
            cur = self._db.execute(
                "INSERT INTO node_boots VALUES (?,?,?) ON CONFLICT(node_id) DO UPDATE "
                "SET boot=excluded.boot, seq=excluded.seq WHERE node_boots.boot < excluded.boot "
                "OR (node_boots.boot = excluded.boot AND node_boots.seq < excluded.seq)",
                (node_id, boot, seq),
            )
            return cur.rowcount > 0

        return await self._run(op)
