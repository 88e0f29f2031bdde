"""Repair: bring every committed chunk back to REPLICATION_FACTOR copies, and trim surplus.

``Repair.repair_once`` is one pass (tests call it directly; ``dfs.api.background`` runs it
every DFS_REPAIR_INTERVAL inside ``dfs-api``). Several API processes may run: a pass first
takes the "repair" lease in the metadata store by conditional write, so one process repairs
at a time and another takes over when it dies. The lease's info is the pass's progress
(``RepairReport``), which ``/admin/repair``, ``/admin/stats`` and the next pass read.

Repair (most endangered first, at most DFS_REPAIR_RATE bytes/s):
- a copy counts while its node is live, or down for less than DFS_REPAIR_GRACE (it may come
  back; a clean shutdown leaves a tombstone whose expires_at is the deregistration, a
  missing registry entry counts as down past the grace); copies nodes report quarantined
  (scrub, or a failed read) are forgotten first;
- which chunks a pass looks at: all of them on a full pass (an API's first, then every
  DFS_REPAIR_FULL_SCAN), otherwise what the by-node index lists for nodes down and not
  settled, or back since the last pass (the previous pass's report, kept in the lease, says
  which), plus chunks nodes reported quarantined or gave up forwarding;
- nodes' background-replication journals (async) are read each pass from cursors kept in the
  lease's info and their copies recorded (``dfs.api.replication_journal``); a chunk short of
  copies is checked against the live nodes (has-chunks) first;
- a committed chunk with fewer counting copies than REPLICATION_FACTOR is copied from a live
  holder (``/copy-chunk``, which verifies the bytes before sending) to the best placement
  nodes that lack it, those in zones holding no counting copy first;
  REPLICATION_STRATEGY=async relies on this to close any gap the primary's background
  forwarding left;
- a chunk with more live copies than REPLICATION_FACTOR (a node came back after being
  repaired around) loses the surplus on its lowest-ranked holders, a copy in each zone kept
  first (dead nodes' locations are kept: a node that restarts counts again at once):
  ``dfs.api.trims``, which also
  keeps a pass that stalled past its lease and one that took it over from each deleting
  a different copy;
- two live node ids announcing one disk identity (two processes on one data directory)
  are one copy (``durability_policy.shared_disks``): the smallest id stands for the disk,
  copies recorded under the other count as its, and the other is neither a target nor
  trimmed through (that would delete the one copy);
- what metadata says is on disk is checked against the disks: a live node that comes back
  with another disk identity than the last pass saw (``NodeRecord.disk_id``; the identities
  are kept in the lease's info) lost what it held, so every location recorded for it is
  forgotten at once; and each pass compares one bounded window of every live node's
  recorded chunk ids with what it lists (``dfs.api.inventory``, DFS_INVENTORY_PAGES_PER_PASS,
  cursors kept in the lease's info), forgetting copies that are not there. The chunks
  concerned are repaired in the same pass;
- a draining node (``dfs.api.drain``) is live but its copies do not count and it is never a
  target: each of its chunks is copied elsewhere, then its copy is the surplus trimmed first;
- nodes back since the last pass are handed to GC's orphan sweep (``on_returned``).

The lease is renewed as the pass goes (every chunk repaired, every page of a full scan and
before every trim: ``dfs.api.pass_lease``); a pass whose lease another process took over
stops at once, and a full pass counts as done (for DFS_REPAIR_FULL_SCAN) only once complete.
Knows nothing of aiohttp.web.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from dfs import auth, protocol
from dfs import durability_policy as policy
from dfs.api.coordinator import REPAIR_LEASE, SCAN_PAGE, Coordinator
from dfs.api.draining_copies import copy_between
from dfs.api.inventory import take_inventory
from dfs.api.pass_lease import LeaseLost, PassLease, scan_chunk_pages
from dfs.api.replication_journal import Cursor, cursor_map, read_journals, record_forwards
from dfs.api.trims import Trims, fence
from dfs.errors import DfsError
from dfs.meta.base import ChunkState, Lease, Location, NodeRecord

log = logging.getLogger("dfs.api.repair")


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
    rediscovered: int = 0
    replication_pending: int = 0
    replication_failed: int = 0
    inventory_checked: int = 0
    """Recorded copies this pass compared with what their nodes list."""
    inventory_missing: int = 0
    """Of those, copies the nodes do not hold (forgotten, their chunks repaired)."""
    inventory_untracked: int = 0
    """Copies nodes hold of known chunks that metadata did not place there (recorded)."""
    inventory_cursors: dict[str, str] = field(default_factory=dict)
    """node -> the chunk id the next pass's inventory window starts after."""
    replication_cursors: dict[str, Cursor] = field(default_factory=dict)
    """node -> (boot, journal number) the next pass reads its replication journal after."""
    disks: dict[str, str] = field(default_factory=dict)
    """node -> the disk identity last seen (compared at the next pass)."""
    disks_replaced: list[str] = field(default_factory=list)
    """Nodes that came back with another disk this pass."""
    disk_locations_forgotten: int = 0
    """Locations forgotten because their node's disk was replaced."""
    shared_disks: dict[str, str] = field(default_factory=dict)
    """Live node -> the node whose disk it serves too (its copies do not count)."""
    scope: str = "full"
    nodes_scanned: list[str] = field(default_factory=list)
    down_nodes: list[str] = field(default_factory=list)
    settled_nodes: list[str] = field(default_factory=list)
    running: bool = True


def _str_map(raw: object) -> dict[str, str]:
    """A string-to-string map from a previous report's JSON (anything else: empty)."""
    if not isinstance(raw, dict):
        return {}
    return {str(k): str(v) for k, v in raw.items()}


@dataclass
class _Cluster:
    """The node registry as one pass sees it."""

    live: list[NodeRecord]
    live_by_id: dict[str, NodeRecord]
    counting: set[str]
    """Nodes whose copies count: live, or down for less than DFS_REPAIR_GRACE."""
    down: set[str]
    draining: frozenset[str] = frozenset()
    """Nodes being emptied for removal (``dfs.api.drain``): sources, never targets."""
    zones: dict[str, str] = field(default_factory=dict)
    """Every registered node's zone (repair copies to zones holding no counting copy first)."""
    shared: dict[str, str] = field(default_factory=dict)
    """Live nodes serving another live node's disk (``policy.shared_disks``) -> that node.
    Left out of ``live``: their copies do not count, they are neither sources nor targets,
    and a trim never deletes through them (it would delete the other node's copy)."""

    def by_disk(self, c: ChunkState) -> ChunkState:
        """``c`` with a copy recorded under an id that shares a disk named by the id that
        stands for the disk: it is that one copy (counted once, and a source; the disk is
        no target)."""
        if not self.shared or not c.nodes & self.shared.keys():
            return c
        return replace(c, nodes=frozenset(self.shared.get(n, n) for n in c.nodes))

    def registered(self) -> set[str]:
        """Every node id the registry lists (live, down, or live on a shared disk)."""
        return self.down | self.live_by_id.keys() | self.shared.keys()


@dataclass
class _Triage:
    """The referenced chunks of a pass, by what they need."""

    todo: list[ChunkState] = field(default_factory=list)  # short of counting copies
    surplus: list[ChunkState] = field(default_factory=list)  # more live copies than the factor
    lost: list[ChunkState] = field(default_factory=list)  # no live copy at all


class Repair:
    def __init__(
        self,
        coord: Coordinator,
        owner: str | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_report: Callable[[RepairReport], None] | None = None,
        on_returned: Callable[[set[str]], None] | None = None,
    ) -> None:
        """``on_report`` sees every progress report (metrics); ``on_returned`` learns which
        nodes came back since the last pass (garbage collection sweeps them for orphans)."""
        self.coord = coord
        self.meta = coord.meta
        self.cfg = coord.cfg
        self.owner = owner or f"api-{secrets.token_hex(6)}"
        self._sleep = sleep
        self._on_report = on_report
        self._on_returned = on_returned
        self._last_full: float | None = None  # when this process's last full pass started
        self._shared_logged: dict[str, str] = {}  # shared disks last logged (log changes)
        self._lease: PassLease | None = None  # the running pass's
        self._deferred: set[str] = set()  # trims kept a young copy: looked at again next pass
        self._trims = Trims(
            coord, self._keep_lease, self._renewed, self._lease_ttl(), self._deferred
        )
        # a drain's status confirms the copies it counts with their nodes (dfs.api.drain)
        coord.drains.confirm_with(self._node_has)

    def _lease_ttl(self) -> float:
        return max(3 * self.cfg.repair_interval, 30.0)

    async def _note(self, report: RepairReport) -> None:
        """Report progress and renew the lease with it; LeaseLost once another process took
        the lease over."""
        if self._on_report is not None:
            self._on_report(report)
        if self._lease is not None:
            await self._lease.renew()

    def _renewed(self) -> float:
        """When the running pass's lease was last renewed (API clock)."""
        at = self._lease.renewed_at if self._lease is not None else None
        return self.coord.clock() if at is None else at

    async def _keep_lease(self) -> None:
        """Renew the lease if due (before every irreversible step); LeaseLost if lost."""
        if self._lease is not None:
            await self._lease.keep()

    async def _node_has(self, node: NodeRecord, ids: list[str]) -> set[str]:
        """The subset of ``ids`` ``node`` holds (has-chunks)."""
        cap = self.coord.cap(auth.OP_HAS, auth.ANY_CHUNK, node.node_id)
        return await self.coord.nodes.has_chunks(node.url, ids, cap=cap)

    async def _forget_quarantined(self, live: list[NodeRecord]) -> set[str]:
        """Forget the copies nodes found bad, so the chunks count as under-replicated;
        returns the chunk ids concerned."""
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
            return set()
        known = await self.meta.get_locations([loc.chunk_id for loc in gone])
        gone = [loc for loc in gone if loc.node_id in known[loc.chunk_id]]
        await self.meta.remove_locations(gone)
        return {loc.chunk_id for loc in gone}

    async def _read_replication(self, cluster: _Cluster, report: RepairReport) -> set[str]:
        """Read the live nodes' background-replication journals after their cursors, make
        the new cursors durable (the lease's info), then record the forwards read
        (``dfs.api.replication_journal``); returns the chunk ids nodes gave up forwarding."""
        read = await read_journals(self.coord, cluster.live, report.replication_cursors)
        report.replication_pending = read.pending
        report.replication_failed = len(read.failed)
        registered = cluster.registered()
        report.replication_cursors = {n: c for n, c in read.cursors.items() if n in registered}
        if read.new or read.replayed:
            if self._lease is not None:  # the cursors first: nothing read is recorded twice
                await self._lease.renew()
            await record_forwards(self.coord, read, cluster.live_by_id)
        return read.failed

    async def _forget_replaced_disks(self, cluster: _Cluster, report: RepairReport) -> set[str]:
        """Forget every location of each live node whose disk identity differs from the one
        the last pass saw (its disk was wiped or replaced: nothing recorded there is left);
        returns the chunk ids concerned. The identities seen are kept in the report."""
        gone: set[str] = set()
        for node in cluster.live:
            before = report.disks.get(node.node_id, "")
            if node.disk_id:
                report.disks[node.node_id] = node.disk_id
            if not before or not node.disk_id or before == node.disk_id:
                continue  # first sight, a node that predates identities, or the same disk
            log.warning(
                "node %s came back with another disk (%s, was %s): forgetting its copies",
                node.node_id,
                node.disk_id,
                before,
            )
            ids = await self._node_chunk_ids(node.node_id)
            for i in range(0, len(ids), SCAN_PAGE):
                batch = ids[i : i + SCAN_PAGE]
                await self.meta.remove_locations([Location(c, node.node_id, 0) for c in batch])
            report.disks_replaced.append(node.node_id)
            report.disk_locations_forgotten += len(ids)
            report.inventory_cursors.pop(node.node_id, None)
            gone.update(ids)
        registered = cluster.registered()
        report.disks = {n: d for n, d in report.disks.items() if n in registered}
        return gone

    async def _take_inventory(self, live: list[NodeRecord], report: RepairReport) -> set[str]:
        """One inventory window of each live node (``dfs.api.inventory.take_inventory``);
        returns the chunk ids whose copies changed (repaired this pass)."""
        done = await take_inventory(
            self.coord, live, report.inventory_cursors, self.cfg.inventory_pages_per_pass
        )
        report.inventory_cursors = done.cursors
        report.inventory_checked = done.checked
        report.inventory_missing = done.missing
        report.inventory_untracked = done.untracked
        return done.suspects

    async def _node_chunk_ids(self, node_id: str) -> list[str]:
        out: list[str] = []
        after: str | None = None
        while True:
            page = await self.meta.node_chunks(node_id, limit=SCAN_PAGE, after=after)
            out += page
            if len(page) < SCAN_PAGE:
                return out
            after = page[-1]

    async def _states(self, ids: list[str]) -> list[ChunkState]:
        """ChunkStates of the given ids that have a chunk row (targeted repair)."""
        out: list[ChunkState] = []
        for i in range(0, len(ids), SCAN_PAGE):
            batch = ids[i : i + SCAN_PAGE]
            rows = await self.meta.get_chunks(batch)
            where = await self.meta.get_locations(list(rows))
            out += [
                ChunkState(c, r.size, r.refcount, frozenset(where[c]), r.created_at)
                for c, r in rows.items()
            ]
        return out

    async def _rediscover(
        self, states: list[ChunkState], live: list[NodeRecord]
    ) -> tuple[list[ChunkState], int]:
        """Ask the live nodes which of these chunks they hold and record the answer (a
        background forward the journal did not report yet, a copy metadata lost): a chunk
        short of copies in metadata may not be short on disk."""
        if not states or not live:
            return states, 0
        found = 0
        out: list[ChunkState] = []
        for i in range(0, len(states), protocol.MAX_HAS_CHUNKS):
            await self._keep_lease()  # after a full scan, many batches: as long a read
            batch = {c.chunk_id: c for c in states[i : i + protocol.MAX_HAS_CHUNKS]}
            holders = await self.coord.holders({c: s.size for c, s in batch.items()}, live)
            live_ids = {n.node_id for n in live}
            for c, st in batch.items():
                nodes = (st.nodes - live_ids) | holders[c]
                found += len(holders[c] - st.nodes)
                out.append(replace(st, nodes=frozenset(nodes)))
        return out, found

    async def _previous(self) -> tuple[Lease | None, dict[str, Any]]:
        """The repair lease as it is now, and the last pass's report (its info)."""
        lease = await self.meta.get_lease(REPAIR_LEASE)
        if lease is None or not lease.info:
            return lease, {}
        prev: dict[str, Any] = json.loads(lease.info)
        return lease, prev

    def _fence(self, read: Lease | None, read_at: tuple[float, float], acquired: float) -> None:
        """Set the trims' fence (``trims.fence``) from whose lease ``read`` was, kept across
        this process's passes (its next ones hold the lease themselves). Read before the
        acquire: if a whole time to live passed between the two (API clock or monotonic),
        another owner may have taken the lease and lost it meanwhile, unseen (the read
        showed this process's own lease, or none), so fenced as a takeover of a lease that
        expired at the acquire (found by review)."""
        ttl = self._lease_ttl()
        if acquired - read_at[0] >= ttl or time.monotonic() - read_at[1] >= ttl:
            read = Lease(REPAIR_LEASE, "", acquired, "")  # an unknown owner's, any owner's
        fenced = fence(read, self.owner, ttl)
        self._trims.fenced_until = max(self._trims.fenced_until, fenced)

    async def repair_once(self) -> RepairReport | None:
        """One repair pass; None if another API process holds the repair lease.

        A full pass scans every chunk row (the first of this process, then every
        DFS_REPAIR_FULL_SCAN seconds); the others read only what the by-node index lists
        for nodes that are down (and not settled: all their chunks had their copies at the
        last pass) or came back since the last pass, plus the chunks nodes reported
        quarantined or failed to forward. A pass then costs O(chunks on affected nodes).
        """
        now = self.coord.clock()
        report = RepairReport(started_at=now)
        read_at = (self.coord.clock(), time.monotonic())
        read, prev = await self._previous()
        # carried from pass to pass (also through a pass that dies half-way)
        report.disks = _str_map(prev.get("disks"))
        report.inventory_cursors = _str_map(prev.get("inventory_cursors"))
        report.replication_cursors = cursor_map(prev.get("replication_cursors"))
        self._lease = PassLease(
            self.meta,
            REPAIR_LEASE,
            self.owner,
            self._lease_ttl(),
            lambda: self.coord.clock(),
            lambda: json.dumps(asdict(report)),
        )
        if not await self._lease.acquire():
            return None
        lease = self._lease
        self._fence(read, read_at, lease.renewed_at or now)
        try:
            return await self._pass(report, prev, now)
        except LeaseLost as exc:
            log.warning("repair pass stopped: %s", exc)
            return None
        finally:
            if self._lease is lease:
                self._lease = None

    async def _pass(self, report: RepairReport, prev: dict[str, Any], now: float) -> RepairReport:
        cluster = await self._cluster(now, report)
        report.down_nodes = sorted(cluster.down)
        states = await self._chunks_to_check(cluster, prev, now, report)
        triage = await self._triage(states, cluster, report)
        await self._note(report)
        unsettled = {n for c in triage.lost for n in c.nodes}
        unsettled |= await self._repair_all(triage.todo, cluster, report)
        for c in triage.surplus:
            report.trimmed += await self._trims.trim(c, cluster.live_by_id, cluster.draining)
        # a node down past the grace whose every chunk now has its copies elsewhere needs no
        # second look until it returns (it stays in down_nodes, so its return is noticed)
        report.settled_nodes = sorted(policy.settled_ids(cluster.down, cluster.counting, unsettled))
        report.finished_at = self.coord.clock()
        report.running = False
        await self._note(report)
        if report.scope == "full":  # only a full pass that completed: a lost one is redone
            self._last_full = now
        if report.under_replicated or report.trimmed or report.no_live_copy:
            log.info("repair pass: %s", asdict(report))
        return report

    async def _cluster(self, now: float, report: RepairReport) -> _Cluster:
        nodes = await self.meta.list_nodes()
        live_ids = policy.live_ids(nodes, now)
        live = [n for n in nodes if n.node_id in live_ids]
        disks = {n.node_id: n.disk_id for n in live}
        shared = policy.shared_disks(disks)
        if shared != self._shared_logged:  # loud, but once per change, not every pass
            self._shared_logged = shared
            for node_id, other in sorted(shared.items()):
                log.error(
                    "nodes %s and %s announce one disk (%s): only %s's copies count; give "
                    "each node its own data directory",
                    other,
                    node_id,
                    disks[node_id],
                    other,
                )
        report.shared_disks = shared
        live = [n for n in live if n.node_id not in shared]
        draining = await self.coord.drains.ids()
        return _Cluster(
            live=live,
            live_by_id={n.node_id: n for n in live},
            # a draining node's copies do not count: its chunks get their copies elsewhere
            counting=policy.counting_ids(nodes, now, self.cfg.repair_grace)
            - draining
            - shared.keys(),
            down=policy.down_ids(nodes, now),
            draining=draining,
            zones={n.node_id: n.zone for n in nodes},
            shared=shared,
        )

    async def _chunks_to_check(
        self, cluster: _Cluster, prev: dict[str, Any], now: float, report: RepairReport
    ) -> list[ChunkState]:
        """Every chunk on a full pass; otherwise those of affected nodes and the suspects
        (copies forgotten as quarantined, forwards the nodes gave up)."""
        suspects = await self._forget_replaced_disks(cluster, report)
        quarantined = await self._forget_quarantined(cluster.live)
        report.quarantined_forgotten = len(quarantined)
        suspects |= quarantined
        suspects |= await self._read_replication(cluster, report)
        suspects |= await self._take_inventory(cluster.live, report)
        returned = policy.returned_ids(prev.get("down_nodes", []), cluster.live_by_id.keys())
        if self._on_returned is not None and returned:
            self._on_returned(returned)
        if self._last_full is None or now - self._last_full >= self.cfg.repair_full_scan:
            out: list[ChunkState] = []
            async for page in scan_chunk_pages(self.meta, self._keep_lease, SCAN_PAGE):
                out += page
            return out
        report.scope = "targeted"
        affected = policy.targeted_nodes(cluster.down, prev.get("settled_nodes", []), returned)
        affected |= cluster.draining | cluster.shared.keys()
        report.nodes_scanned = sorted(affected)
        ids = suspects | self._deferred
        self._deferred.clear()  # in place: the trims add to this set
        for node_id in sorted(affected):
            ids.update(await self._node_chunk_ids(node_id))
        return await self._states(sorted(ids))

    async def _triage(
        self, states: list[ChunkState], cluster: _Cluster, report: RepairReport
    ) -> _Triage:
        """Sort the referenced chunks by need, after asking the live nodes about the ones
        metadata says are short (the most endangered first)."""
        rf = self.coord.rf
        live_ids = cluster.live_by_id.keys()
        counting = cluster.counting
        short = [
            c for c in states if policy.needs_check(cluster.by_disk(c), live_ids, counting, rf)
        ]
        fresh, report.rediscovered = await self._rediscover(short, cluster.live)
        by_id = {c.chunk_id: c for c in fresh}
        triage = _Triage()
        for recorded in states:
            recorded = by_id.get(recorded.chunk_id, recorded)
            c = cluster.by_disk(recorded)
            report.chunks_scanned += 1
            verdict = policy.classify(c, live_ids, counting, rf)
            if verdict is policy.Verdict.NO_LIVE_COPY:
                report.no_live_copy += 1
                triage.lost.append(c)
            elif verdict is policy.Verdict.SHORT:
                triage.todo.append(c)
            elif verdict is policy.Verdict.SURPLUS:  # trimmed only through ids recorded
                triage.surplus.append(recorded)
        triage.todo = policy.repair_order(triage.todo, live_ids)
        report.under_replicated = len(triage.todo)
        report.under_replicated_bytes = sum(c.size for c in triage.todo)
        return triage

    async def _repair_all(
        self, todo: list[ChunkState], cluster: _Cluster, report: RepairReport
    ) -> set[str]:
        """Repair ``todo`` in order at DFS_REPAIR_RATE; returns the nodes holding chunks that
        are still short (those nodes are not settled)."""
        rf = self.coord.rf
        unsettled: set[str] = set()
        for c in todo:
            ok = await self._repair_chunk(c, cluster)
            if ok:
                report.repaired += 1
                report.repaired_bytes += c.size * ok
            if ok < policy.copies_needed(c, cluster.counting, rf):
                report.failed += not ok
                unsettled |= c.nodes
            await self._note(report)
            await self._sleep(policy.repair_pause(c.size, ok, self.cfg.repair_rate))
        return unsettled

    async def _repair_chunk(self, c: ChunkState, cluster: _Cluster) -> int:
        """Copy ``c`` to as many new nodes as it lacks; returns the copies made."""
        need = policy.copies_needed(c, cluster.counting, self.coord.rf)
        sources = policy.repair_sources(c, cluster.live)
        made: list[Location] = []
        targets = [n for n in cluster.live if n.node_id not in cluster.draining]
        # zones holding no counting copy first, as placement spreads a new chunk's copies
        held = {cluster.zones.get(n, "") for n in c.nodes & cluster.counting}
        min_free = self.cfg.min_free_bytes
        for target in policy.spread_repair_targets(c, targets, min_free, held):
            if len(made) == need:
                break
            for source in sources:
                if await copy_between(self.coord, c.chunk_id, source, target, "repair"):
                    made.append(Location(c.chunk_id, target.node_id, c.size))
                    break
        if made:
            await self.meta.add_locations(made, self.coord.clock())
        return len(made)

    async def status(self) -> dict[str, Any]:
        lease = await self.meta.get_lease(REPAIR_LEASE)
        if lease is None:
            return {"repair": None}
        return {
            "repair": json.loads(lease.info) if lease.info else None,
            "owner": lease.owner,
            "lease_expires_at": lease.expires_at,
        }
