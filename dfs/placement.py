"""Replica placement: weighted rendezvous (highest-random-weight) hashing over live nodes.

For each (chunk, node) pair a 64-bit xxhash gives a uniform ``u`` in (0, 1); the node's score
is ``weight / -ln(u)`` (Schindelhauer and Schomaker's weighted rendezvous), with the weight the
node's free bytes. The ranking is deterministic for a given set of nodes, and when a node leaves
only the chunks it held move. Replicas go to distinct nodes, and to distinct zones first when
there are several. ``rotation`` is the write order with each placed node in turn as the
primary: the API signs one put capability per rotation, and writers try them in order so a
dead first target does not sink a chunk.

Pure: no I/O, nothing from dfs but ids.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import xxhash

_TWO_64 = float(1 << 64)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Candidate:
    """What placement needs to know of a node."""

    node_id: str
    zone: str = ""
    free_bytes: int = 1


def score(chunk_id: str, cand: Candidate) -> float:
    h = xxhash.xxh3_64_intdigest(f"{chunk_id}/{cand.node_id}".encode())
    u = (h + 0.5) / _TWO_64  # strictly inside (0, 1)
    weight = float(max(cand.free_bytes, 1))
    return weight / -math.log(u)


def rank(chunk_id: str, candidates: Sequence[Candidate]) -> list[Candidate]:
    """All candidates, best first (ties broken by node id so the order is total)."""
    return sorted(candidates, key=lambda c: (-score(chunk_id, c), c.node_id))


def choose(chunk_id: str, candidates: Sequence[Candidate], n: int) -> list[Candidate]:
    """Pick up to ``n`` distinct nodes for ``chunk_id``, spreading over zones first.

    Returns fewer than ``n`` only when there are fewer candidates; the caller decides whether
    that is an error.
    """
    ranked = rank(chunk_id, candidates)
    chosen: list[Candidate] = []
    zones: set[str] = set()
    for cand in ranked:
        if len(chosen) == n:
            break
        if cand.zone not in zones:
            chosen.append(cand)
            zones.add(cand.zone)
    for cand in ranked:
        if len(chosen) == n:
            break
        if cand not in chosen:
            chosen.append(cand)
    return chosen


def rotation(targets: Sequence[T], i: int) -> tuple[T, list[T]]:
    """Write order number ``i`` (wrapping around) over the placed ``targets``: the primary,
    ``targets[i]``, and the replicas it forwards to, the others in rotation order."""
    i %= len(targets)
    order = [*targets[i:], *targets[:i]]
    return order[0], order[1:]
