"""S3 access keys (for ``dfs-s3``): a tenant creates, lists and revokes its own; an admin
those of any tenant.

| method | path                         | answer                                              |
|--------|------------------------------|-----------------------------------------------------|
| POST   | /access-keys                 | ``{label?, tenant? (admin)}``: 201 ``{access_key_id, secret_access_key, tenant, label, created_at}``; the secret is shown once |
| GET    | /access-keys?tenant=         | ``{"access_keys": [{access_key_id, tenant, label, created_at}]}``, never secrets |
| DELETE | /access-keys/{access_key_id} | revoke: ``{"revoked": id}``; every dfs-s3 refuses it within 5 s (its key cache, ``dfs.s3.sigv4.KEY_CACHE_SECONDS``) |

The secret is stored sealed (``dfs.access_keys``) under a key derived from the API secret.
A key of another tenant answers 404 as a missing one does.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dfs import access_keys, protocol
from dfs.api.bodies import Principal, unicode_text
from dfs.api.context import COORDINATOR, principal
from dfs.errors import Forbidden, InvalidRequest, NotFound
from dfs.ids import parse_tenant
from dfs.meta.base import AccessKeyRecord
from dfs.server import json_response, read_json


def _tenant(p: Principal, raw: object) -> str:
    """The tenant a request is about: the caller's own, or any for an admin."""
    if raw is None or raw == "":
        return p.tenant
    tenant = parse_tenant(raw)
    if tenant != p.tenant and not p.is_admin:
        raise Forbidden("only admins manage other tenants' access keys")
    return tenant


def _listed(rec: AccessKeyRecord) -> dict[str, Any]:
    return {
        "access_key_id": rec.access_key_id,
        "tenant": rec.tenant,
        "label": rec.label,
        "created_at": rec.created_at,
    }


async def create_access_key(request: web.Request) -> web.Response:
    p = principal(request)
    body = await read_json(request, 4096)
    tenant = _tenant(p, body.get("tenant"))
    label = body.get("label", "")
    if not isinstance(label, str) or len(label) > 200:
        raise InvalidRequest("label must be a string of at most 200 characters")
    unicode_text(label, "label")
    coord = request.app[COORDINATOR]
    key_id, secret = access_keys.new_key_id(), access_keys.new_secret()
    sealed = access_keys.seal_secret(coord.cfg.api_secret, key_id, tenant, secret)
    rec = AccessKeyRecord(key_id, tenant, sealed, label, coord.clock())
    await coord.meta.put_access_key(rec)
    return json_response({**_listed(rec), "secret_access_key": secret}, status=201)


async def list_access_keys(request: web.Request) -> web.Response:
    p = principal(request)
    raw = request.query.get("tenant")
    tenant = None if raw is None and p.is_admin else _tenant(p, raw)
    recs = await request.app[COORDINATOR].meta.list_access_keys(tenant)
    return json_response({"access_keys": [_listed(r) for r in recs]})


async def revoke_access_key(request: web.Request) -> web.Response:
    p = principal(request)
    key_id = request.match_info["access_key_id"]
    meta = request.app[COORDINATOR].meta
    rec = await meta.get_access_key(key_id) if access_keys.is_key_id(key_id) else None
    if rec is None or (rec.tenant != p.tenant and not p.is_admin):
        raise NotFound(f"no access key {key_id[:40]!r}")
    await meta.delete_access_key(key_id)
    return json_response({"revoked": key_id})


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_post(protocol.ACCESS_KEYS, create_access_key)
    r.add_get(protocol.ACCESS_KEYS, list_access_keys)
    r.add_delete(protocol.ACCESS_KEY, revoke_access_key)
