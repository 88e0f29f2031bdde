"""Hostile input: ids that try to reach paths, oversized and stalled bodies, odd methods and
content types. Every answer is a JSON error body with a fitting status, and nothing escapes
the data directory."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from dfs import auth, protocol
from dfs.chunkstore.fs import FsChunkStore
from dfs.errors import InvalidRequest
from dfs.ids import ChunkId
from dfs.server import (
    BODY_TIMEOUTS,
    MAX_HEADERS,
    BodyTimeouts,
    StreamDeadline,
    error_middleware,
    read_body,
    read_json,
    runner_kwargs,
)
from dfs.transport.http import ChunkPayload
from tests.integration.conftest import ADMIN_TOKEN, SECRET, InProcessCluster

pytestmark = pytest.mark.integration

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
TRAVERSALS = [
    "../../../../etc/passwd",
    "..%2F..%2Fetc%2Fpasswd",
    "/etc/passwd",
    "a" * 63 + "/",
    "A" * 64,
    "0" * 65,
    "",
    "0" * 62 + "..",
    "\x00" * 64,
]


async def call(
    method: str, url: str, headers: dict[str, str] | None = None, **kw: Any
) -> tuple[int, dict[str, str], Any]:
    if isinstance(kw.get("data"), bytes):
        kw["data"] = ChunkPayload(kw["data"])  # aiohttp warns about big raw bytes bodies
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, url, headers=headers or {}, **kw) as r,
    ):
        raw = await r.read()
        body = json.loads(raw) if r.content_type == "application/json" and raw else raw
        return r.status, dict(r.headers), body


def assert_error(status: int, body: Any, expected: int, code: str | None = None) -> None:
    assert status == expected, (status, body)
    assert isinstance(body, dict), body
    assert set(body) == {"error"}
    assert isinstance(body["error"]["message"], str)
    if code is not None:
        assert body["error"]["code"] == code


async def test_traversal_ids_never_reach_the_disk(inproc: InProcessCluster) -> None:
    api, node = inproc.api.url, inproc.nodes[0]
    for bad in TRAVERSALS:
        for method, path, params in (
            ("GET", protocol.DOWNLOAD_PLAN, {"file_id": bad}),
            ("GET", protocol.PROXY_CHUNK_DOWNLOAD, {"chunk_id": bad}),
            ("GET", protocol.FILES, {"after": bad}),
        ):
            status, _, body = await call(method, f"{api}{path}", ADMIN, params=params)
            assert_error(status, body, 400, "invalid_request")
        cap = auth.mint(SECRET, auth.OP_GET, bad.replace("\x00", ""), node.cfg.node_id)
        status, _, body = await call(
            "GET", f"{node.url}{protocol.GET_CHUNK}", params={"chunk_id": bad, "cap": cap}
        )
        assert_error(status, body, 400, "invalid_request")
    # the store itself refuses any name that is not an id, whoever calls it
    for bad in TRAVERSALS:
        with pytest.raises(InvalidRequest):
            await node.store.get(ChunkId(bad))
        with pytest.raises(InvalidRequest):
            await node.store.delete(ChunkId(bad))
        with pytest.raises(InvalidRequest):
            await node.store.put(ChunkId(bad), b"x")


async def test_fs_store_paths_stay_inside_its_root(tmp_path: Path) -> None:
    store = await FsChunkStore.open(tmp_path / "n")
    good = ChunkId("ab" * 32)
    assert store.path_of(good).resolve().is_relative_to((tmp_path / "n" / "chunks").resolve())
    for bad in [*TRAVERSALS, "ab" * 31 + "/.", 64 * "g"]:
        with pytest.raises(InvalidRequest):
            store.path_of(ChunkId(bad))
        with pytest.raises(InvalidRequest):
            await store.has([ChunkId(bad)])


async def test_aiohttp_errors_are_json(inproc: InProcessCluster) -> None:
    for base in (inproc.api.url, inproc.nodes[0].url):
        status, _, body = await call("GET", f"{base}/no-such-route", ADMIN)
        assert_error(status, body, 404, "not_found")
        status, headers, body = await call("DELETE", f"{base}{protocol.HEALTHZ}", ADMIN)
        assert_error(status, body, 405, "method_not_allowed")
        assert "GET" in headers["Allow"]
        status, _, body = await call("OPTIONS", f"{base}{protocol.HEALTHZ}")
        assert_error(status, body, 405, "method_not_allowed")
        status, headers, body = await call("HEAD", f"{base}{protocol.HEALTHZ}")
        assert status == 200
        assert body == b""


async def test_bodies_are_bounded_and_typed(inproc: InProcessCluster) -> None:
    api = inproc.api.url
    post = f"{api}{protocol.ADMIN_TENANTS}"
    json_type = {**ADMIN, "Content-Type": "application/json"}
    cases: list[tuple[dict[str, str], bytes, int, str]] = [
        (json_type, b"{not json", 400, "invalid_request"),
        (json_type, b"[1, 2]", 400, "invalid_request"),
        (json_type, b"[" * 100_000, 413, "payload_too_large"),
        (json_type, b"", 400, "invalid_request"),
        ({**ADMIN, "Content-Type": "text/plain"}, b'{"tenant": "t"}', 415, None),
        ({**ADMIN, "Content-Type": "application/x-www-form-urlencoded"}, b"tenant=t", 415, None),
        (ADMIN, b'{"tenant": "t"}', 415, "unsupported_media_type"),
        (json_type, b'{"tenant": "../etc"}', 400, "invalid_request"),
        (json_type, b'{"tenant": ' + b"[" * 2000 + b"]" * 2000 + b"}", 400, "invalid_request"),
    ]
    for headers, data, expected, code in cases:
        status, _, body = await call("POST", post, headers, data=data)
        assert_error(status, body, expected, code)
    # the big bodies have their own bound, declared or not
    big = b"x" * (protocol.MAX_JSON_BODY + 1)
    status, _, body = await call("POST", f"{api}{protocol.INIT_UPLOAD}", json_type, data=big)
    assert_error(status, body, 413, "payload_too_large")

    async def trickle() -> AsyncIterator[bytes]:
        for _ in range(protocol.MAX_JSON_BODY // (1 << 20) + 1):
            yield b" " * (1 << 20)
        yield b"{}"

    status, _, body = await call(
        "POST", f"{api}{protocol.FINALIZE_UPLOAD}", json_type, data=trickle()
    )
    assert_error(status, body, 413, "payload_too_large")


async def test_a_chunk_list_beyond_the_bound_is_refused(inproc: InProcessCluster) -> None:
    n = protocol.MAX_CHUNKS_PER_FILE + 1
    entry = {"sha256": "ab" * 32, "size": 1}
    body = {"name": "x", "size": n, "sha256": "ab" * 32, "chunker": "fixed:4096", "chunks": []}
    text = json.dumps(body).replace(
        '"chunks": []', '"chunks": [' + ",".join([json.dumps(entry)] * n) + "]"
    )
    assert len(text) < protocol.MAX_JSON_BODY
    status, _, answer = await call(
        "POST",
        f"{inproc.api.url}{protocol.INIT_UPLOAD}",
        data=text.encode(),
        headers={**ADMIN, "Content-Type": "application/json"},
    )
    assert_error(status, answer, 400, "invalid_request")
    assert str(protocol.MAX_CHUNKS_PER_FILE) in answer["error"]["message"]


# --- stalled clients ----------------------------------------------------------------------


async def echo_size(request: web.Request) -> web.Response:
    body = await read_body(request, 1 << 20)
    return web.json_response({"size": len(body)})


async def echo_stream(request: web.Request) -> web.Response:
    """Reads piece by piece, the way POST /upload streams a body into the chunker."""
    deadline = StreamDeadline(request)
    total = 0
    while data := await deadline.read(request.content.read, 65536):
        total += len(data)
    return web.json_response({"size": total})


async def echo_large(request: web.Request) -> web.Response:
    body = await read_body(request, 32 << 20)
    return web.json_response({"size": len(body)})


async def echo_stream_after_a_wait(request: web.Request) -> web.Response:
    """``echo_stream``, but its first read 0.7 s after the request came (longer than the
    0.5 s floor): the wait a streamed body spends for its stream slot."""
    deadline = StreamDeadline(request)
    await asyncio.sleep(0.7)  # the server's own wait, as for a slot: part of the scenario
    total = 0
    while data := await deadline.read(request.content.read, 65536):
        total += len(data)
    return web.json_response({"size": total})


async def echo_json(request: web.Request) -> web.Response:
    return web.json_response(await read_json(request, 4096))


@pytest.fixture
async def small_server() -> AsyncIterator[tuple[str, int]]:
    """A server with the dfs limits, but a body budget of 0.5 s + 1 MiB/s and a 1 s keep-alive."""
    app = web.Application(middlewares=[error_middleware])
    app[BODY_TIMEOUTS] = BodyTimeouts(floor=0.5, min_rate=1 << 20)
    app.router.add_put("/body", echo_size)
    app.router.add_put("/stream", echo_stream)
    app.router.add_put("/waited", echo_stream_after_a_wait)
    app.router.add_put("/large", echo_large)
    app.router.add_post("/json", echo_json)
    runner = web.AppRunner(app, **{**runner_kwargs(), "keepalive_timeout": 1.0})
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield "127.0.0.1", int(runner.addresses[0][1])
    finally:
        await runner.cleanup()


async def read_until_closed(reader: asyncio.StreamReader, deadline: float) -> bytes:
    out = b""
    async with asyncio.timeout(deadline):
        while chunk := await reader.read(65536):
            out += chunk
    return out


@pytest.mark.parametrize("path", ["/body", "/stream"])
async def test_a_trickled_body_is_cut_off(small_server: tuple[str, int], path: str) -> None:
    host, port = small_server
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n".encode())
        started = time.monotonic()
        answer = b""
        for _ in range(100):  # one byte every 50 ms: 1000 bytes would take 50 s
            if reader.at_eof():
                break
            try:
                writer.write(b"x")
                await writer.drain()
            except ConnectionError:
                break
            try:
                answer += await asyncio.wait_for(reader.read(65536), 0.05)
            except TimeoutError:
                continue
            if b"\r\n\r\n" in answer:
                break
        answer += await read_until_closed(reader, 5.0)
    finally:
        writer.close()
    elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["error"]["code"] == "request_timeout"
    assert elapsed < 4.0


@pytest.mark.parametrize("path", ["/large", "/stream"])
async def test_a_body_that_stalls_after_a_fast_start_is_cut_off(
    small_server: tuple[str, int], path: str
) -> None:
    """8 MiB sent at once earn 8.5 s of the 16 MiB body's budget (0.5 s + 1 MiB/s); then the
    client stops. Each read has its own budget from when it starts (0.5 s and its bytes'
    share), so the stall is cut off then, not once the credit of the fast start runs out
    (hours, for a body of GiBs sent fast and then held)."""
    host, port = small_server
    reader, writer = await asyncio.open_connection(host, port)
    size = 16 << 20
    try:
        head = f"PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n"
        writer.write(head.encode() + b"x" * (size // 2))
        await writer.drain()
        stalled = time.monotonic()
        answer = await read_until_closed(reader, 10.0)
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert time.monotonic() - stalled < 4.0  # the credit would have lasted ~8 s


async def test_a_body_read_after_a_wait_of_the_servers_gets_its_whole_budget(
    small_server: tuple[str, int],
) -> None:
    """The handler reads its first byte 0.7 s after the request came (past the 0.5 s floor,
    as a body waiting for its stream slot); the client sends the body 0.8 s after its head.
    The budget counts from the first read: the body is read, not refused as too slow."""
    host, port = small_server
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(b"PUT /waited HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.8)  # the client's own pace: part of the scenario
        writer.write(b"x" * 1000)
        await writer.drain()
        answer = await read_until_closed(reader, 5.0)
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert json.loads(answer.partition(b"\r\n\r\n")[2]) == {"size": 1000}


async def test_a_trickled_request_head_is_cut_off(small_server: tuple[str, int]) -> None:
    """A head that never ends is cut off by the keep-alive timer (1 s here) that aiohttp arms
    at accept: silently, at that time, while the header lines are still far fewer than
    MAX_HEADERS (so no other limit, which would answer 400, can be what acted)."""
    host, port = small_server
    started = time.monotonic()
    reader, writer = await asyncio.open_connection(host, port)
    received = b""
    closed_after: float | None = None
    try:
        writer.write(b"PUT /body HTTP/1.1\r\nHost: x\r\n")
        for i in range(MAX_HEADERS // 2):  # a header line every 100 ms: 3.2 s in all
            try:
                writer.write(f"X-Slow-{i}: y\r\n".encode())
                await writer.drain()
                chunk = await asyncio.wait_for(reader.read(65536), 0.1)
            except TimeoutError:
                continue
            except ConnectionError:
                chunk = b""
            received += chunk
            if not chunk:
                closed_after = time.monotonic() - started
                break
    finally:
        writer.close()
    assert closed_after is not None, "the trickled head was never cut off"
    assert received == b""  # closed by the timer, not answered by a header limit
    assert 0.9 <= closed_after < 2.5, closed_after


async def test_a_prompt_body_is_read(small_server: tuple[str, int]) -> None:
    host, port = small_server
    status, _, body = await call("PUT", f"http://{host}:{port}/body", data=b"x" * 300_000)
    assert (status, body) == (200, {"size": 300_000})
    status, _, body = await call(
        "POST",
        f"http://{host}:{port}/json",
        headers={"Content-Type": "application/json"},
        data=b'{"a": 1}',
    )
    assert (status, body) == (200, {"a": 1})
