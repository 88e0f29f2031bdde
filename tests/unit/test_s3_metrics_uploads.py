"""The gateway's multipart-uploads gauge: counted at most every UPLOADS_REFRESH seconds, the
count bounded, a failed count keeping the last value (the store is a minimal stand-in that
only counts; the live count is exercised in tests/e2e/test_s3_metrics.py)."""

from __future__ import annotations

from typing import cast

from dfs.config import load_api_config
from dfs.errors import Unavailable
from dfs.meta.multipart import MultipartStore
from dfs.s3.metrics import UPLOADS_CAP, UPLOADS_REFRESH, S3Metrics


class Counting:
    def __init__(self) -> None:
        self.uploads = 7
        self.calls: list[int] = []
        self.fail = False

    async def count_multipart_uploads(self, limit: int) -> int:
        self.calls.append(limit)
        if self.fail:
            raise Unavailable("metadata store down")
        return min(self.uploads, limit)


def gauge(m: S3Metrics) -> float:
    value = m.registry.get_sample_value("dfs_s3_multipart_uploads")
    assert value is not None
    return value


async def test_uploads_are_counted_at_most_every_refresh() -> None:
    m, store = S3Metrics(), Counting()
    typed = cast(MultipartStore, store)
    await m.count_uploads(typed, 100.0)
    assert (gauge(m), store.calls) == (7, [UPLOADS_CAP])
    store.uploads = 9
    await m.count_uploads(typed, 100.0 + UPLOADS_REFRESH / 2)  # too soon: the last count
    assert (gauge(m), len(store.calls)) == (7, 1)
    await m.count_uploads(typed, 100.0 + UPLOADS_REFRESH)
    assert gauge(m) == 9
    store.fail = True
    await m.count_uploads(typed, 100.0 + 2 * UPLOADS_REFRESH)
    assert (gauge(m), len(store.calls)) == (9, 3)  # a failed count keeps the last value
    await m.count_uploads(None, 1000.0)  # a backend without uploads: nothing counted
    assert len(store.calls) == 3


async def test_the_refresh_is_the_configured_one() -> None:
    """DFS_S3_UPLOADS_REFRESH reaches the gauge: a 2 s refresh counts again after 2 s."""
    m, store = S3Metrics(uploads_refresh=2.0), Counting()
    typed = cast(MultipartStore, store)
    await m.count_uploads(typed, 100.0)
    store.uploads = 9
    await m.count_uploads(typed, 101.9)  # too soon
    assert (gauge(m), len(store.calls)) == (7, 1)
    await m.count_uploads(typed, 102.0)
    assert (gauge(m), len(store.calls)) == (9, 2)
    secret = {"DFS_CLUSTER_SECRET": "s" * 32}
    configured = load_api_config({**secret, "DFS_S3_UPLOADS_REFRESH": "2"})
    assert configured.s3_uploads_refresh == 2.0
    assert load_api_config(secret).s3_uploads_refresh == UPLOADS_REFRESH == 15.0
