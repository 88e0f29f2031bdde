"""HTTP plumbing shared by ``ApiClient`` and ``NodeClient``: sessions, timeouts, error mapping.

A server's JSON error body becomes the same ``DfsError`` class here that the server raised;
connection failures become ``Unavailable`` (``Unreachable`` when no answer came at all, not
even a slow one). aiohttp client exceptions are translated here and nowhere else. Must not
import ``aiohttp.web``.
"""

from __future__ import annotations

import asyncio
import errno
import os
import weakref
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp

from dfs.errors import DfsError, IntegrityError, Unavailable, Unreachable, from_body
from dfs.jsonio import compact_json, parse_json
from dfs.transport.tls import verified_context

DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 120.0
# aiohttp's default (64 KiB) pauses the socket every 128 KiB of a multi-MiB chunk body;
# 1 MiB measured ~1.3-1.5x faster chunk downloads here (bench/README.md)
DEFAULT_READ_BUFSIZE = 1 << 20
SOCKET_READ = 1 << 20
"""Bytes a connection carrying a chunk-sized body asks of the socket per receive (asyncio's
selector transport asks 256 KiB): each receive is a pass of the event loop, a parser feed
and a wake-up of the reader, four times fewer per MiB at this size. Matches the 1 MiB
``read_bufsize`` of the sessions and servers here: aiohttp pauses the socket once twice
that is buffered, so a connection holds at most 3 MiB unread (2.25 MiB at 256 KiB).
Measured for the S3 gateway's bodies and the nodes' chunk writes (bench/README.md)."""


def widen_socket_reads(transport: Any) -> int | None:
    """Receive ``SOCKET_READ`` bytes at once on this connection from now on: a plain TCP
    transport of asyncio's selector loop (``max_size``); any other transport (TLS, none)
    is left as it is. The same bytes arrive in the same order, in fewer pieces. Returns the
    receive size it replaced (None when nothing changed), for ``narrow_socket_reads``."""
    size = getattr(transport, "max_size", None)
    if isinstance(size, int) and size < SOCKET_READ:
        transport.max_size = SOCKET_READ
        return size
    return None


def narrow_socket_reads(transport: Any, size: int | None) -> None:
    """Give back the receive size ``widen_socket_reads`` replaced: so the later requests of a
    kept-alive connection (unauthenticated ones among them) are received as before."""
    if size is not None and transport is not None:
        transport.max_size = size


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
    session = aiohttp.ClientSession(
        timeout=timeout,
        connector=connector,
        raise_for_status=False,
        auto_decompress=False,
        read_bufsize=read_bufsize,
        json_serialize=compact_json,
    )
    _DEFAULT_TLS.add(session)
    return session


_DEFAULT_TLS: weakref.WeakSet[aiohttp.ClientSession] = weakref.WeakSet()
"""The sessions ``make_session`` made: their connectors leave TLS to aiohttp's defaults, so
``request`` gives their https requests ``tls.verified_context``. A session made otherwise
(with a TLS context of its own on its connector, say) keeps its own."""


async def next_piece(stream: aiohttp.StreamReader) -> bytes:
    """The next piece of a body as one socket read delivered it, b"" at its end.

    ``readany`` returns every piece buffered at the time joined into one (a copy of each
    byte whenever the reader fell behind the socket, which a busy event loop does for most
    of a chunk body: bench/README.md); ``readchunk`` hands out one buffered piece at a
    time, as it is. A chunked-encoded body's chunk ends come back as empty pieces marked
    as ends, skipped here: only the body's end returns b"". A request or answer without a
    body has aiohttp's one shared ``EmptyStreamReader``, whose ``readchunk`` answers
    ``(b"", True)`` at once after its first call and never suspends: looping on that would
    hold the event loop forever, so an empty piece at end of stream is the end whatever its
    mark says.
    """
    while True:
        data, chunk_end = await stream.readchunk()
        if data or not chunk_end or stream.at_eof():
            return data


async def error_from_response(resp: aiohttp.ClientResponse) -> DfsError:
    raw = await resp.read()
    try:
        body: object = parse_json(raw)
    except ValueError:
        text = raw[:200].decode("utf-8", "replace").strip()
        body = {"error": {"code": "", "message": f"HTTP {resp.status} from {resp.url}: {text}"}}
    return from_body(resp.status, body)


@asynccontextmanager
async def request(
    session: aiohttp.ClientSession, method: str, url: str, **kwargs: Any
) -> AsyncIterator[aiohttp.ClientResponse]:
    """Send a request; yield the response if it is 2xx, raise its DfsError otherwise. An
    https request of a ``make_session`` session is made with ``tls.verified_context``
    (never aiohttp's default contexts, which ``tls.import_aiohttp`` leaves without CA
    certificates); another session's keeps the TLS context it was made with."""
    ours = session in _DEFAULT_TLS and "ssl" not in kwargs
    if ours and url[:6].lower() == "https:":
        kwargs["ssl"] = await verified_context()
    try:
        async with await _sent(session, method, url, kwargs, ours) as resp:
            if resp.status >= 400:
                raise await error_from_response(resp)
            yield resp
    except aiohttp.ClientPayloadError as exc:
        raise Unreachable(f"{method} {url}: response cut short: {exc}") from None
    except (aiohttp.ClientConnectionError, TimeoutError) as exc:
        if isinstance(exc.__cause__, DfsError):  # the body's own error (``FilePayload``)
            raise exc.__cause__ from None
        what = f"{method} {url}: {type(exc).__name__}: {exc}"
        if isinstance(exc, TimeoutError):  # an answer too slow to wait for: not unreachable
            raise Unavailable(what) from None
        raise Unreachable(what) from None


async def _sent(
    session: aiohttp.ClientSession, method: str, url: str, kwargs: dict[str, Any], ours: bool
) -> aiohttp.ClientResponse:
    """The response to a request. A request of ``make_session``'s (``ours``) to an http
    URL has no ``ssl``: an answer that redirects it to an https URL is followed with
    aiohttp's default context, which ``tls.import_aiohttp`` leaves without CA certificates,
    and fails its certificate check; it is then sent again with ``tls.verified_context``,
    whose check decides."""
    try:
        return await session.request(method, url, **kwargs)
    except aiohttp.ClientConnectorCertificateError:
        if not ours or "ssl" in kwargs:
            raise
    return await session.request(method, url, **kwargs, ssl=await verified_context())


async def request_json(session: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> Any:
    async with request(session, method, url, **kwargs) as resp:
        raw = (await resp.read()).strip()
        if not raw:
            return None  # as aiohttp's resp.json() answers an empty body
        try:
            # JSON is UTF-8 (RFC 8259): the bytes decoded as such, without the Content-Type
            # parsing resp.json() repeats per answer (one per small chunk)
            return parse_json(raw)
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
            # a view: what the socket does not take at once is kept as a slice of it, where
            # bytes would be sliced into a copy of the rest first (and then buffered)
            await writer.write(part if isinstance(part, memoryview) else memoryview(part))


@dataclass(frozen=True)
class FileSlice:
    """``size`` bytes at ``offset`` of the open file ``fd``: a chunk body sent as it is on
    disk now (the receiver hashes it against the chunk id, so bytes that changed since the
    scan are refused there)."""

    fd: int
    offset: int
    size: int


Part = bytes | bytearray | memoryview | FileSlice
"""A piece of a ``FilePayload``: bytes in memory, or a slice of a file."""


class FilePayload(aiohttp.payload.Payload):
    """A body of ``FileSlice`` parts (and bytes between them) whose slices are sent with
    ``sendfile``: the kernel moves the bytes from the page cache to the socket. Reading them
    into Python memory first and writing that costs a read copy, the page faults of a fresh
    buffer per chunk and the socket write copy, about 0.5 CPU s per GiB of an upload's
    client (bench/README.md). A transport without sendfile (TLS) gets the bytes read and
    written instead.

    A file that shrank under the upload sends short: ``IntegrityError`` (which
    ``request`` raises as itself, not as a connection failure blamed on the node).
    """

    _value: list[Part]

    def __init__(self, value: FileSlice | Sequence[Part]) -> None:
        parts = [value] if isinstance(value, FileSlice) else list(value)
        super().__init__(parts, content_type="application/octet-stream")
        self._size = sum(
            p.size if isinstance(p, FileSlice) else memoryview(p).nbytes for p in parts
        )

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        parts = [_read(p) if isinstance(p, FileSlice) else bytes(p) for p in self._value]
        return b"".join(parts).decode(encoding, errors)

    async def write(self, writer: aiohttp.abc.AbstractStreamWriter) -> None:
        await writer.write(b"")  # the request head, on its own (see ChunkPayload)
        for part in self._value:
            if isinstance(part, FileSlice):
                await _send_slice(writer, part)
            else:
                await writer.write(part)


def _read(part: FileSlice) -> bytes:
    data = os.pread(part.fd, part.size, part.offset)
    if len(data) != part.size:
        raise IntegrityError("the file is shorter than when it was scanned")
    return data


def _is_tls(transport: asyncio.BaseTransport) -> bool:
    """Whether the transport encrypts (its socket carries TLS records, not the bytes)."""
    return any(transport.get_extra_info(k) is not None for k in ("sslcontext", "ssl_object"))


def _sendfile_now(transport: asyncio.BaseTransport, part: FileSlice) -> int:
    """Bytes of ``part`` one ``sendfile`` call moved to the transport's own socket at once,
    or 0 where that is not safe (the transport still buffers bytes of its own, which go
    first) or the socket takes nothing now; ``loop.sendfile`` sends whatever is left. Not
    for a TLS transport (``_is_tls``).

    Most chunk slices go out whole in this one call; ``loop.sendfile`` for each of them
    cost a duplicated descriptor, two ``fstat``, a ``lseek``, four ``epoll_ctl`` (reading
    paused and resumed, a writer added and removed), a wait for the socket to become
    writable again and asyncio's bookkeeping around them, per chunk (bench/README.md)."""
    if not isinstance(transport, asyncio.WriteTransport) or transport.is_closing():
        return 0
    sock = transport.get_extra_info("socket")
    if sock is None or transport.get_write_buffer_size():
        return 0
    try:
        return os.sendfile(sock.fileno(), part.fd, part.offset, part.size)
    except (BlockingIOError, InterruptedError):
        return 0
    except OSError as exc:
        if exc.errno in _NO_SENDFILE:
            return 0  # not a socket sendfile serves: loop.sendfile decides, as before
        raise


_NO_SENDFILE = frozenset(
    {errno.EINVAL, errno.ENOTSOCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EBADF}
)


async def _send_slice(writer: aiohttp.abc.AbstractStreamWriter, part: FileSlice) -> None:
    """One slice to the socket with sendfile, or read and written where there is none."""
    transport = getattr(writer, "transport", None)
    await writer.drain()
    if transport is None or _is_tls(transport):
        # loop.sendfile refuses a TLS transport with RuntimeError, not as "not available"
        await writer.write(await asyncio.to_thread(_read, part))
        return
    first = _sendfile_now(transport, part)
    if first == part.size:
        return
    part = FileSlice(part.fd, part.offset + first, part.size - first)
    # a file object of its own: loop.sendfile seeks it when done (the position is
    # shared with ``fd``, which every reader uses only at explicit offsets)
    with os.fdopen(os.dup(part.fd), "rb", buffering=0) as f:
        try:
            sent = await asyncio.get_running_loop().sendfile(
                transport, f, part.offset, part.size, fallback=False
            )
        except (NotImplementedError, asyncio.SendfileNotAvailableError):
            sent = -1  # no native sendfile on this transport, and nothing sent
    if sent < 0:
        await writer.write(await asyncio.to_thread(_read, part))
    elif sent != part.size:
        raise IntegrityError("the file is shorter than when it was scanned")
