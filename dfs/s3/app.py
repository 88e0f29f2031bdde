"""The S3 gateway's aiohttp app: assembly only (``make_app``, ``start_s3``, ``RunningS3``).

Every request is authenticated by SigV4 (``dfs.s3.sigv4``) before its route runs; errors
answer as S3's XML documents (``dfs.s3.errors``). The services are the API's
(``Coordinator``, ``Namespace``); this process runs no background loops (repair and garbage
collection stay with ``dfs-api``), so several gateways can run side by side.

| module                    | calls                                                         |
|---------------------------|---------------------------------------------------------------|
| ``dfs.s3.routes_buckets`` | ListBuckets, CreateBucket, DeleteBucket, HeadBucket, GetBucketLocation, ListObjectsV2 |
| ``dfs.s3.routes_objects`` | PutObject, CopyObject, GetObject, HeadObject, DeleteObject    |
| ``dfs.s3.routes_multipart`` | multipart uploads (told apart by their query: ``dispatch``) |
| ``dfs.s3.subresources``   | the rest (versions, tagging, ACLs, DeleteObjects, ListObjects v1): which module answers |

Unsigned requests are anonymous: only public reads and CORS preflights (``dfs.s3.anonymous``,
``dfs.s3.cors``). ``x-amz-expected-bucket-owner`` and ``x-amz-source-expected-bucket-owner``
are checked after the signature, before any call (``dfs.s3.expected_owner``).

Routes are path-style; with a domain (``DFS_S3_DOMAIN``) ``dfs.s3.addressing`` also serves
them virtual-host style (``BUCKET.DOMAIN``). ``/healthz`` and ``/readyz`` answer without a
signature (``dfs.s3.health``); ``/metrics`` takes a bearer ``DFS_METRICS_TOKEN``
(``dfs.s3.metrics``: requests by S3 action and status, latency, bytes, auth failures).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from aiohttp import web

from dfs.api.body_slots import BODY_PER_TENANT, BODY_TOTAL, BigBodySlots, stream_slots
from dfs.api.coordinator import Coordinator
from dfs.api.namespace_service import Namespace, namespace_store
from dfs.api.ttl_cache import TtlMap
from dfs.config import ApiConfig
from dfs.errors import ConfigError
from dfs.expect_continue import defer_continue, send_continue
from dfs.meta import open_metadata_store
from dfs.meta.base import MetadataStore, NodeRecord
from dfs.meta.multipart import multipart_store
from dfs.s3 import (
    anonymous,
    cors,
    expected_owner,
    metrics,
    routes_buckets,
    routes_multipart,
    routes_objects,
)
from dfs.s3.addressing import add_virtual_hosts
from dfs.s3.context import (
    BODIES,
    CALLER,
    COORDINATOR,
    KEYS,
    NAMESPACE,
    STREAMS,
    released_when_answered,
)
from dfs.s3.errors import Handler, S3Error, s3_error_middleware
from dfs.s3.health import health_answer
from dfs.s3.sigv4 import KeyCache, authenticate
from dfs.server import runner_kwargs
from dfs.transport.http import make_session
from dfs.transport.node_client import NodeClient

BUCKET_CACHE_SECONDS = 2.0
"""How long PutObject reuses a bucket as read (``Namespace.bucket_for_write``): an ACL,
grant or versioning change made through another gateway or the API reaches this gateway's
writes within this many seconds (its own changes at once; whether the bucket still exists
and is the file's owner's is checked by the store at every link, whatever is cached)."""
LIVE_NODES_SECONDS = 1.0
"""How long the gateway reuses the list of live nodes it places chunks on (a node that stops
is listed until its heartbeat expires, ``NODE_HEARTBEAT_TIMEOUT``, anyway)."""


class CachingCoordinator(Coordinator):
    """The API's Coordinator, but the live nodes are read at most once per
    ``LIVE_NODES_SECONDS`` (a metadata read per small object otherwise)."""

    def __init__(self, cfg: ApiConfig, meta: MetadataStore, nodes: NodeClient) -> None:
        super().__init__(cfg, meta, nodes)
        self._live: TtlMap[str, list[NodeRecord]] = TtlMap(LIVE_NODES_SECONDS, size=1)

    async def live_nodes(self) -> list[NodeRecord]:
        return list(await self._live.get("", super().live_nodes))


@web.middleware
async def sigv4_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    probe = await health_answer(request)
    if probe is not None:
        request[metrics.OPERATION] = metrics.PROBE_ACTION
        return probe
    coord = request.app[COORDINATOR]
    if metrics.is_scrape(request):
        uploads = multipart_store(coord.meta)
        return await metrics.scrape(request, coord.cfg.metrics_token_hash, uploads)
    try:
        if anonymous.unsigned(request):
            anonymous.admit(request)  # public reads only (dfs.s3.anonymous)
        else:
            request[CALLER] = await authenticate(request, request.app[KEYS], coord.clock())
    except S3Error as err:
        request.app[metrics.METRICS].auth_failed(err)
        raise
    # signed (or admitted anonymous): invite the body now, so that it arrives while the
    # handler does its own checks (a bucket, a slot, the metadata), not after them
    await send_continue(request)
    async with released_when_answered(request):  # what the handler ``hold``s (body slots)
        return await handler(request)


def make_runner(app: web.Application) -> web.AppRunner:
    """The runner of the gateway's app (``start_s3``; tests run it in process so too)."""
    return web.AppRunner(
        app,
        access_log=None,
        shutdown_timeout=10.0,
        # a body's Content-Encoding (gzip...) is the object's, stored with it, not a
        # transport coding: aiohttp must hand the bytes on as sent, never decode them
        auto_decompress=False,
        # aiohttp's 64 KiB until a streamed body is admitted (``stream_slot`` widens it):
        # a connection waiting for a slot holds 128 KiB of its body, not 2 MiB
        **runner_kwargs(),
    )


def make_app(coordinator: Coordinator, domain: str = "") -> web.Application:
    """The gateway; ``domain`` (``DFS_S3_DOMAIN``) also serves buckets as ``BUCKET.domain``."""
    # the owner conditions after the signature, before the multipart dispatch's calls
    middlewares = [s3_error_middleware, sigv4_middleware, expected_owner.expected_owner]
    app = web.Application(middlewares=middlewares)
    metrics.install(app, coordinator.cfg.s3_uploads_refresh)  # outermost: errors counted too
    app[COORDINATOR] = coordinator
    app[KEYS] = KeyCache(coordinator.meta, coordinator.cfg.api_secret)
    app[STREAMS] = stream_slots()
    app[BODIES] = BigBodySlots(total=BODY_TOTAL, per_tenant=BODY_PER_TENANT)
    app[NAMESPACE] = Namespace(
        namespace_store(coordinator.meta), coordinator, bucket_ttl=BUCKET_CACHE_SECONDS
    )
    routes_buckets.add_routes(app)
    routes_objects.add_routes(app)
    routes_multipart.add_routes(app)
    cors.setup(app)
    defer_continue(app)
    if domain:  # last: it mirrors the bucket routes registered above
        add_virtual_hosts(app, domain)
    return app


@dataclass
class RunningS3:
    runner: web.AppRunner
    port: int
    host: str
    meta: MetadataStore
    coordinator: Coordinator
    tls: bool = False

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    async def stop(self) -> None:
        await self.runner.cleanup()
        await self.coordinator.nodes.close()
        await self.meta.close()


async def start_s3(
    cfg: ApiConfig, tls: ssl.SSLContext | None = None, domain: str = ""
) -> RunningS3:
    """Serve on ``cfg.host``/``cfg.port`` (the S3 address: see ``dfs.s3.main``), over TLS
    with ``tls``, buckets also as ``BUCKET.domain`` with a ``domain``."""
    if not cfg.cluster_secret:
        raise ConfigError("DFS_CLUSTER_SECRET", "", "required")
    if not cfg.api_secret:
        raise ConfigError("DFS_API_SECRET", "", "required: access keys are sealed under it")
    meta = await open_metadata_store(cfg.meta_url)
    coordinator = CachingCoordinator(cfg, meta, NodeClient(make_session()))
    runner = make_runner(make_app(coordinator, domain))
    await runner.setup()
    await web.TCPSite(runner, cfg.host, cfg.port, ssl_context=tls).start()
    port = int(runner.addresses[0][1])
    return RunningS3(runner, port, cfg.host, meta, coordinator, tls is not None)
