"""``gather_bounded``: an async function over many items, a bounded number at once, the
results in order. Standard library only; used wherever a batch fans out to requests (links,
deletes, DynamoDB reads, a client's clean-up) and must not open one per item at once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
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
