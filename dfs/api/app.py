"""The API coordinator's aiohttp app: assemble middlewares, routes and background loops.

Only assembly lives here (``make_app``, ``start_api``, ``RunningApi``); nothing imports this
module but the entry point and tests. The routes, each table in its module's docstring:

| module                          | routes                                                     |
|---------------------------------|------------------------------------------------------------|
| ``dfs.api.routes_files``        | init/finalize-upload, download-plan, proxy-chunk-*, files, DELETE /file/{id} |
| ``dfs.api.routes_batch``        | init-uploads, finalize-uploads, resume-upload, download-plans |
| ``dfs.api.routes_paged``        | paged-upload (+ /page, /prove, /finalize): files of any size |
| ``dfs.api.routes_seed``         | the seed's /file, /metadata, /download, /signed-download, /upload, /check, /admin/hashes |
| ``dfs.api.routes_admin``        | /admin/tenants, /admin/tokens, /admin/stats, /nodes, /admin/repair |
| ``dfs.api.routes_access_keys`` | /access-keys… (S3 access keys: create, list, revoke) |
| ``dfs.api.routes_drain``        | /admin/nodes/{node_id}/drain (start, status, cancel a node drain) |
| ``dfs.api.routes_nodes``        | /nodes/heartbeat, /nodes/deregister                         |
| ``dfs.api.routes_monitoring``   | /healthz, /readyz, /metrics                                 |
| ``dfs.api.routes_buckets``      | /buckets…, /usage (the namespace: buckets, listings, search, usage) |
| ``dfs.api.routes_objects``      | /objects…, /object-info, /object-url, /objects-copy, /objects-restore |
| ``dfs.api.routes_console``      | /ui/… (the web console's static files, no token)            |
| ``dfs.api.routes_usage``        | /usage/history, /admin/usage (the dashboards' history, per-tenant usage) |

The keys route modules share, and the bearer-token middleware, are in ``dfs.api.context``;
CORS in ``dfs.api.cors``; the headers that keep served user content inert in
``dfs.api.user_content``. The logic behind the routes: ``dfs.api.coordinator`` (files),
``dfs.api.registry`` (tokens, tenants, nodes), ``dfs.api.ingest`` (bytes through the API),
``dfs.api.namespace_service`` (buckets and objects, access in ``dfs.api.access``),
``dfs.api.repair`` and ``dfs.api.gc`` (run by ``dfs.api.background``).

Every route but /healthz, /readyz, the console's files (/ui/) and signed download URLs needs ``Authorization: Bearer
<token>``; the token names the tenant whose files the request sees (other tenants' files
answer 404, like unknown ones). Node registration routes need a capability signed with the
cluster secret instead; /metrics takes DFS_METRICS_TOKEN or an admin token.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from dfs import protocol
from dfs.api import (
    background,
    cors,
    routes_access_keys,
    routes_admin,
    routes_batch,
    routes_buckets,
    routes_console,
    routes_drain,
    routes_files,
    routes_monitoring,
    routes_nodes,
    routes_objects,
    routes_paged,
    routes_seed,
    routes_usage,
    user_content,
)
from dfs.api.body_slots import BODY_PER_TENANT, BODY_TOTAL, BigBodySlots, stream_slots
from dfs.api.content_check import VerifiedFiles
from dfs.api.context import (
    BIG_BODIES,
    BODIES,
    COORDINATOR,
    GC,
    NAMESPACE,
    REGISTRY,
    REPAIR,
    STREAMS,
    USAGE_SAMPLER,
    VERIFIED,
    auth_middleware,
)
from dfs.api.coordinator import Coordinator
from dfs.api.gc import GarbageCollector
from dfs.api.namespace_service import Namespace, namespace_store
from dfs.api.registry import Registry
from dfs.api.repair import Repair, RepairReport
from dfs.api.usage_sampler import UsageSampler
from dfs.config import ApiConfig
from dfs.errors import ConfigError
from dfs.expect_continue import defer_continue
from dfs.meta import open_metadata_store
from dfs.meta.base import MetadataStore
from dfs.meta.usage_history import usage_history_of
from dfs.metrics import ApiMetrics
from dfs.server import error_middleware, runner_kwargs
from dfs.transport.http import make_session
from dfs.transport.node_client import NodeClient


def _repair_to_metrics(metrics: ApiMetrics) -> Callable[[RepairReport], None]:
    def report(r: RepairReport) -> None:
        left = r.under_replicated - r.repaired - r.failed
        metrics.set_repair_status(under_replicated=r.under_replicated, repair_queue=max(left, 0))

    return report


def make_app(coordinator: Coordinator) -> web.Application:
    app = web.Application(
        middlewares=[error_middleware, auth_middleware], client_max_size=protocol.MAX_JSON_BODY
    )
    app[COORDINATOR] = coordinator
    app[REGISTRY] = Registry(coordinator.cfg, coordinator.meta, coordinator.clock)
    app[BIG_BODIES] = BigBodySlots()
    app[BODIES] = BigBodySlots(total=BODY_TOTAL, per_tenant=BODY_PER_TENANT)
    app[STREAMS] = stream_slots()
    app[VERIFIED] = VerifiedFiles()
    routes_files.add_routes(app)
    routes_admin.add_routes(app)
    routes_access_keys.add_routes(app)
    routes_drain.add_routes(app)
    routes_nodes.add_routes(app)
    metrics = routes_monitoring.add_routes(app)
    gc = GarbageCollector(coordinator)
    app[GC] = gc
    app[REPAIR] = Repair(
        coordinator, on_report=_repair_to_metrics(metrics), on_returned=gc.sweep_soon.update
    )
    routes_seed.add_routes(app)
    routes_batch.add_routes(app)
    routes_paged.add_routes(app)
    app[NAMESPACE] = Namespace(namespace_store(coordinator.meta), coordinator)
    app[USAGE_SAMPLER] = UsageSampler(
        coordinator, namespace_store(coordinator.meta), usage_history_of(coordinator.meta)
    )
    routes_usage.add_routes(app)
    routes_buckets.add_routes(app)
    routes_objects.add_routes(app)
    routes_console.add_routes(app)
    cors.add_cors(app, coordinator.cfg.cors_origins)
    user_content.add_content_headers(app)
    defer_continue(app)
    return app


@dataclass
class RunningApi:
    runner: web.AppRunner
    port: int
    host: str
    meta: MetadataStore
    coordinator: Coordinator
    repair: Repair
    gc: GarbageCollector
    loops: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def stop(self) -> None:
        """Drain in-flight requests, then close the node client session and the store."""
        await background.stop_loops(self.loops)
        await self.runner.cleanup()
        await self.coordinator.nodes.close()
        await self.meta.close()


async def start_api(cfg: ApiConfig, sock: socket.socket | None = None) -> RunningApi:
    """Serve the API on ``cfg.host``/``cfg.port``, or on the listening ``sock`` it shares
    with other worker processes (``dfs.api.workers``)."""
    if not cfg.cluster_secret:
        raise ConfigError("DFS_CLUSTER_SECRET", "", "required")
    if not cfg.api_secret:
        # no configured or kept secret (tests, embedding): one for this process's lifetime
        cfg = dataclasses.replace(cfg, api_secret=secrets.token_bytes(32))
    meta = await open_metadata_store(cfg.meta_url)
    coordinator = Coordinator(cfg, meta, NodeClient(make_session()))
    app = make_app(coordinator)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=10.0, **runner_kwargs())
    await runner.setup()
    site: web.BaseSite = (
        web.SockSite(runner, sock) if sock is not None else web.TCPSite(runner, cfg.host, cfg.port)
    )
    await site.start()
    port = int(runner.addresses[0][1])
    repair, gc = app[REPAIR], app[GC]
    loops = background.start_loops(repair, gc, app[USAGE_SAMPLER]) if cfg.maintenance else []
    return RunningApi(runner, port, cfg.host, meta, coordinator, repair, gc, loops)
