"""The API's file routes, one file per request: parse HTTP, call the Coordinator.

| method | path                   | answer                                                   |
|--------|------------------------|----------------------------------------------------------|
| POST   | /init-upload           | 201 file id + which chunks to send where; 503 too few nodes |
| POST   | /finalize-upload       | the committed file; 409 incomplete_upload lists missing; |
|        |                        | with ``bucket``/``key`` also linked as that object's new version (``"object"``); |
|        |                        | the file this request committed is deleted if the link is refused, or links a |
|        |                        | grantee's clone (``dfs.api.object_files``)               |
| GET    | /download-plan         | chunks in order with live replicas; 404 unknown/pending  |
| PUT    | /proxy-chunk-upload    | 201: store a chunk through the API (hash checked here too) |
| GET    | /proxy-chunk-download  | a verified chunk through the API                         |
| GET    | /files                 | committed files, paged by ``limit`` and ``after``        |
| DELETE | /file/{file_id}        | 200 the file's metadata with ``"state": "deleted"``; 404 for |
|        |                        | unknown ids and other tenants' files                     |

Many files per request are in ``dfs.api.routes_batch``; the seed's whole-file routes in
``dfs.api.routes_seed``. Every route here needs a bearer token; the token names the tenant
whose files the request sees (other tenants' files answer 404, like unknown ones).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from dfs import protocol
from dfs.api import download_plans, ingest
from dfs.api.bodies import UploadRequest, parse_name
from dfs.api.context import (
    COORDINATOR,
    NAMESPACE,
    big_answer_slot,
    big_body_slot,
    body_slot,
    json_answer,
    principal,
    tenant,
)
from dfs.api.namespace_bodies import ObjectFields, object_body, parse_target
from dfs.api.object_files import link_made
from dfs.api.routes_batch import parse_exclude_nodes
from dfs.errors import InvalidRequest
from dfs.ids import parse_chunk_id, parse_file_id
from dfs.meta.base import FILE_COMPLETE
from dfs.server import json_response, query_param, read_body, read_json

MAX_PAGE = 1000


async def init_upload(request: web.Request) -> web.Response:
    async with big_body_slot(request):
        body = await read_json(request, protocol.MAX_JSON_BODY)
        req = await asyncio.to_thread(UploadRequest.parse, body)
        del body
        plan = await request.app[COORDINATOR].init_upload(req, tenant(request))
        return await json_answer(plan, entries=len(plan["upload"]), status=201)


async def finalize_upload(request: web.Request) -> web.Response:
    async with big_body_slot(request):
        body = await read_json(request, protocol.MAX_JSON_BODY)
        file_id = parse_file_id(body.get("file_id"))
        receipts = body.get("receipts", {})
        if not isinstance(receipts, dict):
            raise InvalidRequest("receipts must be an object of chunk id -> receipt")
        target = parse_target(body.get("bucket"), body.get("key"))  # 400 before committing
        fields = ObjectFields.parse(body)
        coord = request.app[COORDINATOR]
        # committed by this request (pending until now), so it is this request's to release
        # when no version links it (``object_files.link_made``); not one committed before
        made = (
            target is not None
            and (await coord.meta.get_file(file_id, tenant(request))).state != FILE_COMPLETE
        )
        # with a key the file is the object's: committed so that no lookup by content
        # hands it out before (or after) its link (docs/ARCHITECTURE.md, the namespace)
        exclude = parse_exclude_nodes(body.get("exclude_nodes"))
        done = await coord.finalize_upload(
            file_id, receipts, tenant(request), for_object=target is not None, exclude=exclude
        )
        if target is not None:  # also the key's new version (docs/WIRE.md, the namespace)
            ns = request.app[NAMESPACE]
            linked = await link_made(ns, principal(request), target, file_id, fields, made=made)
            done = {**done, "object": object_body(linked.version)}
        return json_response(done)


async def download_plan(request: web.Request) -> web.Response:
    file_id = parse_file_id(query_param(request, "file_id"))
    coord = request.app[COORDINATOR]
    rec = await coord.get_complete_file(file_id, tenant(request))
    async with big_answer_slot(request, rec.chunk_count):
        plan = await download_plans.plan_of(coord, rec)
        return await json_answer(plan, entries=rec.chunk_count)


async def proxy_chunk_upload(request: web.Request) -> web.Response:
    """The body (up to 16 MiB) costs memory only once the file is known to be one of the
    tenant's pending uploads (404/409 first, its body unread) and in one of the tenant's
    body slots, held until the chunk is on its nodes: before, each connection of a tenant
    held its own 16 MiB, as many at once as it opened."""
    chunk_id = parse_chunk_id(query_param(request, "chunk_id"))
    file_id = parse_file_id(query_param(request, "file_id"))
    coord = request.app[COORDINATOR]
    await ingest.pending_upload(coord, file_id, tenant(request))
    async with body_slot(request):
        data = await read_body(request, protocol.MAX_CHUNK_SIZE)
        answer = await ingest.proxy_put(coord, chunk_id, data, file_id, tenant(request))
    answer.pop("stored", None)
    return json_response(answer, status=201)


async def proxy_chunk_download(request: web.Request) -> web.Response:
    chunk_id = parse_chunk_id(query_param(request, "chunk_id"))
    data = await ingest.proxy_get(request.app[COORDINATOR], chunk_id, tenant(request))
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
    prefix = parse_name_prefix(request.query.get("prefix", ""))
    coord = request.app[COORDINATOR]
    page = await coord.list_files(limit, after, tenant(request), prefix)
    return await json_answer(page, entries=len(page["files"]))


MAX_PREFIX_CHARS = 256
"""Longest ``prefix`` of a listing: shorter than a name may be (1024) so that a prefix of
4-byte characters, percent-encoded (12 bytes each), still fits the server's 8190-byte
request line and is answered with dfs's JSON error, not the HTTP parser's plain 400."""


def parse_name_prefix(raw: str) -> str:
    """The ``prefix`` of a listing (only files named ``prefix...`` are listed): empty, or
    what a file name may be, at most ``MAX_PREFIX_CHARS`` characters."""
    if len(raw) > MAX_PREFIX_CHARS:
        raise InvalidRequest(f"prefix has at most {MAX_PREFIX_CHARS} characters")
    return parse_name(raw, "prefix") if raw else ""


async def delete_file(request: web.Request) -> web.Response:
    file_id = parse_file_id(request.match_info["file_id"])
    return json_response(await request.app[COORDINATOR].delete_file(file_id, tenant(request)))


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_post(protocol.INIT_UPLOAD, init_upload)
    r.add_post(protocol.FINALIZE_UPLOAD, finalize_upload)
    r.add_get(protocol.DOWNLOAD_PLAN, download_plan)
    r.add_put(protocol.PROXY_CHUNK_UPLOAD, proxy_chunk_upload)
    r.add_get(protocol.PROXY_CHUNK_DOWNLOAD, proxy_chunk_download)
    r.add_get(protocol.FILES, list_files)
    r.add_delete(protocol.FILE, delete_file)
