"""The storage node's aiohttp app: assemble the routes over a ChunkStore, start and stop a node.

``make_app`` puts the node's configuration, chunk store and replica forwarder under the keys
of ``dfs.node.context`` and adds the route modules; ``start_node`` opens the store on the data
directory, binds, registers once (so the node is placeable when it returns) and starts the
heartbeat, the scrubber and pack compaction; ``RunningNode.stop`` undoes it in order.

| routes                                              | module                          |
|-----------------------------------------------------|---------------------------------|
| /store-chunk, /get-chunk, /has-chunks, /status      | ``dfs.node.routes_chunks``      |
| /store-chunks                                       | ``dfs.node.routes_batch``       |
| /delete-chunk, /copy-chunk, /quarantined, /list-chunks | ``dfs.node.routes_maintenance`` |
| /healthz, /readyz, /metrics                         | ``dfs.node.routes_monitoring``  |

Every route but /healthz, /readyz and /metrics needs a capability (``X-Dfs-Capability`` header
or ``cap`` query parameter) signed with the cluster secret for exactly that operation, chunk
and node. The wire contract is ``dfs/openapi/node.yaml``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp
from aiohttp import web

from dfs import protocol
from dfs.chunkstore.base import ChunkStore
from dfs.chunkstore.pack import PackChunkStore
from dfs.config import NodeConfig
from dfs.errors import ConfigError, DfsError
from dfs.expect_continue import defer_continue
from dfs.meta import open_metadata_store
from dfs.node import routes_batch, routes_chunks, routes_maintenance, routes_monitoring, routes_read
from dfs.node.context import CONFIG, FORWARDER, STORE
from dfs.node.disk_identity import next_boot
from dfs.node.forwarding import ReplicaForwarder
from dfs.node.heartbeat import (
    ApiRegistrar,
    MetaRegistrar,
    Registrar,
    TrackingRegistrar,
    heartbeat_loop,
    heartbeat_once,
)
from dfs.node.scrubber import compact_loop, scrub_loop
from dfs.server import error_middleware, runner_kwargs
from dfs.transport.api_client import ApiClient
from dfs.transport.http import make_session
from dfs.transport.node_client import NodeClient

log = logging.getLogger("dfs.node")

# aiohttp pauses the socket at 2x this many buffered bytes; its 64 KiB default means a
# pause/resume every 128 KiB of a multi-MiB chunk body
NODE_READ_BUFSIZE = 1 << 20
FIRST_REGISTRATION_DEADLINE = 30.0


class Closable(Protocol):
    async def close(self) -> None: ...


def make_app(cfg: NodeConfig, store: ChunkStore, nodes: NodeClient) -> web.Application:
    """The node's app without its monitoring routes (``start_node`` adds those with the
    registrar they report on)."""
    # The body bound is enforced by read_body; aiohttp's own bound only applies to post().
    app = web.Application(middlewares=[error_middleware], client_max_size=protocol.MAX_CHUNK_SIZE)
    forwarder = ReplicaForwarder(cfg, store, nodes)
    defer_continue(app)  # every route's, once the app starts (monitoring's come later)
    app[CONFIG] = cfg
    app[STORE] = store
    app[FORWARDER] = forwarder

    async def cancel_background_forwards(_app: web.Application) -> None:
        await forwarder.close()

    app.on_cleanup.append(cancel_background_forwards)
    routes_chunks.add_routes(app)
    routes_maintenance.add_routes(app)
    routes_batch.add_routes(app)
    routes_read.add_routes(app)
    return app


@dataclass
class RunningNode:
    """A started node: its app runner, resources and heartbeat task."""

    cfg: NodeConfig
    runner: web.AppRunner
    port: int
    store: ChunkStore
    registrar: Registrar
    closers: list[Closable] = field(default_factory=list)
    heartbeat: asyncio.Task[None] | None = None
    scrubber: asyncio.Task[None] | None = None
    compactor: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.cfg.advertise_host}:{self.port}"

    async def stop(self, *, deregister: bool = True) -> None:
        """Stop heartbeats, leave the registry, drain in-flight requests, close resources."""
        for task in (self.heartbeat, self.scrubber, self.compactor):
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


async def _open_registrar(
    cfg: NodeConfig, session: aiohttp.ClientSession, closers: list[Closable]
) -> TrackingRegistrar:
    """Where heartbeats go: the metadata store (DFS_META_URL) or the API (DFS_API_URL),
    tracked for readiness."""
    registrar: Registrar
    if cfg.meta_url:
        meta = await open_metadata_store(cfg.meta_url)
        closers.append(meta)
        registrar = MetaRegistrar(meta)
    else:
        assert cfg.api_url is not None  # config guarantees one of the two
        boot = await asyncio.to_thread(next_boot, cfg.data_dir)  # greater at every start
        registrar = ApiRegistrar(ApiClient(session, cfg.api_url), cfg.cluster_secret, boot)
    return TrackingRegistrar(registrar, cfg.heartbeat_timeout)


async def _register_first(node: RunningNode) -> None:
    """Register once, retrying for a while: the node is placeable when this returns."""
    deadline = time.monotonic() + FIRST_REGISTRATION_DEADLINE
    while True:
        try:
            await heartbeat_once(node.cfg, node.port, node.store, node.registrar)
            return
        except DfsError as exc:
            if time.monotonic() > deadline:
                await node.stop(deregister=False)
                raise
            log.warning("first registration failed, retrying: %s", exc.message)
            await asyncio.sleep(0.5)


async def start_node(cfg: NodeConfig) -> RunningNode:
    """Open the store, bind, register once (so the node is placeable when this returns),
    then keep heartbeating and scrubbing in the background."""
    if not cfg.cluster_secret:
        raise ConfigError("DFS_CLUSTER_SECRET", "", "required")
    store = await PackChunkStore.open(
        cfg.data_dir, cfg.capacity_bytes, threshold=cfg.pack_threshold, max_pack=cfg.pack_size
    )
    session = make_session()
    closers: list[Closable] = [store, session]  # closed in reverse: the store last
    registrar = await _open_registrar(cfg, session, closers)
    app = make_app(cfg, store, NodeClient(session))
    routes_monitoring.add_routes(app, registrar)
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
    await _register_first(node)
    node.heartbeat = asyncio.create_task(heartbeat_loop(cfg, port, store, registrar))
    node.scrubber = asyncio.create_task(scrub_loop(store, cfg.scrub_rate, cfg.scrub_interval))
    node.compactor = asyncio.create_task(compact_loop(store, cfg.compact_interval))
    return node
