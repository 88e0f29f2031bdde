"""The storage node's monitoring routes: ``/healthz``, ``/readyz`` and ``/metrics``.

| method | path     | answer                                                                  |
|--------|----------|-------------------------------------------------------------------------|
| GET    | /healthz | 200 while the process serves requests (liveness)                        |
| GET    | /readyz  | 200 when the chunk store takes a durable write and the node's           |
|        |          | registry entry is live; 503 ``unavailable`` with the failed checks      |
|        |          | (the store's write probe runs at most once a second: ``StoreProbe``)    |
| GET    | /metrics | Prometheus text; bearer DFS_METRICS_TOKEN (401 without it, or when unset) |

"Registered" is what the node's ``TrackingRegistrar`` (``dfs.node.heartbeat``) says. The
plumbing shared with the API (metrics middleware, token check, readiness answer) is
``dfs.monitoring``; none of these routes needs a capability.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from dfs import protocol
from dfs.chunkstore.base import ChunkStore
from dfs.errors import DfsError
from dfs.metrics import NodeMetrics
from dfs.monitoring import deny_metrics, install_metrics, metrics_response, metrics_token_ok
from dfs.monitoring import readiness_response as _ready
from dfs.node.context import CONFIG, METRICS, MONITORING, STORE, Monitoring
from dfs.node.heartbeat import TrackingRegistrar
from dfs.server import healthz

PROBE_REUSE = 1.0
"""Seconds the result of a store write probe answers ``/readyz`` again."""
PROBE_TIMEOUT = 5.0


class StoreProbe:
    """``ChunkStore.check_writable`` as ``/readyz`` asks it: one probe at a time, its result
    reused for ``PROBE_REUSE`` seconds. The route needs no credentials, and each probe is a
    file created, fsync'd and removed on a worker thread: run per request, a flood of
    unauthenticated probes took the disk and the worker threads from chunk writes."""

    def __init__(self, store: ChunkStore) -> None:
        self._store = store
        self._result = ""
        self._at = float("-inf")
        self._running: asyncio.Future[str] | None = None

    async def result(self) -> str:
        """ "ok", or "error: ..." when the store did not take a durable write in time."""
        if asyncio.get_running_loop().time() - self._at < PROBE_REUSE:
            return self._result
        if self._running is None:
            self._running = asyncio.ensure_future(self._probe())
        return await asyncio.shield(self._running)  # a caller gone leaves it to the others

    async def _probe(self) -> str:
        try:
            await asyncio.wait_for(self._store.check_writable(), PROBE_TIMEOUT)
            result = "ok"
        except (OSError, TimeoutError) as exc:
            result = f"error: {exc}"
        finally:
            self._running = None  # whatever happened, the next request after it probes again
        self._result, self._at = result, asyncio.get_running_loop().time()
        return result


PROBE = web.AppKey("store_probe", StoreProbe)


async def readyz(request: web.Request) -> web.Response:
    state = request.app[MONITORING]
    checks: dict[str, object] = {"node_id": state.cfg.node_id}
    checks["store"] = await request.app[PROBE].result()
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
    app[PROBE] = StoreProbe(app[STORE])
    install_metrics(app, m)
    app.router.add_get(protocol.HEALTHZ, healthz)
    app.router.add_get(protocol.READYZ, readyz)
    app.router.add_get(protocol.METRICS, metrics)
    return m
