"""Short-lived caches of metadata reads, for services that answer many small requests.

A small S3 object costs the gateway a handful of metadata reads, each a hop to the metadata
store's worker thread (or a DynamoDB round trip); some of them answer the same thing request
after request (the live nodes, the bucket being written to). ``TtlMap`` keeps such answers
for ``ttl`` seconds of a monotonic clock: a change made elsewhere (another gateway, the API)
is seen within ``ttl`` seconds, and the owner ``drop``s what it changes itself at once.
A ``ttl`` of 0 caches nothing (every ``get`` reads).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlMap(Generic[K, V]):
    """Values by key, each read by ``load`` at most once per ``ttl`` seconds; at most
    ``size`` kept (least recently used dropped first). A failed ``load`` caches nothing."""

    def __init__(
        self,
        ttl: float,
        size: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self._size = size
        self._clock = clock
        self._values: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._drops = 0  # counts ``drop``s: a load that a drop overtook is not kept

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        now = self._clock()
        hit = self._values.get(key)
        if hit is not None and now < hit[0]:
            self._values.move_to_end(key)
            return hit[1]
        drops = self._drops
        value = await load()
        # a drop while the load was awaited: what it read may predate the change dropped
        if self.ttl > 0 and drops == self._drops:
            self._values[key] = (now + self.ttl, value)
            self._values.move_to_end(key)
            while len(self._values) > self._size:
                self._values.popitem(last=False)
        return value

    def drop(self, key: K) -> None:
        self._drops += 1
        self._values.pop(key, None)

    def clear(self) -> None:
        self._drops += 1
        self._values.clear()
