"""The run's report: ``report.json`` (everything ``dfs.sim.run.simulate`` returned) and
``report.md`` (the tables a reader needs, with the model's assumptions stated)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from dfs.sim.config import DAY, MIB, PB, TB


def _h(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "not within the horizon"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 2 * DAY:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / DAY:.1f} days"


def _p(x: float) -> str:
    return "< 1e-15" if x < 1e-15 else f"{x:.2g}"


def _header(r: dict[str, Any]) -> list[str]:
    c = r["config"]
    d = c["durability"]
    ev = r["events"]
    return [
        "# dfs scale model: report",
        "",
        f"{c['nodes']} nodes in {c['zones']} zones, {c['capacity_bytes'] / TB:.0f} TB each, "
        f"{c['days']:.0f} days, seed {c['seed']}; {c['groups']} placement groups standing for "
        f"{c['workload']['data_bytes'] / PB:.2f} PB of unique data at RF {d['rf']}; repair "
        f"{d['repair_rate'] / MIB:.0f} MiB/s, grace {d['repair_grace']:.0f} s. Run time "
        f"{r['seconds']['main']:.0f} s (year) + {r['seconds'].get('scenarios', 0):.0f} s (scenarios).",
        "",
        "Placement, repair order and targets, trimming and GC eligibility are dfs's own code "
        "(dfs.placement, dfs.durability_policy); the cluster, failures and workload are modelled.",
        "",
        "## Events",
        "",
        f"crashes {ev['crashes']}, disk losses {ev['disk_losses']} ({ev['rack_kills']} in rack "
        f"events), zone outages {ev['zone_outages']}, rack events {ev['rack_events']}; "
        f"groups lost {ev['lost_groups']}; disk losses while an earlier loss was not yet "
        f"repaired: {ev['overlapping_losses']} (each loses chunks at RF 2 under per-chunk placement).",
        "",
    ]


def _durability(r: dict[str, Any]) -> list[str]:
    rep, m = r["repair"], r["measured"]
    lines = [
        "## Repair",
        "",
        f"passes {rep['passes']}, groups repaired {rep['repaired']} "
        f"({rep['repaired_bytes'] / TB:.1f} TB copied), trimmed afterwards {rep['trimmed']} "
        f"({rep['trimmed_bytes'] / TB:.1f} TB: copies made for nodes that came back), failed {rep['failed']}, "
        f"skipped on re-check {rep['skipped']}. Repair was busy {m['repair_busy_share']:.0%} of the time; "
        f"a failure arriving at a random moment waits {_h(m['pass_wait_s'])} on average for the pass in "
        "progress to end before its own pass starts.",
        "",
        f"Share of stored bytes below RF copies (time average): {r['under_time_avg']:.3g}; "
        f"with no copy up: {r['unavailable_time_avg']:.3g}. Bytes whose copies all sit in one "
        f"zone at the end: {r['single_zone_bytes'] / TB:.1f} TB.",
        "",
        f"Measured: {m['disk_losses']:.0f} independent disk losses in {m['node_years']:.0f} "
        f"node-years (lambda {m['lam_per_node_year']:.4f}/node-year"
        f"{'' if m['lam_measured'] else ', none observed: the configured AFR'}); first repair "
        f"{m['first_repair_delay_min_s']:.0f} s after a loss at best, median "
        f"{m['first_repair_delay_median_s']:.0f} s (a pass in progress delays it); effective "
        f"repair throughput {m['effective_repair_bytes_per_s'] / MIB:.0f} MiB/s; dead node fully "
        f"re-replicated after {_h(m['restore_median_s'])} (median), {_h(m['restore_max_s'])} (max).",
        "",
    ]
    if "node_loss" in r:
        lines += ["| node loss at | bytes to copy | time to full redundancy |", "|---|---|---|"]
        lines += [
            f"| {k} MiB/s | {v['bytes_at_risk'] / TB:.2f} TB | {_h(v['seconds'])} |"
            for k, v in r["node_loss"].items()
        ]
        z = r["zone_loss"]
        lines += [
            "",
            f"Zone loss (all of z0) at {r['config']['durability']['repair_rate'] / MIB:.0f} MiB/s: "
            f"{z['bytes_at_risk'] / TB:.0f} TB to copy, full redundancy after {_h(z['seconds'])}, "
            f"{z['lost_bytes'] / TB:.2f} TB lost (groups whose copies were all in z0).",
            "",
        ]
    return lines


def _loss(r: dict[str, Any]) -> list[str]:
    lines = [
        "## Probability of losing any chunk per year",
        "",
        "Markov model (dfs.sim.markov) fed with the measured loss rate and repair delays; RF 3 and "
        "erasure coding are modelled, not run (dfs has no erasure coding). 'as shipped': a "
        "failure first waits for the pass in progress (the measured average wait), and a pass "
        "runs to its end before it re-sorts; 'preemptive': repair turns to the most damaged "
        "data at once. Repair bandwidth is cluster-wide.",
        "",
    ]
    for title, key in (
        ("EBS-class AFR (measured)", "loss"),
        ("bare-disk AFR 1.5 %", "loss_bare_disk"),
    ):
        table = r[key]
        bws = [k for k in next(iter(table.values())) if not k.endswith("p")]
        lines += [f"### {title}", "", "| layout | " + " | ".join(f"{b} MiB/s" for b in bws) + " |"]
        lines.append("|---" * (len(bws) + 1) + "|")
        for name, row in table.items():
            cells = [f"{_p(row[b])} / {_p(row[b + 'p'])}" for b in bws]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines += ["", "(as shipped / preemptive)", ""]
    return lines


def _balance(r: dict[str, Any]) -> list[str]:
    mv = r.get("movement", {})
    k = r["copies_per_node"]
    lines = [
        "## Balance and movement",
        "",
        f"max/mean bytes per node at the end: {r['balance_end']:.2f} with {k:.0f} group copies "
        f"per node (sampling noise alone gives about {1 + 3.2 / math.sqrt(k):.2f}; real chunks "
        f"are ~10^4 times finer). Mean fill: initial nodes {r['fill_by_age']['initial_nodes']:.3f}, "
        f"nodes that joined mid-run {r['fill_by_age']['joined_nodes']:.3f} (dfs never moves data to "
        "a new node; it only weights new writes by free bytes).",
        "",
    ]
    if mv:
        lines += [
            "Share of copies whose rendezvous placement changes (what a rebalancer would move):",
            "",
            "| change | measured | ideal |",
            "|---|---|---|",
            f"| 1 node joins | {mv['join_1']:.4f} | {mv['join_1_ideal']:.4f} |",
            f"| 5 % more nodes | {mv['join_5pct']:.4f} | {mv['join_5pct_ideal']:.4f} |",
            f"| 1 node leaves | {mv['leave_1']:.4f} | {mv['leave_1_ideal']:.4f} |",
            "",
        ]
    return lines


def _cost(r: dict[str, Any]) -> list[str]:
    c = r["cost"]
    u = c["units"]
    lines = [
        "## Cost",
        "",
        f"Prices: {c['source']}",
        "",
        f"Per GiB uploaded ({r['config']['nodes']:,} nodes): {u['per_gib']['wru']:.0f} WRU + {u['per_gib']['rru']:.0f} RRU = "
        f"${u['per_gib']['dollars']:.4f} (${u['per_gib']['dollars'] * 1000:.2f}/TB); modelled calls per GiB on "
        f"3 nodes {u['per_gib_3_nodes']['calls']:.0f} vs {c['measured_calls_per_gib_3_nodes']} measured. "
        f"A listing page of 1,000 files: {u['listing_1000']['rru']:.0f} RRU.",
        "",
        "| upload of a file of | WRU | RRU | $ per million |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {k} | {v['wru']:.0f} | {v['rru']:.0f} | {v['dollars'] * 1e6:,.0f} |"
        for k, v in c["per_file"].items()
    ]
    mix = c["mix"]
    lines += [
        "",
        f"1 PB of the size mix: {mix['files']:.3g} files, {mix['chunks']:.3g} chunks; writing it "
        f"costs ${c['upload_1pb_dollars']:,.0f} in DynamoDB requests; its metadata takes "
        f"{c['metadata_gb']:,.0f} GB (${c['metadata_month_dollars']:,.0f}/month); heartbeats "
        f"${c['heartbeat_month_dollars']:,.0f}/month.",
        "",
        "| layout | EBS gp3 $/month | st1 | sc1 | cross-AZ write once | internet read once |",
        "|---|---|---|---|---|---|",
    ]
    for name, v in c["layouts"].items():
        e, n = v["ebs_month"], v["network"]
        lines.append(
            f"| {name} | {e['gp3']:,.0f} | {e['st1']:,.0f} | {e['sc1']:,.0f} | "
            f"{n['inter_az_write']:,.0f} | {n['internet_read_once']:,.0f} |"
        )
    lines += [
        "",
        "Periodic full scans of the chunk table (repair every DFS_REPAIR_FULL_SCAN, garbage "
        "collection every pass), one 1,000-row page at a time at an assumed 50 ms a page:",
        "",
        "| chunk rows | one scan takes | RRU per scan | repair full scans $/month | GC scans $/month |",
        "|---|---|---|---|---|",
    ]
    for n, v in c["scans"].items():
        lines.append(
            f"| {float(n):.0e} | {_h(v['scan_seconds'])} | {v['scan_rru']:,.0f} | "
            f"{v['repair_full_scan_dollars']:,.0f} | {v['gc_scan_dollars']:,.0f} |"
        )
    return [*lines, ""]


def _validation(r: dict[str, Any]) -> list[str]:
    v = r.get("validation")
    if not v:
        return []
    return [
        "## Validation: bench.repair's configuration",
        "",
        f"3 nodes, RF 2, 256 MiB, grace 10 s, kill of the fullest node "
        f"({v['killed_node_bytes'] / MIB:.0f} MiB): the model predicts full redundancy "
        f"{v['seconds']:.1f} s after the kill (first copy at {v['first_repair_s']:.1f} s); "
        "measured on this machine: 19.5-22.1 s (bench/README.md, README.md).",
        "",
    ]


def markdown(r: dict[str, Any]) -> str:
    parts = _header(r) + _durability(r) + _loss(r) + _balance(r) + _cost(r) + _validation(r)
    return "\n".join(parts)


def write(r: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(r, indent=1, sort_keys=True, default=str) + "\n")
    (out / "report.md").write_text(markdown(r))
    return [out / "report.json", out / "report.md"]
