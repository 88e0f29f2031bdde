"""Benchmarks repeated over rounds: each round's profiles kept apart, and each target's
figure per round, its median and in how many rounds it was met (one round on a shared VM
says little: its CPU's speed moves from minute to minute)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path

Target = tuple[str, Sequence[float], Sequence[bool]]
"""A target's label, its figure in each round, and whether each round met it."""


def round_profile(profile: Path | None, n: int, rounds: int) -> Path | None:
    """Where round ``n``'s (from 0) py-spy profiles go: ``profile`` itself when there is one
    round, else its folder ``round-<n + 1>`` (made), so that no round overwrites another's."""
    if profile is None or rounds <= 1:
        return profile
    folder = profile / f"round-{n + 1}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def target_table(title: str, targets: Sequence[Target], unit: str = "") -> list[str]:
    """A Markdown table of ``targets`` over the rounds, under ``title``."""
    lines = [title, "", "| target | per round | median | met in |", "|---|---|---|---|"]
    for label, values, met in targets:
        each = ", ".join(f"{v:.2f}{unit}" for v in values)
        median = f"{statistics.median(values):.2f}{unit}"
        lines.append(f"| {label} | {each} | {median} | {sum(met)} of {len(met)} |")
    return lines
