"""``gather_bounded``: an async function over many items, a bounded number at once, the
results in order; ``gather_by_key``: the same over items that must not overlap when they
share a key (a key's items in order, keys at once). Standard library only; used wherever a batch fans out to requests (links,
deletes, DynamoDB reads, a client's clean-up) and must not open one per item at once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


async def gather_bounded(
    fn: Callable[[T], Awaitable[R]], items: Iterable[T], at_once: int
) -> list[R]:
    """``fn`` of each item, at most ``at_once`` running; the results in the items' order.
    ``at_once`` workers take the items in turn (a task per item would hold a coroutine for
    every item from the start: ~1 KB each). The first exception raised stops the others
    (their work in flight cancelled, no more started) and is raised here, itself."""
    results: dict[int, R] = {}
    queue = iter(enumerate(items))

    async def worker() -> None:
        for i, item in queue:  # the shared iterator hands each item to one worker
            results[i] = await fn(item)

    try:
        async with asyncio.TaskGroup() as tg:
            for _ in range(max(at_once, 1)):
                tg.create_task(worker())
    except BaseExceptionGroup as group:
        raise group.exceptions[0] from None
    return [results[i] for i in range(len(results))]


async def gather_by_key(
    fn: Callable[[int], Awaitable[None]], keys: Sequence[Hashable], at_once: int
) -> None:
    """``fn(i)`` for each index of ``keys``: the indexes of one key one after another in
    order, ``at_once`` keys at a time (a batch that names a key twice keeps its meaning)."""
    groups: dict[Hashable, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)

    async def one_key(picked: list[int]) -> None:
        for i in picked:
            await fn(i)

    await gather_bounded(one_key, groups.values(), at_once)
