"""Chunks of a restore's first small files, read while the download still lists and checks.

A download by prefix lists every file and checks every target before it writes anything
(``dfs.client.cli_transfer``); ``EarlyPlans`` asks for the first page's plans meanwhile.
``EarlyChunks`` then reads the chunks of those plans' small files (the files the restore
reads in batches, ``dfs.client.batch_read``: every record's sha256 verified as it arrives,
with fail-over and hedging) into memory, so that the first writes need not wait for a read
round trip once the checks have passed. It only reads: nothing is written before the
download has checked its targets, and the bytes are handed to it by chunk id
(``DownloadPipeline``: a chunk it finds here is not read again).

Memory is bounded by ``budget`` bytes, counted as the chunks are chosen (their planned
sizes). A read that fails is dropped: the download reads those chunks itself. A chunk the
download then does not need (an older file of a name, a target that already holds its
bytes) was read for nothing; at most ``budget`` bytes are.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from dfs import protocol
from dfs.client.batch_read import BatchReader
from dfs.client.connection import Connection

EARLY_READ_BYTES = 16 * 1024 * 1024
"""Bytes of chunks a restore reads ahead of its target checks at most."""


class EarlyChunks:
    """Verified chunk bytes by chunk id, read ahead of a download (``start``: from plans)."""

    def __init__(self, conn: Connection, budget: int = EARLY_READ_BYTES) -> None:
        self._conn = conn
        self._left = budget
        self._asked: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self.chunks: dict[str, bytes] = {}

    def start(self, plans: Iterable[dict[str, Any]]) -> None:
        """Read the chunks of the small files of ``plans`` (in order) the budget allows."""
        wanted: list[dict[str, Any]] = []
        for plan in plans:
            if int(plan["size"]) > protocol.BATCHED_FILE_MAX:
                continue  # a big file is fetched in its own pipeline, not from here
            if int(plan["size"]) > self._left:
                break
            for chunk in plan["chunks"]:
                chunk_id = str(chunk["sha256"])
                if chunk_id not in self._asked:
                    self._asked.add(chunk_id)
                    self._left -= int(chunk["size"])
                    wanted.append(chunk)
        if wanted:
            self._tasks.append(asyncio.create_task(self._read(wanted)))

    async def _read(self, wanted: list[dict[str, Any]]) -> None:
        def keep(chunk: dict[str, Any], data: bytes, _failed: int) -> None:
            self.chunks[str(chunk["sha256"])] = data

        await BatchReader(self._conn, keep).read(wanted)

    async def take(self) -> dict[str, bytes]:
        """The chunks that came (those whose read failed are left to the download)."""
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        chunks, self.chunks = self.chunks, {}
        return chunks

    async def cancel(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self.chunks = {}
