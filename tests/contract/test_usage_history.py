"""The usage history port (``dfs.meta.usage_history``) on every backend (``meta`` fixture)."""

from __future__ import annotations

from dfs.meta.base import MetadataStore
from dfs.meta.usage_history import CLUSTER, UsageSample, usage_history_of


def sample(tenant: str, at: int, logical: int = 100, stored: int = 60) -> UsageSample:
    return UsageSample(tenant, at, 3, logical, stored)


async def test_samples_in_order_since_limited_to_the_newest(meta: MetadataStore) -> None:
    h = usage_history_of(meta)
    assert h is not None
    await h.add_usage_samples([sample("a", t) for t in (300, 100, 200, 400)])
    await h.add_usage_samples([sample("b", 150), sample(CLUSTER, 150, 900, 500)])
    assert [s.at for s in await h.usage_samples("a", 0, 100)] == [100, 200, 300, 400]
    assert [s.at for s in await h.usage_samples("a", 199.5, 100)] == [200, 300, 400]
    assert [s.at for s in await h.usage_samples("a", 0, 2)] == [300, 400]
    assert await h.usage_samples("b", 0, 10) == [sample("b", 150)]
    [c] = await h.usage_samples(CLUSTER, 0, 10)
    assert (c.logical_bytes, c.stored_bytes, c.saved_bytes) == (900, 500, 400)
    assert await h.usage_samples("nobody", 0, 10) == []


async def test_same_second_replaces_and_prune_drops_the_old(meta: MetadataStore) -> None:
    h = usage_history_of(meta)
    assert h is not None
    await h.add_usage_samples([sample("a", 100), sample("a", 200), sample("b", 100)])
    await h.add_usage_samples([sample("a", 200, 500, 100)])
    assert (await h.usage_samples("a", 0, 10))[-1] == sample("a", 200, 500, 100)
    assert await h.prune_usage_samples("a", 150.5) == 1
    assert [s.at for s in await h.usage_samples("a", 0, 10)] == [200]
    assert len(await h.usage_samples("b", 0, 10)) == 1  # another tenant's stay
    assert await h.prune_usage_samples("a", 10) == 0


async def test_many_samples_page_and_prune_in_batches(meta: MetadataStore) -> None:
    """More samples than one batch write (25 on DynamoDB) or one answer: the newest ``limit``
    come back in order, and a prune deletes every old one, batch after batch."""
    h = usage_history_of(meta)
    assert h is not None
    await h.add_usage_samples([sample("many", 1000 + t) for t in range(120)])
    await h.add_usage_samples([sample("other", 1000 + t) for t in range(3)])
    newest = await h.usage_samples("many", 0, 50)
    assert [s.at for s in newest] == list(range(1070, 1120))
    assert [s.at for s in await h.usage_samples("many", 1100, 1000)] == list(range(1100, 1120))
    assert await h.prune_usage_samples("many", 1090) == 90
    assert [s.at for s in await h.usage_samples("many", 0, 1000)] == list(range(1090, 1120))
    assert len(await h.usage_samples("other", 0, 10)) == 3  # another tenant's untouched
