"""``NodeClient``: the HTTP client of a storage node's chunk endpoints.

Used by the client library (send and fetch chunks), by the API (ask nodes what they hold,
proxy chunks) and by nodes (forward replicas). It checks nothing about the bytes it carries:
callers verify hashes at their trust boundary. Must not import ``aiohttp.web``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aiohttp

from dfs import protocol
from dfs.client.http import ChunkPayload, request, request_json


class NodeClient:
    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    async def close(self) -> None:
        await self._session.close()

    async def put_chunk(
        self,
        node_url: str,
        chunk_id: str,
        data: bytes | bytearray | memoryview,
        *,
        forward_to: Sequence[str] = (),
        forwarded: bool = False,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Store a chunk on ``node_url``, which forwards it to ``forward_to`` before answering.

        Returns the node's JSON answer: ``{"chunk_id", "stored", "replicas": [...]}``.
        """
        headers: dict[str, str] = {}
        if forward_to:
            headers[protocol.FORWARD_TO] = ",".join(forward_to)
        if forwarded:
            headers[protocol.FORWARDED] = "1"
        kwargs: dict[str, Any] = {}
        if timeout is not None:
            kwargs["timeout"] = aiohttp.ClientTimeout(total=timeout)
        result: dict[str, Any] = await request_json(
            self._session,
            "PUT",
            f"{node_url}{protocol.STORE_CHUNK}",
            params={"chunk_id": chunk_id},
            data=ChunkPayload(data),
            headers=headers,
            **kwargs,
        )
        return result

    async def get_chunk(self, node_url: str, chunk_id: str) -> bytes:
        async with request(
            self._session, "GET", f"{node_url}{protocol.GET_CHUNK}", params={"chunk_id": chunk_id}
        ) as resp:
            return await resp.read()

    async def has_chunks(self, node_url: str, chunk_ids: Sequence[str]) -> set[str]:
        """The subset of ``chunk_ids`` the node holds (asked in batches of the bound)."""
        present: set[str] = set()
        step = protocol.MAX_HAS_CHUNKS
        for i in range(0, len(chunk_ids), step):
            body = await request_json(
                self._session,
                "POST",
                f"{node_url}{protocol.HAS_CHUNKS}",
                json={"chunk_ids": list(chunk_ids[i : i + step])},
            )
            present.update(str(c) for c in body.get("present", []))
        return present

    async def status(self, node_url: str) -> dict[str, Any]:
        result: dict[str, Any] = await request_json(
            self._session, "GET", f"{node_url}{protocol.NODE_STATUS}"
        )
        return result
