"""The usage history's sampler: every ``DFS_USAGE_SAMPLE_INTERVAL`` seconds, one sample of
every tenant's namespace counters and one of the cluster's (``dfs.meta.usage_history``),
and samples older than ``DFS_USAGE_HISTORY_RETENTION`` pruned.

The samples live in the metadata store (both backends), so the dashboards' "over time"
survives restarts and page reloads and every API process serves the same history. No lease:
a process skips a pass when the cluster's last sample is younger than 90% of the interval,
so several API processes sample about once per interval between them (a rare double sample
in one second replaces itself). The counters themselves are kept at commit time
(``dfs.meta.namespace``): a pass reads them, it never scans objects.

Cost: a pass reads one set of counters per tenant (``READ_AT_ONCE`` reads in flight, so a
DynamoDB store with many tenants takes a fraction of the wall time of one read after the
other) and writes one sample each (batched);
retention deletes, a query per tenant, run at most once per ``PRUNE_EVERY`` seconds of a
process (not at every pass), so a sample outlives the retention by at most that much.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from dfs.api.coordinator import Coordinator
from dfs.meta.namespace import NamespaceStore, Usage
from dfs.meta.usage_history import CLUSTER, UsageHistoryStore, UsageSample

log = logging.getLogger("dfs.api.usage_sampler")

MAX_SAMPLES = 2000
"""The most samples one history answer holds (the newest)."""
READ_AT_ONCE = 16
"""Tenants whose counters are read at once (a pass, ``/admin/usage``)."""
PRUNE_EVERY = 3600.0
"""Seconds between two retention passes of one process (each is a delete per tenant)."""


def sample_body(s: UsageSample) -> dict[str, Any]:
    return {
        "at": s.at,
        "objects": s.objects,
        "logical_bytes": s.logical_bytes,
        "stored_bytes": s.stored_bytes,
        "saved_bytes": s.saved_bytes,
    }


async def tenant_usage(namespace: NamespaceStore, tenants: Sequence[str]) -> dict[str, Usage]:
    """Each tenant's counters, ``READ_AT_ONCE`` reads in flight."""
    found: dict[str, Usage] = {}
    for i in range(0, len(tenants), READ_AT_ONCE):
        part = tenants[i : i + READ_AT_ONCE]
        read = await asyncio.gather(*(namespace.usage(t) for t in part))
        found.update(zip(part, read, strict=True))
    return found


class UsageSampler:
    def __init__(
        self,
        coord: Coordinator,
        namespace: NamespaceStore | None,
        history: UsageHistoryStore | None,
    ) -> None:
        self.coord = coord
        self.namespace = namespace
        self.history = history
        self.interval = coord.cfg.usage_sample_interval
        self.retention = coord.cfg.usage_history_retention
        self._pruned_at: float | None = None

    async def sample_once(self) -> int:
        """One pass: how many samples it wrote (0: skipped, or no history on this store)."""
        if self.history is None or self.namespace is None:
            return 0
        now = self.coord.clock()
        last = await self.history.usage_samples(CLUSTER, now - 0.9 * self.interval, 1)
        if last:
            return 0  # another API process (or this one) sampled this interval
        at = int(now)
        stats = await self.coord.meta.get_stats()
        samples = [
            UsageSample(CLUSTER, at, stats.total_files, stats.logical_bytes, stats.stored_bytes)
        ]
        tenants = await self.coord.meta.list_tenants()
        for tenant, u in (await tenant_usage(self.namespace, tenants)).items():
            samples.append(UsageSample(tenant, at, u.objects, u.logical_bytes, u.stored_bytes))
        await self.history.add_usage_samples(samples)
        if self._pruned_at is None or now - self._pruned_at >= PRUNE_EVERY:
            self._pruned_at = now
            for tenant in [CLUSTER, *tenants]:
                await self.history.prune_usage_samples(tenant, now - self.retention)
        return len(samples)

    async def samples(
        self, tenant: str, since: float, limit: int = MAX_SAMPLES
    ) -> list[dict[str, Any]]:
        """``tenant``'s newest ``limit`` samples (at most ``MAX_SAMPLES``) with ``at >= since``."""
        if self.history is None:
            return []
        found = await self.history.usage_samples(tenant, since, min(limit, MAX_SAMPLES))
        return [sample_body(s) for s in found]
