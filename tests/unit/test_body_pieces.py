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
from aiohttp import web
from aiohttp.base_protocol import BaseProtocol
from aiohttp.test_utils import TestClient, TestServer

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


async def test_a_declared_body_arrives_whole_in_wide_socket_reads() -> None:
    """An authorized body of declared length (a node's chunk write) comes back as its
    pieces, every byte in order, its connection asking the socket ``SOCKET_READ`` bytes per
    receive; an undeclared (chunked) body reads whole too."""
    seen: dict[str, object] = {}

    async def pieces(request: web.Request) -> web.Response:
        parts = await read_body_pieces(request, 16 << 20)
        seen["max_size"] = getattr(request.transport, "max_size", None)
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
    assert seen["max_size"] == SOCKET_READ
