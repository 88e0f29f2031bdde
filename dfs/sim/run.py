"""One simulation run end to end: the year of failures and workload, the measured rates,
the Markov loss model fed with them, the scenarios and the cost model, gathered into one
JSON-able result that ``dfs.sim.report`` and ``dfs.sim.plots`` render."""

from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Any

from dfs import config as service
from dfs.sim import cost, experiments, markov
from dfs.sim.config import DAY, MIB, YEAR, SimConfig
from dfs.sim.engine import Engine

BANDWIDTHS = [16 * MIB, 64 * MIB, 256 * MIB, 1024 * MIB, 4096 * MIB]
REPAIR_FULL_SCAN = service.DEFAULT_REPAIR_FULL_SCAN
BARE_DISK_AFR = 0.015  # instance-store or own disks (Backblaze-class AFR), for sensitivity
NODE_LOSS_RATES = [64 * MIB, 256 * MIB, 1024 * MIB]


def measured(eng: Engine) -> dict[str, float]:
    """The rates the Markov model takes, as the run observed them."""
    years = eng.stats.node_seconds / YEAR
    rs = eng.repair.stats
    delays = rs.first_repair_delay
    d = eng.cfg.durability
    fixed = d.heartbeat_timeout - d.heartbeat_interval / 2 + d.repair_grace + d.repair_interval / 2
    busy = rs.copy_seconds + rs.repaired_bytes / d.repair_rate
    racks = max(len(eng.cluster.nodes) // eng.cfg.failures.rack_size, 1)
    restores = [
        eng.repair.settled_at[n] - t for n, t in eng.died_at.items() if n in eng.repair.settled_at
    ]
    independent = eng.stats.disk_losses - eng.stats.rack_kills
    lam = independent / years if years and independent else eng.cfg.failures.disk_afr
    horizon = max(eng.now, 1.0)
    wait = sum(x * x for x in rs.pass_seconds) / (2 * horizon)
    return {
        "repair_busy_share": sum(rs.pass_seconds) / horizon,
        "pass_wait_s": wait,
        "node_years": years,
        "disk_losses": float(independent),
        "rack_kills": float(eng.stats.rack_kills),
        "lam_measured": float(independent > 0),
        "lam_per_node_year": lam,
        "first_repair_delay_median_s": statistics.median(delays) if delays else fixed,
        "first_repair_delay_min_s": min(delays) if delays else fixed,
        "fixed_delay_s": fixed,
        "effective_repair_bytes_per_s": rs.repaired_bytes / busy if busy else d.repair_rate,
        "restore_median_s": statistics.median(restores) if restores else float("nan"),
        "restore_max_s": max(restores) if restores else float("nan"),
        "rack_perm_per_rack_year": eng.cfg.failures.rack_event_per_rack_year
        * eng.cfg.failures.rack_disk_loss_p,
        "racks": float(racks),
    }


def loss_table(cfg: SimConfig, m: dict[str, float], stored: float) -> dict[str, dict[str, float]]:
    """Annual probability of losing any chunk, per layout and repair bandwidth."""
    table: dict[str, dict[str, float]] = {}
    for layout in markov.LAYOUTS:
        row: dict[str, float] = {}
        for bw in BANDWIDTHS:
            for preemptive in (False, True):
                inp = markov.Inputs(
                    nodes=cfg.nodes,
                    lam=m["lam_per_node_year"] / YEAR,
                    delay=m["fixed_delay_s"] + (0.0 if preemptive else m["pass_wait_s"]),
                    rate=bw,
                    data_bytes=stored,
                    chunk_bytes=cfg.workload.chunk_bytes,
                    rack_nodes=cfg.failures.rack_size,
                    rack_perm_per_s=m["rack_perm_per_rack_year"] * m["racks"] / YEAR,
                    preemptive=preemptive,
                )
                key = f"{bw // MIB}{'p' if preemptive else ''}"
                row[key] = markov.annual_loss(layout, inp)
        table[layout.name] = row
    return table


def simulate(cfg: SimConfig, scenarios: bool = True) -> dict[str, Any]:
    t0 = time.monotonic()
    eng = Engine(cfg)
    eng.build()
    eng.run(cfg.days * DAY)
    t_main = time.monotonic() - t0
    m = measured(eng)
    stored = float(eng.cluster.totals.stored)
    st = eng.stats
    horizon = max(eng.now, 1.0)
    result: dict[str, Any] = {
        "config": dataclasses.asdict(cfg),
        "events": {
            k: v for k, v in dataclasses.asdict(st).items() if k not in ("samples", "lost_times")
        },
        "repair": {
            k: v
            for k, v in dataclasses.asdict(eng.repair.stats).items()
            if k != "first_repair_delay"
        },
        "measured": m,
        "stored_bytes": stored,
        "under_time_avg": st.under_area / horizon / max(stored, 1.0),
        "unavailable_time_avg": st.unavailable_area / horizon / max(stored, 1.0),
        "samples": [dataclasses.asdict(s) for s in st.samples],
        "balance_end": st.samples[-1].balance if st.samples else 1.0,
        "single_zone_bytes": float(eng.cluster.single_zone_bytes()),
        "copies_per_node": cfg.groups * cfg.durability.rf / cfg.nodes,
        "fill_by_age": fill_by_age(eng),
        "loss": loss_table(cfg, m, stored),
        "loss_bare_disk": loss_table(cfg, m | {"lam_per_node_year": BARE_DISK_AFR}, stored),
        "cost": cost_section(cfg),
        "seconds": {"main": t_main},
    }
    if scenarios:
        t1 = time.monotonic()
        result["node_loss"] = {
            str(r // MIB): v
            for r, v in experiments.node_loss(cfg, eng.cluster, NODE_LOSS_RATES, eng.now).items()
        }
        result["zone_loss"] = experiments.zone_loss(
            cfg, eng.cluster, cfg.durability.repair_rate, eng.now
        )
        result["movement"] = experiments.movement(cfg, eng.cluster)
        result["validation"] = experiments.validation()
        result["seconds"]["scenarios"] = time.monotonic() - t1
    return result


def fill_by_age(eng: Engine) -> dict[str, float]:
    """Mean fill of the nodes present from the start vs those that joined later."""
    old = [
        n.used / n.capacity for n in eng.cluster.nodes.values() if not n.dead and n.joined_at == 0
    ]
    new = [
        n.used / n.capacity for n in eng.cluster.nodes.values() if not n.dead and n.joined_at > 0
    ]
    return {
        "initial_nodes": statistics.fmean(old) if old else 0.0,
        "joined_nodes": statistics.fmean(new) if new else 0.0,
    }


def cost_section(cfg: SimConfig) -> dict[str, Any]:
    out = cost.report(cfg.workload, cfg.nodes, cfg.durability.rf)
    out["layouts"] = {
        layout.name: {
            "ebs_month": cost.ebs_month(cfg.workload.data_bytes, layout.overhead),
            "network": cost.network(cfg.workload.data_bytes, layout.overhead, cfg.zones),
        }
        for layout in markov.LAYOUTS
    }
    d = cfg.durability
    out["scans"] = {
        f"{n:.0e}": cost.scan_month(n, d.rf, REPAIR_FULL_SCAN, d.gc_interval)
        for n in (1e6, 1e8, 1e9)
    }
    return out
