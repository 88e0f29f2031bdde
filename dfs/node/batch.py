"""``POST /store-chunks``: many small chunks of uploads in one request.

A directory of small files is mostly one chunk per file. One HTTP request (and, on the
primary, one forwarded request per replica) per chunk costs far more than the bytes; this
route takes up to ``protocol.MAX_STORE_BATCH`` chunks in one ``protocol.pack_chunks`` body.

The security model is the one of ``/store-chunk``, chunk by chunk:

- every chunk carries its own capability, minted by the API exactly as for ``/store-chunk``
  (``put``, bound to the chunk, this node, the upload's file id and the raw FORWARD_TO list
  shared by the whole batch); a replica batch (FORWARDED) carries ``replicate`` capabilities
  the primary minted per chunk and per replica. One capability that does not check refuses
  the whole batch before anything is stored;
- every chunk's sha256 is checked before any is written (``FsChunkStore.put_many``), so a
  tampered batch stores nothing and answers 422;
- each chunk is written as by ``put`` (temp file, fsync, link, fsync of its directory)
  before the answer; the answer holds one receipt per chunk, bound to its file id.

Sync replication answers once every copy on every node is durable; async (the API's async
marker in the capabilities, which must then mark every chunk) answers after the local copies
and hands each chunk to the background replication journal.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from dfs import auth, protocol
from dfs.chunkstore.fs import FsChunkStore
from dfs.config import NodeConfig
from dfs.errors import AuthError, DfsError, Forbidden, InvalidRequest, ReplicationError
from dfs.ids import ChunkId, parse_chunk_id, parse_file_id
from dfs.node import maintenance
from dfs.server import read_body
from dfs.transport.node_client import NodeClient

CONFIG = web.AppKey("batch_config", NodeConfig)
STORE = web.AppKey("batch_store", FsChunkStore)
NODES = web.AppKey("batch_nodes", NodeClient)


def _check_put(cfg: NodeConfig, cap: object, chunk_id: str, file_id: str, forward: str) -> bool:
    """Check a client's put capability; True when the API signed it for async replication."""
    if not isinstance(cap, str):
        raise AuthError("every chunk needs a capability signed by the API")
    extra = protocol.put_cap_extra(file_id, forward)
    try:
        auth.check(cfg.cluster_secret, cap, auth.OP_PUT, chunk_id, cfg.node_id, extra=extra)
        return False
    except Forbidden:
        extra = protocol.put_cap_extra(file_id, forward, asynchronous=True)
        auth.check(cfg.cluster_secret, cap, auth.OP_PUT, chunk_id, cfg.node_id, extra=extra)
        return True


async def _forward(
    cfg: NodeConfig,
    nodes: NodeClient,
    items: Sequence[tuple[str, memoryview]],
    targets: Sequence[tuple[str, str]],
) -> None:
    """Send the batch to every replica at once, each chunk with a replicate capability for
    that replica; ReplicationError if any replica fails."""
    ttl = cfg.replication_timeout + auth.CLOCK_SKEW

    async def one(node_id: str, url: str) -> None:
        entries = [
            {
                "chunk_id": c,
                "cap": auth.mint(cfg.cluster_secret, auth.OP_REPLICATE, c, node_id, ttl=ttl),
            }
            for c, _ in items
        ]
        body = protocol.pack_chunks(entries, [d for _, d in items])
        await nodes.store_chunks(url, body, forwarded=True, timeout=cfg.replication_timeout)

    try:
        async with asyncio.TaskGroup() as tg:
            for node_id, url in targets:
                tg.create_task(one(node_id, url))
    except* DfsError as group:
        first = group.exceptions[0]
        msg = first.message if isinstance(first, DfsError) else str(first)
        raise ReplicationError(
            f"batch of {len(items)} chunks: {len(group.exceptions)} of {len(targets)} "
            f"replicas failed: {msg}"
        ) from None


async def store_chunks(request: web.Request) -> web.Response:
    app = request.app
    cfg = app[CONFIG]
    forwarded = request.headers.get(protocol.FORWARDED) == "1"
    raw_forward = "" if forwarded else request.headers.get(protocol.FORWARD_TO, "")
    targets = protocol.parse_forward(raw_forward)
    body = await read_body(request, protocol.MAX_CHUNK_SIZE)
    parsed = protocol.unpack_chunks(body)
    items: list[tuple[str, memoryview]] = []
    file_ids: list[str] = []
    modes: set[bool] = set()
    for entry, data in parsed:
        chunk_id = parse_chunk_id(entry.get("chunk_id"))
        cap = entry.get("cap")
        if forwarded:
            if not isinstance(cap, str):
                raise AuthError("every chunk needs a capability")
            auth.check(cfg.cluster_secret, cap, auth.OP_REPLICATE, chunk_id, cfg.node_id)
        else:
            file_id = parse_file_id(entry.get("file_id"), "file_id")
            modes.add(_check_put(cfg, cap, chunk_id, file_id, raw_forward))
            file_ids.append(file_id)
        items.append((chunk_id, data))
    if len(modes) > 1:
        raise InvalidRequest("a batch mixes sync and async replication capabilities")
    store = app[STORE]
    puts = [(ChunkId(c), d) for c, d in items]
    replicas = [cfg.node_id]
    if not targets or modes == {True}:
        await store.put_many(puts)
        if targets:  # async: the other copies follow in the background
            for c, _ in items:
                maintenance.replicate_later(app, c, targets)
    else:
        # local writes and replica forwards at once; the local error wins, as in /store-chunk
        local, remote = await asyncio.gather(
            store.put_many(puts),
            _forward(cfg, app[NODES], items, targets),
            return_exceptions=True,
        )
        if isinstance(local, BaseException):
            raise local
        if isinstance(remote, BaseException):
            raise remote
        replicas += [node_id for node_id, _ in targets]
    answers: list[dict[str, Any]] = []
    for n, (c, data) in enumerate(items):
        answer: dict[str, Any] = {"chunk_id": c, "size": len(data)}
        if not forwarded:
            answer["replicas"] = replicas
            answer["receipt"] = auth.mint_receipt(cfg.cluster_secret, file_ids[n], c)
        answers.append(answer)
    return web.json_response({"node_id": cfg.node_id, "chunks": answers}, status=201)


def add_routes(
    app: web.Application, cfg: NodeConfig, store: FsChunkStore, nodes: NodeClient
) -> None:
    app[CONFIG] = cfg
    app[STORE] = store
    app[NODES] = nodes
    app.router.add_post(protocol.STORE_CHUNKS, store_chunks)
