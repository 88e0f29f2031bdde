"""The usage-history port: samples of a tenant's usage counters (and the cluster's) over time,
for the console's dashboards (issue 15: "what dedup saved over time").

The API's background loop (``dfs.api.usage_sampler``) appends one sample per tenant (and
one for the whole cluster, under ``CLUSTER``, which can never be a tenant's name) every
``DFS_USAGE_SAMPLE_INTERVAL`` seconds and prunes those older than the retention. Samples
live in the metadata store, so the history survives restarts and every API process
serves the same one. Both backends implement it (``SqliteUsageHistoryMixin``,
``dfs.meta.dynamo.store_usage_history``), checked by the same contract suite.

Contract:

- ``add_usage_samples(samples)``: stores each sample; a second sample of the same tenant
  at the same ``at`` (whole seconds) replaces the first.
- ``usage_samples(tenant, since, limit)``: that tenant's samples with ``at >= since``,
  oldest first; the newest ``limit`` of them when there are more.
- ``prune_usage_samples(tenant, before)``: deletes that tenant's samples with
  ``at < before``; how many went.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, cast

CLUSTER = "*cluster"
"""The pseudo-tenant of the cluster-wide samples (tenant names never start with ``*``)."""


@dataclass(frozen=True)
class UsageSample:
    tenant: str
    at: int
    """Unix seconds (whole: one sample per tenant and second)."""
    objects: int
    logical_bytes: int
    stored_bytes: int

    @property
    def saved_bytes(self) -> int:
        return self.logical_bytes - self.stored_bytes


class UsageHistoryStore(Protocol):
    async def add_usage_samples(self, samples: Sequence[UsageSample]) -> None: ...
    async def usage_samples(self, tenant: str, since: float, limit: int) -> list[UsageSample]: ...
    async def prune_usage_samples(self, tenant: str, before: float) -> int: ...


def usage_history_of(store: object) -> UsageHistoryStore | None:
    """``store`` as a usage history, or None for a store without one (test doubles)."""
    return cast(UsageHistoryStore, store) if hasattr(store, "usage_samples") else None
