"""``Expect: 100-continue`` on the API and a node run in process, where the tests turn every
warning into an error (``filterwarnings = error``), as the e2e tests (``test_expect_continue``)
cannot: the deferred ``100`` keeps its flag under a typed request key
(``dfs.expect_continue``), so recording it warns nothing. Under a plain string key aiohttp
warned ``NotAppKeyWarning`` at every such request (once per process in a service), which
here answered 500 before any handler ran."""

from __future__ import annotations

import asyncio
import hashlib
import json

import pytest
from aiohttp import web

from tests.integration.conftest import InProcessCluster
from tests.integration.test_namespace_api import tokens

pytestmark = pytest.mark.integration

DEADLINE = 10.0


@pytest.fixture(autouse=True)
def warned_afresh() -> None:
    """aiohttp warns of a string request key once per process: forget that it did, so each
    test sees the warning an earlier one (a boto3 PutObject through the gateway) took."""
    getattr(web.BaseRequest, "_seen_str_keys", set()).discard("dfs.continue_pending")


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def first_answer(conn: Connection, head: str) -> tuple[int, dict[str, str]]:
    """Send only ``head`` (a request that waits for ``100``); the status and headers of the
    first answer."""
    reader, writer = conn
    writer.write(head.encode())
    raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE)
    status_line, *fields = raw.decode("latin-1").rstrip("\r\n").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (f.split(":", 1) for f in fields)}
    return int(status_line.split()[1]), headers


async def test_the_api_invites_a_body_in_process(inproc: InProcessCluster) -> None:
    (alice,) = await tokens(inproc.api.url, "alice")
    body = json.dumps({"label": "expect-continue"}).encode()
    head = (
        "POST /access-keys HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {alice}\r\nContent-Length: {len(body)}\r\n"
        "Expect: 100-continue\r\n\r\n"
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", inproc.api.port)
    try:
        status, _ = await first_answer((reader, writer), head)
        assert status == 100
        writer.write(body)
        raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE)
        assert raw.startswith(b"HTTP/1.1 201 "), raw
    finally:
        writer.close()


async def test_a_node_refuses_an_uninvited_chunk_in_process(inproc: InProcessCluster) -> None:
    data = b"chunk" * 1000
    chunk_id = hashlib.sha256(data).hexdigest()
    head = (
        f"PUT /store-chunk?chunk_id={chunk_id} HTTP/1.1\r\nHost: node\r\n"
        f"X-Dfs-Capability: not-a-capability\r\nContent-Length: {len(data)}\r\n"
        "Expect: 100-continue\r\n\r\n"
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", inproc.nodes[0].port)
    try:
        status, headers = await first_answer((reader, writer), head)
        assert 400 <= status < 500, (status, headers)  # refused by its capability check, not a 500
        assert headers.get("connection", "").lower() == "close"
    finally:
        writer.close()
