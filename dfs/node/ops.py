"""The storage node's operations routes: ``/readyz`` and ``/metrics`` (``/healthz`` is in app).

| method | path     | answer                                                                  |
|--------|----------|-------------------------------------------------------------------------|
| GET    | /readyz  | 200 when the data directory takes a durable write and the node's        |
|        |          | registry entry is live; 503 ``unavailable`` with the failed checks      |
| GET    | /metrics | Prometheus text; bearer DFS_METRICS_TOKEN (401 without it, or when unset) |

``TrackingRegistrar`` wraps the node's registrar to remember when a heartbeat last succeeded
and whether the node has left the registry, which is what "registered" means here: the entry
the API reads is live exactly while the last heartbeat is younger than NODE_HEARTBEAT_TIMEOUT.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from pathlib import Path

from aiohttp import web

from dfs import protocol
from dfs.chunkstore.fs import FsChunkStore
from dfs.config import NodeConfig
from dfs.errors import DfsError
from dfs.meta.base import NodeRecord
from dfs.metrics import NodeMetrics
from dfs.monitoring import deny_metrics, install_metrics, metrics_response, metrics_token_ok
from dfs.monitoring import readiness_response as _ready
from dfs.node.heartbeat import Registrar

METRICS = web.AppKey("node_metrics", NodeMetrics)


class TrackingRegistrar:
    """A Registrar that remembers the last successful heartbeat (monotonic seconds)."""

    def __init__(self, inner: Registrar, ttl: float) -> None:
        self._inner = inner
        self._ttl = ttl
        self.last_ok: float | None = None
        self.deregistered = False

    async def heartbeat(self, node: NodeRecord) -> None:
        await self._inner.heartbeat(node)
        self.last_ok = time.monotonic()
        self.deregistered = False

    async def deregister(self, node_id: str) -> None:
        self.deregistered = True  # not ready from here on, even if the call below fails
        await self._inner.deregister(node_id)

    def registered(self) -> bool:
        return (
            not self.deregistered
            and self.last_ok is not None
            and time.monotonic() - self.last_ok < self._ttl
        )


class NodeOpsState:
    def __init__(self, cfg: NodeConfig, store: FsChunkStore, registrar: TrackingRegistrar):
        self.cfg = cfg
        self.store = store
        self.registrar = registrar


_STATE = web.AppKey("node_ops_state", NodeOpsState)


def probe_write(data_dir: Path) -> None:
    """Create, fsync and remove a small file in the data directory (OSError if it can't)."""
    path = data_dir / f".readyz-{secrets.token_hex(4)}.tmp"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, b"ok")
        os.fsync(fd)
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)


async def readyz(request: web.Request) -> web.Response:
    state = request.app[_STATE]
    checks: dict[str, object] = {"node_id": state.cfg.node_id}
    try:
        await asyncio.wait_for(asyncio.to_thread(probe_write, state.cfg.data_dir), 5.0)
        checks["store"] = "ok"
    except (OSError, TimeoutError) as exc:
        checks["store"] = f"error: {exc}"
    registered = state.registrar.registered()
    checks["registered"] = registered
    return _ready(checks, ready=checks["store"] == "ok" and registered)


async def metrics(request: web.Request) -> web.Response:
    state = request.app[_STATE]
    if not metrics_token_ok(request, state.cfg.metrics_token_hash):
        raise deny_metrics()
    store = state.store
    try:
        capacity = await asyncio.to_thread(lambda: store.capacity_bytes)  # a statvfs syscall
    except (DfsError, OSError):
        capacity = 0
    m = request.app[METRICS]
    m.refresh(
        chunks=store.chunk_count,
        used=store.used_bytes,
        capacity=capacity,
        registered=state.registrar.registered(),
    )
    return metrics_response(m)


def add_routes(
    app: web.Application, cfg: NodeConfig, store: FsChunkStore, registrar: TrackingRegistrar
) -> NodeMetrics:
    """Install the metrics middleware and the ops routes; returns the metrics (queue hook)."""
    m = NodeMetrics()
    app[METRICS] = m
    app[_STATE] = NodeOpsState(cfg, store, registrar)
    install_metrics(app, m)
    app.router.add_get(protocol.READYZ, readyz)
    app.router.add_get(protocol.METRICS, metrics)
    return m
