"""``POST /get-chunks``: many chunks in one streamed answer.

A restore of thousands of small files is mostly one small chunk per file; a ``GET
/get-chunk`` each costs far more in round trips and per-request work than the bytes. This
route serves up to ``protocol.MAX_GET_BATCH`` chunks in one response.

Two ways to authorize a request, both checked before anything is read from the store, so
the answer never tells a caller without a grant which chunks this node holds:

- **one capability for the batch** (what clients send): a ``get-batch`` capability in
  ``X-Dfs-Capability``, bound to this node, the SHA-256 of the batch's ordered chunk-id list
  (``X-Dfs-Batch``, ``protocol.list_sha256``) and the tenant the API minted it for
  (``X-Dfs-Tenant``), checked from the headers before a byte of the body is read (401/403);
  the body ``{"chunk_ids": [...], "want": [positions]?}`` must then list exactly those ids
  in that order (403 otherwise), and ``want`` picks which of them to serve (a client that
  already has some, or asks this node only for the ones another replica failed to serve);
  no other chunk can be read with it. The API mints these in batched ``/download-plans``
  answers, only over chunks of the tenant's own files.
- **a capability per entry** (kept for older clients and plans): the body lists
  ``{"chunk_id", "cap"}`` entries, each ``cap`` the ``get`` capability the API minted for
  that chunk on this node; every one is checked, and one that does not check refuses the
  whole request. Such a body (up to ~200 KiB, ~7 MiB once parsed) is read before anything
  is checked, so at most ``UNSIGNED_BODIES`` of those over ``UNSIGNED_SMALL`` bytes are read
  at once: one more is answered 503 (``Busy``) before a byte of it is read, and its client
  asks another replica or sends it again after a pause. Without the bound, connections
  that declared such a body and sent it slowly pinned ~200 KiB each, unauthenticated.

The answer streams records in the order asked (``protocol.RECORD_HEADER``: raw chunk id,
status, length, then the bytes), so the client verifies each chunk as it arrives and memory
stays bounded on both sides: the store reads a group of chunks per call
(``ChunkStore.get_many``: one worker-thread hop, neighbouring pack records in one read, each
checked against its record's CRC-32, see ``dfs.chunkstore.pack_reads`` for why that is the
check a node needs on read), one group ahead of the one being sent. A chunk that is missing
or quarantined is a ``RECORD_NOT_FOUND`` record, one the store fails to read a
``RECORD_FAILED`` record, and the rest of the batch is served (the client asks another
replica for those). The records go out under ``dfs.server.SendDeadline``: a client that stops
reading is cut off (its connection aborted) rather than holding the request's reads for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from dfs import auth, protocol
from dfs.chunkstore.base import Buffer, ChunkStore
from dfs.config import NodeConfig
from dfs.errors import AuthError, Busy, ChunkNotFound, DfsError, Forbidden, InvalidRequest
from dfs.ids import ChunkId, parse_chunk_id, parse_tenant
from dfs.node.capabilities import check
from dfs.node.context import CONFIG, STORE, capability
from dfs.server import AnswerCutOff, SendDeadline, read_json

READ_GROUP = 128
"""Chunks the store reads per call (one worker-thread hop), at most READ_BYTES of them."""
READ_BYTES = 2 * 1024 * 1024
"""Bytes the store reads per call (a call reads at least one chunk): with one call ahead of
the records being sent, what a request holds in memory is about twice this."""
FLUSH_BYTES = 256 * 1024
"""A chunk this big goes to the response as it is; smaller records are gathered per call."""

Read = asyncio.Future[list[Buffer | DfsError]]

UNSIGNED_BODIES = 16
"""Per-entry bodies (their capabilities inside) over ``UNSIGNED_SMALL`` read at once."""
UNSIGNED_SMALL = 64 * 1024
"""A declared body this small is read with no slot: about what a connection costs anyway
(the API's and the gateway's ``SMALL_BODY``)."""


@dataclass
class UnsignedReads:
    """This node's slots for per-entry ``/get-chunks`` bodies (one event loop: no lock)."""

    free: int = UNSIGNED_BODIES

    @contextlib.contextmanager
    def slot(self, request: web.Request) -> Iterator[None]:
        """Held while the body is read and its capabilities checked; Busy when none is free.
        A body declared ``UNSIGNED_SMALL`` or less needs none."""
        declared = request.content_length
        if declared is not None and declared <= UNSIGNED_SMALL:
            yield
            return
        if self.free <= 0:
            raise Busy("too many unauthenticated get-chunks bodies at once: send it again")
        self.free -= 1
        try:
            yield
        finally:
            self.free += 1


UNSIGNED = web.AppKey("unsigned_reads", UnsignedReads)


_DIGEST = re.compile(r"[0-9a-f]{64}")


def _authorize_batch(request: web.Request, cfg: NodeConfig, cap: str) -> str:
    """Check a ``get-batch`` capability from the headers alone; the list digest it binds."""
    digest = request.headers.get(protocol.BATCH)
    if digest is None or not _DIGEST.fullmatch(digest):
        raise AuthError(f"a get-batch request needs {protocol.BATCH}: the digest its cap binds")
    tenant = parse_tenant(request.headers.get(protocol.TENANT), protocol.TENANT)
    check(cfg, cap, auth.OP_GET_BATCH, digest, extra=tenant)
    return digest


def _batch_ids(body: dict[str, Any], digest: str) -> list[ChunkId]:
    """The ids a checked batch body asks for: its list must be the one the capability
    binds; ``want`` (positions in that list, each at most once) picks which are served."""
    raw = body.get("chunk_ids")
    if not isinstance(raw, list) or not 0 < len(raw) <= protocol.MAX_GET_BATCH:
        raise InvalidRequest(f"chunk_ids must be a list of 1-{protocol.MAX_GET_BATCH} ids")
    ids = [parse_chunk_id(c) for c in raw]
    if protocol.list_sha256(ids) != digest:
        raise Forbidden("the body's chunk ids are not the list the capability grants")
    want = body.get("want")
    if want is None:
        return ids
    if not isinstance(want, list) or not 0 < len(want) <= len(ids):
        raise InvalidRequest("want must be a list of positions in chunk_ids")
    if len(set(want)) != len(want) or not all(type(n) is int and 0 <= n < len(ids) for n in want):
        raise InvalidRequest("want must hold distinct positions in chunk_ids")
    return [ids[n] for n in want]


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


async def get_chunks(request: web.Request) -> web.StreamResponse:
    cfg = request.app[CONFIG]
    limit = protocol.GET_BATCH_ENTRY_BYTES * protocol.MAX_GET_BATCH
    cap = capability(request)
    if cap:  # one capability for the batch, checked before the body is read
        digest = _authorize_batch(request, cfg, cap)
        ids = _batch_ids(await read_json(request, limit), digest)
    else:
        with request.app[UNSIGNED].slot(request):
            entries = _entries(await read_json(request, limit))
            for chunk_id, entry_cap in entries:
                check(cfg, entry_cap or None, auth.OP_GET, chunk_id)
        ids = [c for c, _cap in entries]
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    await response.prepare(request)
    deadline = SendDeadline(request)  # a client that stops reading is cut off

    async def send(part: Buffer) -> None:
        await deadline.send(lambda: response.write(part), len(part))

    # cut off, or the client hung up (ConnectionError): nothing more to send, nothing to report
    with contextlib.suppress(AnswerCutOff, ConnectionError):
        await _stream(request.app[STORE], ids, send)
        await deadline.send(response.write_eof, 0)
    return response


def _records(ids: Sequence[ChunkId], got: Sequence[Buffer | DfsError]) -> Iterator[Buffer]:
    """The records of ``got`` (the reads of ``ids``' first chunks), header and bytes."""
    for chunk_id, item in zip(ids, got, strict=True):
        if not isinstance(item, DfsError):
            yield protocol.record_header(chunk_id, protocol.RECORD_OK, len(item))
            yield item
        else:
            status = protocol.RECORD_NOT_FOUND
            if not isinstance(item, ChunkNotFound):
                status = protocol.RECORD_FAILED
            yield protocol.record_header(chunk_id, status, 0)


async def _stream(
    store: ChunkStore, ids: list[ChunkId], send: Callable[[Buffer], Awaitable[None]]
) -> None:
    """``send`` every id's record in order: the store reads ``READ_GROUP`` ids (up to
    ``READ_BYTES``) per call on one worker thread, the next group while this one is sent."""

    def read(start: int) -> Read | None:
        if start >= len(ids):
            return None
        return asyncio.ensure_future(store.get_many(ids[start : start + READ_GROUP], READ_BYTES))

    pos = 0
    nxt = read(0)
    try:
        while nxt is not None:
            got = await nxt
            start, pos = pos, pos + len(got)
            nxt = read(pos)
            # the small records of a group are joined into one write (one copy: the store's
            # buffers are views into its reads); a big chunk goes out as it is, not copied
            out: list[Buffer] = []
            for part in _records(ids[start:pos], got):
                if len(part) >= FLUSH_BYTES:
                    if out:
                        await send(b"".join(out))
                        out.clear()
                    await send(part)
                else:
                    out.append(part)
            if out:
                await send(b"".join(out))
    finally:
        if nxt is not None:
            nxt.cancel()
            await asyncio.gather(nxt, return_exceptions=True)


def add_routes(app: web.Application) -> None:
    app[UNSIGNED] = UnsignedReads()
    app.router.add_post(protocol.GET_CHUNKS, get_chunks)
