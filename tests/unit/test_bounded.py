"""``gather_bounded``: results in the items' order, never more than ``at_once`` running, and
the first error stops the rest (no more started, those running cancelled) and is raised
itself, not as a group; ``gather_by_key`` runs a key's items in order, keys side by side."""

from __future__ import annotations

import asyncio

import pytest

from dfs.bounded import gather_bounded, gather_by_key


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


def test_a_keys_items_run_in_order_and_keys_at_once() -> None:
    keys = ["a", "b", "a", "c", "b", "a"]
    done: list[int] = []
    running: set[str] = set()
    overlapped = False

    async def fn(i: int) -> None:
        nonlocal overlapped
        assert keys[i] not in running  # never two items of one key at once
        running.add(keys[i])
        overlapped = overlapped or len(running) > 1
        await asyncio.sleep(0)
        running.discard(keys[i])
        done.append(i)

    asyncio.run(gather_by_key(fn, keys, 3))
    assert [i for i in done if keys[i] == "a"] == [0, 2, 5]
    assert [i for i in done if keys[i] == "b"] == [1, 4]
    assert sorted(done) == list(range(6))
    assert overlapped
