"""The node's scrubber: re-verify every stored copy in the background, forever.

Disks rot silently; a copy is otherwise only re-hashed when someone reads it. Every
``DFS_SCRUB_INTERVAL`` seconds ``scrub_loop`` runs ``ChunkStore.scrub`` at a bounded read rate
(``DFS_SCRUB_RATE``), which quarantines copies that fail (and, for the pack store, then
compacts packs with many dead records). It never deletes or repairs: the API learns of
quarantined copies from ``/quarantined`` and copies good ones back.

A full scrub pass of a large disk takes hours at that rate, so ``compact_loop`` also compacts
packs every ``DFS_COMPACT_INTERVAL`` seconds: the space garbage collection frees in packs
comes back soon after, not a pass later.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from dfs.chunkstore.base import ChunkStore
from dfs.errors import DfsError

log = logging.getLogger("dfs.node.scrubber")


class Compactable(Protocol):
    async def compact(self) -> int: ...


async def compact_loop(store: Compactable, interval: float) -> None:
    """Compact every ``interval`` seconds; never give up."""
    while True:
        await asyncio.sleep(interval)
        try:
            done = await store.compact()
        except (DfsError, OSError) as exc:
            log.warning("compaction failed: %s", exc)
            continue
        if done:
            log.info("compacted %d pack files", done)


async def scrub_loop(store: ChunkStore, rate_bytes: float, interval: float) -> None:
    """Scrub every ``interval`` seconds (the first pass after one interval); never give up."""
    while True:
        await asyncio.sleep(interval)
        try:
            checked, bad = await store.scrub(rate_bytes)
        except (DfsError, OSError) as exc:
            log.warning("scrub pass failed: %s", exc)
            continue
        if bad:
            log.error("scrub: %d of %d chunk copies failed verification", bad, checked + bad)
        else:
            log.info("scrub: %d chunk copies verified", checked)
