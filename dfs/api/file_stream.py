"""Streaming a complete file's verified bytes as an HTTP answer (whole, or one Range).

Shared by the seed's signed download (``dfs.api.routes_seed``) and the namespace's object
GET (``dfs.api.routes_objects``): one place decides the headers of served user bytes
(``Content-Disposition: attachment`` with the name, ``Accept-Ranges``, the sha256), reads
only the chunks a Range needs, and sends a byte only after its chunk verified. Each chunk
goes out under a ``dfs.server.SendDeadline`` of its own: a client that stops reading (TCP
keeps its connection open for ever, and aiohttp has no write timeout) is cut off instead of
holding the handler and a chunk's buffers as long as it likes; time this server spends
fetching chunks from the nodes does not count against the client.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import aclosing
from functools import partial
from typing import Any
from urllib.parse import quote

from aiohttp import hdrs, web

from dfs.api import download_plans, ranges
from dfs.api.coordinator import Coordinator
from dfs.api.verified_reads import read_verified, read_verified_pieces
from dfs.errors import DfsError
from dfs.meta.base import FileRecord
from dfs.server import AnswerCutOff, SendDeadline, error_response

log = logging.getLogger("dfs.api.file_stream")

OCTET_STREAM = "application/octet-stream"


def base_name(name: str) -> str:
    """The last path segment of ``name``: what a download is saved as."""
    return name.replace("\\", "/").rsplit("/", 1)[-1] or "download"


def disposition(name: str) -> str:
    """``attachment`` with the last path segment of ``name`` (ASCII fallback + RFC 5987)."""
    base = base_name(name)
    ascii_name = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in base
    )
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(base)}"


def _headers(
    rec: FileRecord, name: str, content_type: str, rng: ranges.ByteRange | None
) -> dict[str, str]:
    headers = {
        "Content-Type": content_type or OCTET_STREAM,
        "Content-Disposition": disposition(name),
        "Accept-Ranges": "bytes",
        "X-Dfs-Sha256": rec.sha256,
    }
    if rng is not None:
        headers["Content-Range"] = rng.content_range()
    return headers


def _unsatisfiable(size: int) -> web.Response:
    resp = error_response(416, "range_not_satisfiable", f"the file has {size} bytes")
    resp.headers["Content-Range"] = f"bytes */{size}"
    return resp


async def verified_bytes(
    coord: Coordinator, plan: dict[str, Any], rng: ranges.ByteRange | None
) -> AsyncGenerator[bytes, None]:
    """The file's verified bytes, or only those of ``rng`` (reading only its chunks)."""
    if rng is None:
        async with aclosing(read_verified(coord, plan)) as whole:
            async for data in whole:
                yield data
        return
    wanted = list(ranges.pieces(plan["chunks"], rng))
    i = 0
    async with aclosing(read_verified(coord, {"chunks": [c for c, _, _ in wanted]})) as sliced:
        async for data in sliced:
            _, lo, hi = wanted[i]
            i += 1
            yield data[lo:hi] if (lo, hi) != (0, len(data)) else data


async def _send(
    request: web.Request, resp: web.StreamResponse, pieces: Sequence[bytes | memoryview]
) -> None:
    """A chunk's pieces sent under a budget of their own, from now: a client that stops
    reading is cut off, never one that reads while this server waits on the nodes."""

    async def write() -> None:
        for piece in pieces:
            await resp.write(piece)

    await SendDeadline(request).send(write, sum(memoryview(p).nbytes for p in pieces))


async def stream_file(
    request: web.Request,
    coord: Coordinator,
    rec: FileRecord,
    *,
    name: str | None = None,
    content_type: str = OCTET_STREAM,
    extra: Mapping[str, str] | None = None,
    native: bool = True,
) -> web.StreamResponse:
    """Answer ``request`` with ``rec``'s bytes (or the Range it asks for); HEAD answers the
    same headers and no body. ``name`` (default the file's) goes in Content-Disposition.
    ``native=False`` (the S3 gateway) leaves out dfs's own Content-Disposition and
    X-Dfs-Sha256: an S3 object answers only its stored headers (in ``extra``)."""
    try:
        rng = ranges.parse(request.headers.get(hdrs.RANGE), rec.size)
    except ranges.Unsatisfiable:
        return _unsatisfiable(rec.size)
    resp = web.StreamResponse(status=200 if rng is None else 206)
    resp.headers.update(_headers(rec, rec.name if name is None else name, content_type, rng))
    if not native:
        del resp.headers["Content-Disposition"], resp.headers["X-Dfs-Sha256"]
    resp.headers.update(extra or {})
    resp.content_length = rec.size if rng is None else rng.length
    if request.method == hdrs.METH_HEAD:
        return resp  # aiohttp sends the headers; a HEAD answer has no body
    plan = await download_plans.plan_of(coord, rec)
    await resp.prepare(request)
    send = partial(_send, request, resp)

    try:
        # closed as soon as a write fails: the fetches ahead stop then, not when collected
        if rng is None:  # each chunk's pieces as they arrived: no join, a copy of every byte
            async with aclosing(read_verified_pieces(coord, plan)) as chunks:
                async for pieces in chunks:
                    await send(pieces)
        else:
            async with aclosing(verified_bytes(coord, plan, rng)) as parts:
                async for data in parts:
                    await send((data,))
    except AnswerCutOff:
        log.info("download of %s: the client did not take it in time", rec.file_id)
        return resp
    except DfsError as exc:
        # Headers are gone: the only honest signal left is a short body on a dropped
        # connection (Content-Length tells the client it is incomplete).
        log.error("download of %s aborted: %s", rec.file_id, exc.message)
        if request.transport is not None:
            request.transport.abort()
        return resp
    except ConnectionResetError:
        log.info("download of %s: the client went away", rec.file_id)
        return resp
    await resp.write_eof()
    return resp
