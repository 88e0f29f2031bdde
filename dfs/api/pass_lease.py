"""The lease a background pass (repair, garbage collection) holds while it runs.

Each pass runs under a named lease in the metadata store, a conditional write with a time to
live, so that one API process works at a time and another takes over when it dies. Taking
the lease once is not enough: a pass that runs longer than the lease's time to live (a full
scan of many chunks, a long trim) would go on alongside the pass another API process starts
once the lease has expired, and two trims of one chunk can each keep a different copy,
leaving fewer than the replication factor. ``PassLease`` therefore renews the lease as the
pass goes and stops the pass (``LeaseLost``) as soon as a renewal finds another owner:

- ``renew`` always writes (repair writes its progress report into the lease's info);
- ``keep`` renews only once ``RENEW_SHARE`` of the time to live (at most ``RENEW_MAX``
  seconds: ``renew_every``) has passed since the last renewal, so it is cheap enough to
  call before every chunk a pass acts on. A pass calls it before every irreversible step,
  so the lease it acts under has at least (1 - ``RENEW_SHARE``) of its time to live left
  when it acts.

"Has passed" is judged by the monotonic clock as well as the wall clock (``clock``, which
also stamps the ``expires_at`` written to the store): a renewal is due as soon as either
says so. By the wall clock alone, a step of the host's clock back by J seconds made ``keep``
neither renew nor check ownership for about J seconds, while another process could take the
expired lease over; the monotonic clock does not step. A wall clock that moved (either way)
by the share also makes a renewal due, so a step forward renews at once, never later.

A pass that reads the whole chunk table (repair's full scan, garbage collection) reads it a
page at a time with ``scan_chunk_pages``, renewing before every page: read whole first, a
large table outlasted the lease, so with two API processes such a pass was always lost to
the other's takeover.

What remains is a stall longer than that between ``keep`` and the step (a process paused
for tens of seconds, a store write that hangs). For repair's trims, the one step that
removes copies, ``dfs.api.trims`` closes it: a conditional forget, delete capabilities
that expire with the renewal they were minted from, and a fence after a takeover. Copies
made twice are trimmed later; GC's deletes are conditional on the chunk row already
(``delete_chunk_if_unreferenced``) and the nodes' ``min_age``.

Knows nothing of aiohttp.web.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable

from dfs.meta.base import ChunkState, MetadataStore

RENEW_SHARE = 1 / 6
"""``keep`` renews once this share of the time to live has passed (5 s of a 30 s lease)."""
RENEW_MAX = 600.0
"""...or once this many seconds have, for a long lease (an hourly repair's is 3 h): a trim's
delete capability lives from the last renewal past the next one due (``dfs.api.trims``),
and a node refuses one that lives longer than ``auth.CAP_MAX_TTL``."""


def renew_every(ttl: float) -> float:
    """Seconds after a renewal that ``keep`` renews again, for a lease of ``ttl``."""
    return min(ttl * RENEW_SHARE, RENEW_MAX)


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
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """``info``: what to write into the lease's info at every renewal (its whole info:
        a renewal replaces it). ``monotonic``: the clock that cannot step (tests pass their
        own)."""
        self.meta = meta
        self.name = name
        self.owner = owner
        self.ttl = ttl
        self.clock = clock
        self.info = info
        self.monotonic = monotonic
        self._renewed_at: tuple[float, float] | None = None  # (wall, monotonic) of the last

    @property
    def renewed_at(self) -> float | None:
        """The ``clock`` time of the last renewal (None while the lease is not held)."""
        return self._renewed_at[0] if self._renewed_at is not None else None

    async def acquire(self) -> bool:
        """Take or renew the lease; False if another owner holds it."""
        now, tick = self.clock(), self.monotonic()
        held = await self.meta.acquire_lease(self.name, self.owner, now, self.ttl, self.info())
        self._renewed_at = (now, tick) if held else None
        return held

    async def renew(self) -> None:
        """Renew the lease now; LeaseLost if another owner holds it."""
        if not await self.acquire():
            raise LeaseLost(f"the {self.name} lease was taken over by another process")

    async def keep(self) -> None:
        """Renew the lease if ``renew_every(ttl)`` seconds have passed since the last
        renewal; LeaseLost if another owner holds it."""
        last = self._renewed_at
        due = renew_every(self.ttl)
        if (
            last is None
            or self.monotonic() - last[1] >= due
            or abs(self.clock() - last[0]) >= due  # a stall the wall clock saw, or a step
        ):
            await self.renew()


async def scan_chunk_pages(
    meta: MetadataStore, keep: Callable[[], Awaitable[None]], page: int
) -> AsyncIterator[list[ChunkState]]:
    """Every chunk row, ``page`` rows at a time in id order, calling ``keep`` (the pass's
    ``PassLease.keep``: renews, raises LeaseLost) before each page is read."""
    after: str | None = None
    while True:
        await keep()
        rows = await meta.scan_chunks(limit=page, after=after)
        if rows:
            yield rows
        if len(rows) < page:
            return
        after = rows[-1].chunk_id
