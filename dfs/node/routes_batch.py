"""``POST /store-chunks``: many small chunks of uploads in one request.

A directory of small files is mostly one chunk per file. One HTTP request (and, on the
primary, one forwarded request per replica) per chunk costs far more than the bytes; this
route takes up to ``protocol.MAX_STORE_BATCH`` chunks in one ``protocol.pack_chunks`` body.

The security model is the one of ``/store-chunk``, chunk by chunk, through the same checks
(``dfs.node.capabilities``):

- every chunk carries its own capability, minted by the API exactly as for ``/store-chunk``
  (``put``, bound to the chunk, this node, the upload's file id and the raw FORWARD_TO list
  shared by the whole batch); a replica batch (FORWARDED) carries ``replicate`` capabilities
  the primary minted per chunk and per replica. One capability that does not check refuses
  the whole batch before anything is stored;
- every chunk's sha256 is checked before any is written (``ChunkStore.put_many``), so a
  tampered batch stores nothing and answers 422;
- each chunk is stored durably before the answer, a chunk already held rewritten as a new
  one (``ChunkStore.put_many``: the same work and time, the same 507 on a full node, and a
  rotten copy replaced); the answer holds one receipt per chunk, bound to its file id.

Sync replication answers once every copy on every node is durable; async (the API's async
marker in the capabilities, which must then mark every chunk) answers after the local copies
and hands each chunk to the background forwarding (``ReplicaForwarder``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from dfs import protocol
from dfs.chunkstore.base import Buffer
from dfs.config import NodeConfig
from dfs.errors import AuthError, InvalidRequest
from dfs.ids import ChunkId, parse_chunk_id, parse_file_id
from dfs.node.capabilities import check_put, check_replicate, receipt
from dfs.node.context import CONFIG, FORWARDER, is_forwarded
from dfs.server import read_body


@dataclass
class _Batch:
    """The checked chunks of a request, with the file id of each (upload writes only)."""

    items: list[tuple[ChunkId, Buffer]] = field(default_factory=list)
    file_ids: list[str] = field(default_factory=list)
    modes: set[bool] = field(default_factory=set)  # True: signed for async replication

    @property
    def asynchronous(self) -> bool:
        return self.modes == {True}


def _authorize_batch(
    cfg: NodeConfig,
    parsed: Sequence[tuple[dict[str, Any], memoryview]],
    forwarded: bool,
    raw_forward: str,
) -> _Batch:
    """Check every chunk's capability before anything is stored."""
    batch = _Batch()
    for entry, data in parsed:
        chunk_id = parse_chunk_id(entry.get("chunk_id"))
        cap = entry.get("cap")
        if forwarded:
            if not isinstance(cap, str):
                raise AuthError("every chunk needs a capability")
            check_replicate(cfg, cap, chunk_id)
        else:
            file_id = parse_file_id(entry.get("file_id"), "file_id")
            if not isinstance(cap, str):
                raise AuthError("every chunk needs a capability signed by the API")
            batch.modes.add(check_put(cfg, cap, chunk_id, file_id, raw_forward))
            batch.file_ids.append(file_id)
        batch.items.append((chunk_id, data))
    if len(batch.modes) > 1:
        raise InvalidRequest("a batch mixes sync and async replication capabilities")
    return batch


async def store_chunks(request: web.Request) -> web.Response:
    cfg = request.app[CONFIG]
    forwarded = is_forwarded(request)
    raw_forward = "" if forwarded else request.headers.get(protocol.FORWARD_TO, "")
    targets = protocol.parse_forward(raw_forward)
    body = await read_body(request, protocol.MAX_CHUNK_SIZE)
    batch = _authorize_batch(cfg, protocol.unpack_chunks(body), forwarded, raw_forward)
    replicas = await request.app[FORWARDER].store_batch(
        batch.items, targets, asynchronous=batch.asynchronous
    )
    answers: list[dict[str, Any]] = []
    for n, (c, data) in enumerate(batch.items):
        answer: dict[str, Any] = {"chunk_id": c, "size": len(data)}
        if not forwarded:
            answer["replicas"] = [cfg.node_id, *replicas]
            answer["receipt"] = receipt(cfg, batch.file_ids[n], c)
        answers.append(answer)
    return web.json_response({"node_id": cfg.node_id, "chunks": answers}, status=201)


def add_routes(app: web.Application) -> None:
    app.router.add_post(protocol.STORE_CHUNKS, store_chunks)
