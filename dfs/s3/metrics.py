"""The gateway's Prometheus metrics: its series, the middleware that feeds them and the
``GET /metrics`` answer.

| series | type | labels | meaning |
|---|---|---|---|
| ``dfs_s3_requests_total`` | counter | operation, status | requests answered |
| ``dfs_s3_request_duration_seconds`` | histogram | operation | time to answer |
| ``dfs_s3_request_bytes_total`` | counter | operation | request body bytes read (in) |
| ``dfs_s3_response_bytes_total`` | counter | operation | response body bytes sent (out) |
| ``dfs_s3_auth_failures_total`` | counter | reason | refused signatures, by S3 error code |
| ``dfs_s3_requests_in_flight`` | gauge | | requests being answered now |
| ``dfs_s3_multipart_uploads`` | gauge | | multipart uploads in progress in the cluster (any gateway's; counted up to ``UPLOADS_CAP``) |

``operation`` is the S3 action (``dfs.s3.operations``), never the path: a bounded label
whatever the buckets and keys. ``reason`` is one of the gateway's own error codes
(``SignatureDoesNotMatch``, ``InvalidAccessKeyId``, ``RequestTimeTooSkewed``,
``AccessDenied``...), also bounded.

``/metrics`` is also the path-style address of a bucket named ``metrics``: only a GET whose
``Authorization`` is a ``Bearer`` token (never a SigV4 scheme) is a scrape. The token is
``DFS_METRICS_TOKEN``, as for ``dfs-api`` and the nodes; without it the gateway's metrics
stay closed (403 AccessDenied, as for a wrong token). The registry is the app's own, never
the process-global one, so several gateways in one process do not collide.

The uploads gauge is read from the metadata store at a scrape, at most once every
``DFS_S3_UPLOADS_REFRESH`` seconds (15; a scrape in between answers the last count), by
``count_multipart_uploads``: a count that stops at ``UPLOADS_CAP`` (an index count on SQLite,
a COUNT query of one partition's keys on DynamoDB), so a scrape's cost is bounded whatever
the number of uploads. A failed count leaves the last value.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time

from aiohttp import hdrs, web
from aiohttp.typedefs import Middleware
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from dfs import protocol
from dfs.config import DEFAULT_S3_UPLOADS_REFRESH
from dfs.errors import DfsError
from dfs.meta.multipart import MultipartStore
from dfs.metrics import LATENCY_BUCKETS
from dfs.monitoring import CLIENT_CLOSED, body_length, metrics_response, metrics_token_ok
from dfs.s3.errors import Handler, S3Error, access_denied
from dfs.s3.operations import action_of

log = logging.getLogger("dfs.s3.metrics")
METRICS_ACTION = "Metrics"
PROBE_ACTION = "Probe"
UPLOADS_REFRESH = DEFAULT_S3_UPLOADS_REFRESH  # default seconds between two counts of the uploads
UPLOADS_CAP = 10_000


class S3Metrics:
    """The gateway's series, in a registry of its own."""

    def __init__(
        self, registry: CollectorRegistry | None = None, uploads_refresh: float = UPLOADS_REFRESH
    ) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.uploads_refresh = uploads_refresh
        self.requests = Counter(
            "dfs_s3_requests", "S3 requests answered", ("operation", "status"), registry=r
        )
        self.latency = Histogram(
            "dfs_s3_request_duration_seconds",
            "Time to answer an S3 request",
            ("operation",),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.bytes_in = Counter(
            "dfs_s3_request_bytes", "Request body bytes read", ("operation",), registry=r
        )
        self.bytes_out = Counter(
            "dfs_s3_response_bytes", "Response body bytes sent", ("operation",), registry=r
        )
        self.auth_failures = Counter(
            "dfs_s3_auth_failures", "Refused signatures by S3 error code", ("reason",), registry=r
        )
        self.in_flight = Gauge("dfs_s3_requests_in_flight", "Requests being answered", registry=r)
        self.uploads = Gauge(
            "dfs_s3_multipart_uploads",
            f"Multipart uploads in progress (counted up to {UPLOADS_CAP})",
            registry=r,
        )
        self._uploads_at = -math.inf

    def observe(
        self, operation: str, status: int, seconds: float, bytes_in: int, bytes_out: int
    ) -> None:
        self.requests.labels(operation, str(status)).inc()
        self.latency.labels(operation).observe(seconds)
        if bytes_in:
            self.bytes_in.labels(operation).inc(bytes_in)
        if bytes_out:
            self.bytes_out.labels(operation).inc(bytes_out)

    async def count_uploads(self, store: MultipartStore | None, now: float) -> None:
        """Refresh the uploads gauge if the last count is older than ``uploads_refresh``."""
        if store is None or now - self._uploads_at < self.uploads_refresh:
            return
        self._uploads_at = now  # before the count: concurrent scrapes do not count again
        try:
            self.uploads.set(await store.count_multipart_uploads(UPLOADS_CAP))
        except DfsError as exc:
            log.warning("counting multipart uploads failed: %s", exc)

    def auth_failed(self, err: S3Error) -> None:
        self.auth_failures.labels(err.code).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


METRICS = web.AppKey("s3_metrics", S3Metrics)
OPERATION = "dfs.s3.operation"  # set by the probe and scrape answers, which name themselves


def is_scrape(request: web.Request) -> bool:
    scheme = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")[0]
    return (
        request.method == hdrs.METH_GET
        and request.path == protocol.METRICS
        and scheme.lower() == "bearer"
    )


async def scrape(
    request: web.Request, token_hash: str | None, uploads: MultipartStore | None
) -> web.Response:
    """The metrics text; AccessDenied without the right ``DFS_METRICS_TOKEN``."""
    request[OPERATION] = METRICS_ACTION
    if not metrics_token_ok(request, token_hash):
        raise access_denied("metrics need Authorization: Bearer <DFS_METRICS_TOKEN>")
    await request.app[METRICS].count_uploads(uploads, time.monotonic())
    return metrics_response(request.app[METRICS])


def make_middleware(metrics: S3Metrics) -> Middleware:
    @web.middleware
    async def s3_metrics(request: web.Request, handler: Handler) -> web.StreamResponse:
        start = time.perf_counter()
        status, out = 500, 0
        metrics.in_flight.inc()
        try:
            response = await handler(request)
            status, out = response.status, body_length(response)
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except asyncio.CancelledError:
            status = CLIENT_CLOSED
            raise
        finally:
            metrics.in_flight.dec()
            operation = request.get(OPERATION) or action_of(request)
            seconds = time.perf_counter() - start
            metrics.observe(operation, status, seconds, request.content.total_bytes, out)

    return s3_metrics


def install(app: web.Application, uploads_refresh: float = UPLOADS_REFRESH) -> S3Metrics:
    """Give ``app`` its metrics, counted by a middleware outside every other one (so error
    answers are counted too); call before any other middleware is added."""
    m = S3Metrics(uploads_refresh=uploads_refresh)
    app[METRICS] = m
    app.middlewares.insert(0, make_middleware(m))
    return m
