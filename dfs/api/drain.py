"""Draining storage nodes before their planned removal: which nodes are draining, and how far
a drain has got.

A draining node stays live and serves reads, but:
- no new chunk is placed on it (``Coordinator.writable_nodes`` leaves it out);
- its copies no longer count towards REPLICATION_FACTOR, so repair copies each of its chunks
  to other nodes (reading from any live holder, the draining node included), never to a
  draining node; once a chunk has its copies elsewhere, the draining node's copy is the
  surplus repair trims (``dfs.api.repair``).
The drain is done when every referenced chunk recorded on the node has REPLICATION_FACTOR
copies on live nodes that are not draining: the node can then be stopped and removed without
any chunk ever having had fewer copies (``DrainSet.status``).

The set of draining nodes is shared by every API process: it is the info of the "drain"
lease in the metadata store (a lease no pass contends for, held by the ``drain`` owner for
years), so both metadata backends keep it without a new table. Changes are read-modify-write:
two admins draining different nodes at the same instant may need to repeat one (the answer
shows the set). Each API process caches the set for ``CACHE_SECONDS``.

Knows nothing of aiohttp.web.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from dfs.meta.base import MetadataStore

DRAIN_LEASE = "drain"
OWNER = "drain"
TTL = 10 * 365 * 86400.0
"""The lease never expires in practice: a drain lasts until cancelled."""
CACHE_SECONDS = 2.0
PAGE = 500


class DrainSet:
    def __init__(self, meta: MetadataStore, clock: Callable[[], float]) -> None:
        self.meta = meta
        self.clock = clock
        self._cached: frozenset[str] = frozenset()
        self._read_at: float | None = None

    async def _read(self) -> frozenset[str]:
        lease = await self.meta.get_lease(DRAIN_LEASE)
        ids: frozenset[str] = frozenset()
        if lease is not None and lease.info:
            raw = json.loads(lease.info)
            if isinstance(raw, list):
                ids = frozenset(str(n) for n in raw)
        self._cached, self._read_at = ids, self.clock()
        return ids

    async def ids(self) -> frozenset[str]:
        """The draining nodes (cached for CACHE_SECONDS)."""
        if self._read_at is not None and self.clock() - self._read_at < CACHE_SECONDS:
            return self._cached
        return await self._read()

    async def set_draining(self, node_id: str, draining: bool) -> frozenset[str]:
        """Start (or cancel) draining ``node_id``; returns the new set."""
        now = self.clock()
        current = await self._read()
        ids = current | {node_id} if draining else current - {node_id}
        await self.meta.acquire_lease(DRAIN_LEASE, OWNER, now, TTL, json.dumps(sorted(ids)))
        self._cached, self._read_at = ids, now
        return ids

    async def status(self, node_id: str, rf: int) -> dict[str, Any]:
        """How far the drain of ``node_id`` has got: its referenced chunks, how many of them
        lack REPLICATION_FACTOR copies on live nodes that are not draining, and ``done``."""
        draining = await self._read()
        now = self.clock()
        others = {n.node_id for n in await self.meta.list_live_nodes(now)} - draining
        chunks = short = 0
        after: str | None = None
        while True:
            ids = await self.meta.node_chunks(node_id, limit=PAGE, after=after)
            if not ids:
                break
            infos = await self.meta.get_chunks(ids)
            locations = await self.meta.get_locations(ids)
            for chunk_id in ids:
                info = infos.get(chunk_id)
                if info is None or info.refcount <= 0:
                    continue  # unreferenced: garbage collection's, not worth a copy
                chunks += 1
                short += len(locations.get(chunk_id, set()) & others) < rf
            after = ids[-1]
            if len(ids) < PAGE:
                break
        return {
            "node_id": node_id,
            "draining": node_id in draining,
            "chunks": chunks,
            "short": short,
            "done": node_id in draining and short == 0,
            "draining_nodes": sorted(draining),
        }
