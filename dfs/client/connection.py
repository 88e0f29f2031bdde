"""What both transfer pipelines need from a ``Client``: its API and node clients and limits.

``Connection`` is the narrow view of a ``Client`` that ``dfs.client.upload`` and
``dfs.client.download`` work with, so that neither imports the facade (``dfs.client.library``)
that assembles them: the facade builds one per call from its open session.
``run_bounded`` is the one way the client runs many requests at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from dfs.client.avoid import AvoidList, TransferStats
from dfs.errors import DfsError
from dfs.transport.api_client import ApiClient
from dfs.transport.node_client import NodeClient

T = TypeVar("T")
ProgressFn = Callable[[int], None]


@dataclass(frozen=True)
class Connection:
    """One client's session as the pipelines see it; see ``dfs.client.library.Client``."""

    api: ApiClient
    nodes: NodeClient
    api_url: str
    token: str | None
    concurrency: int
    proxy: bool  # every chunk through the API instead of straight to the nodes
    resume: bool  # journal uploads and keep interrupted downloads for the next run
    # a finished download may replace a file at its target; without, a file that appeared
    # there meanwhile is refused (Conflict) and the download's bytes are dropped
    overwrite: bool = True
    # the client's nodes to avoid and its transfer counters: kept by the Client across calls
    avoid: AvoidList = field(default_factory=AvoidList)
    stats: TransferStats = field(default_factory=TransferStats)

    async def run_bounded(self, work: Callable[[T], Awaitable[None]], items: Iterable[T]) -> None:
        """Run ``work`` over ``items`` with at most ``concurrency`` in flight; fail fast."""
        shared = iter(items)

        async def worker() -> None:
            for item in shared:  # the shared iterator hands each item to one worker
                await work(item)

        try:
            async with asyncio.TaskGroup() as tg:
                for _ in range(self.concurrency):
                    tg.create_task(worker())
        except* DfsError as group:
            # callers (and the CLI's error mapping) expect the DfsError itself, not a group
            raise group.exceptions[0] from None
