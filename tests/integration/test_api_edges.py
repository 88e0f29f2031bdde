"""The API's edges a new user or a hostile one hits (issues 12, 13 and 16): HEAD and Range on
signed URLs, the /admin/hashes page key, lone surrogates in names, multipart fields that
trickle before the file, and the headers that keep served user content inert."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from dfs.api.app import make_app
from dfs.server import BODY_TIMEOUTS, BodyTimeouts, runner_kwargs
from tests.integration.conftest import ADMIN_TOKEN, InProcessCluster
from tests.integration.test_seed_api import req

pytestmark = pytest.mark.integration

SANDBOX = "sandbox; default-src 'none'"


async def signed_url(api: str, data: bytes, name: str = "f.bin") -> str:
    status, body, _ = await req("POST", f"{api}/upload?filename={name}", data=data)
    assert status == 201, body
    status, body, _ = await req("GET", f"{api}/download/{body['file_id']}")
    assert status == 200, body
    return str(body["download_url"])


async def test_head_on_a_signed_url_answers_headers_and_logs_no_error(
    inproc: InProcessCluster, caplog: pytest.LogCaptureFixture
) -> None:
    data = random.Random(1).randbytes(3 * 1024 * 1024 + 5)
    url = await signed_url(inproc.api.url, data)
    caplog.set_level(logging.INFO)
    async with aiohttp.ClientSession() as s:
        for _ in range(3):
            async with s.head(url) as r:
                assert r.status == 200
                assert r.headers["Content-Length"] == str(len(data))
                assert r.headers["Accept-Ranges"] == "bytes"
                assert await r.read() == b""
        async with s.get(url) as r:  # the connection still serves a GET after the HEADs
            assert await r.read() == data
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [r.getMessage() for r in bad]


async def test_range_requests_on_signed_urls(inproc: InProcessCluster) -> None:
    data = random.Random(2).randbytes(5 * 1024 * 1024 + 77)  # several chunks
    url = await signed_url(inproc.api.url, data)
    n = len(data)
    cases = {
        "bytes=0-0": (0, 0),
        "bytes=10-99": (10, 99),
        f"bytes=1000000-{n + 500}": (1000000, n - 1),
        "bytes=3000000-": (3000000, n - 1),
        "bytes=-1234": (n - 1234, n - 1),
        f"bytes=-{n * 2}": (0, n - 1),
    }
    async with aiohttp.ClientSession() as s:
        for header, (lo, hi) in cases.items():
            async with s.get(url, headers={"Range": header}) as r:
                assert r.status == 206, header
                assert r.headers["Content-Range"] == f"bytes {lo}-{hi}/{n}"
                assert r.headers["Content-Length"] == str(hi - lo + 1)
                assert await r.read() == data[lo : hi + 1], header
        for header in (f"bytes={n}-", f"bytes={n + 10}-{n + 20}", "bytes=-0"):
            async with s.get(url, headers={"Range": header}) as r:
                assert r.status == 416, header
                assert r.headers["Content-Range"] == f"bytes */{n}"
        # not one satisfiable single range: ignored, the whole file (RFC 9110 allows it)
        for header in ("bytes=0-1,5-6", "items=0-5", "bytes=9-3", "bytes=x-"):
            async with s.get(url, headers={"Range": header}) as r:
                assert r.status == 200, header
                assert await r.read() == data


async def test_a_range_reads_only_the_chunks_it_needs(inproc: InProcessCluster) -> None:
    """A range inside the first chunk is served while every other chunk is gone from disk."""
    data = random.Random(3).randbytes(6 * 1024 * 1024)
    url = await signed_url(inproc.api.url, data)
    status, plan, _ = await req("GET", f"{inproc.api.url}/download-plan?file_id={url_id(url)}")
    assert status == 200
    chunks = plan["chunks"]
    assert len(chunks) > 2
    first = chunks[0]["sha256"]
    for node in inproc.nodes:
        for path in node.cfg.data_dir.rglob("*"):
            if path.is_file() and len(path.name) == 64 and path.name != first:
                path.unlink()
    async with aiohttp.ClientSession() as s, s.get(url, headers={"Range": "bytes=5-104"}) as r:
        assert r.status == 206
        assert await r.read() == data[5:105]


def url_id(url: str) -> str:
    return url.split("/signed-download/", 1)[1].split("?", 1)[0]


async def test_user_content_carries_the_inert_headers(inproc: InProcessCluster) -> None:
    api = inproc.api.url
    url = await signed_url(api, b"<html><script>alert(1)</script></html>", "x.html")
    status, plan, _ = await req("GET", f"{api}/download-plan?file_id={url_id(url)}")
    chunk = plan["chunks"][0]["sha256"]
    for target, token in (
        (url, None),
        (f"{api}/proxy-chunk-download?chunk_id={chunk}", ADMIN_TOKEN),
    ):
        status, _, headers = await req("GET", target, token=token)
        assert status == 200
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Content-Security-Policy"] == SANDBOX
        assert headers["Content-Disposition"].startswith("attachment")
    status, _, headers = await req("GET", url.replace("sig=", "sig=0"), token=None)
    assert status in (401, 403)
    assert headers["Content-Security-Policy"] == SANDBOX  # error answers too


async def test_hashes_pages_by_next_page_and_refuses_unknown_parameters(
    inproc: InProcessCluster,
) -> None:
    api = inproc.api.url
    for i in range(3):
        await req("POST", f"{api}/upload?filename=h{i}", data=f"hash page {i}".encode() * 50)
    pages: dict[str, list[str]] = {}
    for name in ("next_page", "last_evaluated_key"):
        seen: list[str] = []
        status, body, _ = await req("GET", f"{api}/admin/hashes?limit=1")
        while True:
            assert status == 200, body
            seen += body["hashes"]
            if body["next_page"] is None:
                break
            assert len(seen) < 10, "the page key was ignored: page 1 again"
            status, body, _ = await req(
                "GET", f"{api}/admin/hashes", params={"limit": "1", name: body["next_page"]}
            )
        pages[name] = seen
    assert pages["next_page"] == pages["last_evaluated_key"]
    assert len(set(pages["next_page"])) == len(pages["next_page"]) >= 3
    for query in ("page=abc", "limit=1&nextpage=abc", "limit=\u00b2", "limit=1&limit=2"):
        status, body, _ = await req("GET", f"{api}/admin/hashes?{query}")
        assert status == 400, (query, body)
        assert body["error"]["code"] == "invalid_request"


async def test_lone_surrogates_in_names_answer_400(inproc: InProcessCluster) -> None:
    api = inproc.api.url
    plan = (
        b'{"name": "a\\ud800b", "size": 0, "sha256": "'
        + b"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        + b'", "chunker": "fixed:65536", "chunks": []}'
    )
    json_type = {"Content-Type": "application/json"}
    for path, body in (
        ("/init-upload", plan),
        ("/init-uploads", b'{"files": [' + plan + b"]}"),
        ("/admin/tokens", b'{"tenant": "default", "role": "user", "label": "\\udfff"}'),
    ):
        status, answer, _ = await req("POST", api + path, data=body, headers=json_type)
        assert status == 400, (path, answer)
        assert "surrogate" in answer["error"]["message"]


@pytest.fixture
async def slow_body_api(inproc: InProcessCluster) -> AsyncIterator[str]:
    """A second API app on the in-process cluster's coordinator, whose body budget is
    0.5 s + 1 MiB/s."""
    app = make_app(inproc.api.coordinator)
    app[BODY_TIMEOUTS] = BodyTimeouts(floor=0.5, min_rate=1 << 20)
    runner = web.AppRunner(app, **runner_kwargs())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def trickle(address: str, head: bytes, body: bytes, limit: float) -> tuple[bytes, float]:
    """Send ``head`` and then ``body`` a byte every 20 ms; the answer and when it came."""
    host, _, port = address.partition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    started = time.monotonic()
    answer = b""
    try:
        writer.write(head)
        for b in body:
            writer.write(bytes([b]))
            try:
                await writer.drain()
                answer += await asyncio.wait_for(reader.read(65536), 0.02)
            except TimeoutError:
                continue
            except ConnectionError:
                break
            if b"\r\n\r\n" in answer or time.monotonic() - started > limit:
                break
    finally:
        writer.close()
    return answer, time.monotonic() - started


def chunked_head(path: str, content_type: str) -> bytes:
    """The head of a POST with a chunked (undeclared) body."""
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n"
        f"Content-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()


def byte_chunks(body: bytes) -> bytes:
    """``body`` in chunked transfer encoding, one byte per chunk."""
    return b"".join(b"1\r\n" + bytes([c]) + b"\r\n" for c in body) + b"0\r\n\r\n"


async def test_multipart_fields_before_the_file_trickled_are_cut_off(slow_body_api: str) -> None:
    boundary = "xyzzy"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\n'.encode()
        + b"n" * 400  # 8 s at a byte per 20 ms
        + f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n'
        f"\r\nabc\r\n--{boundary}--\r\n".encode()
    )
    head = chunked_head("/upload", f"multipart/form-data; boundary={boundary}")
    answer, took = await trickle(slow_body_api, head, byte_chunks(body), limit=6.0)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
    assert took < 4.0, took


async def test_a_trickled_chunked_json_body_is_cut_off(slow_body_api: str) -> None:
    body = b'{"files": [' + b" " * 2000 + b"]}"
    head = chunked_head("/init-uploads", "application/json")
    answer, took = await trickle(slow_body_api, head, byte_chunks(body), limit=10.0)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
    assert took < 4.0, took


async def test_a_prompt_multipart_upload_with_fields_before_the_file(
    inproc: InProcessCluster,
) -> None:
    form = aiohttp.FormData()
    form.add_field("note", "hello")
    form.add_field("file", b"content after a field", filename="after.txt")
    status, body, _ = await req("POST", f"{inproc.api.url}/upload", data=form)
    assert status == 201, body
    assert body["name"] == "after.txt"
    form = aiohttp.FormData()
    form.add_field("note", "n" * (70 * 1024))
    form.add_field("file", b"x", filename="x")
    status, body, _ = await req("POST", f"{inproc.api.url}/upload", data=form)
    assert status == 413, body
