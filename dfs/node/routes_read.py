"""``POST /get-chunks``: many chunks in one streamed answer.

A restore of thousands of small files is mostly one small chunk per file; a ``GET
/get-chunk`` each costs far more in round trips and per-request work than the bytes. This
route serves up to ``protocol.MAX_GET_BATCH`` chunks in one response.

The security model is the one of ``/get-chunk``, chunk by chunk: the body lists
``{"chunk_id", "cap"}`` entries, each ``cap`` the ``get`` capability the API minted for that
chunk on this node (the one the download plan carries for ``/get-chunk``). Every capability
is checked before anything is read, and one that does not check refuses the whole request
(401/403): so the answer never tells a caller without a grant which chunks this node holds.

The answer streams records in the order asked (``protocol.RECORD_HEADER``: raw chunk id,
status, length, then the bytes), so the client verifies each chunk as it arrives and memory
stays bounded on both sides: here at most ``READ_AHEAD`` chunks are read ahead of the one
being sent. Each chunk's bytes are re-hashed by the store before they are sent
(``ChunkStore.get``); a chunk that is missing or quarantined is a ``RECORD_NOT_FOUND``
record, one the store fails to read a ``RECORD_FAILED`` record, and the rest of the batch is
served (the client asks another replica for those).
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

from aiohttp import web

from dfs import auth, protocol
from dfs.chunkstore.base import ChunkStore
from dfs.errors import ChunkNotFound, DfsError, InvalidRequest
from dfs.ids import ChunkId, parse_chunk_id
from dfs.node.capabilities import check
from dfs.node.context import CONFIG, STORE
from dfs.server import read_json

READ_AHEAD = 8
"""Chunks read from the store ahead of the one being sent."""
FLUSH_BYTES = 256 * 1024
"""Records gathered before one write to the response (small chunks: fewer, larger writes)."""

Read = asyncio.Task[bytes | int]  # the chunk's bytes, or the status of a record without them


def _entries(body: dict[str, Any]) -> list[tuple[ChunkId, str]]:
    raw = body.get("chunks")
    if not isinstance(raw, list) or not 0 < len(raw) <= protocol.MAX_GET_BATCH:
        raise InvalidRequest(f"chunks must be a list of 1-{protocol.MAX_GET_BATCH} entries")
    out = []
    for entry in raw:
        if not isinstance(entry, dict):
            raise InvalidRequest("every chunks entry is an object {chunk_id, cap}")
        cap = entry.get("cap")
        out.append((parse_chunk_id(entry.get("chunk_id")), cap if isinstance(cap, str) else ""))
    return out


async def _read(store: ChunkStore, chunk_id: ChunkId) -> bytes | int:
    try:
        return await store.get(chunk_id)
    except ChunkNotFound:
        return protocol.RECORD_NOT_FOUND
    except DfsError:
        return protocol.RECORD_FAILED


async def get_chunks(request: web.Request) -> web.StreamResponse:
    cfg = request.app[CONFIG]
    body = await read_json(request, protocol.GET_BATCH_ENTRY_BYTES * protocol.MAX_GET_BATCH)
    entries = _entries(body)
    for chunk_id, cap in entries:
        check(cfg, cap or None, auth.OP_GET, chunk_id)
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    await response.prepare(request)
    await _stream(request.app[STORE], [c for c, _cap in entries], response)
    await response.write_eof()
    return response


async def _stream(store: ChunkStore, ids: list[ChunkId], response: web.StreamResponse) -> None:
    """Write every id's record in order, reading up to READ_AHEAD chunks ahead."""
    window: collections.deque[tuple[ChunkId, Read]] = collections.deque()
    pending = iter(ids)
    out = bytearray()
    try:
        for chunk_id in pending:
            window.append((chunk_id, asyncio.ensure_future(_read(store, chunk_id))))
            if len(window) >= READ_AHEAD:
                break
        while window:
            chunk_id, task = window.popleft()
            got = await task
            nxt = next(pending, None)
            if nxt is not None:
                window.append((nxt, asyncio.ensure_future(_read(store, nxt))))
            if isinstance(got, int):
                out += protocol.record_header(chunk_id, got, 0)
            else:
                out += protocol.record_header(chunk_id, protocol.RECORD_OK, len(got))
                if len(got) >= FLUSH_BYTES:  # a big chunk goes out as it is, not copied
                    await response.write(bytes(out))
                    out.clear()
                    await response.write(got)
                    continue
                out += got
            if len(out) >= FLUSH_BYTES:
                await response.write(bytes(out))
                out.clear()
        if out:
            await response.write(bytes(out))
    finally:
        for _c, task in window:
            task.cancel()
        if window:
            await asyncio.gather(*(t for _c, t in window), return_exceptions=True)


def add_routes(app: web.Application) -> None:
    app.router.add_post(protocol.GET_CHUNKS, get_chunks)
