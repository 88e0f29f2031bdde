"""``fetched_ahead``: the read-ahead of streamed downloads, bounded in bytes and in fetches,
in order, and cancelled when the consumer stops."""

from __future__ import annotations

import asyncio

import pytest

from dfs.api.verified_reads import fetched_ahead

MIB = 1 << 20


class Fetches:
    """Fetches that finish only once released (``release``)."""

    def __init__(self) -> None:
        self.gates: dict[int, asyncio.Event] = {}
        self.running: set[int] = set()
        self.started: list[int] = []
        self.cancelled: list[int] = []

    def release(self, item: int) -> None:
        self.gates.setdefault(item, asyncio.Event()).set()

    async def fetch(self, item: int) -> str:
        self.running.add(item)
        self.started.append(item)
        try:
            await self.gates.setdefault(item, asyncio.Event()).wait()
            return f"item {item}"
        except asyncio.CancelledError:
            self.cancelled.append(item)
            raise
        finally:
            self.running.discard(item)


async def _all(
    sizes: list[int], max_bytes: int, max_items: int, f: Fetches
) -> tuple[list[str], int]:
    """Everything, in order, and the most fetches started and not yet consumed when one was
    yielded (what the read-ahead holds). Each fetch is released only when it is the one
    awaited, so the fetches ahead of it are all still running then."""
    stream = fetched_ahead(range(len(sizes)), lambda i: sizes[i], f.fetch, max_bytes, max_items)
    got: list[str] = []
    held = 0
    for i in range(len(sizes)):
        f.release(i)
        got.append(await anext(stream))
        held = max(held, len(f.started) - i)
    assert await anext(stream, None) is None
    return got, held


async def test_bounded_by_bytes_and_in_order() -> None:
    f = Fetches()
    got, held = await _all([MIB] * 20, 3 * MIB, 16, f)
    assert got == [f"item {i}" for i in range(20)]
    assert held == 3  # 3 MiB of 1 MiB chunks


async def test_bounded_by_count() -> None:
    f = Fetches()
    got, held = await _all([1000] * 50, 12 * MIB, 4, f)
    assert got == [f"item {i}" for i in range(50)]
    assert held == 4


async def test_an_item_over_the_byte_bound_is_fetched_alone() -> None:
    f = Fetches()
    got, held = await _all([MIB, 5 * MIB, MIB], 2 * MIB, 16, f)
    assert got == ["item 0", "item 1", "item 2"]
    assert held == 1


async def test_stopping_cancels_the_fetches_ahead() -> None:
    f = Fetches()
    stream = fetched_ahead(range(10), lambda _i: MIB, f.fetch, 4 * MIB, 16)
    f.release(0)
    assert await anext(stream) == "item 0"
    await stream.aclose()
    assert f.started == [0, 1, 2, 3]
    assert sorted(f.cancelled) == [1, 2, 3]
    assert not f.running


async def test_a_failed_fetch_fails_the_stream_and_cancels_the_rest() -> None:
    f = Fetches()

    async def fetch(item: int) -> str:
        if item == 1:
            raise ValueError("bad bytes")
        return await f.fetch(item)

    f.release(0)
    stream = fetched_ahead(range(10), lambda _i: MIB, fetch, 3 * MIB, 16)
    assert await anext(stream) == "item 0"
    with pytest.raises(ValueError, match="bad bytes"):
        await anext(stream)
    assert f.started[:2] == [0, 2]  # item 1 failed as it started
    assert 2 in f.cancelled
    assert not f.running
