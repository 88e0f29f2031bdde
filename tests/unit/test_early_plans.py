"""``EarlyPlans`` (dfs.client.plans): plans asked for while a download still lists its files;
what did not come (an error entry, a failed request) is left for the download to ask again."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from dfs.client import plans
from dfs.client.plans import EarlyPlans
from dfs.errors import Unavailable
from dfs.transport.api_client import ApiClient


class FakeApi:
    def __init__(self) -> None:
        self.asked: list[list[str]] = []

    async def download_plans(self, ids: list[str], batched: bool) -> list[dict[str, Any]]:
        self.asked.append(list(ids))
        if "down" in ids:
            raise Unavailable("the API is restarting")
        return [{"error": {"code": "not_found"}} if i == "gone" else {"file_id": i} for i in ids]


async def test_early_plans_keep_what_came_and_drop_what_failed() -> None:
    api = FakeApi()
    early = EarlyPlans(cast(ApiClient, api), True, 2)
    early.start(["a", "b", "gone", "c", "down", "d"])
    plans = await early.take()
    assert api.asked == [["a", "b"], ["gone", "c"], ["down", "d"]]  # two per request
    assert sorted(plans) == ["a", "b", "c"]
    assert plans["a"] == {"file_id": "a"}
    assert await early.take() == {}  # taken once


async def test_cancelled_early_plans_are_not_awaited_later() -> None:
    early = EarlyPlans(cast(ApiClient, FakeApi()), True, 500)
    early.start(["a"])
    await early.cancel()
    assert await early.take() == {}


async def test_early_plans_older_than_their_age_limit_are_left_to_the_download(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A listing and its checks that outlast ``EARLY_PLAN_MAX_AGE``: the early plans'
    capabilities may have expired, so none is handed over (the download asks again)."""
    clock = [1000.0]
    monkeypatch.setattr(plans.time, "monotonic", lambda: clock[0])
    early = EarlyPlans(cast(ApiClient, FakeApi()), True, 500)
    early.start(["a", "b"])
    await asyncio.sleep(0)  # the request is made at 1000
    clock[0] += plans.EARLY_PLAN_MAX_AGE + 1
    assert await early.take() == {}
    fresh = EarlyPlans(cast(ApiClient, FakeApi()), True, 500)
    fresh.start(["c"])
    await asyncio.sleep(0)
    clock[0] += plans.EARLY_PLAN_MAX_AGE - 1
    assert sorted(await fresh.take()) == ["c"]
