"""Repair passes in the model, run the way ``dfs.api`` runs them: one pass at a time (one
API process holds the repair lease), each pass reading the groups of nodes that are down and
not settled or that came back, classifying them with ``dfs.durability_policy``, repairing
the short ones in the policy's order (fewest live copies first) one after the other at
most ``repair_rate`` bytes/s, then trimming surplus copies. A failure noticed during a pass
waits for the next pass, as in the service.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from dfs import durability_policy as policy
from dfs.sim.cluster import Cluster, Group, SimNode
from dfs.sim.config import SimConfig


class Host(Protocol):
    """What repair needs of the event loop (``dfs.sim.engine.Engine``)."""

    cfg: SimConfig
    now: float
    cluster: Cluster

    def at(self, t: float, fn: Callable[[], None]) -> None: ...


FAILED_COPY_S = 1.0
"""What a copy to a node that is down costs before repair tries the next target."""


@dataclass
class RepairStats:
    passes: int = 0
    repaired: int = 0
    repaired_bytes: int = 0
    copy_seconds: float = 0.0
    failed: int = 0
    trimmed: int = 0
    trimmed_bytes: int = 0
    no_live_copy: int = 0
    skipped: int = 0
    """Groups a re-checking pass found no longer short (their node came back)."""
    pass_seconds: list[float] = field(default_factory=list)
    first_repair_delay: list[float] = field(default_factory=list)
    """Seconds from a node's loss to the first repair of one of its groups."""


@dataclass
class _Pass:
    todo: Iterator[int]
    surplus: list[int]
    down: set[str]
    counting: set[str]
    live: list[SimNode]
    unsettled: set[str]
    started: float


class Repairer:
    def __init__(self, eng: Host) -> None:
        self.eng = eng
        self.stats = RepairStats()
        self.dirty = False
        self.busy = False
        self.scheduled = False
        self.prev_down: set[str] = set()
        self.settled: set[str] = set()
        self.current: _Pass | None = None
        self.lost_at: dict[str, float] = {}
        """Nodes that lost their disk and none of whose groups repair touched yet."""
        self.settled_at: dict[str, float] = {}

    def poke(self) -> None:
        """Something changed: a pass runs at the next repair interval."""
        self.dirty = True
        if not self.busy and not self.scheduled:
            self._schedule(self.eng.now)

    def _schedule(self, after: float) -> None:
        interval = self.eng.cfg.durability.repair_interval
        t = (int(after // interval) + 1) * interval
        self.scheduled = True
        self.eng.at(t, self.start_pass)

    def start_pass(self) -> None:
        self.scheduled = False
        if not self.dirty:
            return
        self.dirty = False
        self.busy = True
        self.stats.passes += 1
        eng, d = self.eng, self.eng.cfg.durability
        now = eng.now
        nodes = list(eng.cluster.nodes.values())
        live_ids = policy.live_ids(nodes, now)
        counting = policy.counting_ids(nodes, now, d.repair_grace)
        down = policy.down_ids(nodes, now)
        returned = policy.returned_ids(self.prev_down, live_ids)
        affected = policy.targeted_nodes(down, self.settled, returned)
        self.prev_down = down
        ids: set[int] = set()
        for n in affected:
            ids |= eng.cluster.by_node[n]
        todo: list[Group] = []
        surplus: list[int] = []
        unsettled: set[str] = set()
        index: dict[str, int] = {}
        for g in sorted(ids):
            grp = eng.cluster.groups[g]
            if grp.collected:
                continue
            verdict = policy.classify(grp, live_ids, counting, d.rf)
            if verdict is policy.Verdict.SHORT:
                todo.append(grp)
                index[grp.chunk_id] = g
            elif verdict is policy.Verdict.SURPLUS:
                surplus.append(g)
            elif verdict is policy.Verdict.NO_LIVE_COPY:
                self.stats.no_live_copy += 1
                unsettled |= grp.nodes
        order = [index[c.chunk_id] for c in policy.repair_order(todo, live_ids)]
        live = [n for n in nodes if n.node_id in live_ids]
        self.current = _Pass(iter(order), surplus, down, counting, live, unsettled, now)
        eng.at(now, self.step)

    def step(self) -> None:
        p = self.current
        assert p is not None
        g = next(p.todo, None)
        if g is None:
            self._finish(p)
            return
        copy_s, pause = self._repair(g, p)
        self.eng.at(self.eng.now + copy_s + pause, self.step)

    def _repair(self, g: int, p: _Pass) -> tuple[float, float]:
        """Copy group ``g`` to the nodes it lacks, as ``Maintenance._repair_chunk`` does;
        returns the seconds the copies took and the rate limit's pause after them."""
        eng, d = self.eng, self.eng.cfg.durability
        grp = eng.cluster.groups[g]
        if grp.collected or grp.lost:
            return 0.0, 0.0
        need = policy.copies_needed(grp, p.counting, d.rf)
        if d.recheck:
            now_counting = policy.counting_ids(eng.cluster.nodes.values(), eng.now, d.repair_grace)
            if policy.copies_needed(grp, now_counting, d.rf) <= 0:
                self.stats.skipped += 1
                return 0.0, 0.0
        if d.zone_aware:
            held = {eng.cluster.nodes[n].zone for n in grp.nodes & p.counting}
            targets = policy.spread_repair_targets(grp, p.live, d.min_free, held)
        else:
            targets = policy.repair_targets(grp, p.live, d.min_free)
        sources = [s for s in policy.repair_sources(grp, p.live) if s.node_id not in grp.gone]
        made: list[str] = []
        spent = 0.0
        for target in targets:
            if len(made) == need:
                break
            if not target.up or not any(s.up for s in sources):
                spent += FAILED_COPY_S
                continue
            made.append(target.node_id)
            spent += grp.size / d.copy_bandwidth
        for n in grp.nodes:
            lost_at = self.lost_at.pop(n, None)
            if lost_at is not None:
                self.stats.first_repair_delay.append(eng.now - lost_at)
        if made:
            eng.at(eng.now + spent, lambda: self._apply(g, made))
            self.stats.repaired += 1
            self.stats.repaired_bytes += grp.size * len(made)
            self.stats.copy_seconds += spent
        if len(made) < need:
            self.stats.failed += not made
            p.unsettled |= grp.nodes
        return spent, policy.repair_pause(grp.size, len(made), d.repair_rate)

    def _apply(self, g: int, made: list[str]) -> None:
        cluster = self.eng.cluster
        grp = cluster.groups[g]
        for n in made:
            node = cluster.nodes[n]
            if node.up and not grp.collected and not grp.lost and n not in grp.nodes:
                cluster.add_copy(g, n)

    def _finish(self, p: _Pass) -> None:
        eng, d = self.eng, self.eng.cfg.durability
        cluster = eng.cluster
        for g in p.surplus:
            grp = cluster.groups[g]
            holders = [
                cluster.nodes[n] for n in grp.nodes if cluster.nodes[n].up and n not in grp.gone
            ]
            trim = policy.spread_trim_victims if d.zone_aware else policy.trim_victims
            for victim in trim(grp.chunk_id, holders, d.rf):
                cluster.remove_copy(g, victim.node_id)
                self.stats.trimmed += 1
                self.stats.trimmed_bytes += grp.size
        settled = policy.settled_ids(p.down, p.counting, p.unsettled)
        for n in settled - self.settled:
            if cluster.nodes[n].dead:
                self.settled_at.setdefault(n, eng.now)
        self.settled = settled
        self.stats.pass_seconds.append(eng.now - p.started)
        self.current = None
        self.busy = False
        if self.dirty:
            self._schedule(eng.now)
