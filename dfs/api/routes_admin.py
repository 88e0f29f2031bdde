"""The API's admin routes (an admin token only): tenants, tokens, counters, nodes, repair;
and ``/whoami`` (any token: who the caller is).

| method | path           | answer                                                       |
|--------|----------------|--------------------------------------------------------------|
| POST   | /admin/tenants | 201 create a tenant                                          |
| GET    | /admin/tenants | list tenants                                                 |
| POST   | /admin/tokens  | 201 a token for a tenant; its text is shown once             |
| GET    | /admin/tokens?tenant= | the tokens (of one tenant) by id, never their text    |
| DELETE | /admin/tokens/{token_id} | revoke: every API process refuses it within 10 s  |
| GET    | /whoami        | any token: its tenant, role, token id and label              |
| GET    | /admin/stats   | dedup and cluster counters                                   |
| GET    | /nodes         | registry entries with liveness                               |
| GET    | /admin/repair  | the last repair pass's progress and its lease holder         |

``/admin/hashes`` (the seed's) is in ``dfs.api.routes_seed``. The logic is in
``dfs.api.registry`` (tenants, tokens, nodes), ``dfs.api.coordinator`` (counters) and
``dfs.api.repair`` (progress).
"""

from __future__ import annotations

from aiohttp import web

from dfs import auth, protocol
from dfs.api.bodies import unicode_text
from dfs.api.context import COORDINATOR, REGISTRY, REPAIR, admin, principal
from dfs.errors import InvalidRequest
from dfs.ids import parse_tenant
from dfs.server import json_response, read_json


async def admin_stats(request: web.Request) -> web.Response:
    admin(request)
    return json_response(await request.app[COORDINATOR].stats())


async def list_nodes(request: web.Request) -> web.Response:
    admin(request)
    return json_response(await request.app[REGISTRY].node_list())


async def create_tenant(request: web.Request) -> web.Response:
    admin(request)
    body = await read_json(request, 4096)
    tenant = parse_tenant(body.get("tenant"))
    return json_response(await request.app[REGISTRY].create_tenant(tenant), status=201)


async def list_tenants(request: web.Request) -> web.Response:
    admin(request)
    return json_response(await request.app[REGISTRY].list_tenants())


async def create_token(request: web.Request) -> web.Response:
    admin(request)
    body = await read_json(request, 4096)
    tenant = parse_tenant(body.get("tenant"))
    role = str(body.get("role", auth.ROLE_USER))
    label = body.get("label", "")
    if not isinstance(label, str) or len(label) > 200:
        raise InvalidRequest("label must be a string of at most 200 characters")
    unicode_text(label, "label")
    answer = await request.app[REGISTRY].create_token(tenant, role, label)
    return json_response(answer, status=201)


async def list_tokens(request: web.Request) -> web.Response:
    admin(request)
    tenant = request.query.get("tenant")
    if tenant is not None:
        tenant = parse_tenant(tenant)
    return json_response(await request.app[REGISTRY].list_tokens(tenant))


async def revoke_token(request: web.Request) -> web.Response:
    admin(request)
    token_id = request.match_info["token_id"]
    return json_response(await request.app[REGISTRY].revoke_token(token_id))


async def whoami(request: web.Request) -> web.Response:
    p = principal(request)
    body = {"tenant": p.tenant, "role": p.role, "token_id": p.token_id, "label": p.label}
    return json_response(body)


async def repair_status(request: web.Request) -> web.Response:
    admin(request)
    return json_response(await request.app[REPAIR].status())


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get(protocol.ADMIN_STATS, admin_stats)
    r.add_get(protocol.NODES, list_nodes)
    r.add_post(protocol.ADMIN_TENANTS, create_tenant)
    r.add_get(protocol.ADMIN_TENANTS, list_tenants)
    r.add_post(protocol.ADMIN_TOKENS, create_token)
    r.add_get(protocol.ADMIN_TOKENS, list_tokens)
    r.add_delete(protocol.ADMIN_TOKEN, revoke_token)
    r.add_get(protocol.WHOAMI, whoami)
    r.add_get(protocol.ADMIN_REPAIR, repair_status)
