"""``FilePayload``: a chunk body sent from a file with ``sendfile`` (or read, without it)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from dfs.errors import IntegrityError
from dfs.transport.http import FilePayload, FileSlice, _send_slice, _sendfile_now, request
from tests.local_app import serving
from tests.tls_certs import make_tls

MIB = 1 << 20


def _echo_app() -> web.Application:
    """An application that answers each PUT with its body's size and sha256."""

    async def put(req: web.Request) -> web.Response:
        body = await req.read()
        return web.json_response({"size": len(body), "sha256": hashlib.sha256(body).hexdigest()})

    app = web.Application(client_max_size=8 * MIB)
    app.router.add_put("/", put)
    return app


@pytest.fixture
async def echo() -> AsyncIterator[str]:
    """A real server on a free loopback port that answers each PUT with its body's sha256."""
    async with serving(_echo_app()) as port:
        yield f"http://127.0.0.1:{port}/"


@pytest.fixture
def data_file(tmp_path: Path) -> tuple[Path, bytes]:
    data = random.Random(3).randbytes(3 * MIB + 17)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    return path, data


async def test_slices_arrive_exactly(echo: str, data_file: tuple[Path, bytes]) -> None:
    path, data = data_file
    fd = os.open(path, os.O_RDONLY)
    try:
        async with aiohttp.ClientSession() as session:
            for offset, size in [(0, MIB), (MIB + 5, 2 * MIB), (3 * MIB, 17)]:
                part = FilePayload(FileSlice(fd, offset, size))
                async with request(session, "PUT", echo, data=part) as resp:
                    got = await resp.json()
                want = data[offset : offset + size]
                assert got == {"size": size, "sha256": hashlib.sha256(want).hexdigest()}
    finally:
        os.close(fd)


async def test_bytes_and_slices_arrive_in_order(echo: str, data_file: tuple[Path, bytes]) -> None:
    """A /store-chunks body: its head in memory, then chunks sent from the file."""
    path, data = data_file
    fd = os.open(path, os.O_RDONLY)
    try:
        parts = [b"head", FileSlice(fd, 3, MIB), b"", FileSlice(fd, 2 * MIB, MIB + 17)]
        async with (
            aiohttp.ClientSession() as session,
            request(session, "PUT", echo, data=FilePayload(parts)) as resp,
        ):
            got = await resp.json()
        want = b"head" + data[3 : 3 + MIB] + data[2 * MIB :]
        assert got == {"size": len(want), "sha256": hashlib.sha256(want).hexdigest()}
    finally:
        os.close(fd)


async def test_a_file_that_shrank_is_an_integrity_error(
    echo: str, data_file: tuple[Path, bytes]
) -> None:
    """Not a connection failure (which would blame the node): the file is short."""
    path, _ = data_file
    fd = os.open(path, os.O_RDONLY)
    try:
        os.truncate(path, MIB)
        async with aiohttp.ClientSession() as session:
            part = FilePayload(FileSlice(fd, MIB // 2, MIB))
            with pytest.raises(IntegrityError, match="shorter than when it was scanned"):
                async with request(session, "PUT", echo, data=part):
                    pass
    finally:
        os.close(fd)


class _NoSendfileWriter:
    """A stream writer without a transport to sendfile to (as over TLS)."""

    def __init__(self) -> None:
        self.written = bytearray()

    async def write(self, chunk: bytes) -> None:
        self.written += chunk

    async def drain(self) -> None:
        return None


async def test_without_sendfile_the_bytes_are_read(data_file: tuple[Path, bytes]) -> None:
    path, data = data_file
    fd = os.open(path, os.O_RDONLY)
    try:
        writer = _NoSendfileWriter()
        await FilePayload(FileSlice(fd, 7, MIB)).write(writer)  # type: ignore[arg-type]
        assert bytes(writer.written) == data[7 : 7 + MIB]
    finally:
        os.close(fd)


async def test_slices_arrive_exactly_over_tls(
    tmp_path: Path, data_file: tuple[Path, bytes]
) -> None:
    """A TLS socket carries records: no slice may be sent to it raw with ``sendfile``."""
    ca, cert, key = make_tls(tmp_path / "tls")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)

    path, data = data_file
    fd = os.open(path, os.O_RDONLY)
    try:
        async with serving(_echo_app(), server_ctx) as port:
            url = f"https://127.0.0.1:{port}/"
            connector = aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=ca))
            async with aiohttp.ClientSession(connector=connector) as session:
                parts = [b"head", FileSlice(fd, 3, 2 * MIB)]
                async with request(session, "PUT", url, data=FilePayload(parts)) as resp:
                    got = await resp.json()
        want = b"head" + data[3 : 3 + 2 * MIB]
        assert got == {"size": len(want), "sha256": hashlib.sha256(want).hexdigest()}
    finally:
        os.close(fd)


async def test_a_slice_the_socket_takes_in_part_is_sent_whole(
    data_file: tuple[Path, bytes],
) -> None:
    """The first ``sendfile`` moves what the socket takes at once; the rest follows."""
    path, data = data_file
    received = bytearray()
    reading = asyncio.Event()
    done = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reading.wait()
        while piece := await reader.read(MIB):
            received.extend(piece)
        writer.close()
        done.set()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    fd = os.open(path, os.O_RDONLY)
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        sock = writer.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * 1024)
        size = 3 * MIB
        first = _sendfile_now(writer.transport, FileSlice(fd, 5, size))
        assert 0 < first < size  # the socket took a part only: the rest goes another way
        reading.set()
        await _send_slice(writer, FileSlice(fd, 5 + first, size - first))  # type: ignore[arg-type]
        writer.close()
        await asyncio.wait_for(done.wait(), 30)
        assert bytes(received) == data[5 : 5 + size]
    finally:
        os.close(fd)
        server.close()
        await server.wait_closed()
