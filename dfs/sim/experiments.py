"""Scenario runs on a snapshot of the simulated cluster: time to full redundancy after a
node or a zone is lost at several repair rates, data a join or a leave would move under
rendezvous placement, and the local-cluster configuration of ``python -m bench.repair``
for the validation against a real kill -9.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Sequence

from dfs import durability_policy as policy
from dfs.sim.cluster import Cluster, SimNode
from dfs.sim.config import DAY, MIB, TB, Durability, SimConfig, Workload
from dfs.sim.engine import Engine

SAMPLE_GROUPS = 2000


def _scenario(cfg: SimConfig, cluster: Cluster, rate: float, now: float) -> Engine:
    """An engine without failures or workload over a healed copy of ``cluster`` whose clock
    goes on from ``now`` (the registry's times are on that clock), every group at full
    redundancy first."""
    cfg = dataclasses.replace(cfg, durability=dataclasses.replace(cfg.durability, repair_rate=rate))
    eng = Engine(cfg, failures=False)
    eng.start_at(now)
    eng.cluster = copy.deepcopy(cluster)
    eng.cluster.heal()
    eng.repair.prev_down = policy.down_ids(eng.cluster.nodes.values(), now)
    if eng.cluster.totals.under:
        eng.repair.settled = set()
        eng.repair.poke()
        eng.run(math.inf, stop=lambda: eng.cluster.totals.under == 0 and not eng.repair.busy)
    return eng


def _restore(eng: Engine, victims: list[SimNode], horizon: float) -> dict[str, float]:
    start = eng.now
    lost_before = eng.cluster.totals.lost
    for node in victims:
        eng.kill(node)
    at_risk = eng.cluster.totals.under
    eng.run(start + horizon, stop=lambda: eng.cluster.totals.under == 0)
    done = eng.cluster.totals.under == 0
    return {
        "seconds": eng.now - start if done else math.inf,
        "bytes_at_risk": float(at_risk),
        "bytes_copied": float(eng.repair.stats.repaired_bytes),
        "lost_bytes": float(eng.cluster.totals.lost - lost_before),
        "first_repair_s": min(eng.repair.stats.first_repair_delay, default=math.nan),
    }


def node_loss(
    cfg: SimConfig, cluster: Cluster, rates: Sequence[float], now: float
) -> dict[float, dict[str, float]]:
    """Lose the disk of the fullest node; seconds until every group has RF copies again."""
    out: dict[float, dict[str, float]] = {}
    for rate in rates:
        eng = _scenario(cfg, cluster, rate, now)
        alive = [n for n in eng.cluster.nodes.values() if not n.dead]
        victim = max(alive, key=lambda n: (n.used, n.node_id))
        out[rate] = _restore(eng, [victim], 400 * DAY)
    return out


def zone_loss(cfg: SimConfig, cluster: Cluster, rate: float, now: float) -> dict[str, float]:
    """Lose every disk of zone z0 at once."""
    eng = _scenario(cfg, cluster, rate, now)
    victims = [n for n in eng.cluster.nodes.values() if n.zone == "z0" and not n.dead]
    return _restore(eng, victims, 5 * 365 * DAY)


def movement(cfg: SimConfig, cluster: Cluster) -> dict[str, float]:
    """Share of copies whose placement changes (what a rebalancer would move) when nodes
    join (+5 %, +1 node) or one leaves, on a sample of groups with the nodes' current free
    bytes as weights. dfs itself has no rebalancer: a join moves nothing (new nodes fill
    from new writes), a leave moves the leaver's bytes (repair)."""
    nodes = [n for n in cluster.nodes.values() if not n.dead]
    d, rng_ids = cfg.durability, [g.chunk_id for g in cluster.groups[:SAMPLE_GROUPS]]
    base = {c: {n.node_id for n in policy.place_new(c, 1, nodes, 0, d.rf)} for c in rng_ids}
    out: dict[str, float] = {}
    avg_free = sum(n.free_bytes for n in nodes) // max(len(nodes), 1)
    for label, extra in (("join_1", 1), ("join_5pct", max(len(nodes) // 20, 1))):
        new = [SimNode(f"join-{i:05d}", f"z{i % cfg.zones}", -1, avg_free) for i in range(extra)]
        moved = sum(
            len({n.node_id for n in policy.place_new(c, 1, nodes + new, 0, d.rf)} - base[c])
            for c in rng_ids
        )
        out[label] = moved / (len(rng_ids) * d.rf)
        out[label + "_ideal"] = extra / (len(nodes) + extra)
    leaver = nodes[0]
    rest = nodes[1:]
    moved = sum(
        len({n.node_id for n in policy.place_new(c, 1, rest, 0, d.rf)} - base[c]) for c in rng_ids
    )
    out["leave_1"] = moved / (len(rng_ids) * d.rf)
    out["leave_1_ideal"] = 1 / len(nodes)
    out["leaver_id"] = float(int(leaver.node_id.split("-")[1]))
    return out


def validation_config() -> SimConfig:
    """``python -m bench.repair``: 3 nodes (one zone), RF 2, 256 MiB of ~1.24 MiB chunks,
    DFS_REPAIR_GRACE=10, DFS_REPAIR_INTERVAL=1, the local cluster's 1 s heartbeat and 4 s
    timeout, the default 64 MiB/s repair rate, DFS_MIN_FREE_BYTES=0."""
    return SimConfig(
        nodes=3,
        zones=1,
        capacity_bytes=1 * TB,
        days=1.0,
        groups=206,
        join_fraction=0.0,
        workload=Workload(data_bytes=256 * MIB, initial_fraction=1.0, delete_per_year=0.0),
        durability=Durability(
            repair_grace=10.0,
            repair_interval=1.0,
            heartbeat_interval=1.0,
            heartbeat_timeout=4.0,
            min_free=0,
            copy_bandwidth=300.0 * MIB,
        ),
    )


def validation() -> dict[str, float]:
    """The simulator's prediction for bench.repair's kill -9 (measured: 19.5-22.1 s)."""
    cfg = validation_config()
    eng = Engine(cfg, failures=False)
    eng.build()
    eng.clear_events()  # no workload: the scenario is the kill alone
    victim = max(eng.cluster.nodes.values(), key=lambda n: n.used)
    held = victim.used
    result = _restore(eng, [victim], DAY)
    result["killed_node_bytes"] = float(held)
    return result
