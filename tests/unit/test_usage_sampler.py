"""The usage sampler (dfs.api.usage_sampler): one sample per tenant and the cluster per pass,
a pass skipped when the interval's sample exists, and retention deletes (a query per tenant)
at most once per PRUNE_EVERY seconds, not at every pass."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any, cast

from dfs.api.coordinator import Coordinator
from dfs.api.usage_sampler import PRUNE_EVERY, READ_AT_ONCE, UsageSampler
from dfs.meta.base import Stats
from dfs.meta.namespace import NamespaceStore, Usage
from dfs.meta.usage_history import CLUSTER, UsageHistoryStore, UsageSample


class History:
    def __init__(self) -> None:
        self.samples: list[UsageSample] = []
        self.prunes: list[tuple[str, float]] = []

    async def add_usage_samples(self, samples: Sequence[UsageSample]) -> None:
        self.samples += samples

    async def usage_samples(self, tenant: str, since: float, limit: int) -> list[UsageSample]:
        return [s for s in self.samples if s.tenant == tenant and s.at >= since][-limit:]

    async def prune_usage_samples(self, tenant: str, before: float) -> int:
        self.prunes.append((tenant, before))
        return 0


class Namespace:
    def __init__(self) -> None:
        self.inflight = self.most = 0

    async def usage(self, tenant: str, bucket: str | None = None) -> Usage:
        self.inflight += 1
        self.most = max(self.most, self.inflight)
        await asyncio.sleep(0)
        self.inflight -= 1
        return Usage(objects=1, logical_bytes=len(tenant) * 10, stored_bytes=len(tenant))


def sampler(
    history: History, clock: list[float], tenants: list[str], ns: Namespace | None = None
) -> UsageSampler:
    async def get_stats() -> Stats:
        return Stats(total_files=2, logical_bytes=300, stored_bytes=100)

    async def list_tenants() -> list[str]:
        return tenants

    cfg = SimpleNamespace(usage_sample_interval=300.0, usage_history_retention=86400.0)
    meta = SimpleNamespace(get_stats=get_stats, list_tenants=list_tenants)
    coord: Any = SimpleNamespace(cfg=cfg, meta=meta, clock=lambda: clock[0])
    return UsageSampler(
        cast(Coordinator, coord),
        cast(NamespaceStore, ns or Namespace()),
        cast(UsageHistoryStore, history),
    )


async def test_a_pass_samples_every_tenant_and_prunes_at_most_hourly() -> None:
    history, clock = History(), [1_000_000.0]
    s = sampler(history, clock, ["alice", "bob"])
    assert await s.sample_once() == 3
    assert {x.tenant for x in history.samples} == {CLUSTER, "alice", "bob"}
    assert sorted(t for t, _ in history.prunes) == sorted([CLUSTER, "alice", "bob"])
    assert {b for _, b in history.prunes} == {clock[0] - 86400.0}
    assert await s.sample_once() == 0  # this interval is sampled already
    history.prunes.clear()
    for _ in range(int(PRUNE_EVERY // 300) - 1):  # passes within the hour: no deletes
        clock[0] += 300
        assert await s.sample_once() == 3
    assert history.prunes == []
    clock[0] += 300  # an hour since the last retention pass
    assert await s.sample_once() == 3
    assert len(history.prunes) == 3


async def test_tenants_are_read_a_bounded_number_at_once() -> None:
    history, ns = History(), Namespace()
    tenants = [f"t{i:03d}" for i in range(3 * READ_AT_ONCE + 5)]
    s = sampler(history, [5_000_000.0], tenants, ns)
    assert await s.sample_once() == len(tenants) + 1
    assert 1 < ns.most <= READ_AT_ONCE
    by_tenant = {x.tenant: x for x in history.samples}
    assert by_tenant["t042"].logical_bytes == 40  # each tenant's own counters
