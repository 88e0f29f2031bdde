"""The storage node's chunk routes: store one chunk, read one, ask which are here, status.

| method | path          | answer                                                          |
|--------|---------------|-----------------------------------------------------------------|
| PUT    | /store-chunk  | 201 durable on every listed node (+ receipt); 401/403 capability; |
|        |               | 422 hash mismatch; 502 a replica failed; 507 disk full          |
| GET    | /get-chunk    | 200 verified bytes; 404 missing or quarantined                  |
| POST   | /has-chunks   | ``{"present": [...]}`` for ``{"chunk_ids": [...]}`` (``verify``: |
|        |               | only copies that read back intact)                              |
| GET    | /status       | node id, used/capacity bytes, chunk count, async backlog        |

Each needs a capability for exactly that operation, chunk and node (``dfs.node.context``).
Writes are checked here and stored and replicated by the node's ``ReplicaForwarder``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from aiohttp import web

from dfs import auth, protocol
from dfs.chunkstore.base import Buffer, ChunkStore
from dfs.errors import DfsError, InvalidRequest
from dfs.ids import ChunkId, parse_chunk_id, parse_file_id
from dfs.node.capabilities import check_put, check_replicate, receipt
from dfs.node.context import (
    CONFIG,
    FORWARDER,
    STORE,
    authorize,
    capability,
    int_query,
    is_forwarded,
)
from dfs.node.forwarding import Target
from dfs.server import json_response, query_param, read_body_pieces, read_json, send_answer
from dfs.transport.http import ChunkPayload

log = logging.getLogger("dfs.node")


@dataclass(frozen=True)
class _Write:
    """What a checked ``/store-chunk`` request asks of this node."""

    forwarded: bool  # a primary's replica write: no receipt, no fan-out
    file_id: str = ""
    targets: list[Target] = field(default_factory=list)
    asynchronous: bool = False


def _authorize_write(request: web.Request, chunk_id: ChunkId) -> _Write:
    """Check the write's capability: ``replicate`` from a primary, or a client's ``put``
    bound to the upload's file id and the exact forward list (sync or async)."""
    cfg = request.app[CONFIG]
    if is_forwarded(request):
        check_replicate(cfg, capability(request), chunk_id)
        return _Write(forwarded=True)
    file_id = parse_file_id(request.headers.get(protocol.UPLOAD), protocol.UPLOAD)
    raw_forward = request.headers.get(protocol.FORWARD_TO, "")
    asynchronous = check_put(cfg, capability(request), chunk_id, file_id, raw_forward)
    return _Write(False, file_id, protocol.parse_forward(raw_forward), asynchronous)


async def store_chunk(request: web.Request) -> web.Response:
    """Store a chunk: a client's upload write (capability ``put``, bound to the upload's file
    id and the exact forward list) or a primary's replica write (``replicate``).

    Neither the answer nor the time it takes says whether the chunk was already here: that
    would reveal to one tenant that another stored the same bytes. So a held chunk is
    rewritten as a new one is (``ChunkStore.put``), here and on every replica this write is
    forwarded to, which also replaces a copy that rotted unnoticed: the receipt is only ever
    issued for verified bytes now on disk. An upload write answers with a receipt that proves
    to finalize-upload that this upload sent the verified bytes.
    """
    cfg = request.app[CONFIG]
    chunk_id = parse_chunk_id(query_param(request, "chunk_id"))
    write = _authorize_write(request, chunk_id)
    # authorized above: the declared length is trusted; the pieces as they arrived are hashed,
    # written and forwarded without a copy that joins them
    pieces: list[Buffer] = list(await read_body_pieces(request, protocol.MAX_CHUNK_SIZE))
    stored, replicas = await request.app[FORWARDER].store(
        chunk_id, pieces, write.targets, asynchronous=write.asynchronous
    )
    body: dict[str, object] = {
        "chunk_id": chunk_id,
        "node_id": cfg.node_id,
        "size": sum(len(p) for p in pieces),
        "replicas": [cfg.node_id, *replicas],
    }
    if write.forwarded:
        body["stored"] = stored  # only ever seen by another node
    else:
        body["receipt"] = receipt(cfg, write.file_id, chunk_id)
    return json_response(body, status=201)


async def get_chunk(request: web.Request) -> web.Response:
    chunk_id = parse_chunk_id(query_param(request, "chunk_id"))
    authorize(request, auth.OP_GET, chunk_id)
    data = await request.app[STORE].get(chunk_id)
    # a payload, not bytes: aiohttp would join the head and the body into one new buffer (a
    # copy of every byte served, on Pythons before 3.12.9); ChunkPayload sends them apart.
    # Sent here under the answer's deadline: a client that stops reading is cut off
    return await send_answer(request, web.Response(body=ChunkPayload(data)), len(data))


async def has_chunks(request: web.Request) -> web.Response:
    """The asked chunks this node holds; with ``verify``, only those whose copy reads back
    intact now (``read_back``)."""
    authorize(request, auth.OP_HAS)
    body = await read_json(request, 128 * protocol.MAX_HAS_CHUNKS)
    raw, verify = body.get("chunk_ids"), body.get("verify", False)
    if not isinstance(verify, bool):
        raise InvalidRequest("verify must be true or false")
    most = protocol.MAX_VERIFY_CHUNKS if verify else protocol.MAX_HAS_CHUNKS
    if not isinstance(raw, list) or len(raw) > most:
        raise InvalidRequest(f"chunk_ids must be a list of at most {most} ids")
    ids = [parse_chunk_id(c) for c in raw]
    store = request.app[STORE]
    present = await store.has(ids)
    if verify:
        present = await read_back(store, [c for c in ids if c in present])
    return json_response({"present": sorted(present)})


async def read_back(store: ChunkStore, chunk_ids: list[ChunkId]) -> set[ChunkId]:
    """Those of ``chunk_ids`` whose copy here reads back intact, checked as a download's read
    is (a copy that fails is quarantined: ``/quarantined`` reports it, and repair replaces
    it). Repair's trims ask this of the copies they keep before deleting a surplus one: a
    copy that rotted since the last scrub is present, and must not be counted on."""
    good = set()
    for chunk_id in chunk_ids:
        try:
            await store.get(chunk_id)
        except DfsError as exc:
            log.warning("chunk %s did not read back: %s", chunk_id[:12], exc)
            continue
        good.add(chunk_id)
    return good


async def status(request: web.Request) -> web.Response:
    """Usage, and the background-replication report from journal position ``after`` on
    (what the caller has already read)."""
    authorize(request, auth.OP_STATUS)
    store = request.app[STORE]
    capacity = await asyncio.to_thread(lambda: store.capacity_bytes)
    after = int_query(request, "after", 0)
    return json_response(
        {
            "node_id": request.app[CONFIG].node_id,
            "used_bytes": store.used_bytes,
            "capacity_bytes": capacity,
            "chunk_count": store.chunk_count,
            "replication": request.app[FORWARDER].log.report(max(after, 0)),
        }
    )


def add_routes(app: web.Application) -> None:
    app.router.add_put(protocol.STORE_CHUNK, store_chunk)
    app.router.add_get(protocol.GET_CHUNK, get_chunk)
    app.router.add_post(protocol.HAS_CHUNKS, has_chunks)
    app.router.add_get(protocol.NODE_STATUS, status)
