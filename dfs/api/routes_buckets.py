"""The namespace's bucket routes: parse HTTP, call ``dfs.api.namespace_service``, answer.

| method | path                       | answer                                              |
|--------|----------------------------|-----------------------------------------------------|
| GET    | /buckets                   | ``{"buckets": [...]}``: the tenant's own and those granted to it |
| POST   | /buckets                   | 201 the new bucket ``{name, versioning?, access?}``; 409 taken |
| GET    | /buckets/{bucket}          | the bucket (anonymous: public-read buckets only)    |
| PATCH  | /buckets/{bucket}          | owner: ``{versioning?, access?, grants?}``, the bucket |
| DELETE | /buckets/{bucket}          | owner: 204; 409 bucket_not_empty                    |
| GET    | /buckets/{bucket}/objects  | a listing: ``?prefix=&delimiter=&token=&limit=&versions=true`` |
| DELETE | /buckets/{bucket}/objects  | ``?prefix=``: delete every key under it, ``{"deleted": n}`` |
| GET    | /buckets/{bucket}/search   | a listing of latest versions matching every filter  |
| GET    | /buckets/{bucket}/usage    | owner: counters; ``?by=prefix`` (a du) or ``?by=type`` |
| GET    | /usage                     | the tenant's counters; ``?by=type``                  |

Access (``dfs.api.access``): a bucket the caller may not see answers 404 as a missing one.
"""

from __future__ import annotations

from aiohttp import web

from dfs import protocol
from dfs.api.access import is_owner
from dfs.api.context import NAMESPACE, caller, in_body_slot, principal
from dfs.api.namespace_bodies import (
    NAMESPACE_BODY,
    bucket_body,
    listing_body,
    parse_bucket_access,
    parse_bucket_name,
    parse_grants,
    parse_limit,
    parse_prefix,
    parse_search,
    parse_versioning,
    usage_body,
)
from dfs.errors import InvalidRequest
from dfs.server import json_response, read_json

_BY = ("", "prefix", "type")


def _bucket(request: web.Request) -> str:
    return parse_bucket_name(request.match_info["bucket"])


async def list_buckets(request: web.Request) -> web.Response:
    who = principal(request)
    buckets = await request.app[NAMESPACE].list_buckets(who)
    return json_response({"buckets": [bucket_body(b, is_owner(who, b)) for b in buckets]})


@in_body_slot
async def create_bucket(request: web.Request) -> web.Response:
    body = await read_json(request, NAMESPACE_BODY)
    name = parse_bucket_name(body.get("name"))
    versioning = None if body.get("versioning") is None else parse_versioning(body["versioning"])
    access = None if body.get("access") is None else parse_bucket_access(body["access"])
    rec = await request.app[NAMESPACE].create_bucket(principal(request), name, versioning, access)
    return json_response(bucket_body(rec), status=201)


async def get_bucket(request: web.Request) -> web.Response:
    who = caller(request)
    rec = await request.app[NAMESPACE].visible_bucket(who, _bucket(request))
    return json_response(bucket_body(rec, is_owner(who, rec)))


@in_body_slot
async def update_bucket(request: web.Request) -> web.Response:
    body = await read_json(request, NAMESPACE_BODY)
    versioning = None if body.get("versioning") is None else parse_versioning(body["versioning"])
    access = None if body.get("access") is None else parse_bucket_access(body["access"])
    grants = None if body.get("grants") is None else parse_grants(body["grants"])
    rec = await request.app[NAMESPACE].update_bucket(
        principal(request),
        _bucket(request),
        versioning=versioning,
        bucket_access=access,
        grants=grants,
    )
    return json_response(bucket_body(rec))


async def delete_bucket(request: web.Request) -> web.Response:
    await request.app[NAMESPACE].delete_bucket(principal(request), _bucket(request))
    return web.Response(status=204)


async def list_objects(request: web.Request) -> web.Response:
    q, ns, who = request.query, request.app[NAMESPACE], caller(request)
    page = await ns.listing(
        who,
        _bucket(request),
        prefix=parse_prefix(q.get("prefix")),
        delimiter=q.get("delimiter", ""),
        token=q.get("token") or None,
        limit=parse_limit(q.get("limit")),
        versions=q.get("versions", "") in ("1", "true"),
    )
    return json_response(listing_body(page, is_owner(who, await ns.bucket(_bucket(request)))))


async def delete_prefix(request: web.Request) -> web.Response:
    prefix = parse_prefix(request.query.get("prefix"))
    if not prefix:
        raise InvalidRequest("prefix is required (a whole bucket goes with DELETE /buckets/…)")
    n = await request.app[NAMESPACE].delete_prefix(principal(request), _bucket(request), prefix)
    return json_response({"deleted": n})


async def search(request: web.Request) -> web.Response:
    q, ns, who = request.query, request.app[NAMESPACE], caller(request)
    page = await ns.search(
        who,
        _bucket(request),
        parse_search(q),
        q.get("token") or None,
        parse_limit(q.get("limit"), 100),
    )
    return json_response(listing_body(page, is_owner(who, await ns.bucket(_bucket(request)))))


def _by(request: web.Request) -> str:
    by = request.query.get("by", "")
    if by not in _BY:
        raise InvalidRequest("by must be prefix or type")
    return by


async def _usage(request: web.Request, bucket: str | None) -> web.Response:
    by = _by(request)
    got = await request.app[NAMESPACE].usage(principal(request), bucket, by)
    if isinstance(got, dict):
        return json_response({"by": by, "usage": {k: usage_body(u) for k, u in got.items()}})
    return json_response(usage_body(got))


async def bucket_usage(request: web.Request) -> web.Response:
    return await _usage(request, _bucket(request))


async def tenant_usage(request: web.Request) -> web.Response:
    return await _usage(request, None)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get(protocol.BUCKETS, list_buckets)
    r.add_post(protocol.BUCKETS, create_bucket)
    r.add_get(protocol.BUCKET, get_bucket)
    r.add_patch(protocol.BUCKET, update_bucket)
    r.add_delete(protocol.BUCKET, delete_bucket)
    r.add_get(protocol.BUCKET_OBJECTS, list_objects)
    r.add_delete(protocol.BUCKET_OBJECTS, delete_prefix)
    r.add_get(protocol.BUCKET_SEARCH, search)
    r.add_get(protocol.BUCKET_USAGE, bucket_usage)
    r.add_get(protocol.USAGE, tenant_usage)
