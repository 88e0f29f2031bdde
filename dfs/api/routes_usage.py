"""The dashboards' routes (issue 15): usage over time, and every tenant's usage for admins.

| method | path                   | auth  | answer                                                  |
|--------|------------------------|-------|---------------------------------------------------------|
| GET    | /usage/history?since=&limit= | token | ``{"tenant", "interval", "samples": [sample...]}``: the caller's own tenant |
| GET    | /admin/usage?since=&limit=   | admin | ``{"tenants": {tenant: counters}, "cluster": [sample...], "interval"}`` |

A sample is ``{"at", "objects", "logical_bytes", "stored_bytes", "saved_bytes"}`` (at most
``limit`` (1 to ``MAX_SAMPLES``, which is the default), the newest, oldest first, with
``at >= since``), written by
``dfs.api.usage_sampler`` every ``interval`` seconds. A tenant's samples are its own
namespace counters (other tenants' copies never change them); the cluster's are the
metadata store's totals. ``/admin/usage`` reads each tenant's counters now (at most
``MAX_TENANTS``, by name). Any other query parameter is refused (400), a ``tenant`` one
included: the history answered is always the caller's own, never one a parameter names.
"""

from __future__ import annotations

import math

from aiohttp import web

from dfs import protocol
from dfs.api.context import COORDINATOR, NAMESPACE, USAGE_SAMPLER, admin, principal
from dfs.api.namespace_bodies import usage_body
from dfs.api.usage_sampler import MAX_SAMPLES, tenant_usage
from dfs.errors import InvalidRequest
from dfs.meta.usage_history import CLUSTER
from dfs.server import json_response

MAX_TENANTS = 1000


PARAMS = frozenset({"since", "limit"})


def _query(request: web.Request) -> tuple[float, int]:
    """``since`` (Unix seconds, default 0) and ``limit`` (1 to ``MAX_SAMPLES``, the default)."""
    unknown = sorted(set(request.query) - PARAMS)
    if unknown:
        raise InvalidRequest(f"unknown query parameter(s) {', '.join(unknown)[:200]}")
    if any(len(request.query.getall(k)) > 1 for k in request.query):
        raise InvalidRequest("each query parameter may be given once")
    try:
        since = float(request.query.get("since", "0"))
    except ValueError:
        raise InvalidRequest("since must be a number of Unix seconds") from None
    if not math.isfinite(since):
        raise InvalidRequest("since must be a number of Unix seconds")
    raw = request.query.get("limit", str(MAX_SAMPLES))
    limit = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 6 else 0
    if not 1 <= limit <= MAX_SAMPLES:
        raise InvalidRequest(f"limit must be an integer in [1, {MAX_SAMPLES}]")
    return since, limit


async def usage_history(request: web.Request) -> web.Response:
    tenant = principal(request).tenant
    sampler = request.app[USAGE_SAMPLER]
    samples = await sampler.samples(tenant, *_query(request))
    return json_response({"tenant": tenant, "interval": sampler.interval, "samples": samples})


async def admin_usage(request: web.Request) -> web.Response:
    admin(request)
    since, limit = _query(request)
    sampler = request.app[USAGE_SAMPLER]
    store = request.app[NAMESPACE].store
    tenants = sorted(await request.app[COORDINATOR].meta.list_tenants())[:MAX_TENANTS]
    usage = {t: usage_body(u) for t, u in (await tenant_usage(store, tenants)).items()}
    cluster = await sampler.samples(CLUSTER, since, limit)
    return json_response({"tenants": usage, "cluster": cluster, "interval": sampler.interval})


def add_routes(app: web.Application) -> None:
    app.router.add_get(protocol.USAGE_HISTORY, usage_history)
    app.router.add_get(protocol.ADMIN_USAGE, admin_usage)
