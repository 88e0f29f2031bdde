"""The dashboards' routes (issue 15): usage over time, and every tenant's usage for admins.

| method | path                   | auth  | answer                                                  |
|--------|------------------------|-------|---------------------------------------------------------|
| GET    | /usage/history?since=  | token | ``{"tenant", "interval", "samples": [sample...]}``: the caller's own tenant |
| GET    | /admin/usage?since=    | admin | ``{"tenants": {tenant: counters}, "cluster": [sample...], "interval"}`` |

A sample is ``{"at", "objects", "logical_bytes", "stored_bytes", "saved_bytes"}`` (at most
``MAX_SAMPLES``, the newest, oldest first, with ``at >= since``), written by
``dfs.api.usage_sampler`` every ``interval`` seconds. A tenant's samples are its own
namespace counters (other tenants' copies never change them); the cluster's are the
metadata store's totals. ``/admin/usage`` reads each tenant's counters now (at most
``MAX_TENANTS``, by name).
"""

from __future__ import annotations

import math

from aiohttp import web

from dfs import protocol
from dfs.api.context import COORDINATOR, NAMESPACE, USAGE_SAMPLER, admin, principal
from dfs.api.namespace_bodies import usage_body
from dfs.errors import InvalidRequest
from dfs.meta.usage_history import CLUSTER

MAX_TENANTS = 1000


def _since(request: web.Request) -> float:
    raw = request.query.get("since", "0")
    try:
        since = float(raw)
    except ValueError:
        raise InvalidRequest("since must be a number of Unix seconds") from None
    if not math.isfinite(since):
        raise InvalidRequest("since must be a number of Unix seconds")
    return since


async def usage_history(request: web.Request) -> web.Response:
    tenant = principal(request).tenant
    sampler = request.app[USAGE_SAMPLER]
    samples = await sampler.samples(tenant, _since(request))
    return web.json_response({"tenant": tenant, "interval": sampler.interval, "samples": samples})


async def admin_usage(request: web.Request) -> web.Response:
    admin(request)
    since = _since(request)
    sampler = request.app[USAGE_SAMPLER]
    store = request.app[NAMESPACE].store
    tenants = sorted(await request.app[COORDINATOR].meta.list_tenants())[:MAX_TENANTS]
    usage = {t: usage_body(await store.usage(t)) for t in tenants}
    cluster = await sampler.samples(CLUSTER, since)
    return web.json_response({"tenants": usage, "cluster": cluster, "interval": sampler.interval})


def add_routes(app: web.Application) -> None:
    app.router.add_get(protocol.USAGE_HISTORY, usage_history)
    app.router.add_get(protocol.ADMIN_USAGE, admin_usage)
