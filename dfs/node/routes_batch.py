"""``POST /store-chunks``: many small chunks of uploads in one request.

A directory of small files is mostly one chunk per file. One HTTP request (and, on the
primary, one forwarded request per replica) per chunk costs far more than the bytes; this
route takes up to ``protocol.MAX_STORE_BATCH`` chunks in one ``protocol.pack_chunks`` body.

The security model is the one of ``/store-chunk``, checked before the body is read
(``dfs.node.capabilities``): nothing of an unauthenticated request is read, so a flood of
declared bodies costs no memory.

- one capability per request, in the headers: a client's ``put-batch`` (minted by the API
  when it planned the pack) binds this node, the raw FORWARD_TO list, the SHA-256 of the
  ordered chunk-id list (``X-Dfs-Batch``) and of the ordered file ids of those chunks
  (``X-Dfs-Batch-Files``); a replica batch (FORWARDED) carries the ``replicate-batch``
  capability its primary minted for this replica and the same chunk-id list. The capability
  is checked (this node, not expired, this operation) before any body byte is read; a
  missing or malformed one answers 401, a wrong one 403;
- the body's index must then list exactly those chunk ids (and file ids) in that order, else
  403 and nothing is stored;
- every chunk's sha256 is checked before any is written (``ChunkStore.put_many``), so a
  tampered batch stores nothing and answers 422;
- each chunk is stored durably before the answer, a chunk already held rewritten as a new
  one (``ChunkStore.put_many``: the same work and time, the same 507 on a full node, and a
  rotten copy replaced); the answer holds one receipt per chunk, bound to its file id.

Sync replication answers once every copy on every node is durable; async (the API's async
marker in the batch capability) answers after the local copies and hands each chunk to the
background forwarding (``ReplicaForwarder``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from dfs import protocol
from dfs.chunkstore.base import Buffer
from dfs.config import NodeConfig
from dfs.errors import AuthError, Forbidden
from dfs.ids import ChunkId, parse_chunk_id, parse_file_id
from dfs.node.capabilities import check_put_batch, check_replicate_batch, receipt
from dfs.node.context import CONFIG, FORWARDER, capability, is_forwarded
from dfs.server import json_response, read_body


@dataclass(frozen=True)
class _Grant:
    """What a checked batch capability allows: the digests its body must match."""

    chunks_sha256: str
    files_sha256: str | None  # upload writes only
    asynchronous: bool = False


_DIGEST = re.compile(r"[0-9a-f]{64}")


def _digest_header(request: web.Request, name: str) -> str:
    value = request.headers.get(name)
    if value is None or not _DIGEST.fullmatch(value):
        raise AuthError(f"a /store-chunks batch needs {name}: the SHA-256 its capability binds")
    return value


def _authorize_headers(request: web.Request, cfg: NodeConfig) -> _Grant:
    """Check the batch capability from the headers alone, before any body byte is read."""
    cap = capability(request)
    if not cap:
        raise AuthError("a /store-chunks batch needs a capability signed by the API")
    chunks_sha256 = _digest_header(request, protocol.BATCH)
    if is_forwarded(request):
        check_replicate_batch(cfg, cap, chunks_sha256)
        return _Grant(chunks_sha256, None)
    files_sha256 = _digest_header(request, protocol.BATCH_FILES)
    raw_forward = request.headers.get(protocol.FORWARD_TO, "")
    asynchronous = check_put_batch(cfg, cap, chunks_sha256, files_sha256, raw_forward)
    return _Grant(chunks_sha256, files_sha256, asynchronous)


def _match(
    grant: _Grant, parsed: Sequence[tuple[dict[str, Any], memoryview]]
) -> tuple[list[tuple[ChunkId, Buffer]], list[str]]:
    """The body's chunks and their file ids, if its index lists exactly what the capability
    binds, in order; Forbidden otherwise (nothing is stored)."""
    items: list[tuple[ChunkId, Buffer]] = []
    file_ids: list[str] = []
    for entry, data in parsed:
        items.append((parse_chunk_id(entry.get("chunk_id")), data))
        if grant.files_sha256 is not None:
            file_ids.append(parse_file_id(entry.get("file_id"), "file_id"))
    if protocol.list_sha256([c for c, _ in items]) != grant.chunks_sha256 or (
        grant.files_sha256 is not None and protocol.list_sha256(file_ids) != grant.files_sha256
    ):
        raise Forbidden("the batch's chunks are not the ones its capability grants")
    return items, file_ids


async def store_chunks(request: web.Request) -> web.Response:
    cfg = request.app[CONFIG]
    grant = _authorize_headers(request, cfg)
    targets = [] if grant.files_sha256 is None else _targets(request)
    body = await read_body(request, protocol.MAX_CHUNK_SIZE, authorized=True)  # checked above
    items, file_ids = _match(grant, protocol.unpack_chunks(body))
    replicas = await request.app[FORWARDER].store_batch(
        items, targets, asynchronous=grant.asynchronous
    )
    answers: list[dict[str, Any]] = []
    for n, (c, data) in enumerate(items):
        answer: dict[str, Any] = {"chunk_id": c, "size": len(data)}
        if file_ids:
            answer["replicas"] = [cfg.node_id, *replicas]
            answer["receipt"] = receipt(cfg, file_ids[n], c)
        answers.append(answer)
    return json_response({"node_id": cfg.node_id, "chunks": answers}, status=201)


def _targets(request: web.Request) -> list[tuple[str, str]]:
    return protocol.parse_forward(request.headers.get(protocol.FORWARD_TO, ""))


def add_routes(app: web.Application) -> None:
    app.router.add_post(protocol.STORE_CHUNKS, store_chunks)
