"""``gather_bounded``: results in the items' order, never more than ``at_once`` running, and
the first error stops the rest (no more started, those running cancelled) and is raised
itself, not as a group."""

from __future__ import annotations

import asyncio

import pytest

from dfs.bounded import gather_bounded


def test_results_in_order_and_at_most_at_once() -> None:
    running = most = 0

    async def fn(n: int) -> int:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.001 * (n % 3))
        running -= 1
        return n * n

    assert asyncio.run(gather_bounded(fn, range(50), 4)) == [n * n for n in range(50)]
    assert most == 4
    assert asyncio.run(gather_bounded(fn, [], 4)) == []


def test_the_first_error_stops_the_rest() -> None:
    started: list[int] = []
    finished: list[int] = []

    async def fn(n: int) -> int:
        started.append(n)
        if n == 3:
            raise ValueError("item 3")
        await asyncio.sleep(0.01)
        finished.append(n)
        return n

    with pytest.raises(ValueError, match="item 3"):
        asyncio.run(gather_bounded(fn, range(100), 4))
    assert len(started) < 100  # no more started after the error
    assert 3 not in finished
    assert set(finished) <= set(range(3))  # those running beside it were cancelled
