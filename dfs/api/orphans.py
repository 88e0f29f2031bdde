"""Garbage the chunk rows cannot see: copies on disk that no chunk row accounts for, and
uploads that were never finalized.

- ``delete_stale_uploads``: files still pending ``PENDING_TTL_GRACES`` x DFS_GC_GRACE after
  they were created can never be finalized (finalize refuses uploads older than 0.9 x the
  grace), so their file row and manifest go (``delete_pending_file`` is conditional on the
  state: a racing finalize either wins, and the file stays, or loses cleanly).
- ``sweep_node``: a node lists what it stores (``/list-chunks``, ascending, paged). A copy
  older than the grace whose chunk has no row at all is an orphan: bytes of an upload that
  was never finalized, or a copy on a node that was down when garbage collection deleted
  the row. It is deleted unless a pending upload created within the grace references it,
  and the node deletes it only if it was not written or re-sent within the grace
  (``min_age``), so an upload in flight keeps it. A copy whose chunk has a row but not this
  node among its locations is recorded, so trimming or garbage collection handle it.

Must not import aiohttp.web.
"""

from __future__ import annotations

import logging

from dfs import auth
from dfs.api.service import Coordinator
from dfs.errors import DfsError
from dfs.meta.base import Location, NodeRecord

log = logging.getLogger("dfs.api.orphans")

PENDING_TTL_GRACES = 2.0
"""A pending upload older than this many DFS_GC_GRACE is deleted."""
LIST_PAGE = 1000


async def delete_stale_uploads(coord: Coordinator, now: float, limit: int = 1000) -> int:
    """Delete files still pending past the TTL; returns how many went."""
    before = now - PENDING_TTL_GRACES * coord.cfg.gc_grace
    deleted = 0
    for rec in await coord.meta.stale_pending_files(before, limit=limit):
        if await coord.meta.delete_pending_file(rec.file_id, before):
            deleted += 1
    if deleted:
        log.info("deleted %d upload(s) never finalized", deleted)
    return deleted


async def sweep_node(coord: Coordinator, node: NodeRecord, protected: set[str]) -> tuple[int, int]:
    """Delete ``node``'s orphan copies and record its untracked ones; returns (deleted,
    recorded). ``protected``: chunk ids pending uploads created within the grace use,
    read before the node is listed."""
    grace = coord.cfg.gc_grace
    deleted = recorded = 0
    after = ""
    for _ in range(10_000_000 // LIST_PAGE):  # bounded: at most 10M chunks a node
        page, nxt = await coord.nodes.list_chunks(
            node.url,
            cap=coord.cap(auth.OP_LIST, auth.ANY_CHUNK, node.node_id),
            after=after,
            limit=LIST_PAGE,
        )
        old = [c for c, age in page if age >= grace and c not in protected]
        rows = await coord.meta.get_chunks(old) if old else {}
        where = await coord.meta.get_locations(list(rows)) if rows else {}
        untracked = [
            Location(c, node.node_id, rows[c].size) for c in rows if node.node_id not in where[c]
        ]
        if untracked:
            await coord.meta.add_locations(untracked, coord.clock())
            recorded += len(untracked)
        for chunk_id in (c for c in old if c not in rows):
            try:
                gone = await coord.nodes.delete_chunk(
                    node.url,
                    chunk_id,
                    cap=coord.cap(auth.OP_DELETE, chunk_id, node.node_id),
                    min_age=grace,
                )
            except DfsError as exc:
                log.warning("orphan %s on %s: %s", chunk_id[:12], node.node_id, exc.message)
                continue
            deleted += bool(gone)
        if nxt is None:
            break
        after = nxt
    if deleted or recorded:
        log.info(
            "orphan sweep of %s: %d deleted, %d untracked recorded",
            node.node_id,
            deleted,
            recorded,
        )
    return deleted, recorded
