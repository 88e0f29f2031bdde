"""The background loops (dfs.api.background): a failing pass is logged and tried again,
whatever it raised; only cancellation ends a loop."""

from __future__ import annotations

import asyncio
import logging

import pytest

from dfs.api.background import run_every
from dfs.errors import Unavailable


async def test_a_pass_that_raises_anything_is_retried(caplog: pytest.LogCaptureFixture) -> None:
    calls = 0
    third = asyncio.Event()

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise Unavailable("store down")
        if calls == 2:
            raise KeyError("a bug, or a driver's own error")
        third.set()

    with caplog.at_level(logging.WARNING, logger="dfs.api.background"):
        task = asyncio.create_task(run_every(flaky, 0.001, "test"))
        await asyncio.wait_for(third.wait(), timeout=10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert calls >= 3
    messages = [r.getMessage() for r in caplog.records]
    assert "test pass failed: store down" in messages
    assert "test pass failed unexpectedly" in messages
