"""The API's routes kept from the dedup-service seed, with its field names, plus the content check.

| method | path                          | answer                                                  |
|--------|-------------------------------|---------------------------------------------------------|
| GET    | /file/{id}, /metadata/{id}    | the file's metadata (404 unknown, pending or another tenant's) |
| GET    | /download/{id}                | ``{"download_url", "filename", "size", "expires_at"}``  |
| GET    | /signed-download/{id}?tenant=&sig= | the file's bytes, verified chunk by chunk; no token: the signature is the credential |
| POST   | /upload                       | raw body with ``?filename=``, or multipart field ``file``: 201 new file's metadata, 409 ``{"error", "file_id", "file"}`` if the tenant stores the same bytes |
| GET    | /check?sha256=                | ``{"exists", "file"}``: does this tenant store a complete file with these bytes |
| GET    | /admin/hashes?limit=&last_evaluated_key= | ``{"hashes", "next_page"}``: chunk ids (admin) |

``/admin/hashes`` lists the ids (sha256) of the chunks complete files reference: the store's
content-addressed units, across tenants, hence admin-only. ``next_page`` is sealed with the
API secret (``DFS_API_SECRET``, never given to nodes), so a client can neither forge nor alter
it (400 ``invalid page key``).

Whole files through the API (chunking an upload, verified streaming) are ``dfs.api.ingest``'s.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from dfs import auth, protocol
from dfs.api.bodies import file_body
from dfs.api.context import COORDINATOR, admin, principal
from dfs.api.ingest import check_download_cap, check_name, download_cap, ingest, read_verified
from dfs.chunking import ChunkerProfile
from dfs.errors import DfsError, InvalidRequest
from dfs.ids import parse_file_id, parse_sha256, parse_tenant
from dfs.server import StreamDeadline, query_param

DOWNLOAD_URL_TTL = 15 * 60  # the most a capability may live
MAX_UPLOAD_BYTES = 64 * protocol.GIB
MAX_HASHES_PAGE = 1000
_PAGE_PURPOSE = "admin-hashes"

log = logging.getLogger("dfs.api.routes_seed")


async def get_file(request: web.Request) -> web.Response:
    file_id = parse_file_id(request.match_info["file_id"])
    coord = request.app[COORDINATOR]
    rec = await coord.get_complete_file(file_id, principal(request).tenant)
    return web.json_response(file_body(rec))


def _base_url(request: web.Request) -> str:
    configured = request.app[COORDINATOR].cfg.public_url
    return configured or str(request.url.origin())


async def get_download_url(request: web.Request) -> web.Response:
    file_id = parse_file_id(request.match_info["file_id"])
    coord = request.app[COORDINATOR]
    tenant = principal(request).tenant
    rec = await coord.get_complete_file(file_id, tenant)
    ttl = min(DOWNLOAD_URL_TTL, coord.cfg.cap_ttl)
    sig = download_cap(coord, file_id, tenant, ttl)
    url = request.app.router["signed-download"].url_for(file_id=file_id)
    url = url.with_query({"tenant": tenant, "sig": sig})
    return web.json_response(
        {
            "download_url": f"{_base_url(request)}{url}",
            "filename": rec.name,
            "size": rec.size,
            "expires_at": int(sig.partition(".")[0]),
        }
    )


def _disposition(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1] or "download"
    ascii_name = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in base
    )
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(base)}"


async def signed_download(request: web.Request) -> web.StreamResponse:
    """Stream a file to whoever holds a valid signature (no bearer token: this route is
    public in the auth middleware). Bytes are sent only after their chunk verified."""
    file_id = parse_file_id(request.match_info["file_id"])
    tenant = parse_tenant(query_param(request, "tenant"))
    coord = request.app[COORDINATOR]
    check_download_cap(coord, file_id, tenant, request.query.get("sig"))
    plan = await coord.download_plan(file_id, tenant)
    resp = web.StreamResponse(
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Disposition": _disposition(str(plan["name"])),
            "X-Dfs-Sha256": str(plan["sha256"]),
        }
    )
    resp.content_length = int(plan["size"])
    await resp.prepare(request)
    try:
        async for data in read_verified(coord, plan):
            await resp.write(data)
    except DfsError as exc:
        # Headers are gone: the only honest signal left is a short body on a dropped
        # connection (Content-Length tells the client it is incomplete).
        log.error("signed download of %s aborted: %s", file_id, exc.message)
        if request.transport is not None:
            request.transport.abort()
        return resp
    await resp.write_eof()
    return resp


# what aiohttp's multipart reader raises on a body that is not valid multipart
_MALFORMED = (ValueError, HttpProcessingError)


async def _file_field(request: web.Request) -> BodyPartReader:
    """The multipart body's field ``file`` (other fields before it are skipped, boundedly)."""
    try:
        reader = await request.multipart()
        for _ in range(16):
            part = await reader.next()
            if part is None:
                raise InvalidRequest("multipart body has no field 'file'")
            if isinstance(part, BodyPartReader) and part.name == "file":
                return part
    except _MALFORMED as exc:
        raise InvalidRequest(f"malformed multipart body: {exc}") from None
    raise InvalidRequest("multipart body has no field 'file' among its first 16")


async def upload(request: web.Request) -> web.Response:
    coord = request.app[COORDINATOR]
    tenant = principal(request).tenant
    profile = ChunkerProfile.default()
    deadline = StreamDeadline(request)  # slow clients cannot pin the server
    if request.content_type.startswith("multipart/"):
        file_part = await _file_field(request)
        name = check_name(request.query.get("filename") or file_part.filename or "upload")

        async def read_part(n: int) -> bytes:
            try:
                return bytes(await file_part.read_chunk(n))
            except _MALFORMED as exc:
                raise InvalidRequest(f"malformed multipart body: {exc}") from None

        async def read(n: int) -> bytes:
            return await deadline.read(read_part, min(n, 1 << 20))

    else:
        name = check_name(query_param(request, "filename"))

        async def read(n: int) -> bytes:
            return await deadline.read(request.content.read, min(n, 1 << 20))

    done = await ingest(coord, tenant, name, read, profile, MAX_UPLOAD_BYTES)
    if not done.created:
        body = {
            "error": {"code": "conflict", "message": "this content is already stored"},
            "file_id": done.body["file_id"],
            "file": done.body,
        }
        return web.json_response(body, status=409)
    return web.json_response(done.body, status=201)


async def check(request: web.Request) -> web.Response:
    sha256 = parse_sha256(query_param(request, "sha256"))
    rec = await request.app[COORDINATOR].find_by_sha256(principal(request).tenant, sha256)
    return web.json_response(
        {"exists": rec is not None, "file": file_body(rec) if rec is not None else None}
    )


async def admin_hashes(request: web.Request) -> web.Response:
    admin(request)
    coord = request.app[COORDINATOR]
    raw_limit = request.query.get("limit", "100")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_HASHES_PAGE:
        raise InvalidRequest(f"limit must be an integer in [1, {MAX_HASHES_PAGE}]")
    key = request.query.get("last_evaluated_key")
    after = auth.unseal(coord.cfg.api_secret, _PAGE_PURPOSE, key) if key else None
    hashes, cursor = await coord.chunk_ids_page(int(raw_limit), after)
    next_page = auth.seal(coord.cfg.api_secret, _PAGE_PURPOSE, cursor) if cursor else None
    return web.json_response({"hashes": hashes, "next_page": next_page})


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get(protocol.FILE, get_file)
    r.add_get(protocol.METADATA, get_file)
    r.add_get(protocol.DOWNLOAD, get_download_url)
    r.add_get(protocol.SIGNED_DOWNLOAD + "{file_id}", signed_download, name="signed-download")
    r.add_post(protocol.UPLOAD_FILE, upload)
    r.add_get(protocol.CHECK, check)
    r.add_get(protocol.ADMIN_HASHES, admin_hashes)
