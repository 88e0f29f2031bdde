"""The storage node's aiohttp app: chunk routes over a ChunkStore, plus server lifecycle.

Routes (see README, "Wire protocol"):

| method | path          | answer                                                          |
|--------|---------------|-----------------------------------------------------------------|
| PUT    | /store-chunk  | 201 durable on every listed node (+ receipt); 401/403 capability; |
|        |               | 422 hash mismatch; 502 a replica failed; 507 disk full          |
| GET    | /get-chunk    | 200 verified bytes; 404 missing or quarantined                  |
| POST   | /has-chunks   | ``{"present": [...]}`` for ``{"chunk_ids": [...]}``             |
| GET    | /status       | node id, used/capacity bytes, chunk count, async backlog        |
| POST   | /delete-chunk, /copy-chunk; GET /quarantined, /list-chunks: see                |
|        | ``dfs.node.maintenance``                                                        |
| GET    | /healthz      | liveness                                                        |
| GET    | /readyz       | readiness: store writable and registered (ops.py)               |
| GET    | /metrics      | Prometheus metrics; DFS_METRICS_TOKEN (ops.py)                  |

Every route but /healthz, /readyz and /metrics needs a capability (``X-Dfs-Capability`` header or ``cap`` query
parameter) signed with the cluster secret for exactly that operation, chunk and node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import web

from dfs import auth, protocol
from dfs.chunkstore.fs import FsChunkStore
from dfs.config import NodeConfig
from dfs.errors import ConfigError, DfsError, Forbidden, InvalidRequest
from dfs.ids import parse_chunk_id, parse_file_id
from dfs.meta import open_metadata_store
from dfs.meta.base import MetadataStore
from dfs.node import batch, maintenance, ops
from dfs.node.heartbeat import (
    ApiRegistrar,
    MetaRegistrar,
    Registrar,
    heartbeat_loop,
    heartbeat_once,
)
from dfs.replication import fan_out
from dfs.server import (
    error_middleware,
    healthz,
    query_param,
    read_body,
    read_json,
    runner_kwargs,
)
from dfs.transport.api_client import ApiClient
from dfs.transport.http import make_session
from dfs.transport.node_client import NodeClient

log = logging.getLogger("dfs.node")

CONFIG = web.AppKey("config", NodeConfig)
STORE = web.AppKey("store", FsChunkStore)
NODES = web.AppKey("nodes", NodeClient)

MAX_FORWARD_TARGETS = protocol.MAX_FORWARD_TARGETS
# aiohttp pauses the socket at 2x this many buffered bytes; its 64 KiB default means a
# pause/resume every 128 KiB of a multi-MiB chunk body
NODE_READ_BUFSIZE = 1 << 20


class Closable(Protocol):
    async def close(self) -> None: ...


def _forward_targets(header: str) -> list[tuple[str, str]]:
    """Parse ``node_id=url,node_id=url``; the caller's capability signs the raw header."""
    return protocol.parse_forward(header)


def _cap(request: web.Request) -> str | None:
    return request.headers.get(protocol.CAPABILITY) or request.query.get("cap")


async def store_chunk(request: web.Request) -> web.Response:
    """Store a chunk: a client's upload write (capability ``put``, bound to the upload's file
    id and the exact forward list) or a primary's replica write (``replicate``).

    The answer does not say whether the chunk was already here: that would reveal to one
    tenant that another stored the same bytes. An upload write answers with a receipt that
    proves to finalize-upload that this upload sent the verified bytes.
    """
    app = request.app
    cfg = app[CONFIG]
    chunk_id = parse_chunk_id(query_param(request, "chunk_id"))
    forwarded = request.headers.get(protocol.FORWARDED) == "1"
    file_id = ""
    targets: list[tuple[str, str]] = []
    asynchronous = False
    if forwarded:
        auth.check(cfg.cluster_secret, _cap(request), auth.OP_REPLICATE, chunk_id, cfg.node_id)
    else:
        file_id = parse_file_id(request.headers.get(protocol.UPLOAD), protocol.UPLOAD)
        raw_forward = request.headers.get(protocol.FORWARD_TO, "")
        cap = _cap(request)
        try:
            auth.check(
                cfg.cluster_secret,
                cap,
                auth.OP_PUT,
                chunk_id,
                cfg.node_id,
                extra=protocol.put_cap_extra(file_id, raw_forward),
            )
        except Forbidden:
            # REPLICATION_STRATEGY=async: the API signed the same write with the async marker
            auth.check(
                cfg.cluster_secret,
                cap,
                auth.OP_PUT,
                chunk_id,
                cfg.node_id,
                extra=protocol.put_cap_extra(file_id, raw_forward, asynchronous=True),
            )
            asynchronous = True
        targets = _forward_targets(raw_forward)
    data = await read_body(request, protocol.MAX_CHUNK_SIZE)
    replicas = [cfg.node_id]
    if not targets:
        stored = await app[STORE].put(chunk_id, data)
    elif asynchronous:
        # ack after the first durable copy; the others follow in the background
        stored = await app[STORE].put(chunk_id, data)
        maintenance.replicate_later(app, chunk_id, targets)
    else:

        def replica_cap(node_id: str) -> str:
            return auth.mint(
                cfg.cluster_secret,
                auth.OP_REPLICATE,
                chunk_id,
                node_id,
                ttl=cfg.replication_timeout + auth.CLOCK_SKEW,
            )

        # Forward while the local copy is hashed and fsync'd, not after: the two disks (or
        # the two cores) work at once. Sync replication still answers only once every copy
        # is durable; a bad body fails locally (422) and on each replica, and the local
        # error is the one reported.
        local, remote = await asyncio.gather(
            app[STORE].put(chunk_id, data),
            fan_out(app[NODES], chunk_id, data, targets, cfg.replication_timeout, replica_cap),
            return_exceptions=True,
        )
        if isinstance(local, BaseException):
            raise local
        if isinstance(remote, BaseException):
            raise remote
        stored = local
        replicas += remote
    body: dict[str, object] = {
        "chunk_id": chunk_id,
        "node_id": cfg.node_id,
        "size": len(data),
        "replicas": replicas,
    }
    if forwarded:
        body["stored"] = stored  # only ever seen by another node
    else:
        body["receipt"] = auth.mint_receipt(cfg.cluster_secret, file_id, chunk_id)
    return web.json_response(body, status=201)


async def get_chunk(request: web.Request) -> web.Response:
    cfg = request.app[CONFIG]
    chunk_id = parse_chunk_id(query_param(request, "chunk_id"))
    auth.check(cfg.cluster_secret, _cap(request), auth.OP_GET, chunk_id, cfg.node_id)
    data = await request.app[STORE].get(chunk_id)
    return web.Response(body=data, content_type="application/octet-stream")


async def has_chunks(request: web.Request) -> web.Response:
    cfg = request.app[CONFIG]
    auth.check(cfg.cluster_secret, _cap(request), auth.OP_HAS, auth.ANY_CHUNK, cfg.node_id)
    body = await read_json(request, 128 * protocol.MAX_HAS_CHUNKS)
    raw = body.get("chunk_ids")
    if not isinstance(raw, list) or len(raw) > protocol.MAX_HAS_CHUNKS:
        raise InvalidRequest(f"chunk_ids must be a list of at most {protocol.MAX_HAS_CHUNKS} ids")
    ids = [parse_chunk_id(c) for c in raw]
    present = await request.app[STORE].has(ids)
    return web.json_response({"present": sorted(present)})


async def status(request: web.Request) -> web.Response:
    cfg = request.app[CONFIG]
    auth.check(cfg.cluster_secret, _cap(request), auth.OP_STATUS, auth.ANY_CHUNK, cfg.node_id)
    store = request.app[STORE]
    capacity = await asyncio.to_thread(lambda: store.capacity_bytes)
    return web.json_response(
        {
            "node_id": cfg.node_id,
            "used_bytes": store.used_bytes,
            "capacity_bytes": capacity,
            "chunk_count": store.chunk_count,
            **maintenance.status_extra(request.app, request),
        }
    )


def make_app(cfg: NodeConfig, store: FsChunkStore, nodes: NodeClient) -> web.Application:
    # The body bound is enforced by read_body; aiohttp's own bound only applies to post().
    app = web.Application(middlewares=[error_middleware], client_max_size=protocol.MAX_CHUNK_SIZE)
    app[CONFIG] = cfg
    app[STORE] = store
    app[NODES] = nodes
    app.router.add_put(protocol.STORE_CHUNK, store_chunk)
    app.router.add_get(protocol.GET_CHUNK, get_chunk)
    app.router.add_post(protocol.HAS_CHUNKS, has_chunks)
    app.router.add_get(protocol.NODE_STATUS, status)
    app.router.add_get(protocol.HEALTHZ, healthz)
    maintenance.add_routes(app, cfg, store, nodes)
    batch.add_routes(app, cfg, store, nodes)
    return app


@dataclass
class RunningNode:
    """A started node: its app runner, resources and heartbeat task."""

    cfg: NodeConfig
    runner: web.AppRunner
    port: int
    store: FsChunkStore
    registrar: Registrar
    closers: list[Closable] = field(default_factory=list)
    heartbeat: asyncio.Task[None] | None = None
    scrubber: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.cfg.advertise_host}:{self.port}"

    async def stop(self, *, deregister: bool = True) -> None:
        """Stop heartbeats, leave the registry, drain in-flight requests, close resources."""
        for task in (self.heartbeat, self.scrubber):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if deregister:
            try:
                await asyncio.wait_for(self.registrar.deregister(self.cfg.node_id), 5.0)
            except (DfsError, TimeoutError) as exc:
                log.warning("could not deregister %s: %s", self.cfg.node_id, exc)
        await self.runner.cleanup()
        for res in reversed(self.closers):
            await res.close()


async def start_node(cfg: NodeConfig) -> RunningNode:
    """Open the store, bind, register once (so the node is placeable when this returns),
    then keep heartbeating in the background."""
    if not cfg.cluster_secret:
        raise ConfigError("DFS_CLUSTER_SECRET", "", "required")
    store = await FsChunkStore.open(cfg.data_dir, cfg.capacity_bytes)
    session = make_session()
    closers: list[Closable] = [session]
    registrar: Registrar
    meta: MetadataStore | None = None
    if cfg.meta_url:
        meta = await open_metadata_store(cfg.meta_url)
        closers.append(meta)
        registrar = MetaRegistrar(meta)
    else:
        assert cfg.api_url is not None  # config guarantees one of the two
        registrar = ApiRegistrar(ApiClient(session, cfg.api_url), cfg.cluster_secret)
    tracked = ops.TrackingRegistrar(registrar, cfg.heartbeat_timeout)
    registrar = tracked
    app = make_app(cfg, store, NodeClient(session))
    ops.add_routes(app, cfg, store, tracked)
    runner = web.AppRunner(
        app,
        access_log=None,
        shutdown_timeout=10.0,
        read_bufsize=NODE_READ_BUFSIZE,
        **runner_kwargs(),
    )
    await runner.setup()
    site = web.TCPSite(runner, cfg.host, cfg.port)
    await site.start()
    port = int(runner.addresses[0][1])
    node = RunningNode(cfg, runner, port, store, registrar, closers)
    deadline = time.monotonic() + 30.0
    while True:
        try:
            await heartbeat_once(cfg, port, store, registrar)
            break
        except DfsError as exc:
            if time.monotonic() > deadline:
                await node.stop(deregister=False)
                raise
            log.warning("first registration failed, retrying: %s", exc.message)
            await asyncio.sleep(0.5)
    node.heartbeat = asyncio.create_task(heartbeat_loop(cfg, port, store, registrar))
    node.scrubber = asyncio.create_task(
        maintenance.scrub_loop(store, cfg.scrub_rate, cfg.scrub_interval)
    )
    return node
