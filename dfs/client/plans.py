"""Download plans of many files: ``/download-plans`` in batches, the next batch fetched ahead.

A directory download asks for the plans of ``BATCH_FILES`` files per request instead of one
request per file, and asks for batch ``n + 1``'s while batch ``n`` transfers (``PlanAhead``),
so planning overlaps the transfers. The API bounds the chunks of one answer; the files that
did not fit are asked for again (``fetch_plans``). Plans are asked for batched (the small
files' chunks in read batches with one capability each, ``dfs.client.batch_read``) unless
the client goes through the API proxy.

The plans of a batch are tens of thousands of small objects that live until the batch is
restored: the cyclic garbage collector walked them again and again (its older-generation
passes took 0.2-0.3 s of a restore of 7,700 files, measured on a loaded 2-core machine,
against under 0.1 s frozen), though plain JSON never forms a cycle. So ``PlanAhead``
moves what is alive when it starts and after each batch's plans are decoded out of the
collector's sight (``gc.freeze``), and back at ``close`` (``gc.unfreeze``, unless something
else had frozen objects before: then they all stay frozen, as that caller wanted).

A download by prefix lists every file first (a page per 1,000: the newest file of each name
and every target are known only then, and checked before anything is written).
``EarlyPlans`` asks for the plans of the first page's files while the later pages are
listed, so the first transfers need not wait for a plan round trip after the listing, and
with ``chunks`` (``dfs.client.early_reads``) reads their small files' chunks as each answer
comes, so the first writes need not wait for a read round trip either.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dfs.client.connection import Connection
from dfs.client.early_reads import EarlyChunks
from dfs.errors import IntegrityError, PayloadTooLarge, from_body
from dfs.transport.api_client import ApiClient


def laid_out(plan: dict[str, Any], file_id: str) -> dict[str, Any]:
    """``plan`` when its chunks lay out its file end to end (each at the offset where the
    one before it ends, from 0 to the file's size), else IntegrityError. A download writes
    each chunk at its offset and hashes the chunks in order: from a plan whose chunks
    overlap, leave a gap, or end before or past its size, the file written would not be the
    bytes the whole-file sha256 checked."""
    end = 0
    for chunk in plan["chunks"]:
        if int(chunk["offset"]) != end:
            break
        end += int(chunk["size"])
    else:
        if end == int(plan["size"]):
            return plan
    raise IntegrityError(f"file {file_id}: its plan's chunks do not lay out the file; not written")


async def fetch_plans(conn: Connection, wanted: list[str]) -> dict[str, dict[str, Any]]:
    """Plans of ``wanted`` by file id. The API bounds the chunks of one answer and marks
    the files that did not fit ``payload_too_large``: those are asked for again, and every
    answer serves at least its first file, so this ends within ``len(wanted)`` requests."""
    plans: dict[str, dict[str, Any]] = {}
    while wanted:
        fetched = await conn.api.download_plans(wanted, batched=not conn.proxy)
        later: list[str] = []
        for file_id, plan in zip(wanted, fetched, strict=True):
            error = plan.get("error")
            if isinstance(error, dict) and error.get("code") == PayloadTooLarge.code:
                later.append(file_id)
            elif error is not None:
                raise from_body(404, plan)
            else:
                plans[file_id] = plan
        if len(later) == len(wanted):  # no progress: the server broke its promise
            raise from_body(413, fetched[0])
        wanted = later
    return plans


class PlanAhead:
    """The plan step of batches: the plans of batch ``n + 1`` are asked for while batch ``n``
    transfers. ``known``: plans the caller already holds, by file id (not asked again)."""

    def __init__(
        self,
        conn: Connection,
        parts: list[list[tuple[str, Path]]],
        known: Mapping[str, dict[str, Any]],
    ) -> None:
        self._conn = conn
        self._parts = parts
        self._known = known
        self._next: asyncio.Task[dict[str, dict[str, Any]]] | None = None
        self._thaw = gc.get_freeze_count() == 0  # nothing frozen by anyone else
        gc.freeze()  # what the caller holds (the list of files, known plans) first
        self._start(0)

    def _start(self, n: int) -> None:
        if n < len(self._parts):
            self._next = asyncio.create_task(self._fetch(self._parts[n]))

    async def _fetch(self, part: list[tuple[str, Path]]) -> dict[str, dict[str, Any]]:
        batch = {f: self._known[f] for f, _ in part if f in self._known}
        wanted = list(dict.fromkeys(f for f, _ in part if f not in self._known))
        batch.update(await fetch_plans(self._conn, wanted))
        gc.freeze()
        return batch

    async def take(self, n: int) -> dict[str, dict[str, Any]]:
        """The plans of batch ``n`` (the one after the last taken); starts batch ``n + 1``."""
        assert self._next is not None
        plans = await self._next
        self._next = None
        self._start(n + 1)
        return plans

    async def close(self) -> None:
        if self._next is not None:
            self._next.cancel()
            await asyncio.gather(self._next, return_exceptions=True)
        if self._thaw:
            gc.unfreeze()


EARLY_PLAN_MAX_AGE = 60.0
"""Seconds an early plan is kept for the download. Its capabilities live the API's
``DFS_CAPABILITY_TTL`` (10 minutes by default) from when it was made, and a listing and its
target checks can take longer than that (millions of keys; ``--checksum`` hashing a full
folder): every node would then refuse the plan's reads and be avoided for the rest of the
download. An older plan is dropped and asked for again as the download goes."""


class EarlyPlans:
    """Plans asked for ahead of a download (``start``: the files of a listing's first
    page, ``batch`` at a time), taken once the download knows its files (``take``). Only
    reads: a plan of a file the download then leaves out (an older file of a name) is
    never used, and a file whose early plan failed, or that came more than
    ``EARLY_PLAN_MAX_AGE`` before ``take``, is simply asked for again later.
    ``chunks``: where the small files' chunks of each answer are read (only reads too:
    verified bytes, which do not expire)."""

    def __init__(
        self, api: ApiClient, batched: bool, batch: int, chunks: EarlyChunks | None = None
    ) -> None:
        self._api = api
        self._batched = batched
        self._batch = batch
        self._chunks = chunks
        self._tasks: list[asyncio.Task[tuple[float, dict[str, dict[str, Any]]]]] = []

    def start(self, file_ids: list[str]) -> None:
        for at in range(0, len(file_ids), self._batch):
            part = file_ids[at : at + self._batch]
            self._tasks.append(asyncio.create_task(self._fetch(part)))

    async def _fetch(self, part: list[str]) -> tuple[float, dict[str, dict[str, Any]]]:
        asked = time.monotonic()  # the capabilities' clock starts at most this early
        got = await self._api.download_plans(part, batched=self._batched)
        plans = {f: plan for f, plan in zip(part, got, strict=True) if "error" not in plan}
        if self._chunks is not None:
            self._chunks.start(plans.values())
        return asked, plans

    async def take(self) -> dict[str, dict[str, Any]]:
        """The plans that came, by file id (those that failed or are too old to use are
        left to the download)."""
        plans: dict[str, dict[str, Any]] = {}
        for got in await asyncio.gather(*self._tasks, return_exceptions=True):
            if isinstance(got, tuple) and time.monotonic() - got[0] <= EARLY_PLAN_MAX_AGE:
                plans.update(got[1])
        self._tasks = []
        return plans

    async def cancel(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._chunks is not None:  # after the plans: none of them starts a read now
            await self._chunks.cancel()


def retimed(
    part: list[tuple[str, Path]],
    plans: Mapping[str, dict[str, Any]],
    mtimes: Mapping[Path, float],
) -> tuple[list[tuple[str, Path]], Mapping[str, dict[str, Any]]]:
    """A batch's (file id, target) pairs and plans, each target whose mtime (``mtimes``) is
    not its file's given a plan of its own: a copy with that mtime, under the file id and
    the target (one file may be at several targets, each with its own mtime)."""
    if not mtimes:
        return part, plans
    own: dict[str, dict[str, Any]] = {}
    out: list[tuple[str, Path]] = []
    for f, t in part:
        mtime = mtimes.get(t)
        if mtime is not None and mtime != plans[f].get("mtime"):
            key = f"{f} {t}"
            own[key] = {**plans[f], "mtime": mtime}
            f = key
        out.append((f, t))
    return out, {**plans, **own} if own else plans
