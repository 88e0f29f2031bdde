"""HTTP plumbing shared by ``ApiClient`` and ``NodeClient``: sessions, timeouts, error mapping.

A server's JSON error body becomes the same ``DfsError`` class here that the server raised;
connection failures become ``Unavailable``. aiohttp client exceptions are translated here and
nowhere else. Must not import ``aiohttp.web``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from dfs.errors import DfsError, Unavailable, from_body

DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 120.0
# aiohttp's default (64 KiB) pauses the socket every 128 KiB of a multi-MiB chunk body;
# 1 MiB measured ~1.3-1.5x faster chunk downloads here (bench/README.md)
DEFAULT_READ_BUFSIZE = 1 << 20


def make_session(
    *,
    limit: int = 64,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    read_timeout: float = DEFAULT_READ_TIMEOUT,
    read_bufsize: int = DEFAULT_READ_BUFSIZE,
) -> aiohttp.ClientSession:
    """One session per process: pooled keep-alive connections, bounded timeouts."""
    timeout = aiohttp.ClientTimeout(
        total=None, connect=connect_timeout, sock_connect=connect_timeout, sock_read=read_timeout
    )
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit, ttl_dns_cache=300)
    return aiohttp.ClientSession(
        timeout=timeout,
        connector=connector,
        raise_for_status=False,
        auto_decompress=False,
        read_bufsize=read_bufsize,
    )


async def error_from_response(resp: aiohttp.ClientResponse) -> DfsError:
    raw = await resp.read()
    try:
        body: object = json.loads(raw)
    except ValueError:
        text = raw[:200].decode("utf-8", "replace").strip()
        body = {"error": {"code": "", "message": f"HTTP {resp.status} from {resp.url}: {text}"}}
    return from_body(resp.status, body)


@asynccontextmanager
async def request(
    session: aiohttp.ClientSession, method: str, url: str, **kwargs: Any
) -> AsyncIterator[aiohttp.ClientResponse]:
    """Send a request; yield the response if it is 2xx, raise its DfsError otherwise."""
    try:
        async with session.request(method, url, **kwargs) as resp:
            if resp.status >= 400:
                raise await error_from_response(resp)
            yield resp
    except aiohttp.ClientPayloadError as exc:
        raise Unavailable(f"{method} {url}: response cut short: {exc}") from None
    except (aiohttp.ClientConnectionError, TimeoutError) as exc:
        raise Unavailable(f"{method} {url}: {type(exc).__name__}: {exc}") from None


async def request_json(session: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> Any:
    async with request(session, method, url, **kwargs) as resp:
        try:
            return await resp.json(content_type=None)
        except ValueError:
            raise Unavailable(f"{method} {url}: answer is not JSON") from None


class ChunkPayload(aiohttp.payload.Payload):
    """A chunk body, or a body of several parts (a ``/store-chunks`` batch), sent without a
    copy.

    aiohttp's BytesPayload warns on bodies above 1 MiB because writing them "might lock the
    event loop"; a chunk (at most MAX_CHUNK_SIZE) is handed to the transport's buffer in one
    non-blocking write, so that advice does not apply here.
    """

    _value: Sequence[bytes | bytearray | memoryview]

    def __init__(
        self, value: bytes | bytearray | memoryview | Sequence[bytes | bytearray | memoryview]
    ) -> None:
        parts = [value] if isinstance(value, bytes | bytearray | memoryview) else list(value)
        super().__init__(parts, content_type="application/octet-stream")
        self._size = sum(memoryview(p).nbytes for p in parts)

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return b"".join(self._value).decode(encoding, errors)

    async def write(self, writer: aiohttp.abc.AbstractStreamWriter) -> None:
        # aiohttp coalesces the request head with the first body write by joining them
        # (b"".join, on Pythons before 3.12.9): a copy of the whole chunk, in fresh memory
        # the kernel must fault in. An empty first write sends the head alone; every part
        # then reaches the transport as it is.
        await writer.write(b"")
        for part in self._value:
            await writer.write(part)
