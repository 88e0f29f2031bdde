"""A folder download from a bucket: the first page's plans and chunks asked for while the
rest of the listing comes.

``dfs-client download bucket/prefix/ OUT`` lists every key under the prefix, then checks
every target, then downloads. The listing and the checks ran before the first plan was
asked for: a restore of 7,733 small files spent ~0.25 s listing and ~0.4 s checking targets
(a ``stat`` and a walk above each) before its first read, where a download by prefix
(``dfs.client.cli_transfer``) reads while it lists. ``ListingAhead`` does the same for keys:
the plans of the first page's files are asked for as soon as the page is here
(``dfs.client.plans.EarlyPlans``), and into a folder that holds nothing yet (no file there can
already hold an object's bytes, so nothing is read for nothing) their small files' chunks too
(``dfs.client.early_reads.EarlyChunks``, 16 MiB at most, each record verified as it comes).
It only reads: nothing is written before the download has its targets, and the plans and
bytes are handed to the download pipeline by file and chunk id.
"""

from __future__ import annotations

from typing import Any

from dfs.client.connection import Connection
from dfs.client.download import BATCH_FILES
from dfs.client.early_reads import EarlyChunks
from dfs.client.plans import EarlyPlans


class ListingAhead:
    """Plans (and, ``fresh``, small files' chunks) of a listing's first page, read ahead."""

    def __init__(self, conn: Connection, fresh: bool) -> None:
        """``fresh``: the download goes into a folder with nothing in it (or none yet)."""
        self._chunks = EarlyChunks(conn) if fresh and not conn.proxy else None
        self._plans = EarlyPlans(conn.api, not conn.proxy, BATCH_FILES, self._chunks)
        self._started = False

    def first_page(self, objects: list[dict[str, Any]]) -> None:
        """The listing's first page came: ask for its files' plans (once)."""
        if not self._started:
            self._started = True
            self._plans.start([str(o["file_id"]) for o in objects if o.get("file_id")])

    async def take(self) -> tuple[dict[str, dict[str, Any]], dict[str, bytes] | None]:
        """The plans that came by file id, and the chunks read by chunk id (None: none were
        asked for); what failed is left to the download."""
        plans = await self._plans.take()
        return plans, await self._chunks.take() if self._chunks is not None else None

    async def cancel(self) -> None:
        """Stop what is still in flight (nothing is left to take after)."""
        await self._plans.cancel()
