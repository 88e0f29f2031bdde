"""The API coordinator's aiohttp app: routes that parse requests and call the Coordinator.

| method | path                   | answer                                                   |
|--------|------------------------|----------------------------------------------------------|
| POST   | /init-upload           | file id + which chunks to send where; 503 too few nodes  |
| POST   | /finalize-upload       | the committed file; 409 incomplete_upload lists missing  |
| GET    | /download-plan         | chunks in order with live replicas; 404 unknown/pending  |
| PUT    | /proxy-chunk-upload    | store a chunk through the API (hash checked here too)    |
| GET    | /proxy-chunk-download  | a verified chunk through the API                         |
| GET    | /files                 | committed files, paged by ``limit`` and ``after``        |
| GET    | /admin/stats           | dedup and cluster counters (admin)                       |
| GET    | /nodes                 | registry entries with liveness (admin)                   |
| POST   | /nodes/heartbeat       | a node's registry entry (nodes configured with DFS_API_URL) |
| POST   | /nodes/deregister      | mark a node's entry down on clean shutdown (a tombstone) |
| POST   | /admin/tenants         | create a tenant (admin)                                  |
| GET    | /admin/tenants         | list tenants (admin)                                     |
| POST   | /admin/tokens          | create a token for a tenant; its text is shown once (admin) |
| DELETE | /file/{file_id}        | delete a file (see dfs.api.durability)                   |
| GET    | /admin/repair          | repair progress (admin)                                  |
| GET    | /healthz               | liveness                                                 |
| GET    | /readyz                | readiness: metadata reachable, enough live nodes (ops.py) |
| GET    | /metrics               | Prometheus metrics; metrics or admin token (ops.py)      |

Seed endpoints and the content check are in ``dfs.api.seed``, batch and resume endpoints in
``dfs.api.batch``, CORS in ``dfs.api.cors``, delete and repair status in ``dfs.api.durability``,
readiness and metrics in ``dfs.api.ops``.

Every route but /healthz, /readyz and signed download URLs needs ``Authorization: Bearer
<token>``; the token names the tenant whose files the request sees (other tenants' files
answer 404, like unknown ones). Node registration routes need a capability signed with the
cluster secret instead; /metrics takes DFS_METRICS_TOKEN or an admin token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field

from aiohttp import web

from dfs import auth, protocol, server
from dfs.api import durability, ops
from dfs.api.maintenance import Maintenance, RepairReport
from dfs.api.service import Coordinator, Principal, UploadRequest
from dfs.config import ApiConfig
from dfs.errors import ConfigError, Forbidden, InvalidRequest
from dfs.ids import parse_chunk_id, parse_file_id, parse_node_id, parse_tenant
from dfs.meta import open_metadata_store
from dfs.meta.base import NODE_UP, MetadataStore, NodeRecord
from dfs.server import (
    Handler,
    error_middleware,
    healthz,
    query_param,
    read_body,
    read_json,
    runner_kwargs,
)
from dfs.transport.http import make_session
from dfs.transport.node_client import NodeClient

COORDINATOR = web.AppKey("coordinator", Coordinator)
PRINCIPAL = web.RequestKey("principal", Principal)
BIG_BODIES = web.AppKey("big_bodies", asyncio.Semaphore)
BIG_BODY_SLOTS = 4

MAX_PAGE = 1000
# routes that need no bearer token: health and readiness, node registration (a capability
# instead) and metrics (which check DFS_METRICS_TOKEN or an admin token themselves, ops.py)
_PUBLIC = frozenset(
    {
        protocol.HEALTHZ,
        protocol.READYZ,
        protocol.METRICS,
        protocol.NODE_HEARTBEAT,
        protocol.NODE_DEREGISTER,
    }
)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Resolve the bearer token to a Principal before any handler runs."""
    public = request.path in _PUBLIC or request.path.startswith(protocol.SIGNED_DOWNLOAD)
    if not public and request.method != "OPTIONS":
        header = request.headers.get(protocol.AUTHORIZATION, "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            token = ""
        request[PRINCIPAL] = await request.app[COORDINATOR].authenticate(token.strip())
    return await handler(request)


def principal(request: web.Request) -> Principal:
    p: Principal = request[PRINCIPAL]
    return p


def admin(request: web.Request) -> Principal:
    p = principal(request)
    if not p.is_admin:
        raise Forbidden("this endpoint is for admins")
    return p


def big_body_slot(request: web.Request) -> contextlib.AbstractAsyncContextManager[object]:
    """A slot of BIG_BODY_SLOTS for a request whose body may be big (or is undeclared): a
    100,000-chunk upload needs ~250 MiB while it is planned, so only a few run at once."""
    declared = request.content_length
    if declared is not None and declared <= server.JSON_IN_THREAD:
        return contextlib.nullcontext()
    slots: asyncio.Semaphore = request.app[BIG_BODIES]
    return slots


async def init_upload(request: web.Request) -> web.Response:
    async with big_body_slot(request):
        body = await read_json(request, protocol.MAX_JSON_BODY)
        req = await asyncio.to_thread(UploadRequest.parse, body)
        del body
        plan = await request.app[COORDINATOR].init_upload(req, principal(request).tenant)
        if len(plan["upload"]) > 1000:
            text = await asyncio.to_thread(json.dumps, plan)
            return web.Response(text=text, status=201, content_type="application/json")
        return web.json_response(plan, status=201)


async def finalize_upload(request: web.Request) -> web.Response:
    async with big_body_slot(request):
        return await _finalize_upload(request)


async def _finalize_upload(request: web.Request) -> web.Response:
    body = await read_json(request, protocol.MAX_JSON_BODY)
    file_id = parse_file_id(body.get("file_id"))
    receipts = body.get("receipts", {})
    if not isinstance(receipts, dict):
        raise InvalidRequest("receipts must be an object of chunk id -> receipt")
    done = await request.app[COORDINATOR].finalize_upload(
        file_id, receipts, principal(request).tenant
    )
    return web.json_response(done)


async def download_plan(request: web.Request) -> web.Response:
    file_id = parse_file_id(query_param(request, "file_id"))
    return web.json_response(
        await request.app[COORDINATOR].download_plan(file_id, principal(request).tenant)
    )


async def proxy_chunk_upload(request: web.Request) -> web.Response:
    chunk_id = parse_chunk_id(query_param(request, "chunk_id"))
    file_id = parse_file_id(query_param(request, "file_id"))
    data = await read_body(request, protocol.MAX_CHUNK_SIZE)
    answer = await request.app[COORDINATOR].proxy_put(
        chunk_id, data, file_id, principal(request).tenant
    )
    answer.pop("stored", None)
    return web.json_response(answer, status=201)


async def proxy_chunk_download(request: web.Request) -> web.Response:
    chunk_id = parse_chunk_id(query_param(request, "chunk_id"))
    data = await request.app[COORDINATOR].proxy_get(chunk_id, principal(request).tenant)
    return web.Response(body=data, content_type="application/octet-stream")


def _int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"{name} must be an integer") from None
    if not lo <= value <= hi:
        raise InvalidRequest(f"{name} must be within [{lo}, {hi}]")
    return value


async def list_files(request: web.Request) -> web.Response:
    limit = _int_param(request, "limit", 100, 1, MAX_PAGE)
    after = request.query.get("after")
    if after is not None:
        after = parse_file_id(after, "after")
    coord = request.app[COORDINATOR]
    return web.json_response(await coord.list_files(limit, after, principal(request).tenant))


async def admin_stats(request: web.Request) -> web.Response:
    admin(request)
    return web.json_response(await request.app[COORDINATOR].stats())


async def list_nodes(request: web.Request) -> web.Response:
    admin(request)
    return web.json_response(await request.app[COORDINATOR].node_list())


async def create_tenant(request: web.Request) -> web.Response:
    admin(request)
    body = await read_json(request, 4096)
    tenant = parse_tenant(body.get("tenant"))
    return web.json_response(await request.app[COORDINATOR].create_tenant(tenant), status=201)


async def create_token(request: web.Request) -> web.Response:
    admin(request)
    body = await read_json(request, 4096)
    tenant = parse_tenant(body.get("tenant"))
    role = str(body.get("role", auth.ROLE_USER))
    label = body.get("label", "")
    if not isinstance(label, str) or len(label) > 200:
        raise InvalidRequest("label must be a string of at most 200 characters")
    answer = await request.app[COORDINATOR].create_token(tenant, role, label)
    return web.json_response(answer, status=201)


async def list_tenants(request: web.Request) -> web.Response:
    admin(request)
    return web.json_response({"tenants": await request.app[COORDINATOR].meta.list_tenants()})


async def node_heartbeat(request: web.Request) -> web.Response:
    body = await read_json(request, 64 * 1024)
    coord = request.app[COORDINATOR]
    node_id = parse_node_id(body.get("node_id"))
    coord.check_node(request.headers.get(protocol.CAPABILITY), node_id)
    port, cap, used = body.get("port"), body.get("capacity_bytes", 0), body.get("used_bytes", 0)
    host = body.get("host")
    if not isinstance(host, str) or not 0 < len(host) <= 255 or any(c in host for c in "/@ ?#"):
        raise InvalidRequest("host must be an address or host name")
    for name, value in (("port", port), ("capacity_bytes", cap), ("used_bytes", used)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InvalidRequest(f"{name} must be a non-negative integer")
    assert isinstance(port, int)
    assert isinstance(cap, int)
    assert isinstance(used, int)
    if not 0 < port <= 65535:
        raise InvalidRequest("port must be within [1, 65535]")
    now = time.time()
    await coord.meta.upsert_node(
        NodeRecord(
            node_id=node_id,
            host=host,
            port=port,
            zone=str(body.get("zone", ""))[:64],
            capacity_bytes=cap,
            used_bytes=used,
            status=NODE_UP,
            last_heartbeat=now,
            expires_at=now + coord.cfg.heartbeat_timeout,
        )
    )
    return web.json_response({"ok": True, "expires_at": now + coord.cfg.heartbeat_timeout})


async def node_deregister(request: web.Request) -> web.Response:
    body = await read_json(request, 4096)
    coord = request.app[COORDINATOR]
    node_id = parse_node_id(body.get("node_id"))
    coord.check_node(request.headers.get(protocol.CAPABILITY), node_id)
    await coord.meta.deregister_node(node_id, coord.clock())  # a tombstone: see repair
    return web.json_response({"ok": True})


def make_app(coordinator: Coordinator) -> web.Application:
    app = web.Application(
        middlewares=[error_middleware, auth_middleware], client_max_size=protocol.MAX_JSON_BODY
    )
    app[COORDINATOR] = coordinator
    app[BIG_BODIES] = asyncio.Semaphore(BIG_BODY_SLOTS)
    r = app.router
    r.add_post(protocol.INIT_UPLOAD, init_upload)
    r.add_post(protocol.FINALIZE_UPLOAD, finalize_upload)
    r.add_get(protocol.DOWNLOAD_PLAN, download_plan)
    r.add_put(protocol.PROXY_CHUNK_UPLOAD, proxy_chunk_upload)
    r.add_get(protocol.PROXY_CHUNK_DOWNLOAD, proxy_chunk_download)
    r.add_get(protocol.FILES, list_files)
    r.add_get(protocol.ADMIN_STATS, admin_stats)
    r.add_get(protocol.NODES, list_nodes)
    r.add_post(protocol.ADMIN_TENANTS, create_tenant)
    r.add_get(protocol.ADMIN_TENANTS, list_tenants)
    r.add_post(protocol.ADMIN_TOKENS, create_token)
    r.add_post(protocol.NODE_HEARTBEAT, node_heartbeat)
    r.add_post(protocol.NODE_DEREGISTER, node_deregister)
    r.add_get(protocol.HEALTHZ, healthz)
    metrics = ops.add_routes(app, coordinator)

    def report_to_metrics(report: RepairReport) -> None:
        left = report.under_replicated - report.repaired - report.failed
        metrics.set_repair_status(
            under_replicated=report.under_replicated, repair_queue=max(left, 0)
        )

    durability.add_routes(app, Maintenance(coordinator, on_report=report_to_metrics))
    # imported here: these route modules import this one for its keys and helpers
    from dfs.api import batch, cors, seed

    seed.add_routes(app)
    batch.add_routes(app)
    cors.add_cors(app, coordinator.cfg.cors_origins)
    return app


@dataclass
class RunningApi:
    runner: web.AppRunner
    port: int
    host: str
    meta: MetadataStore
    coordinator: Coordinator
    maintenance: Maintenance
    loops: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def stop(self) -> None:
        """Drain in-flight requests, then close the node client session and the store."""
        await durability.stop_loops(self.loops)
        await self.runner.cleanup()
        await self.coordinator.nodes.close()
        await self.meta.close()


async def start_api(cfg: ApiConfig) -> RunningApi:
    if not cfg.cluster_secret:
        raise ConfigError("DFS_CLUSTER_SECRET", "", "required")
    meta = await open_metadata_store(cfg.meta_url)
    session = make_session()
    coordinator = Coordinator(cfg, meta, NodeClient(session))
    app = make_app(coordinator)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=10.0, **runner_kwargs())
    await runner.setup()
    site = web.TCPSite(runner, cfg.host, cfg.port)
    await site.start()
    port = int(runner.addresses[0][1])
    maintenance = app[durability.MAINTENANCE]
    loops = durability.start_loops(maintenance) if cfg.maintenance else []
    return RunningApi(runner, port, cfg.host, meta, coordinator, maintenance, loops)
