"""A node reads few unauthenticated bodies at once.

``POST /get-chunks`` with a capability per entry carries its capabilities in its body (up to
~200 KiB), so the node reads the body before it can check anything. Connections that
declared such a body and then sent it slowly each pinned that much, for the body's whole
deadline, with no grant at all. Now only ``UNSIGNED_BODIES`` of them are read at once (a
small body, what a real client sends for a few chunks, needs no slot); one more is answered
503 before a byte of it is read. Raw sockets: a client library would send the whole body.
"""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest

from dfs import protocol
from dfs.node.routes_read import UNSIGNED
from tests.integration.conftest import InProcessCluster

pytestmark = pytest.mark.integration

DEADLINE = 10.0
BIG = 200_000  # declared: a per-entry body near the route's bound


def _entries(n: int) -> bytes:
    """A per-entry body whose capabilities do not check: 401 once it is read."""
    return json.dumps({"chunks": [{"chunk_id": "a" * 64, "cap": "x"}] * n}).encode()


async def _wait_for(cond: object, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.01)


async def test_unsigned_bodies_are_read_a_few_at_a_time(inproc: InProcessCluster) -> None:
    node = inproc.nodes[0]
    reads = node.runner.app[UNSIGNED]
    reads.free = 2
    url = f"{node.url}{protocol.GET_CHUNKS}"
    stalled: list[asyncio.StreamWriter] = []
    try:
        await _hold_two_slots(node.port, stalled)
        await _wait_for(lambda: reads.free == 0, "the stalled bodies hold the slots")
        big = _entries(1000)
        assert len(big) > 64 * 1024
        json_type = {"Content-Type": "application/json"}
        async with aiohttp.ClientSession() as s:
            async with s.post(url, data=big, headers=json_type) as resp:
                assert resp.status == 503  # refused before its body was read
                assert (await resp.json())["error"]["code"] == "busy"
            async with s.post(url, data=_entries(3), headers=json_type) as resp:
                assert resp.status == 401  # a small body needs no slot: read, checked, refused
            for w in stalled:
                w.close()
            await _wait_for(lambda: reads.free == 2, "closed connections give their slots back")
            async with s.post(url, data=big, headers=json_type) as resp:
                assert resp.status == 401  # read now, and its capabilities checked
    finally:
        for w in stalled:
            w.close()


async def _hold_two_slots(port: int, stalled: list[asyncio.StreamWriter]) -> None:
    """Two connections that declare a big body, send its first bytes, then nothing."""
    head = (
        f"POST {protocol.GET_CHUNKS} HTTP/1.1\r\nHost: node\r\n"
        f"Content-Type: application/json\r\nContent-Length: {BIG}\r\n\r\n"
    )
    for _ in range(2):
        _r, w = await asyncio.open_connection("127.0.0.1", port)
        stalled.append(w)
        w.write(head.encode() + b'{"chunks": [')
        await w.drain()
