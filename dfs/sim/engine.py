"""The discrete-event loop of the scale model: failure processes (node crashes, disk loss,
zone outages, correlated rack failures), uploads, deletions and garbage collection over a
``Cluster``, with repair passes from ``dfs.sim.repair``. Seeded and deterministic: every
random draw comes from one ``random.Random(seed)`` in event order, and ties in time are
broken by the order events were scheduled.

New data is placed with ``dfs.durability_policy.place_new`` (the service's placement:
``dfs.placement`` over the live nodes with room), garbage collection decides with
``durability_policy.gc_verdict``.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from dfs import durability_policy as policy
from dfs.sim.cluster import Cluster, Group, SimNode
from dfs.sim.config import DAY, YEAR, SimConfig
from dfs.sim.repair import Repairer

REVIVE_P = 0.02
"""Share of unreferenced groups a pending upload references again within the GC grace."""
SAMPLE_S = 6 * 3600.0


@dataclass
class Sample:
    t: float
    under: float
    unavailable: float
    lost_bytes: int
    balance: float
    stored: int


@dataclass
class EngineStats:
    crashes: int = 0
    disk_losses: int = 0
    rack_kills: int = 0
    """Nodes whose disk a correlated rack event destroyed (also in disk_losses)."""
    zone_outages: int = 0
    rack_events: int = 0
    node_seconds: float = 0.0
    placed: int = 0
    placement_full: int = 0
    collected: int = 0
    protected: int = 0
    lost_groups: int = 0
    overlapping_losses: int = 0
    """Disk losses while another lost node still had groups below RF (chunk loss at RF 2
    under per-chunk placement)."""
    under_area: float = 0.0
    unavailable_area: float = 0.0
    lost_times: list[float] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)


def group_id(seed: int, i: int) -> str:
    return hashlib.sha256(f"dfs-sim/{seed}/{i}".encode()).hexdigest()


def lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return median * math.exp(rng.gauss(0.0, sigma))


class Engine:
    def __init__(self, cfg: SimConfig, *, failures: bool = True) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.now = 0.0
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = 0
        self.cluster = Cluster(cfg.durability.rf)
        self.stats = EngineStats()
        self.repair = Repairer(self)
        self.failures = failures
        self.next_group = 0
        self.upload_carry = 0.0
        self.replaced = 0
        self.died_at: dict[str, float] = {}
        self.dead = 0
        self._last_t = 0.0

    # --- the loop --------------------------------------------------------------------------

    def at(self, t: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._queue, (t, self._seq, fn))
        self._seq += 1

    def start_at(self, t: float) -> None:
        """Set the clock (an engine that goes on from another one's state)."""
        self.now = self._last_t = t

    def clear_events(self) -> None:
        self._queue.clear()

    def run(self, until: float, stop: Callable[[], bool] | None = None) -> None:
        while self._queue and self._queue[0][0] <= until:
            t, _, fn = heapq.heappop(self._queue)
            self._advance(t)
            fn()
            if stop is not None and stop():
                return
        self._advance(max(until, self.now))

    def _advance(self, t: float) -> None:
        dt = t - self._last_t
        if dt > 0:
            tot = self.cluster.totals
            self.stats.under_area += tot.under * dt
            self.stats.unavailable_area += tot.unavailable * dt
            self.stats.node_seconds += dt * (len(self.cluster.nodes) - self.dead)
            self._last_t = t
        self.now = t

    # --- setup -----------------------------------------------------------------------------

    def build(self) -> None:
        """The initial nodes, the initial data, and the first event of every process."""
        cfg = self.cfg
        for i in range(cfg.nodes):
            self.cluster.add_node(self._new_node(f"node-{i:05d}", i))
        initial = int(cfg.groups * cfg.workload.initial_fraction)
        live = self._live()
        for _ in range(initial):
            self._place(live)
        self.at(DAY, self.upload_day)
        self.at(DAY, self.delete_day)
        self.at(0.0, self.sample)
        if cfg.join_fraction > 0:
            self.at(cfg.days * DAY / 2, self.join)
        if self.failures:
            for process in (self.crash, self.disk_loss, self.zone_outage, self.rack_event):
                self._next(process)

    def _new_node(self, node_id: str, i: int) -> SimNode:
        cfg = self.cfg
        zone = f"z{i % cfg.zones}"
        rack = (i // cfg.zones) // cfg.failures.rack_size * cfg.zones + i % cfg.zones
        return SimNode(node_id, zone, rack, cfg.capacity_bytes, joined_at=self.now)

    def _live(self) -> list[SimNode]:
        return [n for n in self.cluster.nodes.values() if n.expires_at > self.now and not n.dead]

    def _place(self, live: list[SimNode]) -> bool:
        cfg = self.cfg
        gid = group_id(cfg.seed, self.next_group)
        self.next_group += 1
        size = cfg.group_bytes
        # a node that crashed but is still registered fails the write, and finalize refuses a
        # chunk short of copies: the client uploads again once the registry dropped the node
        up = [n for n in live if n.up]
        chosen = policy.place_new(gid, size, up, cfg.durability.min_free, cfg.durability.rf)
        if len(chosen) < cfg.durability.rf:
            self.stats.placement_full += 1
            return False
        nodes = frozenset(n.node_id for n in chosen)
        self.cluster.new_group(Group(gid, size, nodes, zero_since=self.now))
        self.stats.placed += 1
        return True

    # --- workload ---------------------------------------------------------------------------

    def upload_day(self) -> None:
        cfg = self.cfg
        remaining_days = max(cfg.days - self.now / DAY + 1, 1.0)
        remaining = cfg.groups - self.next_group
        noise = math.exp(self.rng.gauss(-0.045, 0.3))
        self.upload_carry += remaining / remaining_days * noise
        count, self.upload_carry = int(self.upload_carry), self.upload_carry % 1
        live = self._live()
        for _ in range(min(count, remaining)):
            self._place(live)
        self.at(self.now + DAY, self.upload_day)

    def delete_day(self) -> None:
        groups = self.cluster.groups
        want = len(groups) * self.cfg.workload.delete_per_year / 365.0
        count = int(want) + (self.rng.random() < want % 1)
        for _ in range(count):
            g = self.rng.randrange(len(groups))
            if groups[g].refcount > 0 and not groups[g].collected:
                self.cluster.unreference(g, self.now)
                wait = self.cfg.durability.gc_grace + self.rng.uniform(
                    0, self.cfg.durability.gc_interval
                )
                self.at(self.now + wait, partial(self.gc, g))
        self.at(self.now + DAY, self.delete_day)

    def gc(self, g: int) -> None:
        d = self.cfg.durability
        grp = self.cluster.groups[g]
        protected = {grp.chunk_id} if self.rng.random() < REVIVE_P else set()
        verdict = policy.gc_verdict(
            grp.refcount, grp.zero_since, grp.chunk_id, self.now, d.gc_grace, protected
        )
        if verdict is policy.GcVerdict.COLLECT:
            self.cluster.collect(g)
            self.stats.collected += 1
        elif verdict is policy.GcVerdict.PROTECTED:
            self.stats.protected += 1
            self.cluster.rereference(g)  # the pending upload commits and references it again

    def join(self) -> None:
        """Add join_fraction more nodes (spread over the zones)."""
        start = len(self.cluster.nodes)
        for i in range(int(self.cfg.nodes * self.cfg.join_fraction)):
            self.cluster.add_node(self._new_node(f"node-{start + i:05d}", start + i))

    def sample(self) -> None:
        tot = self.cluster.totals
        used = [n.used for n in self.cluster.nodes.values() if not n.dead]
        mean = sum(used) / len(used) if used else 0.0
        balance = max(used) / mean if mean else 1.0
        stored = max(tot.stored, 1)
        self.stats.samples.append(
            Sample(
                self.now,
                tot.under / stored,
                tot.unavailable / stored,
                tot.lost,
                balance,
                tot.stored,
            )
        )
        self.at(self.now + SAMPLE_S, self.sample)

    # --- failures ---------------------------------------------------------------------------

    def _next(self, process: Callable[[], None]) -> None:
        if not self.failures:
            return  # the failure processes were stopped
        f, n = self.cfg.failures, len(self.cluster.nodes)
        rate = {
            self.crash: n * f.crash_per_node_year,
            self.disk_loss: n * f.disk_afr,
            self.zone_outage: self.cfg.zones * f.zone_outage_per_zone_year,
            self.rack_event: max(n // f.rack_size, 1) * f.rack_event_per_rack_year,
        }[process] / YEAR
        if rate > 0:
            self.at(self.now + self.rng.expovariate(rate), process)

    def _alive(self) -> list[SimNode]:
        return [n for n in self.cluster.nodes.values() if not n.dead]

    def down(self, node: SimNode, duration: float) -> None:
        """The node stops for ``duration`` seconds (one more reason to be down)."""
        d = self.cfg.durability
        was_up = node.up
        self.cluster.node_down(node.node_id)
        if was_up:
            node.epoch += 1
            node.expires_at = (
                self.now + d.heartbeat_timeout - self.rng.uniform(0, d.heartbeat_interval)
            )
            self.at(node.expires_at + d.repair_grace, self.repair.poke)
        if math.isfinite(duration):
            self.at(self.now + duration, lambda: self.up(node))

    def up(self, node: SimNode) -> None:
        if node.dead:
            return
        if self.cluster.node_up(node.node_id):
            node.expires_at = math.inf
            self.repair.poke()

    def crash(self) -> None:
        f = self.cfg.failures
        self.stats.crashes += 1
        self.down(
            self.rng.choice(self._alive()), lognormal(self.rng, f.crash_median_s, f.crash_sigma)
        )
        self._next(self.crash)

    def disk_loss(self) -> None:
        self.kill(self.rng.choice(self._alive()))
        self._next(self.disk_loss)

    def kill(self, node: SimNode) -> None:
        """The node's disk is lost: it stops, its copies are gone, a replacement joins later."""
        self.stats.disk_losses += 1
        if self._overlaps():
            self.stats.overlapping_losses += 1
        if node.up:
            self.down(node, math.inf)
        lost = self.cluster.lose_disk(node.node_id)
        self.dead += 1
        self.stats.lost_groups += len(lost)
        self.stats.lost_times += [self.now] * len(lost)
        self.died_at[node.node_id] = self.now
        self.repair.lost_at[node.node_id] = self.now
        self.at(self.now + self.cfg.failures.replace_s, lambda: self.replace(node))

    def _overlaps(self) -> bool:
        """Is a lost node's data still below RF somewhere (an unsettled dead node)?"""
        rf = self.cfg.durability.rf
        for node_id in self.died_at:
            if node_id in self.repair.settled_at:
                continue
            for g in self.cluster.by_node[node_id]:
                grp = self.cluster.groups[g]
                if grp.refcount > 0 and not grp.collected and len(grp.nodes - grp.gone) < rf:
                    return True
        return False

    def replace(self, node: SimNode) -> None:
        self.replaced += 1
        new = SimNode(
            f"{node.node_id}-r{self.replaced}",
            node.zone,
            node.rack,
            node.capacity,
            joined_at=self.now,
        )
        self.cluster.add_node(new)

    def _outage(self, nodes: list[SimNode], median: float, sigma: float) -> float:
        duration = lognormal(self.rng, median, sigma)
        for node in nodes:
            self.down(node, duration)
        return duration

    def zone_outage(self) -> None:
        f = self.cfg.failures
        zone = f"z{self.rng.randrange(self.cfg.zones)}"
        self.stats.zone_outages += 1
        self._outage([n for n in self._alive() if n.zone == zone], f.zone_median_s, f.zone_sigma)
        self._next(self.zone_outage)

    def rack_event(self) -> None:
        f = self.cfg.failures
        racks = sorted({n.rack for n in self._alive()})
        rack = self.rng.choice(racks)
        members = [n for n in self._alive() if n.rack == rack]
        self.stats.rack_events += 1
        if self.rng.random() < f.rack_disk_loss_p:
            for node in members:
                self.stats.rack_kills += 1
                self.kill(node)
        else:
            self._outage(members, f.rack_median_s, f.crash_sigma)
        self._next(self.rack_event)
