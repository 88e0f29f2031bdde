"""The lease a background pass (repair, garbage collection) holds while it runs.

Each pass runs under a named lease in the metadata store, a conditional write with a time to
live, so that one API process works at a time and another takes over when it dies. Taking
the lease once is not enough: a pass that runs longer than the lease's time to live (a full
scan of many chunks, a long trim) would go on alongside the pass another API process starts
once the lease has expired, and two trims of one chunk can each keep a different copy,
leaving fewer than the replication factor. ``PassLease`` therefore renews the lease as the
pass goes and stops the pass (``LeaseLost``) as soon as a renewal finds another owner:

- ``renew`` always writes (repair writes its progress report into the lease's info);
- ``keep`` renews only once ``RENEW_SHARE`` of the time to live has passed since the last
  renewal, so it is cheap enough to call before every chunk a pass acts on. A pass calls it
  before every irreversible step, so the lease it acts under has at least
  (1 - ``RENEW_SHARE``) of its time to live left when it acts.

What remains is a stall longer than that between ``keep`` and the step (a process paused
for tens of seconds, a store write that hangs): nothing but the nodes checking a fencing
token could close it.

Knows nothing of aiohttp.web.
"""

from __future__ import annotations

from collections.abc import Callable

from dfs.meta.base import MetadataStore

RENEW_SHARE = 1 / 6
"""``keep`` renews once this share of the time to live has passed (5 s of a 30 s lease)."""


class LeaseLost(Exception):
    """Another owner holds the lease: the pass must stop where it is."""


def _no_info() -> str:
    return ""


class PassLease:
    def __init__(
        self,
        meta: MetadataStore,
        name: str,
        owner: str,
        ttl: float,
        clock: Callable[[], float],
        info: Callable[[], str] = _no_info,
    ) -> None:
        """``info``: what to write into the lease's info at every renewal (its whole info:
        a renewal replaces it)."""
        self.meta = meta
        self.name = name
        self.owner = owner
        self.ttl = ttl
        self.clock = clock
        self.info = info
        self._renewed_at: float | None = None

    async def acquire(self) -> bool:
        """Take or renew the lease; False if another owner holds it."""
        now = self.clock()
        held = await self.meta.acquire_lease(self.name, self.owner, now, self.ttl, self.info())
        self._renewed_at = now if held else None
        return held

    async def renew(self) -> None:
        """Renew the lease now; LeaseLost if another owner holds it."""
        if not await self.acquire():
            raise LeaseLost(f"the {self.name} lease was taken over by another process")

    async def keep(self) -> None:
        """Renew the lease if ``RENEW_SHARE`` of its time to live has passed since the last
        renewal; LeaseLost if another owner holds it."""
        last = self._renewed_at
        if last is None or self.clock() - last >= self.ttl * RENEW_SHARE:
            await self.renew()
