"""``PassLease.keep`` judges whether a renewal is due by the monotonic clock as well as the
wall clock: after the API host's wall clock steps back, a pass still renews (and so learns
that another process took its lease over) on time, instead of acting for the length of the
step under a lease it lost. Real SQLite store; both clocks are the test's."""

from __future__ import annotations

import pytest

from dfs.api.pass_lease import RENEW_SHARE, LeaseLost, PassLease
from dfs.meta.sqlite import SqliteMetadataStore

TTL = 30.0


async def test_keep_after_a_wall_clock_step_back_still_finds_the_lease_lost(
    meta: SqliteMetadataStore,
) -> None:
    real = [1_000_000.0]  # true time: process B's wall clock, and A's monotonic clock
    a_wall = [real[0]]
    a = PassLease(meta, "repair", "api-a", TTL, lambda: a_wall[0], monotonic=lambda: real[0])
    b = PassLease(meta, "repair", "api-b", TTL, lambda: real[0])
    assert await a.acquire()
    a_wall[0] -= 120.0  # NTP steps A's clock back two minutes
    acted_after_takeover = 0
    for _ in range(12):  # A's trim loop: keep() before every delete, 10 s apart
        real[0] += 10.0
        a_wall[0] += 10.0
        took = await b.acquire()
        try:
            await a.keep()
        except LeaseLost:
            break
        acted_after_takeover += took
    else:
        pytest.fail("A kept acting for two minutes without finding its lease lost")
    lease = await meta.get_lease("repair")
    assert lease is not None
    assert lease.owner == "api-b"
    assert acted_after_takeover == 0  # never a step under a lease B held


async def test_keep_renews_by_the_monotonic_clock_when_the_wall_clock_stands_still(
    meta: SqliteMetadataStore,
) -> None:
    tick = [0.0]
    renewals: list[float] = []

    def info() -> str:  # written at every renewal: counts them
        renewals.append(tick[0])
        return str(len(renewals))

    lease = PassLease(meta, "gc", "api-a", TTL, lambda: 5_000.0, info, monotonic=lambda: tick[0])
    assert await lease.acquire()
    tick[0] += TTL * RENEW_SHARE / 2
    await lease.keep()
    assert renewals == [0.0]  # not due yet
    tick[0] += TTL * RENEW_SHARE
    await lease.keep()
    assert renewals == [0.0, tick[0]]  # due by the monotonic clock alone
    stored = await meta.get_lease("gc")
    assert stored is not None
    assert (stored.owner, stored.info) == ("api-a", "2")
