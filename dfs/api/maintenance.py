"""Keeping data alive, from the coordinator: delete, repair, trimming and garbage collection.

One-shot coroutines (``repair_once``, ``gc_once``) that tests call directly, and
``maintenance_loop`` that runs them every interval inside ``dfs-api``. Several API processes
may run: each pass first takes a lease in the metadata store by conditional write ("repair",
"gc"), so one process works at a time and another takes over when it dies.

Repair (most endangered first, at most DFS_REPAIR_RATE bytes/s):
- a copy counts while its node is live, or dead for less than DFS_REPAIR_GRACE (it may come
  back); copies nodes report quarantined (scrub, or a failed read) are forgotten first;
- a committed chunk with fewer counting copies than REPLICATION_FACTOR is copied from a live
  holder (``/copy-chunk``, which verifies the bytes before sending) to the best placement
  nodes that lack it; REPLICATION_STRATEGY=async relies on this to close any gap the
  primary's background forwarding left;
- a chunk with more live copies than REPLICATION_FACTOR (a node came back after being
  repaired around) loses the surplus on its lowest-ranked holders, so it is never
  over-replicated for long. Dead nodes' locations are kept, so a node that restarts counts
  again at once and nothing it holds becomes an untracked orphan.

Garbage collection: a chunk is collected only if its refcount is 0 and has been for
DFS_GC_GRACE, no pending upload created within the grace references it, and the row delete
is conditional on both (``delete_chunk_if_unreferenced``). Nodes then delete their copy only
if it was not written or re-sent since GC looked at the pending uploads (``min_age``): an
upload that re-sends bytes GC is about to collect keeps them. Uploads that skipped a chunk
they owned are covered by the grace: finalize refuses uploads older than 0.9 x DFS_GC_GRACE.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from dfs import auth, placement, protocol
from dfs.api.service import Coordinator, file_body
from dfs.errors import DfsError
from dfs.meta.base import ChunkState, Location, NodeRecord

log = logging.getLogger("dfs.api.maintenance")

SCAN_PAGE = 1000
REPAIR_LEASE = "repair"
GC_LEASE = "gc"
DELETE_MARGIN = 2.0
"""Seconds added to the node-side ``min_age`` of a GC delete, for timer differences."""


@dataclass
class RepairReport:
    started_at: float = 0.0
    finished_at: float = 0.0
    chunks_scanned: int = 0
    under_replicated: int = 0
    under_replicated_bytes: int = 0
    no_live_copy: int = 0
    repaired: int = 0
    repaired_bytes: int = 0
    failed: int = 0
    quarantined_forgotten: int = 0
    trimmed: int = 0
    running: bool = True


@dataclass
class GcReport:
    chunks_scanned: int = 0
    collected: int = 0
    collected_bytes: int = 0
    protected: int = 0
    node_deletes_failed: int = 0


def _rank(chunk_id: str, nodes: list[NodeRecord]) -> list[NodeRecord]:
    by_id = {n.node_id: n for n in nodes}
    cands = [placement.Candidate(n.node_id, n.zone, n.free_bytes) for n in nodes]
    return [by_id[c.node_id] for c in placement.rank(chunk_id, cands)]


class Maintenance:
    def __init__(
        self,
        coord: Coordinator,
        owner: str | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_report: Callable[[RepairReport], None] | None = None,
    ) -> None:
        self.coord = coord
        self.meta = coord.meta
        self.cfg = coord.cfg
        self.owner = owner or f"api-{secrets.token_hex(6)}"
        self._sleep = sleep
        self._on_report = on_report

    # --- delete ---------------------------------------------------------------------------

    async def delete_file(self, file_id: str, tenant: str) -> dict[str, Any]:
        """Drop a file of ``tenant`` (FileNotFound for anyone else's); its chunks' bytes go
        when garbage collection finds them unreferenced past the grace."""
        rec = await self.meta.delete_file(file_id, tenant, self.coord.clock())
        body = file_body(rec)
        body["state"] = "deleted"
        return body

    async def _scan(self) -> list[ChunkState]:
        out: list[ChunkState] = []
        after: str | None = None
        while True:
            page = await self.meta.scan_chunks(limit=SCAN_PAGE, after=after)
            out += page
            if len(page) < SCAN_PAGE:
                return out
            after = page[-1].chunk_id

    # --- repair ---------------------------------------------------------------------------

    def _lease_ttl(self) -> float:
        return max(3 * self.cfg.repair_interval, 30.0)

    async def _note(self, report: RepairReport) -> None:
        if self._on_report is not None:
            self._on_report(report)
        await self.meta.acquire_lease(
            REPAIR_LEASE,
            self.owner,
            self.coord.clock(),
            self._lease_ttl(),
            json.dumps(asdict(report)),
        )

    async def _forget_quarantined(self, live: list[NodeRecord]) -> int:
        """Forget the copies nodes found bad, so the chunks count as under-replicated."""
        answers = await asyncio.gather(
            *(
                self.coord.nodes.quarantined(
                    n.url, cap=self.coord.cap(auth.OP_STATUS, auth.ANY_CHUNK, n.node_id)
                )
                for n in live
            ),
            return_exceptions=True,
        )
        gone: list[Location] = []
        for node, answer in zip(live, answers, strict=True):
            if isinstance(answer, BaseException):
                if not isinstance(answer, DfsError):
                    raise answer
                continue
            gone += [Location(c, node.node_id, 0) for c in answer]
        if not gone:
            return 0
        known = await self.meta.get_locations([loc.chunk_id for loc in gone])
        gone = [loc for loc in gone if loc.node_id in known[loc.chunk_id]]
        await self.meta.remove_locations(gone)
        return len(gone)

    async def repair_once(self) -> RepairReport | None:
        """One repair pass; None if another API process holds the repair lease."""
        now = self.coord.clock()
        report = RepairReport(started_at=now)
        if not await self.meta.acquire_lease(
            REPAIR_LEASE, self.owner, now, self._lease_ttl(), json.dumps(asdict(report))
        ):
            return None
        rf = self.coord.rf
        nodes = await self.meta.list_nodes()
        live = [n for n in nodes if n.expires_at > now]
        live_by_id = {n.node_id: n for n in live}
        counting = {n.node_id for n in nodes if n.expires_at > now - self.cfg.repair_grace}
        report.quarantined_forgotten = await self._forget_quarantined(live)
        todo: list[ChunkState] = []
        surplus: list[ChunkState] = []
        for c in await self._scan():
            report.chunks_scanned += 1
            if c.refcount <= 0:
                continue  # unreferenced: garbage collection's business
            up = c.nodes & live_by_id.keys()
            if not up:
                report.no_live_copy += 1
            elif len(c.nodes & counting) < rf:
                todo.append(c)
            elif len(up) > rf:
                surplus.append(c)
        todo.sort(key=lambda c: (len(c.nodes & live_by_id.keys()), c.chunk_id))
        report.under_replicated = len(todo)
        report.under_replicated_bytes = sum(c.size for c in todo)
        await self._note(report)
        for c in todo:
            ok = await self._repair_chunk(c, live, live_by_id, counting)
            if ok:
                report.repaired += 1
                report.repaired_bytes += c.size * ok
            else:
                report.failed += 1
            await self._note(report)
            await self._sleep(c.size * max(ok, 1) / self.cfg.repair_rate)
        for c in surplus:
            report.trimmed += await self._trim(c, live_by_id)
        report.finished_at = self.coord.clock()
        report.running = False
        await self._note(report)
        if report.under_replicated or report.trimmed or report.no_live_copy:
            log.info("repair pass: %s", asdict(report))
        return report

    async def _repair_chunk(
        self,
        c: ChunkState,
        live: list[NodeRecord],
        live_by_id: dict[str, NodeRecord],
        counting: set[str],
    ) -> int:
        """Copy ``c`` to as many new nodes as it lacks; returns the copies made."""
        need = self.coord.rf - len(c.nodes & counting)
        room = c.size + self.cfg.min_free_bytes
        cands = [n for n in live if n.node_id not in c.nodes and n.free_bytes >= room]
        targets = _rank(c.chunk_id, cands)
        sources = _rank(c.chunk_id, [live_by_id[n] for n in c.nodes if n in live_by_id])
        made: list[Location] = []
        for target in targets:
            if len(made) == need:
                break
            for source in sources:
                extra = protocol.copy_cap_extra(target.node_id, target.url)
                try:
                    await self.coord.nodes.copy_chunk(
                        source.url,
                        c.chunk_id,
                        target.node_id,
                        target.url,
                        cap=self.coord.cap(auth.OP_COPY, c.chunk_id, source.node_id, extra),
                        timeout=self.cfg.replication_timeout,
                    )
                except DfsError as exc:
                    log.warning(
                        "repair: copy of %s from %s to %s failed: %s",
                        c.chunk_id[:12],
                        source.node_id,
                        target.node_id,
                        exc.message,
                    )
                    continue
                made.append(Location(c.chunk_id, target.node_id, c.size))
                break
        if made:
            await self.meta.add_locations(made, self.coord.clock())
        return len(made)

    async def _trim(self, c: ChunkState, live_by_id: dict[str, NodeRecord]) -> int:
        """Remove copies beyond REPLICATION_FACTOR from the lowest-ranked live holders."""
        ranked = _rank(c.chunk_id, [live_by_id[n] for n in c.nodes if n in live_by_id])
        trimmed = 0
        for node in ranked[self.coord.rf :]:
            # forget the copy first, so no new download plan points at it
            await self.meta.remove_locations([Location(c.chunk_id, node.node_id, c.size)])
            try:
                await self.coord.nodes.delete_chunk(
                    node.url,
                    c.chunk_id,
                    cap=self.coord.cap(auth.OP_DELETE, c.chunk_id, node.node_id),
                )
            except DfsError as exc:
                log.warning("trim of %s on %s failed: %s", c.chunk_id[:12], node.node_id, exc)
            trimmed += 1
        return trimmed

    # --- garbage collection ---------------------------------------------------------------

    async def gc_once(self) -> GcReport | None:
        """One GC pass; None if another API process holds the GC lease."""
        now = self.coord.clock()
        if not await self.meta.acquire_lease(
            GC_LEASE, self.owner, now, max(3 * self.cfg.gc_interval, 30.0)
        ):
            return None
        report = GcReport()
        cutoff = now - self.cfg.gc_grace
        looked = time.monotonic()
        protected = await self.meta.recent_pending_chunks(cutoff)
        live = {n.node_id: n for n in await self.coord.live_nodes()}
        for c in await self._scan():
            report.chunks_scanned += 1
            if c.refcount > 0 or c.zero_since >= cutoff:
                continue
            if c.chunk_id in protected:
                report.protected += 1
                continue
            holders = await self.meta.delete_chunk_if_unreferenced(c.chunk_id, cutoff)
            if holders is None:
                continue  # referenced again, or collected by someone else
            report.collected += 1
            report.collected_bytes += c.size
            for node_id in sorted(holders):
                node = live.get(node_id)
                if node is None:
                    # TODO(durability): a dead node keeps its copy; collect orphans on return
                    report.node_deletes_failed += 1
                    continue
                try:
                    await self.coord.nodes.delete_chunk(
                        node.url,
                        c.chunk_id,
                        cap=self.coord.cap(auth.OP_DELETE, c.chunk_id, node_id),
                        min_age=time.monotonic() - looked + DELETE_MARGIN,
                    )
                except DfsError as exc:
                    report.node_deletes_failed += 1
                    log.warning("gc: delete of %s on %s failed: %s", c.chunk_id[:12], node_id, exc)
        if report.collected:
            log.info("gc pass: %s", asdict(report))
        return report

    async def status(self) -> dict[str, Any]:
        lease = await self.meta.get_lease(REPAIR_LEASE)
        if lease is None:
            return {"repair": None}
        return {
            "repair": json.loads(lease.info) if lease.info else None,
            "owner": lease.owner,
            "lease_expires_at": lease.expires_at,
        }


async def maintenance_loop(
    run: Callable[[], Awaitable[object]], interval: float, what: str
) -> None:
    """Run a one-shot pass every ``interval`` seconds; errors are logged and retried."""
    while True:
        try:
            await run()
        except DfsError as exc:
            log.warning("%s pass failed: %s", what, exc.message)
        await asyncio.sleep(interval)
