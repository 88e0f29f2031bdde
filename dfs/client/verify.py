"""``verify``: does every chunk of a file have its healthy copies?

Reads every replica of every distinct chunk the download plan lists (live nodes holding a
recorded copy), hashes what each returns, and counts a copy healthy only if it hashes to the
chunk id (nodes also re-hash before serving and quarantine a bad copy). Costs
REPLICATION_FACTOR times the file's distinct bytes, ``concurrency`` reads at a time.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from dfs.client.library import Client
from dfs.errors import DfsError
from dfs.ids import sha256_hex_parts


@dataclass
class VerifyReport:
    file_id: str
    name: str
    replication_factor: int
    chunks: int
    healthy: bool
    under_replicated: list[dict[str, Any]] = field(default_factory=list)


async def verify(client: Client, file_id: str) -> VerifyReport:
    plan = await client.api.download_plan(file_id)
    rf = int(plan.get("replication_factor", 1))
    distinct = {str(c["sha256"]): c for c in plan["chunks"]}
    sem = asyncio.Semaphore(client.concurrency)

    async def good_copy(chunk_id: str, replica: dict[str, Any]) -> bool:
        async with sem:
            try:
                data = await client.nodes.get_chunk(
                    str(replica["url"]), chunk_id, cap=str(replica["cap"])
                )
            except DfsError:
                return False
            return await asyncio.to_thread(sha256_hex_parts, data) == chunk_id

    async def check(chunk: dict[str, Any]) -> dict[str, Any] | None:
        chunk_id = str(chunk["sha256"])
        oks = await asyncio.gather(*(good_copy(chunk_id, r) for r in chunk["replicas"]))
        healthy = sum(oks)
        if healthy >= rf:
            return None
        return {"sha256": chunk_id, "offset": chunk["offset"], "healthy_copies": healthy}

    bad = [r for r in await asyncio.gather(*(check(c) for c in distinct.values())) if r]
    return VerifyReport(
        file_id=file_id,
        name=str(plan["name"]),
        replication_factor=rf,
        chunks=len(distinct),
        healthy=not bad,
        under_replicated=bad,
    )
