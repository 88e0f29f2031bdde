"""The storage node's monitoring routes: ``/healthz``, ``/readyz`` and ``/metrics``.

| method | path     | answer                                                                  |
|--------|----------|-------------------------------------------------------------------------|
| GET    | /healthz | 200 while the process serves requests (liveness)                        |
| GET    | /readyz  | 200 when the chunk store takes a durable write and the node's           |
|        |          | registry entry is live; 503 ``unavailable`` with the failed checks      |
| GET    | /metrics | Prometheus text; bearer DFS_METRICS_TOKEN (401 without it, or when unset) |

"Registered" is what the node's ``TrackingRegistrar`` (``dfs.node.heartbeat``) says. The
plumbing shared with the API (metrics middleware, token check, readiness answer) is
``dfs.monitoring``; none of these routes needs a capability.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from dfs import protocol
from dfs.errors import DfsError
from dfs.metrics import NodeMetrics
from dfs.monitoring import deny_metrics, install_metrics, metrics_response, metrics_token_ok
from dfs.monitoring import readiness_response as _ready
from dfs.node.context import CONFIG, METRICS, MONITORING, STORE, Monitoring
from dfs.node.heartbeat import TrackingRegistrar
from dfs.server import healthz


async def readyz(request: web.Request) -> web.Response:
    state = request.app[MONITORING]
    checks: dict[str, object] = {"node_id": state.cfg.node_id}
    try:
        await asyncio.wait_for(request.app[STORE].check_writable(), 5.0)
        checks["store"] = "ok"
    except (OSError, TimeoutError) as exc:
        checks["store"] = f"error: {exc}"
    registered = state.registrar.registered()
    checks["registered"] = registered
    return _ready(checks, ready=checks["store"] == "ok" and registered)


async def metrics(request: web.Request) -> web.Response:
    state = request.app[MONITORING]
    if not metrics_token_ok(request, state.cfg.metrics_token_hash):
        raise deny_metrics()
    store = request.app[STORE]
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


def add_routes(app: web.Application, registrar: TrackingRegistrar) -> NodeMetrics:
    """Install the metrics middleware and the monitoring routes; returns the metrics."""
    m = NodeMetrics()
    app[METRICS] = m
    app[MONITORING] = Monitoring(app[CONFIG], registrar)
    install_metrics(app, m)
    app.router.add_get(protocol.HEALTHZ, healthz)
    app.router.add_get(protocol.READYZ, readyz)
    app.router.add_get(protocol.METRICS, metrics)
    return m
