"""A client that stops reading a node's answer is cut off: ``GET /get-chunk`` and
``POST /get-chunks`` send under ``dfs.server.SendDeadline`` (the body budget, for the bytes
going out), and so do the API's streamed files (``dfs.api.file_stream``: an object's GET,
which the S3 gateway's GetObject shares). Before it, such a client held the handler and the answer's buffers (up to a
whole chunk) for as long as it kept its connection open: TCP keeps a connection whose
reader's window is closed open for ever, and aiohttp has no write timeout.

A real node app (``make_app`` over a ``PackChunkStore``) on loopback, with a short answer
budget so the test need not wait the default 30 s floor."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from dfs import auth, protocol
from dfs.api import app as api_app
from dfs.api.coordinator import Coordinator
from dfs.chunkstore.pack import PackChunkStore
from dfs.client import Client
from dfs.config import NodeConfig
from dfs.ids import ChunkId, sha256_hex
from dfs.node.app import make_app
from dfs.server import BODY_TIMEOUTS, BodyTimeouts, runner_kwargs
from dfs.transport.http import make_session
from dfs.transport.node_client import NodeClient
from tests.integration.conftest import ADMIN_TOKEN, InProcessCluster, running_cluster

pytestmark = pytest.mark.integration

SECRET = b"answer-deadline-test-secret-0123456789"
NODE = "node1"
BUDGET = BodyTimeouts(floor=0.3, min_rate=16 * protocol.MIB)
"""An answer of n bytes within 0.3 s + n / 16 MiB/s: a chunk of 16 MiB in 1.3 s, far more
than a reader on loopback needs."""


@dataclass
class Node:
    url: str
    runner: web.AppRunner
    store: PackChunkStore
    port: int


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    cfg = NodeConfig(node_id=NODE, port=0, data_dir=tmp_path, cluster_secret=SECRET)
    store = await PackChunkStore.open(tmp_path)
    session = make_session()
    app = make_app(cfg, store, NodeClient(session))
    app[BODY_TIMEOUTS] = BUDGET
    runner = web.AppRunner(app, **runner_kwargs())
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = int(runner.addresses[0][1])
        yield Node(f"http://127.0.0.1:{port}", runner, store, port)
    finally:
        await runner.cleanup()
        await session.close()
        await store.close()


async def big_chunks(store: PackChunkStore, n: int) -> list[ChunkId]:
    """``n`` stored chunks of MAX_CHUNK_SIZE bytes: more than the kernel's socket buffers take,
    so a reader that stops reading leaves the node with bytes it cannot send."""
    ids = []
    for _ in range(n):
        data = os.urandom(protocol.MAX_CHUNK_SIZE)
        chunk_id = sha256_hex(data)
        await store.put(chunk_id, data)
        ids.append(chunk_id)
    return ids


def stalled_reader(port: int, head: bytes) -> socket.socket:
    """A connection that sends ``head`` and then never reads (a tiny receive buffer)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(head)
    return sock


async def stalled_then_cut_off(runner: web.AppRunner, n: int, within: float) -> None:
    """Wait until the server holds ``n`` connections, each with answer bytes it cannot send
    (their readers stopped reading), then until it holds none; fail past ``within``."""
    server = runner.server
    assert server is not None

    def stalled() -> int:
        return sum(
            c.transport is not None and c.transport.get_write_buffer_size() > 0
            for c in server.connections
        )

    async with asyncio.timeout(within):
        while stalled() < n:  # noqa: ASYNC110 (aiohttp signals no event for these)
            await asyncio.sleep(0.02)
        while server.connections:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


def get_chunk_head(chunk_id: str) -> bytes:
    cap = auth.mint(SECRET, auth.OP_GET, chunk_id, NODE)
    path = f"{protocol.GET_CHUNK}?chunk_id={chunk_id}&cap={cap}"
    return f"GET {path} HTTP/1.1\r\nHost: n\r\n\r\n".encode()


def get_chunks_request(ids: list[ChunkId]) -> tuple[dict[str, str], bytes]:
    digest = protocol.list_sha256(ids)
    cap = auth.mint(SECRET, auth.OP_GET_BATCH, digest, NODE, extra="acme")
    headers = {**protocol.read_batch_headers(cap, ids, "acme"), "Content-Type": "application/json"}
    return headers, json.dumps({"chunk_ids": ids}).encode()


async def test_a_client_that_stops_reading_a_chunk_is_cut_off(node: Node) -> None:
    [chunk_id] = await big_chunks(node.store, 1)
    socks = [stalled_reader(node.port, get_chunk_head(chunk_id)) for _ in range(3)]
    try:
        # the budget of one 16 MiB answer is 1.3 s; well past it, every connection is gone
        await stalled_then_cut_off(node.runner, len(socks), within=10.0)
    finally:
        for sock in socks:
            sock.close()
    # a client that reads gets the whole chunk under the same budget
    async with (
        aiohttp.ClientSession() as s,
        s.get(node.url + get_chunk_head(chunk_id).split(b" ")[1].decode()) as r,
    ):
        assert r.status == 200
        assert hashlib.sha256(await r.read()).hexdigest() == chunk_id


async def test_a_client_that_stops_reading_a_batch_is_cut_off(node: Node) -> None:
    ids = await big_chunks(node.store, 3)
    headers, body = get_chunks_request(ids)
    head = f"POST {protocol.GET_CHUNKS} HTTP/1.1\r\nHost: n\r\nContent-Length: {len(body)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    socks = [stalled_reader(node.port, head.encode() + body) for _ in range(2)]
    try:
        await stalled_then_cut_off(node.runner, len(socks), within=10.0)
    finally:
        for sock in socks:
            sock.close()
    async with (
        aiohttp.ClientSession() as s,
        s.post(node.url + protocol.GET_CHUNKS, headers=headers, data=body) as r,
    ):
        assert r.status == 200
        raw = await r.read()
    pos = 0
    for chunk_id in ids:
        got, status, size = protocol.read_record_header(
            raw[pos : pos + protocol.RECORD_HEADER.size]
        )
        pos += protocol.RECORD_HEADER.size
        assert (got, status, size) == (chunk_id, protocol.RECORD_OK, protocol.MAX_CHUNK_SIZE)
        assert hashlib.sha256(raw[pos : pos + size]).hexdigest() == chunk_id
        pos += size
    assert pos == len(raw)


@pytest.mark.parametrize("batch", [False, True])
async def test_a_client_that_hangs_up_mid_answer_is_no_error(
    node: Node, batch: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """A reader gone mid-answer is the client's doing: the node logs no unhandled error (a
    ``ConnectionError`` out of the send is left to aiohttp, as when it sends an answer itself)."""
    [chunk_id] = await big_chunks(node.store, 1)
    if batch:
        headers, body = get_chunks_request([chunk_id] * 3)
        head = f"POST {protocol.GET_CHUNKS} HTTP/1.1\r\nHost: n\r\nContent-Length: {len(body)}\r\n"
        request = (head + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode()
        request += body
    else:
        request = get_chunk_head(chunk_id)
    reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
    writer.write(request)
    await reader.readexactly(1 << 20)
    writer.transport.abort()
    await stalled_then_cut_off(node.runner, 0, within=10.0)
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == []


@contextlib.asynccontextmanager
async def object_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[InProcessCluster, bytes]]:
    """An in-process cluster whose API has the short budget (given before it starts), holding
    the object big/k of three chunks of MAX_CHUNK_SIZE (more than the sockets' buffers)."""
    real = api_app.make_app

    def short_budget(coord: Coordinator) -> web.Application:
        app = real(coord)
        app[BODY_TIMEOUTS] = BUDGET
        return app

    monkeypatch.setattr(api_app, "make_app", short_budget)
    data = os.urandom(3 * protocol.MAX_CHUNK_SIZE)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "big.bin").write_bytes(data)
    async with running_cluster(tmp_path / "c", n=1, rf=1) as c:
        async with Client(c.api.url, token=ADMIN_TOKEN) as admin:
            await admin.make_bucket("big")
            await admin.upload_to([tmp_path / "src" / "big.bin"], "big", "k")
        yield c, data


async def read_object(c: InProcessCluster) -> bytes:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"{c.api.url}/objects/big/k", headers=headers) as r,
    ):
        assert r.status == 200
        return await r.read()


async def test_a_client_that_stops_reading_an_object_is_cut_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API streams an object's verified chunks under the same rule, each chunk under a
    budget of its own."""
    async with object_api(tmp_path, monkeypatch) as (c, data):
        head = (
            f"GET /objects/big/k HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\r\n"
        )
        socks = [stalled_reader(c.api.port, head.encode()) for _ in range(2)]
        try:
            # a 16 MiB chunk's budget is 1.3 s; well past it, every connection is gone
            await stalled_then_cut_off(c.api.runner, len(socks), within=20.0)
        finally:
            for sock in socks:
                sock.close()
        assert hashlib.sha256(await read_object(c)).digest() == hashlib.sha256(data).digest()
