"""What the API and node aiohttp apps share: the error middleware and request helpers.

Any ``DfsError`` raised by a handler becomes ``{"error": {"code", "message"}}`` with its
``http_status``; aiohttp's own HTTP errors (unknown route, wrong method, body too large) get
the same JSON shape; anything else is a bug: logged with its traceback, answered 500.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from dfs.errors import DfsError, InvalidRequest, PayloadTooLarge

log = logging.getLogger("dfs.server")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    400: "invalid_request",
}


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except DfsError as exc:
        if exc.http_status >= 500:
            log.warning("%s %s -> %s: %s", request.method, request.path, exc.code, exc.message)
        return web.json_response(exc.to_body(), status=exc.http_status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        return error_response(exc.status, code, exc.reason)
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(500, "internal", "internal server error (logged)")


async def read_json(request: web.Request, limit: int) -> dict[str, Any]:
    """Read a JSON object body of at most ``limit`` bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"body of {request.content_length} bytes exceeds {limit}")
    raw = await read_body(request, limit)
    try:
        body = json.loads(raw)
    except ValueError:
        raise InvalidRequest("body must be JSON") from None
    if not isinstance(body, dict):
        raise InvalidRequest("body must be a JSON object")
    return body


async def read_body(request: web.Request, limit: int) -> bytearray:
    """Read a body of at most ``limit`` bytes into one buffer, without an extra copy."""
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"body of {request.content_length} bytes exceeds {limit}")
    expected = request.content_length
    if expected is None:
        buf = bytearray()
        async for piece in request.content.iter_chunked(1 << 20):
            buf += piece
            if len(buf) > limit:
                raise PayloadTooLarge(f"body exceeds {limit} bytes")
        return buf
    # Known length (every chunk PUT): fill one buffer allocated once, instead of growing
    # (and re-copying) a bytearray piece by piece. iter_any hands over what has arrived.
    buf = bytearray(expected)
    view = memoryview(buf)
    filled = 0
    async for piece in request.content.iter_any():
        end = filled + len(piece)
        if end > expected:
            raise InvalidRequest(f"body is longer than its Content-Length {expected}")
        view[filled:end] = piece
        filled = end
    view.release()
    if filled != expected:
        raise InvalidRequest(f"body of {filled} bytes is shorter than its Content-Length")
    return buf


def query_param(request: web.Request, name: str) -> str:
    value = request.query.get(name)
    if value is None:
        raise InvalidRequest(f"query parameter {name!r} is required")
    return value


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})
