"""A client's short memory of the nodes that just failed or were slow, and its counters.

A node that timed out, refused a connection or answered 503 for this client is *failed*; one
that lost a hedged read (another replica answered first) is *slow*. Both are remembered for
``AVOID_TTL`` seconds, then forgotten, so a node that recovers is used again. A node that
fails again as soon as it is tried after that (within one ``AVOID_TTL`` of its avoidance
ending) is avoided twice as long each time, up to ``AVOID_TTL_MAX``: a hung node costs a
long backup one write deadline per avoidance (the first write to it has nothing to go on
but its deadline), so a fixed 30 s would stall the backup's sends for ~10 s of every ~40
while the node stays hung. An answer from the node (``ok``) forgets its history.

- reads try the replicas that are neither failed nor slow first (``order``);
- writes ask the API to re-plan this client's upload around the failed ones (``excluded``);
- a write in flight to a node that just failed another write is given up at once (``guard``)
  instead of waiting out its own deadline: a hung node accepts connections and never
  answers, so each of the dozens of writes in flight to it would otherwise stall its sender
  for a whole deadline, one after the other.

The list is per ``Client`` and never leaves it except as the ``exclude_nodes`` of this
client's own re-plans, page proofs and finalizes: cluster-wide avoidance comes from
heartbeats, and one tenant's failures steer no one else's placement.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from dfs.errors import Unavailable

AVOID_TTL = 30.0
"""Seconds a node stays avoided after it failed or was slow for this client."""
AVOID_TTL_MAX = 300.0
"""Seconds a failed node stays avoided at most, however often it failed again at once."""

T = TypeVar("T", bound=Mapping[str, object])
R = TypeVar("R")


@dataclass
class TransferStats:
    """What a client's chunk transfers did besides succeeding first time (for results and
    tests): reads hedged to a second replica, uploads re-planned around failed nodes."""

    hedges: int = 0
    replans: int = 0
    short_proofs: int = 0
    """Finalizes (or page proofs) that found chunks short of copies and sent them again."""


class AvoidList:
    """Failed and slow nodes of one client, each until ``ttl`` seconds after its last event."""

    def __init__(
        self,
        ttl: float = AVOID_TTL,
        clock: Callable[[], float] = time.monotonic,
        max_ttl: float = AVOID_TTL_MAX,
    ):
        self.ttl = ttl
        self.max_ttl = max(max_ttl, ttl)
        self._clock = clock
        self._failed: dict[str, float] = {}
        # node id -> (times it failed again as soon as it was tried, its avoidance's end)
        self._strikes: dict[str, tuple[int, float]] = {}
        self._slow: dict[str, float] = {}
        # node id -> resolved (with the node's id) when a write to it fails: the writes
        # in flight to it wait on it beside their own answer (``guard``)
        self._failures: dict[str, asyncio.Future[str]] = {}

    def failed(self, node_id: str) -> None:
        now = self._clock()
        strikes, until = self._strikes.get(node_id, (0, -math.inf))
        if now >= until:
            # failing again right after its avoidance ended: still down, avoid it longer
            strikes = min(strikes + 1, 20) if now - until <= self.ttl else 0
        until = max(until, now + min(self.ttl * 2**strikes, self.max_ttl))
        self._strikes[node_id] = (strikes, until)
        self._failed[node_id] = until
        failure = self._failures.pop(node_id, None)
        if failure is not None and not failure.done():
            failure.set_result(node_id)

    def _failure(self, node_id: str) -> asyncio.Future[str]:
        found = self._failures.get(node_id)
        loop = asyncio.get_running_loop()
        # a list outlives its loop when a library user runs a Client under several
        if found is None or found.done() or found.get_loop() is not loop:
            found = self._failures[node_id] = loop.create_future()
        return found

    async def guard(self, node_ids: Collection[str], work: Awaitable[R]) -> R:
        """``work`` (a write to ``node_ids``: the primary and those it forwards to), given
        up as soon as another write to one of them fails (``failed``): an ``Unavailable``
        whose ``overtaken_by`` names that node, retried and re-planned as its own failure
        would be, without waiting out its deadline."""
        failures = {self._failure(n) for n in node_ids}
        task = asyncio.ensure_future(work)
        waits: set[asyncio.Future[Any]] = {task, *failures}
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if not task.cancelled():
            return task.result()  # its answer, or its own error
        node_id = next(f.result() for f in failures if f.done())
        raise Unavailable(
            f"write to {', '.join(sorted(node_ids))} given up: overtaken by the failure of "
            f"another write to {node_id}",
            overtaken_by=node_id,
        )

    def slow(self, node_id: str) -> None:
        self._slow[node_id] = self._clock() + self.ttl

    def ok(self, node_id: str) -> None:
        """The node just served this client well: it is no longer avoided, and its failures
        before are forgotten."""
        self._failed.pop(node_id, None)
        self._slow.pop(node_id, None)
        self._strikes.pop(node_id, None)

    @staticmethod
    def _current(entries: dict[str, float], now: float) -> set[str]:
        for node_id in [n for n, until in entries.items() if until <= now]:
            del entries[node_id]
        return set(entries)

    def excluded(self) -> set[str]:
        """Nodes that failed this client recently: left out of its re-planned writes."""
        return self._current(self._failed, self._clock())

    def avoided(self) -> set[str]:
        """Nodes that failed or were slow recently: its reads try them last."""
        now = self._clock()
        return self._current(self._failed, now) | self._current(self._slow, now)

    def order(self, replicas: Sequence[T]) -> list[T]:
        """``replicas`` (each with a ``node_id``) with the avoided ones moved last, the plan's
        order kept otherwise."""
        if not self._failed and not self._slow:  # the usual case, asked once per chunk
            return list(replicas)
        avoided = self.avoided()
        if not avoided:
            return list(replicas)
        return sorted(replicas, key=lambda r: str(r["node_id"]) in avoided)
