"""The loops that run repair, garbage collection and the usage history's sampler beside the
API app (``DFS_MAINTENANCE``).

Each loop calls its one-shot pass (``Repair.repair_once``, ``GarbageCollector.gc_once``,
``UsageSampler.sample_once``)
every interval; a pass that fails is logged and tried again at the next interval (any
exception, not only a ``DfsError``: one unexpected error, a store's driver error say, must not
end the loop for the life of the process while the API keeps answering), and a pass another
API process holds the lease for simply returns. ``start_loops``/``stop_loops`` are
what ``dfs.api.app`` calls when the API starts and stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from dfs.api.gc import GarbageCollector
from dfs.api.repair import Repair
from dfs.api.usage_sampler import UsageSampler
from dfs.errors import DfsError

log = logging.getLogger("dfs.api.background")


async def run_every(run: Callable[[], Awaitable[object]], interval: float, what: str) -> None:
    """Run a one-shot pass every ``interval`` seconds; errors are logged and retried."""
    while True:
        try:
            await run()
        except DfsError as exc:
            log.warning("%s pass failed: %s", what, exc.message)
        except Exception:  # a bug or a driver's error: logged in full, the loop goes on
            log.exception("%s pass failed unexpectedly", what)
        await asyncio.sleep(interval)


def start_loops(
    repair: Repair, gc: GarbageCollector, usage: UsageSampler | None = None
) -> list[asyncio.Task[None]]:
    loops = [
        asyncio.create_task(run_every(repair.repair_once, repair.cfg.repair_interval, "repair")),
        asyncio.create_task(run_every(gc.gc_once, gc.cfg.gc_interval, "gc")),
    ]
    if usage is not None:
        loops.append(asyncio.create_task(run_every(usage.sample_once, usage.interval, "usage")))
    return loops


async def stop_loops(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
