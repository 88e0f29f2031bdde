"""The nodes this API process's own chunk writes just failed on (``dfs.api.chunk_writes``),
remembered for a short while so the next placements leave them out."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable


class RecentFailures:
    """Nodes a write of this process failed on, each until ``ttl`` seconds after."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._until: dict[str, float] = {}

    def blame(self, node_ids: Iterable[str]) -> None:
        until = self._clock() + self.ttl
        for node_id in node_ids:
            self._until[node_id] = until

    def answered(self, node_ids: Iterable[str]) -> None:
        for node_id in node_ids:
            self._until.pop(node_id, None)

    def blamed(self) -> set[str]:
        now = self._clock()
        for node_id in [n for n, until in self._until.items() if until <= now]:
            del self._until[node_id]
        return set(self._until)
