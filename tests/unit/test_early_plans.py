"""``EarlyPlans`` (dfs.client.plans): plans asked for while a download still lists its files;
what did not come (an error entry, a failed request) is left for the download to ask again."""

from __future__ import annotations

from typing import Any, cast

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
