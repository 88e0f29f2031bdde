"""Operations plumbing the API and node apps share: request metrics, /metrics auth, readiness.

- ``metrics_middleware`` times every request and counts its bytes in and out under the route's
  canonical path (so ``/get-chunk?chunk_id=...`` is one series, and unknown URLs are one
  ``<unmatched>`` series). It is installed outermost, so error answers are counted too.
- ``/metrics`` takes ``Authorization: Bearer <DFS_METRICS_TOKEN>`` (Prometheus'
  ``authorization`` / ``bearer_token_file`` scrape settings); the API also takes its admin
  token. Without DFS_METRICS_TOKEN a node's metrics stay closed: nothing but health is
  reachable without credentials.
- ``/readyz`` answers 200 ``{"status": "ready", "checks": {...}}`` or 503 with the same checks
  in the error body's details, so a load balancer or an operator sees which check failed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sized
from typing import Protocol

from aiohttp import web
from aiohttp.typedefs import Middleware

from dfs import auth, protocol
from dfs.errors import AuthError, DfsError, Unavailable
from dfs.metrics import CONTENT_TYPE, UNMATCHED_ROUTE, HttpMetrics
from dfs.server import Handler, json_response

CLIENT_CLOSED = 499  # nginx's convention for a request the client abandoned


def route_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED_ROUTE


def body_length(response: web.StreamResponse) -> int:
    if isinstance(response, web.Response) and isinstance(response.body, bytes | bytearray):
        return len(response.body)
    return response.content_length or 0


def make_metrics_middleware(metrics: HttpMetrics) -> Middleware:
    @web.middleware
    async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        start = time.perf_counter()
        status = 500
        out = 0
        try:
            response = await handler(request)
            status, out = response.status, body_length(response)
            return response
        except web.HTTPException as exc:  # redirects pass through the error middleware
            status = exc.status
            raise
        except asyncio.CancelledError:
            status = CLIENT_CLOSED
            raise
        finally:
            metrics.observe(
                route_of(request),
                request.method,
                status,
                time.perf_counter() - start,
                request.content.total_bytes,
                out,
            )

    return metrics_middleware


def install_metrics(app: web.Application, metrics: HttpMetrics) -> None:
    """Put the metrics middleware outermost; call before the app starts."""
    app.middlewares.insert(0, make_metrics_middleware(metrics))


def bearer_token(request: web.Request) -> str:
    scheme, _, token = request.headers.get(protocol.AUTHORIZATION, "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def metrics_token_ok(request: web.Request, token_hash: str | None) -> bool:
    token = bearer_token(request)
    return bool(token_hash and token and auth.tokens_equal(auth.hash_token(token), token_hash))


class Exposition(Protocol):
    """What ``/metrics`` answers with: ``HttpMetrics`` and the gateway's ``S3Metrics``."""

    def render(self) -> bytes: ...


def metrics_response(metrics: Exposition) -> web.Response:
    body = metrics.render()
    response = web.Response(body=body)
    response.content_type = CONTENT_TYPE.split(";")[0]
    response.charset = "utf-8"
    return response


def deny_metrics() -> AuthError:
    return AuthError("metrics need Authorization: Bearer <DFS_METRICS_TOKEN>")


async def readiness(
    live_nodes: Callable[[], Awaitable[Sized]], replication_factor: int, timeout: float
) -> web.Response:
    """/readyz of a process that serves the cluster (the API, the S3 gateway): ready when the
    metadata store answers and at least ``replication_factor`` nodes are live."""
    checks: dict[str, object] = {"replication_factor": replication_factor}
    try:
        live = await asyncio.wait_for(live_nodes(), timeout)
    except (DfsError, OSError, TimeoutError) as exc:
        checks["metadata"] = f"error: {exc}"
        return readiness_response(checks, ready=False)
    checks["metadata"] = "ok"
    checks["live_nodes"] = len(live)
    return readiness_response(checks, ready=len(live) >= replication_factor)


def readiness_response(checks: Mapping[str, object], ready: bool) -> web.Response:
    if ready:
        return json_response({"status": "ready", "checks": dict(checks)})
    exc = Unavailable("not ready", checks=dict(checks))
    return json_response(exc.to_body(), status=exc.http_status)
