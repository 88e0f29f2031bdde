"""Garbage collection: chunks no file references any more, copies no chunk row accounts for,
and uploads that were never finalized.

``GarbageCollector.gc_once`` is one pass (tests call it directly; ``dfs.api.background`` runs
it every DFS_GC_INTERVAL inside ``dfs-api``), under the "gc" lease so that one API process
collects at a time.

Chunks: a chunk is collected only if its refcount is 0 and has been for DFS_GC_GRACE, no
pending upload created within the grace references it, and the row delete is conditional on
both (``delete_chunk_if_unreferenced``). Nodes then delete their copy only if it was not
written or re-sent since GC looked at the pending uploads, nor within 0.9 x DFS_GC_GRACE
(``min_age``, ``durability_policy.gc_copy_min_age``): an upload that re-sends bytes GC is
about to collect keeps them, also one with no pending file for GC to see (the API's own
ingests: ``POST /upload``, S3 PUTs and parts), which commits on the nodes' acknowledgements
only within 0.9 x the grace of its start; such a copy, if nothing commits on it, is an
orphan the sweep deletes later. Uploads that skipped a chunk they owned are covered by the
grace: finalize refuses uploads older than 0.9 x DFS_GC_GRACE.

Garbage the chunk rows cannot see, handled by each pass first:

- S3 multipart uploads neither completed nor aborted within DFS_S3_MULTIPART_TTL are
  aborted and their parts' files deleted (``dfs.api.multipart.Multipart.collect_abandoned``),
  so their chunks become unreferenced and go like any other.

- ``delete_stale_uploads``: files still pending ``PENDING_TTL_GRACES`` x DFS_GC_GRACE after
  they were created can never be finalized (finalize refuses uploads older than 0.9 x the
  grace), so their file row and manifest go (``delete_pending_file`` is conditional on the
  state: a racing finalize either wins, and the file stays, or loses cleanly).
- ``sweep_node`` (every DFS_ORPHAN_INTERVAL for all live nodes, at once for nodes repair saw
  come back: ``sweep_soon``): a node lists what it stores (``/list-chunks``, ascending,
  paged). A copy older than the grace whose chunk has no row at all is an orphan: bytes of
  an upload that was never finalized, or a copy on a node that was down when garbage
  collection deleted the row. It is deleted unless a pending upload created within the
  grace references it, and the node deletes it only if it was not written or re-sent within
  the grace (``min_age``), so an upload in flight keeps it. A copy whose chunk has a row but
  not this node among its locations is recorded, so trimming or garbage collection handle it,
  and the node is then asked again (has-chunks): a copy it no longer holds (trimmed by repair
  since the listing) is forgotten again. Repair's trim forgets a copy both before and after
  deleting it, so whatever order the two run in, no location is left naming a copy that is
  gone: a record after the trim's second forget comes after the delete, and the ask that
  follows it sees the copy gone.

The pass renews its lease as it goes (every node swept, every page of a sweep and of the
chunk table, and before every chunk collected: ``dfs.api.pass_lease``) and stops at once if
another process took it.

Knows nothing of aiohttp.web.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass

from dfs import auth, protocol
from dfs import durability_policy as policy
from dfs.api.coordinator import SCAN_PAGE, Coordinator
from dfs.api.multipart import Multipart
from dfs.api.namespace_service import namespace_store
from dfs.api.pass_lease import LeaseLost, PassLease, scan_chunk_pages
from dfs.errors import DfsError
from dfs.meta.base import ChunkState, Location, NodeRecord
from dfs.meta.multipart import multipart_store

log = logging.getLogger("dfs.api.gc")

GC_LEASE = "gc"
DELETE_MARGIN = 2.0
"""Seconds added to the node-side ``min_age`` of a GC delete, for timer differences."""

PENDING_TTL_GRACES = 2.0
"""A pending upload older than this many DFS_GC_GRACE is deleted."""
LIST_PAGE = 1000


async def delete_stale_uploads(coord: Coordinator, now: float, limit: int = 1000) -> int:
    """Delete files still pending past the TTL; returns how many went."""
    before = now - PENDING_TTL_GRACES * coord.cfg.gc_grace
    deleted = 0
    for rec in await coord.meta.stale_pending_files(before, limit=limit):
        if await coord.meta.delete_pending_file(rec.file_id, before, now):
            deleted += 1
    if deleted:
        log.info("deleted %d upload(s) never finalized", deleted)
    return deleted


async def record_if_held(coord: Coordinator, node: NodeRecord, found: list[Location]) -> int:
    """Record copies ``node`` listed that metadata does not place there (or, for repair's
    trim, copies the node refused to delete), then ask the node again and forget those it
    no longer holds (a trim deleted them meanwhile); returns how many stay recorded.
    Recorded first, asked after: a trim forgets after its delete too, so one of the two
    always has the last word on a copy that is gone."""
    await coord.meta.add_locations(found, coord.clock())
    cap = coord.cap(auth.OP_HAS, auth.ANY_CHUNK, node.node_id)
    try:
        held = await coord.nodes.has_chunks(node.url, [loc.chunk_id for loc in found], cap=cap)
    except DfsError:
        await coord.meta.remove_locations(found)  # unconfirmed: left to the next sweep
        raise
    gone = [loc for loc in found if loc.chunk_id not in held]
    if gone:
        await coord.meta.remove_locations(gone)
    return len(found) - len(gone)


async def sweep_node(
    coord: Coordinator,
    node: NodeRecord,
    protected: set[str],
    keep: Callable[[], Awaitable[None]] | None = None,
) -> tuple[int, int]:
    """Delete ``node``'s orphan copies and record its untracked ones; returns (deleted,
    recorded). ``protected``: chunk ids pending uploads created within the grace use,
    read before the node is listed. ``keep``: called before each page (renews the pass's
    lease, raises to stop)."""
    grace = coord.cfg.gc_grace
    deleted = recorded = 0
    after = ""
    for _ in range(10_000_000 // LIST_PAGE):  # bounded: at most 10M chunks a node
        if keep is not None:
            await keep()
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
            recorded += await record_if_held(coord, node, untracked)
        for chunk_id in (c for c in old if c not in rows):
            try:
                gone = await coord.nodes.delete_chunk(
                    node.url,
                    chunk_id,
                    cap=coord.cap(
                        auth.OP_DELETE,
                        chunk_id,
                        node.node_id,
                        extra=protocol.delete_cap_extra(grace),
                    ),
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


@dataclass
class GcReport:
    chunks_scanned: int = 0
    collected: int = 0
    collected_bytes: int = 0
    protected: int = 0
    node_deletes_failed: int = 0
    stale_uploads_deleted: int = 0
    orphans_deleted: int = 0
    untracked_recorded: int = 0
    namespace_jobs_finished: int = 0
    multipart_uploads_collected: int = 0


class GarbageCollector:
    def __init__(self, coord: Coordinator, owner: str | None = None) -> None:
        self.coord = coord
        self.meta = coord.meta
        self.cfg = coord.cfg
        self.owner = owner or f"api-{secrets.token_hex(6)}"
        self._last_orphan_sweep: float | None = None
        self.sweep_soon: set[str] = set()  # returned nodes whose orphans the next pass sweeps

    async def gc_once(self) -> GcReport | None:
        """One GC pass; None if another API process holds the GC lease (or took it over
        during the pass, which then stops where it is)."""
        now = self.coord.clock()
        ttl = max(3 * self.cfg.gc_interval, 30.0)
        lease = PassLease(self.meta, GC_LEASE, self.owner, ttl, lambda: self.coord.clock())
        if not await lease.acquire():
            return None
        try:
            return await self._pass(now, lease)
        except LeaseLost as exc:
            log.warning("gc pass stopped: %s", exc)
            return None

    async def _pass(self, now: float, lease: PassLease) -> GcReport:
        report = GcReport()
        cutoff = now - self.cfg.gc_grace
        looked = time.monotonic()
        report.stale_uploads_deleted = await delete_stale_uploads(self.coord, now)
        namespace = namespace_store(self.meta)
        if namespace is not None:  # counts and releases a crashed namespace writer left
            report.namespace_jobs_finished = await namespace.finish_namespace_jobs(now)
        if multipart_store(self.meta) is not None:  # S3 multipart uploads abandoned
            collected = await Multipart(self.coord).collect_abandoned(
                now, self.cfg.s3_multipart_ttl
            )
            report.multipart_uploads_collected = collected
        protected = await self.meta.recent_pending_chunks(cutoff)
        live = {n.node_id: n for n in await self.coord.live_nodes()}
        await self._sweep_orphans(now, live, protected, report, lease)
        # page by page, renewing per page: the whole table read first outlasted the lease
        async for page in scan_chunk_pages(self.meta, lease.keep, SCAN_PAGE):
            for c in page:
                await lease.keep()
                report.chunks_scanned += 1
                verdict = policy.gc_verdict(
                    c.refcount, c.zero_since, c.chunk_id, now, self.cfg.gc_grace, protected
                )
                if verdict is policy.GcVerdict.KEEP:
                    continue
                if verdict is policy.GcVerdict.PROTECTED:
                    report.protected += 1
                    continue
                await self._collect(c, cutoff, live, looked, report)
        if report.collected or report.orphans_deleted or report.stale_uploads_deleted:
            log.info("gc pass: %s", asdict(report))
        return report

    async def _sweep_orphans(
        self,
        now: float,
        live: dict[str, NodeRecord],
        protected: set[str],
        report: GcReport,
        lease: PassLease,
    ) -> None:
        """Sweep the nodes that came back, or every live node once per DFS_ORPHAN_INTERVAL."""
        if self._last_orphan_sweep is None:
            self._last_orphan_sweep = now  # the first sweep one interval after start
        sweep = {n for n in self.sweep_soon if n in live}
        if now - self._last_orphan_sweep >= self.cfg.orphan_interval:
            self._last_orphan_sweep = now
            sweep = set(live)
        for node_id in sorted(sweep):
            try:
                deleted, recorded = await sweep_node(
                    self.coord, live[node_id], protected, lease.keep
                )
            except DfsError as exc:
                log.warning("orphan sweep of %s failed: %s", node_id, exc.message)
                continue
            self.sweep_soon.discard(node_id)
            report.orphans_deleted += deleted
            report.untracked_recorded += recorded

    async def _collect(
        self,
        c: ChunkState,
        cutoff: float,
        live: dict[str, NodeRecord],
        looked: float,
        report: GcReport,
    ) -> None:
        """Delete the chunk's row if it is still unreferenced past the grace, then its copies
        on live nodes unless they were written since ``looked``."""
        holders = await self.meta.delete_chunk_if_unreferenced(c.chunk_id, cutoff)
        if holders is None:
            return  # referenced again, or collected by someone else
        report.collected += 1
        report.collected_bytes += c.size
        for node_id in sorted(holders):
            node = live.get(node_id)
            if node is None:
                # a dead node keeps its copy: the orphan sweep deletes it on its return
                report.node_deletes_failed += 1
                continue
            since = time.monotonic() - looked
            min_age = policy.gc_copy_min_age(self.cfg.gc_grace, since, DELETE_MARGIN)
            extra = protocol.delete_cap_extra(min_age)
            try:
                await self.coord.nodes.delete_chunk(
                    node.url,
                    c.chunk_id,
                    cap=self.coord.cap(auth.OP_DELETE, c.chunk_id, node_id, extra=extra),
                    min_age=min_age,
                )
            except DfsError as exc:
                report.node_deletes_failed += 1
                log.warning("gc: delete of %s on %s failed: %s", c.chunk_id[:12], node_id, exc)
