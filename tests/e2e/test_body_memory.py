"""Memory before authentication (issue 12): a body costs what really arrived, never what was
declared. 50 connections that declare the largest body a route accepts and then send 3 bytes
must not raise a real node's or a real API's resident memory by 32 MiB while they stay open
(preallocating the declared length pinned 16 MiB per connection, 800 MiB for 50)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from dfs import protocol
from dfs.localcluster import LocalCluster, http_json

pytestmark = pytest.mark.e2e

CONNECTIONS = 50
RSS_BUDGET = 32 * 1024 * 1024

NODE_ROUTES = [
    ("PUT", protocol.STORE_CHUNK, protocol.MAX_CHUNK_SIZE, "application/octet-stream"),
    ("POST", protocol.STORE_CHUNKS, protocol.MAX_CHUNK_SIZE, "application/octet-stream"),
    # 1.28 MB at most, and only for the API's capability: checked before the body is read
    ("POST", protocol.HAS_CHUNKS, 128 * protocol.MAX_HAS_CHUNKS, "application/json"),
]
API_ROUTES = [
    ("POST", protocol.INIT_UPLOAD, protocol.MAX_JSON_BODY, "application/json"),
    ("POST", protocol.FINALIZE_UPLOAD, protocol.MAX_JSON_BODY, "application/json"),
    ("POST", protocol.INIT_UPLOADS, protocol.MAX_JSON_BODY, "application/json"),
    ("POST", protocol.FINALIZE_UPLOADS, protocol.MAX_JSON_BODY, "application/json"),
    ("POST", protocol.DOWNLOAD_PLANS, protocol.MAX_JSON_BODY, "application/json"),
    ("POST", protocol.RESUME_UPLOAD, protocol.MAX_JSON_BODY, "application/json"),
    ("PUT", protocol.PROXY_CHUNK_UPLOAD, protocol.MAX_CHUNK_SIZE, "application/octet-stream"),
]


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


async def open_stalled(
    url: str, routes: list[tuple[str, str, int, str]], token: str
) -> list[asyncio.StreamWriter]:
    """CONNECTIONS connections, spread over ``routes``, each declaring the route's largest
    body and sending 3 bytes of it."""
    parts = urlsplit(url)
    writers = []
    for i in range(CONNECTIONS):
        method, path, size, ctype = routes[i % len(routes)]
        query = f"?chunk_id={'a' * 64}&file_id=00000000-0000-4000-8000-000000000000"
        _, writer = await asyncio.open_connection(parts.hostname, parts.port)
        head = (
            f"{method} {path}{query} HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Length: {size}\r\n\r\n"
        )
        writer.write(head.encode() + b"abc")
        await writer.drain()
        writers.append(writer)
    return writers


async def close_all(writers: list[asyncio.StreamWriter]) -> None:
    for w in writers:
        w.close()
    for w in writers:
        with contextlib.suppress(ConnectionError):
            await w.wait_closed()


def served_after(url: str) -> None:
    """Two requests answered on fresh connections: the server's event loop has run the
    handlers of every connection whose bytes arrived before them."""
    for _ in range(2):
        assert http_json(f"{url}{protocol.HEALTHZ}")["status"] == "ok"


async def grown_by(pid: int, url: str, routes: list[tuple[str, str, int, str]], token: str) -> int:
    before = rss_bytes(pid)
    writers = await open_stalled(url, routes, token)
    try:
        await asyncio.to_thread(served_after, url)
        return rss_bytes(pid) - before
    finally:
        await close_all(writers)


@pytest.mark.cluster(nodes=1, replication_factor=1)
@pytest.mark.parametrize("meta_url", ["sqlite"], indirect=True)
async def test_declared_bodies_cost_no_memory_before_they_arrive(cluster: LocalCluster) -> None:
    node = cluster.node(1)
    assert node.popen is not None
    assert cluster.api is not None
    assert cluster.api.popen is not None
    node_growth = await grown_by(node.popen.pid, node.url, NODE_ROUTES, "none")
    assert node_growth < RSS_BUDGET, f"node grew by {node_growth / 2**20:.0f} MiB"
    api_growth = await grown_by(
        cluster.api.popen.pid, cluster.api_url, API_ROUTES, cluster.admin_token
    )
    assert api_growth < RSS_BUDGET, f"API grew by {api_growth / 2**20:.0f} MiB"


def _batch_head(auth: str) -> bytes:
    """A /store-chunks head declaring the largest body: no capability, or a well-formed one
    (with the digests it would bind) that this node never granted."""
    headers = f"POST {protocol.STORE_CHUNKS} HTTP/1.1\r\nHost: x\r\n"
    headers += (
        f"Content-Type: application/octet-stream\r\nContent-Length: {protocol.MAX_CHUNK_SIZE}\r\n"
    )
    if auth == "forged":
        headers += f"{protocol.CAPABILITY}: 9999999999.{'0' * 64}\r\n"
        headers += f"{protocol.BATCH}: {'1' * 64}\r\n{protocol.BATCH_FILES}: {'2' * 64}\r\n"
    return (headers + "\r\n").encode()


async def refused_before_the_body(url: str, writers: list[asyncio.StreamWriter]) -> list[int]:
    """CONNECTIONS /store-chunks requests declaring 16 MiB and sending 3 bytes, half without
    a capability and half with a forged one (each connection added to ``writers``, for the
    caller to close); the status of each answer, read while the bodies stay unsent."""
    parts = urlsplit(url)
    readers = []
    for i in range(CONNECTIONS):
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        writers.append(writer)
        writer.write(_batch_head("none" if i % 2 else "forged") + b"abc")
        await writer.drain()
        readers.append(reader)
    return [int((await r.readline()).split()[1]) for r in readers]


@pytest.mark.cluster(nodes=1, replication_factor=1)
@pytest.mark.parametrize("meta_url", ["sqlite"], indirect=True)
async def test_store_chunks_refuses_unauthorized_batches_before_reading_their_bodies(
    cluster: LocalCluster,
) -> None:
    """A batch's capability is in its headers: a node answers 401 (none) or 403 (forged) at
    once, without waiting for the 16 MiB it declared (the body deadline would take 30 s and
    more), and its memory does not grow while the connections stay open."""
    node = cluster.node(1)
    assert node.popen is not None
    before = rss_bytes(node.popen.pid)
    writers: list[asyncio.StreamWriter] = []
    try:
        statuses = await asyncio.wait_for(refused_before_the_body(node.url, writers), 10)
        assert statuses == [403 if i % 2 == 0 else 401 for i in range(CONNECTIONS)]
        await asyncio.to_thread(served_after, node.url)
        growth = rss_bytes(node.popen.pid) - before
        assert growth < RSS_BUDGET, f"node grew by {growth / 2**20:.0f} MiB"
    finally:
        await close_all(writers)
