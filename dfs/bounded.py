"""``gather_bounded``: an async function over many items, a bounded number at once, the
results in order. Standard library only; used wherever a batch fans out to requests (links,
DynamoDB reads, a client's clean-up) and must not open one per item at once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


async def gather_bounded(
    fn: Callable[[T], Awaitable[R]], items: Iterable[T], at_once: int
) -> list[R]:
    """``fn`` of each item, at most ``at_once`` running; the results in the items' order
    (an exception raised by one is raised here, as ``asyncio.gather`` raises it)."""
    slots = asyncio.Semaphore(at_once)

    async def one(item: T) -> R:
        async with slots:
            return await fn(item)

    return list(await asyncio.gather(*(one(i) for i in items)))
