"""A chunk body is received as the pieces the socket delivered: ``next_piece`` hands out
each buffered piece as it is (``readany`` would join the ones buffered together), skips a
chunked body's chunk ends, and a node's authorized body is received in ``SOCKET_READ``
socket reads; every byte arrives, in order."""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.base_protocol import BaseProtocol
from aiohttp.streams import EMPTY_PAYLOAD
from aiohttp.test_utils import TestClient, TestServer

import dfs.server
from dfs.server import read_body, read_body_pieces
from dfs.transport.http import SOCKET_READ, next_piece


def _stream() -> aiohttp.StreamReader:
    loop = asyncio.get_running_loop()
    return aiohttp.StreamReader(BaseProtocol(loop), 1 << 20, loop=loop)  # never paused here


async def test_pieces_buffered_together_come_back_one_by_one() -> None:
    stream = _stream()
    pieces = [os.urandom(n) for n in (100, 300_000, 3)]
    for piece in pieces:
        stream.feed_data(piece)
    stream.feed_eof()
    got = [await next_piece(stream) for _ in range(len(pieces) + 1)]
    assert got == [*pieces, b""]
    assert all(a is b for a, b in zip(got, pieces, strict=False))  # the same objects: no copy


async def test_a_chunked_bodys_chunk_ends_are_not_its_end() -> None:
    stream = _stream()
    for piece in (b"abc", b"defg"):
        stream.begin_http_chunk_receiving()
        stream.feed_data(piece)
        stream.end_http_chunk_receiving()
    stream.begin_http_chunk_receiving()  # an empty chunk: only a chunk end
    stream.end_http_chunk_receiving()
    stream.feed_eof()
    got = [await next_piece(stream) for _ in range(3)]
    assert got == [b"abc", b"defg", b""]


async def _body_chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def test_an_empty_body_ends_at_once_however_often_it_is_read() -> None:
    """aiohttp gives every body-less request the one shared ``EMPTY_PAYLOAD``, whose
    ``readchunk`` says (b"", True) after its first call: still the end, never a loop."""
    for _ in range(3):
        assert await asyncio.wait_for(next_piece(EMPTY_PAYLOAD), 5) == b""

    async def pieces(request: web.Request) -> web.Response:
        return web.Response(body=b"".join(await read_body_pieces(request, 1 << 20)))

    async def whole(request: web.Request) -> web.Response:
        return web.Response(body=bytes(await read_body(request, 1 << 20, authorized=False)))

    app = web.Application()
    app.router.add_put("/pieces", pieces)
    app.router.add_put("/whole", whole)
    async with TestClient(TestServer(app)) as client:
        for path in ("/pieces", "/whole", "/pieces", "/whole"):
            answer = await asyncio.wait_for(client.put(path, data=b""), 10)
            assert answer.status == 200
            assert await answer.read() == b""


async def test_a_declared_body_arrives_whole_in_wide_socket_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An authorized body of declared length (a node's chunk write) comes back as its
    pieces, every byte in order, its connection asking the socket ``SOCKET_READ`` bytes per
    receive while that body arrives, and asyncio's own size again after it (the next
    request on the connection may be anyone's); an undeclared (chunked) body reads whole
    too."""
    seen: dict[str, object] = {}
    during: set[object] = set()
    transports: list[asyncio.BaseTransport | None] = []

    async def watched(stream: aiohttp.StreamReader) -> bytes:
        if transports:  # inside ``pieces``'s read
            during.add(getattr(transports[-1], "max_size", None))
        return await next_piece(stream)

    monkeypatch.setattr(dfs.server, "next_piece", watched)

    async def pieces(request: web.Request) -> web.Response:
        transports.append(request.transport)
        before = getattr(request.transport, "max_size", None)
        parts = await read_body_pieces(request, 16 << 20)
        transports.clear()
        seen["max_size"] = getattr(request.transport, "max_size", None)
        seen["before"] = before
        return web.Response(body=b"".join(parts))

    async def chunked(request: web.Request) -> web.Response:
        return web.Response(body=bytes(await read_body(request, 16 << 20, authorized=True)))

    app = web.Application(client_max_size=16 << 20)
    app.router.add_put("/pieces", pieces)
    app.router.add_put("/chunked", chunked)
    data = os.urandom(5 << 20)
    async with TestClient(TestServer(app)) as client:
        answer = await client.put("/pieces", data=io.BytesIO(data))
        assert await answer.read() == data
        answer = await client.put("/chunked", data=_body_chunks(data, 70_000))
        assert await answer.read() == data
    assert during == {SOCKET_READ}
    assert seen["max_size"] == seen["before"]
    assert isinstance(seen["before"], int)
    assert seen["before"] < SOCKET_READ
