"""``ApiClient``: the HTTP client of the API coordinator's endpoints.

Thin: it sends JSON and returns JSON (errors come back as the DfsError the server raised).
Must not import click, boto3 or ``aiohttp.web``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aiohttp

from dfs import protocol
from dfs.client.http import ChunkPayload, request, request_json


class ApiClient:
    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self._session = session
        self.base_url = base_url.rstrip("/")

    def _url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    async def init_upload(
        self, *, name: str, size: int, sha256: str, chunker: str, chunks: Sequence[dict[str, Any]]
    ) -> dict[str, Any]:
        body = {"name": name, "size": size, "sha256": sha256, "chunker": chunker, "chunks": chunks}
        result: dict[str, Any] = await request_json(
            self._session, "POST", self._url(protocol.INIT_UPLOAD), json=body
        )
        return result

    async def finalize_upload(self, file_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await request_json(
            self._session, "POST", self._url(protocol.FINALIZE_UPLOAD), json={"file_id": file_id}
        )
        return result

    async def download_plan(self, file_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await request_json(
            self._session, "GET", self._url(protocol.DOWNLOAD_PLAN), params={"file_id": file_id}
        )
        return result

    async def proxy_put_chunk(
        self, chunk_id: str, data: bytes | bytearray | memoryview
    ) -> dict[str, Any]:
        result: dict[str, Any] = await request_json(
            self._session,
            "PUT",
            self._url(protocol.PROXY_CHUNK_UPLOAD),
            params={"chunk_id": chunk_id},
            data=ChunkPayload(data),
        )
        return result

    async def proxy_get_chunk(self, chunk_id: str) -> bytes:
        async with request(
            self._session,
            "GET",
            self._url(protocol.PROXY_CHUNK_DOWNLOAD),
            params={"chunk_id": chunk_id},
        ) as resp:
            return await resp.read()

    async def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = await request_json(
            self._session, "GET", self._url(protocol.ADMIN_STATS)
        )
        return result

    async def nodes(self) -> dict[str, Any]:
        result: dict[str, Any] = await request_json(self._session, "GET", self._url(protocol.NODES))
        return result

    async def heartbeat(self, node: dict[str, Any]) -> None:
        await request_json(self._session, "POST", self._url(protocol.NODE_HEARTBEAT), json=node)

    async def deregister(self, node_id: str) -> None:
        await request_json(
            self._session, "POST", self._url(protocol.NODE_DEREGISTER), json={"node_id": node_id}
        )
