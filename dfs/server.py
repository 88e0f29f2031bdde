"""What the API and node aiohttp apps share: the error middleware, request helpers and the
server's limits against hostile or stalled clients.

Any ``DfsError`` raised by a handler becomes ``{"error": {"code", "message"}}`` with its
``http_status``; aiohttp's own HTTP errors (unknown route, wrong method, body too large) get
the same JSON shape; anything else is a bug: logged with its traceback, answered 500.

Limits (a client cannot pin a server or its memory):

- headers: at most ``MAX_HEADERS`` fields of ``MAX_FIELD_SIZE`` bytes, a request line of
  ``MAX_LINE_SIZE``; aiohttp answers 400 above them;
- time to send the request head, and idle time between requests: ``KEEPALIVE_TIMEOUT``
  (aiohttp arms the keep-alive timer at accept and closes a connection still waiting for a
  complete head when it fires: a "slowloris" trickling header bytes is cut off);
- bodies: every handler reads through ``read_body``/``read_json`` with an explicit byte bound
  (413 above it) and a time budget of ``BodyTimeouts.floor`` plus the bytes so far at
  ``BodyTimeouts.min_rate`` (408 when it runs out), so a client trickling bytes is cut off;
  memory grows with the bytes received, never with the declared length;
- answers: a handler that sends a big answer itself (a node's chunk reads) sends it through
  ``SendDeadline``/``send_answer``, the same budget for the bytes going out: a client that
  stops reading has its connection aborted, rather than holding the answer's buffers for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

from dfs.errors import (
    ConfigError,
    DfsError,
    InvalidRequest,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedMediaType,
)
from dfs.expect_continue import body_arrived, send_continue
from dfs.jsonio import json_bytes, parse_json
from dfs.logs import configure_logging
from dfs.transport.http import narrow_socket_reads, next_piece, widen_socket_reads

log = logging.getLogger("dfs.server")

T = TypeVar("T")

KEEPALIVE_TIMEOUT = 30.0
"""Seconds a connection may wait for a complete request head (longer than the aiohttp
client's 15 s pool keep-alive, so the client closes idle connections first)."""
LINGERING_TIME = 2.0
"""Seconds the server keeps reading (and dropping) the rest of a body it refused, so the
client sees the error answer rather than a reset; then the connection closes."""
MAX_LINE_SIZE = 8190
MAX_FIELD_SIZE = 8190
MAX_HEADERS = 64
JSON_IN_THREAD = 1 << 20
"""JSON bodies above this many bytes are decoded in a worker thread, off the event loop."""


@dataclass(frozen=True, slots=True)
class BodyTimeouts:
    """A body of n bytes must arrive within ``floor + n / min_rate`` seconds."""

    floor: float = 30.0
    min_rate: float = 64 * 1024.0

    def budget(self, size: int) -> float:
        return self.floor + size / self.min_rate


BODY_TIMEOUTS = web.AppKey("body_timeouts", BodyTimeouts)


class StreamDeadline:
    """The same rule for a body read piece by piece (a streamed upload): after ``floor``
    seconds, the bytes received must keep up with ``min_rate``, or RequestTimeout.

    Two more rules keep a slot from being held on credit or lost to a wait:
    - each read must also finish within the budget of what it asks for, counted from its
      own start (``floor + n / min_rate``): bytes sent fast early earn no stall later, so
      a client that sent a GiB and then stopped is cut off after ``floor``, not hours on;
    - the clock starts at the first read, not when the request arrived: a body waits for
      its stream slot before any of it is read (up to 30 s), and that wait is the
      server's, not the client's.

    The first read also sends the ``100 Continue`` that a client waiting for one is still
    owed (``dfs.expect_continue``; the API's and the gateway's middlewares send it earlier,
    once the request is authenticated)."""

    def __init__(self, request: web.Request, declared: int | None = None) -> None:
        self._request = request
        self._timeouts = request.app.get(BODY_TIMEOUTS) or BodyTimeouts()
        self._started: float | None = None
        self._received = 0
        self._declared = declared

    async def read(self, read: Callable[[int], Awaitable[bytes]], n: int) -> bytes:
        data = await self.within(lambda: read(n), n)
        self._received += len(data)
        return data

    def took(self, n: int) -> None:
        """``n`` bytes were read that had arrived already (nothing waited for: no timer)."""
        if self._started is None:
            self._started = asyncio.get_running_loop().time()
            body_arrived(self._request)
        self._received += n

    async def within(self, step: Callable[[], Awaitable[T]], ahead: int) -> T:
        """Await ``step()``, which reads at most ``ahead`` more bytes of the body (a multipart
        part's head, say), under the budget those bytes earn; RequestTimeout past it."""
        if self._started is None:
            await send_continue(self._request)
        now = asyncio.get_running_loop().time()
        if self._started is None:
            self._started = now
        until = self._received + ahead
        if self._declared is not None:  # never more time than the declared size earns
            until = min(until, self._declared)
        budget = self._timeouts.budget
        due = min(self._started + budget(until), now + budget(max(until - self._received, 0)))
        try:
            async with asyncio.timeout(max(due - now, 0.0)):
                return await step()
        except TimeoutError:
            raise RequestTimeout(
                f"body arrives too slowly ({self._received} bytes so far)"
            ) from None


class AnswerCutOff(Exception):
    """An answer its client did not take in time (``SendDeadline``): the connection was
    aborted, so nothing more of it can be sent; the handler returns its response as it is."""


class SendDeadline:
    """The body rule the other way: an answer of n bytes must be taken by its client within
    ``floor + n / min_rate`` seconds (``BodyTimeouts``) from when the handler starts sending.

    A client that stops reading is never cut off otherwise: TCP keeps a connection whose
    reader's window is closed open for ever, and aiohttp has no write timeout, so the handler
    (and every buffer of its answer, up to a whole chunk) would wait on it as long as the
    client likes: a few connections pinned a node's memory. Past the budget the connection
    is aborted (the bytes still buffered for it are dropped) and ``AnswerCutOff`` raised.
    """

    def __init__(self, request: web.Request) -> None:
        self._request = request
        self._timeouts = request.app.get(BODY_TIMEOUTS) or BodyTimeouts()
        self._started = asyncio.get_running_loop().time()
        self._sent = 0

    async def send(self, step: Callable[[], Awaitable[T]], size: int) -> T:
        """Await ``step()``, which sends ``size`` more bytes of the answer, within the budget
        the bytes sent so far earn; AnswerCutOff (the connection aborted) past it."""
        loop = asyncio.get_running_loop()
        self._sent += size
        due = self._started + self._timeouts.budget(self._sent)
        try:
            async with asyncio.timeout(max(due - loop.time(), 0.0)):
                return await step()
        except TimeoutError:
            transport = self._request.transport
            if transport is not None:
                transport.abort()
            req = self._request
            log.info("%s %s: the client did not take the answer in time", req.method, req.path)
            raise AnswerCutOff(f"answer not taken in time ({self._sent} bytes)") from None


async def send_answer(request: web.Request, response: web.Response, size: int) -> web.Response:
    """Send ``response`` (``size`` bytes of body) now, under ``SendDeadline``, and return it
    for the handler to return (aiohttp sends nothing more of it): a client that does not
    take it in time has its connection aborted instead of holding the answer for ever."""

    async def send() -> None:
        await response.prepare(request)
        await response.write_eof()

    # a client that hung up meanwhile (ConnectionError): left to aiohttp, as when it sends an
    # answer itself, not logged as an unhandled error and counted as the node's 500
    with contextlib.suppress(AnswerCutOff, ConnectionError):
        await SendDeadline(request).send(send, size)
    return response


def runner_kwargs() -> dict[str, Any]:
    """The AppRunner arguments both servers use: header bounds and the keep-alive timeout."""
    return {
        "keepalive_timeout": KEEPALIVE_TIMEOUT,
        "lingering_time": LINGERING_TIME,
        "max_line_size": MAX_LINE_SIZE,
        "max_field_size": MAX_FIELD_SIZE,
        "max_headers": MAX_HEADERS,
    }


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
    415: "unsupported_media_type",
    431: "request_header_fields_too_large",
    400: "invalid_request",
}


def json_response(data: Any, *, status: int = 200) -> web.Response:
    """``data`` as a JSON answer (``application/json``), encoded by orjson (``json_bytes``):
    every JSON answer of the API and the nodes (``dfs.api.context.json_answer`` adds the
    thread hand-off for big ones), a node's ``/store-chunks`` receipts among them, which
    aiohttp's ``web.json_response`` encoded with the standard library (~4% of a node's busy
    CPU in a backup of many small files)."""
    return web.Response(body=json_bytes(data), status=status, content_type="application/json")


def error_response(status: int, code: str, message: str) -> web.Response:
    return json_response({"error": {"code": code, "message": message}}, status=status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except DfsError as exc:
        if exc.http_status >= 500:
            log.warning("%s %s -> %s: %s", request.method, request.path, exc.code, exc.message)
        resp = json_response(exc.to_body(), status=exc.http_status)
        if isinstance(exc, RequestTimeout | PayloadTooLarge):
            resp.force_close()  # the rest of the body is not worth reading
        return resp
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        resp = error_response(exc.status, code, exc.reason)
        if "Allow" in exc.headers:  # a 405 says which methods the path has
            resp.headers["Allow"] = exc.headers["Allow"]
        return resp
    except ConnectionResetError:
        if request.transport is not None and not request.transport.is_closing():
            log.exception("unhandled error in %s %s", request.method, request.path)
        else:  # the caller hung up while we answered: nothing to answer, no fault here
            log.info("%s %s: the client closed the connection", request.method, request.path)
        return error_response(500, "internal", "internal server error (logged)")
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(500, "internal", "internal server error (logged)")


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )


async def read_json(request: web.Request, limit: int) -> dict[str, Any]:
    """Read a JSON object body of at most ``limit`` bytes (``Content-Type: application/json``)."""
    if not request.body_exists:
        raise InvalidRequest("a JSON object body is required")
    if not _is_json(request.content_type):
        raise UnsupportedMediaType(
            f"body must be application/json, not {request.content_type[:100]!r}"
        )
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"body of {request.content_length} bytes exceeds {limit}")
    raw = await read_body(request, limit)
    try:
        if len(raw) > JSON_IN_THREAD:
            body = await asyncio.to_thread(parse_json, raw)
        else:
            body = parse_json(raw)
    except ValueError as exc:  # orjson's reason: a lone surrogate, nesting too deep...
        raise InvalidRequest(f"body must be JSON ({str(exc)[:200]})") from None
    if not isinstance(body, dict):
        raise InvalidRequest("body must be a JSON object")
    return body


async def read_body(
    request: web.Request, limit: int, *, authorized: bool = False
) -> bytes | bytearray:
    """Read a body of at most ``limit`` bytes under the ``StreamDeadline`` rule.

    Memory grows with the bytes that really arrived, never with the declared length: a
    client that declares 16 MiB and sends 3 bytes costs 3 bytes (preallocating the declared
    length let unauthenticated connections pin the server's memory). Undeclared (chunked)
    bodies get the same progress rule as declared ones, not one budget for ``limit`` bytes.

    ``authorized``: the caller has already checked the request's capability (a node's chunk
    write), so the pieces of a declared length are kept as they arrive and joined once at
    the end (one copy; a single piece is not copied at all). Growing a bytearray piece by
    piece re-copies it as it grows: measured ~0.4 CPU s more per GiB received
    (bench/README.md); a buffer of the declared length allocated up front is zero-filled
    before the pieces are copied into it, a second pass over every byte.
    """
    declared = request.content_length
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"body of {declared} bytes exceeds {limit}")
    deadline = StreamDeadline(request, declared)
    if authorized and declared is not None:
        pieces = await _read_declared(request, deadline, declared)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)
    bound = limit if declared is None else declared
    buf = bytearray()
    while piece := await deadline.read(_read_any(request), _READ_AHEAD):
        if len(buf) + len(piece) > bound:
            if declared is None:
                raise PayloadTooLarge(f"body exceeds {limit} bytes")
            raise InvalidRequest(f"body is longer than its Content-Length {declared}")
        buf += piece
    if declared is not None and len(buf) != declared:
        raise InvalidRequest(f"body of {len(buf)} bytes is shorter than its Content-Length")
    return buf


async def read_body_pieces(request: web.Request, limit: int) -> list[bytes | bytearray]:
    """``read_body(..., authorized=True)`` of a declared length, left in the pieces it arrived
    in: for a caller that hashes, writes and forwards them as they are (a chunk write), the
    joining copy of every byte saved (~0.09 CPU s per GiB received, bench/README.md). Only
    for an authorized request (see ``read_body``); a body of undeclared length is read as
    ``read_body`` reads it, one piece."""
    declared = request.content_length
    if declared is None:
        return [await read_body(request, limit, authorized=True)]
    if declared > limit:
        raise PayloadTooLarge(f"body of {declared} bytes exceeds {limit}")
    return list(await _read_declared(request, StreamDeadline(request, declared), declared))


async def _read_declared(
    request: web.Request, deadline: StreamDeadline, declared: int
) -> list[bytes]:
    """A body of exactly ``declared`` bytes, as the pieces it arrived in, received in
    ``SOCKET_READ`` socket reads: an authorized chunk write's body is up to
    ``MAX_CHUNK_SIZE``, and each 256 KiB receive asyncio makes by default is a pass of the
    event loop, a parser feed and a piece for the hash and the write (bench/README.md)."""
    wider = widen_socket_reads(request.transport)  # for this body only
    pieces: list[bytes] = []
    got = 0
    try:
        while piece := await deadline.read(_read_any(request), _READ_AHEAD):
            got += len(piece)
            if got > declared:
                raise InvalidRequest(f"body is longer than its Content-Length {declared}")
            pieces.append(piece)
    finally:
        narrow_socket_reads(request.transport, wider)
    if got != declared:
        raise InvalidRequest(f"body of {got} bytes is shorter than its Content-Length")
    return pieces


_READ_AHEAD = 1 << 20
"""How many more bytes each read of a body may wait for under the deadline's rate."""


def _read_any(request: web.Request) -> Callable[[int], Awaitable[bytes]]:
    """``next_piece`` (whatever piece has arrived, no joining copy) in StreamDeadline's
    shape."""

    def read(_n: int) -> Awaitable[bytes]:
        return next_piece(request.content)

    return read


def query_param(request: web.Request, name: str) -> str:
    value = request.query.get(name)
    if value is None:
        raise InvalidRequest(f"query parameter {name!r} is required")
    return value


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


# --- process lifecycle, shared by dfs-api and dfs-node -------------------------------------


async def until_stopped(stop: asyncio.Event | None = None) -> None:
    """Wait for SIGTERM or SIGINT (systemd's stop, Ctrl-C), or for ``stop`` to be set."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


SERVICE_GC_THRESHOLD = 20_000
"""Objects a service allocates between young collections (Python's default: 700)."""


def quiet_collector() -> None:
    """The services' collector policy, as ``dfs.client.cli_main``'s: what the imports made
    moves to the permanent generation (``gc.freeze``: no collection walks the modules'
    objects again), and young collections run every ``SERVICE_GC_THRESHOLD`` allocations.
    Every request allocates dicts, lists and tuples that die young; with the defaults the
    API spent ~9% of its CPU in the collector during a backup of many small files into a
    bucket (``perf``: ``gc_collect_main``, ``visit_decref``, ``visit_reachable``). Cycles
    are still freed, a little later."""
    gc.freeze()
    gc.set_threshold(SERVICE_GC_THRESHOLD, 20, 20)


def run_service(prog: str, run: Callable[[], None]) -> int:
    """Run a service's ``run`` and turn its errors into one clear line and an exit code:
    invalid configuration never half-starts a process."""
    try:
        configure_logging(os.environ)
        quiet_collector()
        run()
    except ConfigError as exc:
        print(f"{prog}: invalid configuration: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except DfsError as exc:
        print(f"{prog}: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    return 0
