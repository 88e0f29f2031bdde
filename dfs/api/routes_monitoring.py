"""The API's monitoring routes: ``/healthz``, ``/readyz`` and ``/metrics``.

| method | path     | answer                                                                  |
|--------|----------|-------------------------------------------------------------------------|
| GET    | /healthz | 200 ``{"status": "ok"}`` while the process serves                        |
| GET    | /readyz  | 200 when the metadata store answers and at least REPLICATION_FACTOR      |
|        |          | nodes are live; 503 ``unavailable`` with the failed checks in details    |
| GET    | /metrics | Prometheus text; bearer DFS_METRICS_TOKEN or an admin token (401/403)    |

They skip the bearer-token middleware (see ``dfs.api.context.PUBLIC``): /readyz is as open
as /healthz and tells nothing but counts, /metrics checks its own credentials here.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from dfs import protocol
from dfs.api import workers
from dfs.api.context import COORDINATOR, METRICS, REGISTRY
from dfs.errors import DfsError, Forbidden
from dfs.metrics import ApiMetrics
from dfs.monitoring import (
    bearer_token,
    install_metrics,
    metrics_response,
    metrics_token_ok,
    readiness,
)
from dfs.server import healthz

log = logging.getLogger("dfs.api.routes_monitoring")

CHECK_TIMEOUT = 5.0  # seconds; a probe that waits longer than this is a failed probe


async def readyz(request: web.Request) -> web.Response:
    coord = request.app[COORDINATOR]
    return await readiness(coord.live_nodes, coord.rf, CHECK_TIMEOUT)


async def metrics(request: web.Request) -> web.Response:
    coord = request.app[COORDINATOR]
    if not metrics_token_ok(request, coord.cfg.metrics_token_hash):
        principal = await request.app[REGISTRY].authenticate(bearer_token(request))
        if not principal.is_admin:
            raise Forbidden("metrics need DFS_METRICS_TOKEN or an admin token")
    m = request.app[METRICS]
    try:
        m.refresh(await asyncio.wait_for(coord.stats(), CHECK_TIMEOUT))
        m.metadata_up.set(1)
    except (DfsError, OSError, TimeoutError) as exc:
        # still serve the HTTP series: an unreachable store is exactly when they matter
        log.warning("metrics: could not read cluster stats: %s", exc)
        m.metadata_up.set(0)
    return metrics_response(m)


def add_routes(app: web.Application) -> ApiMetrics:
    """Install the metrics middleware and the monitoring routes; returns the metrics (the
    repair pass reports its progress to them)."""
    m = ApiMetrics(first=not workers.is_worker())
    app[METRICS] = m
    install_metrics(app, m)
    app.router.add_get(protocol.HEALTHZ, healthz)
    app.router.add_get(protocol.READYZ, readyz)
    app.router.add_get(protocol.METRICS, metrics)
    return m
