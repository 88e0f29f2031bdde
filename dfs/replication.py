"""Synchronous replica fan-out: send one chunk to several nodes at once, all must ack.

A primary node calls ``fan_out`` after its own durable write. Forwarded requests carry the
FORWARDED marker so a replica never fans out again. Fan-out is concurrent; the first hard
failure fails the whole write (sync replication promises every copy) and cancels the rest.
Depends only on the ``NodeTransport`` Protocol; ``NodeClient`` satisfies it structurally.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from dfs.errors import DfsError, ReplicationError


class NodeTransport(Protocol):
    async def replicate_chunk(
        self,
        node_url: str,
        chunk_id: str,
        data: bytes | bytearray | memoryview,
        *,
        cap: str,
        timeout: float | None = None,
    ) -> dict[str, Any]: ...


async def fan_out(
    transport: NodeTransport,
    chunk_id: str,
    data: bytes | bytearray | memoryview,
    targets: Sequence[tuple[str, str]],
    timeout: float,
    mint_cap: Callable[[str], str],
) -> list[str]:
    """Store ``data`` on every (node_id, url) target, each write authorised by
    ``mint_cap(node_id)``; return their node ids, or raise ReplicationError."""

    async def one(node_id: str, url: str) -> str:
        answer = await transport.replicate_chunk(
            url, chunk_id, data, cap=mint_cap(node_id), timeout=timeout
        )
        return str(answer.get("node_id", node_id))

    try:
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(one(node_id, url)) for node_id, url in targets]
    except* DfsError as group:
        first = group.exceptions[0]
        msg = first.message if isinstance(first, DfsError) else str(first)
        raise ReplicationError(
            f"chunk {chunk_id[:12]}: {len(group.exceptions)} of {len(targets)} "
            f"replicas failed: {msg}"
        ) from None
    return [t.result() for t in tasks]
