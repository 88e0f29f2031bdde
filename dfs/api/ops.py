"""The coordinator's operations routes: ``/readyz`` and ``/metrics`` (``/healthz`` is in app).

| method | path     | answer                                                                  |
|--------|----------|-------------------------------------------------------------------------|
| GET    | /readyz  | 200 when the metadata store answers and at least REPLICATION_FACTOR      |
|        |          | nodes are live; 503 ``unavailable`` with the failed checks in details    |
| GET    | /metrics | Prometheus text; bearer DFS_METRICS_TOKEN or an admin token (401/403)    |

Both routes skip the bearer-token middleware (see ``dfs.api.app._PUBLIC``): /readyz is as open
as /healthz and tells nothing but counts, /metrics checks its own credentials here.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from dfs import protocol
from dfs.api.service import Coordinator
from dfs.errors import DfsError, Forbidden
from dfs.metrics import ApiMetrics
from dfs.monitoring import (
    bearer_token,
    install_metrics,
    metrics_response,
    metrics_token_ok,
    readiness_response,
)

log = logging.getLogger("dfs.api.ops")

METRICS = web.AppKey("api_metrics", ApiMetrics)
_COORDINATOR = web.AppKey("ops_coordinator", Coordinator)

CHECK_TIMEOUT = 5.0  # seconds; a probe that waits longer than this is a failed probe


async def readyz(request: web.Request) -> web.Response:
    coord = request.app[_COORDINATOR]
    checks: dict[str, object] = {"replication_factor": coord.rf}
    try:
        live = await asyncio.wait_for(coord.live_nodes(), CHECK_TIMEOUT)
    except (DfsError, OSError, TimeoutError) as exc:
        checks["metadata"] = f"error: {exc}"
        return readiness_response(checks, ready=False)
    checks["metadata"] = "ok"
    checks["live_nodes"] = len(live)
    return readiness_response(checks, ready=len(live) >= coord.rf)


async def metrics(request: web.Request) -> web.Response:
    coord = request.app[_COORDINATOR]
    if not metrics_token_ok(request, coord.cfg.metrics_token_hash):
        principal = await coord.authenticate(bearer_token(request))
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


def add_routes(app: web.Application, coordinator: Coordinator) -> ApiMetrics:
    """Install the metrics middleware and the ops routes; returns the metrics (repair hook)."""
    m = ApiMetrics()
    app[METRICS] = m
    app[_COORDINATOR] = coordinator
    install_metrics(app, m)
    app.router.add_get(protocol.READYZ, readyz)
    app.router.add_get(protocol.METRICS, metrics)
    return m
