"""The report's PNG plots (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from dfs.sim.config import DAY


def at_risk(result: dict[str, Any], out: Path) -> Path:
    samples = result["samples"]
    days = [s["t"] / DAY for s in samples]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot(days, [s["under"] for s in samples], label="below RF copies up")
    ax.plot(days, [s["unavailable"] for s in samples], label="no copy up")
    ax.set_xlabel("day")
    ax.set_ylabel("share of stored bytes")
    ax.set_yscale("symlog", linthresh=1e-6)
    ax.set_title("Data at risk over time (sampled every 6 h)")
    ax.legend()
    return _save(fig, out / "at_risk.png")


def balance(result: dict[str, Any], out: Path) -> Path:
    samples = result["samples"]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot([s["t"] / DAY for s in samples], [s["balance"] for s in samples])
    ax.set_xlabel("day")
    ax.set_ylabel("max / mean bytes per node")
    ax.set_title("Balance of bytes across nodes")
    return _save(fig, out / "balance.png")


def loss_vs_bandwidth(result: dict[str, Any], out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(8, 5))
    for name, row in result["loss"].items():
        bws = [int(k) for k in row if not k.endswith("p")]
        (line,) = ax.plot(
            bws, [max(row[str(b)], 1e-18) for b in bws], marker="o", label=f"{name} (as shipped)"
        )
        ax.plot(
            bws,
            [max(row[f"{b}p"], 1e-18) for b in bws],
            linestyle="--",
            color=line.get_color(),
            label=f"{name} (preemptive)",
        )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("repair bandwidth, MiB/s (cluster-wide)")
    ax.set_ylabel("P(lose any chunk) per year")
    ax.set_title("Annual chunk-loss probability (Markov model, measured rates)")
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, out / "loss_vs_bandwidth.png")


def recovery(result: dict[str, Any], out: Path) -> Path:
    rows = result.get("node_loss", {})
    fig, ax = plt.subplots(figsize=(6, 4))
    labels = [k for k in rows if math.isfinite(rows[k]["seconds"])]
    ax.bar(labels, [rows[k]["seconds"] / 3600 for k in labels])
    ax.set_xlabel("repair rate, MiB/s")
    ax.set_ylabel("hours to full redundancy")
    ax.set_title("Loss of the fullest node")
    return _save(fig, out / "node_loss_recovery.png")


def cost_by_size(result: dict[str, Any], out: Path) -> Path:
    per_file = result["cost"]["per_file"]
    fig, ax = plt.subplots(figsize=(8, 4))
    labels = list(per_file)
    ax.bar(labels, [per_file[k]["dollars"] * 1e6 for k in labels])
    ax.set_yscale("log")
    ax.set_ylabel("DynamoDB $ per million uploads")
    ax.set_title("Metadata cost of one upload, by file size")
    ax.tick_params(axis="x", labelsize=7)
    return _save(fig, out / "cost_by_size.png")


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def all_plots(result: dict[str, Any], out: Path) -> list[Path]:
    return [f(result, out) for f in (at_risk, balance, loss_vs_bandwidth, recovery, cost_by_size)]
