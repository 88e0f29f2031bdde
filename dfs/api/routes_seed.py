"""The API's routes kept from the dedup-service seed, with its field names, plus the content check.

| method | path                          | answer                                                  |
|--------|-------------------------------|---------------------------------------------------------|
| GET    | /file/{id}, /metadata/{id}    | the file's metadata (404 unknown, pending or another tenant's) |
| GET    | /download/{id}                | ``{"download_url", "filename", "size", "expires_at"}``  |
| GET    | /signed-download/{id}?tenant=&sig= | the file's bytes, verified chunk by chunk; no token: the signature is the credential |
| POST   | /upload                       | raw body with ``?filename=``, or multipart field ``file``: 201 new file's metadata, 409 ``{"error", "file_id", "file"}`` if the tenant stores the same bytes |
| GET    | /check?sha256=&manifest_sha256= | ``{"exists", "file"}``: does this tenant store a complete file with these bytes (verified, see ``dfs.api.content_check``) |
| GET    | /admin/hashes?limit=&next_page= | ``{"hashes", "next_page"}``: chunk ids (admin); the key also as ``last_evaluated_key`` |

``/admin/hashes`` lists the ids (sha256) of the chunks complete files reference: the store's
content-addressed units, across tenants, hence admin-only. ``next_page`` is sealed with the
API secret (``DFS_API_SECRET``, never given to nodes), so a client can neither forge nor alter
it (400 ``invalid page key``).

Whole files through the API (chunking an upload, verified streaming) are ``dfs.api.ingest``'s.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from aiohttp import BodyPartReader, hdrs, web
from aiohttp.http_exceptions import HttpProcessingError

from dfs import auth, protocol
from dfs.api import download_plans, ranges
from dfs.api.bodies import file_body
from dfs.api.content_check import confirms
from dfs.api.context import COORDINATOR, VERIFIED, admin, big_slot, principal
from dfs.api.coordinator import Coordinator
from dfs.api.ingest import check_download_cap, check_name, download_cap, ingest, read_verified
from dfs.chunking import ChunkerProfile
from dfs.errors import DfsError, InvalidRequest, PayloadTooLarge
from dfs.ids import parse_file_id, parse_sha256, parse_tenant
from dfs.meta.base import FileRecord
from dfs.server import StreamDeadline, error_response, query_param

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


def _download_headers(rec: FileRecord, rng: ranges.ByteRange | None) -> dict[str, str]:
    headers = {
        "Content-Type": "application/octet-stream",
        "Content-Disposition": _disposition(rec.name),
        "Accept-Ranges": "bytes",
        "X-Dfs-Sha256": rec.sha256,
    }
    if rng is not None:
        headers["Content-Range"] = rng.content_range()
    return headers


def _unsatisfiable(size: int) -> web.Response:
    resp = error_response(416, "range_not_satisfiable", f"the file has {size} bytes")
    resp.headers["Content-Range"] = f"bytes */{size}"
    return resp


async def _verified_bytes(
    coord: Coordinator, plan: dict[str, Any], rng: ranges.ByteRange | None
) -> AsyncIterator[bytes]:
    """The file's verified bytes, or only those of ``rng`` (reading only its chunks)."""
    if rng is None:
        async for data in read_verified(coord, plan):
            yield data
        return
    wanted = list(ranges.pieces(plan["chunks"], rng))
    sliced = read_verified(coord, {"chunks": [chunk for chunk, _, _ in wanted]})
    i = 0
    async for data in sliced:
        _, lo, hi = wanted[i]
        i += 1
        yield data[lo:hi] if (lo, hi) != (0, len(data)) else data


async def signed_download(request: web.Request) -> web.StreamResponse:
    """Stream a file (or one Range of it) to whoever holds a valid signature (no bearer
    token: this route is public in the auth middleware). Bytes are sent only after their
    chunk verified. HEAD answers the same headers and no body."""
    file_id = parse_file_id(request.match_info["file_id"])
    tenant = parse_tenant(query_param(request, "tenant"))
    coord = request.app[COORDINATOR]
    check_download_cap(coord, file_id, tenant, request.query.get("sig"))
    rec = await coord.get_complete_file(file_id, tenant)
    try:
        rng = ranges.parse(request.headers.get(hdrs.RANGE), rec.size)
    except ranges.Unsatisfiable:
        return _unsatisfiable(rec.size)
    resp = web.StreamResponse(status=200 if rng is None else 206)
    resp.headers.update(_download_headers(rec, rng))
    resp.content_length = rec.size if rng is None else rng.length
    if request.method == hdrs.METH_HEAD:
        return resp  # aiohttp sends the headers; a HEAD answer has no body
    plan = await download_plans.plan_of(coord, rec)
    await resp.prepare(request)
    try:
        async for data in _verified_bytes(coord, plan, rng):
            await resp.write(data)
    except DfsError as exc:
        # Headers are gone: the only honest signal left is a short body on a dropped
        # connection (Content-Length tells the client it is incomplete).
        log.error("signed download of %s aborted: %s", file_id, exc.message)
        if request.transport is not None:
            request.transport.abort()
        return resp
    except ConnectionResetError:
        log.info("signed download of %s: the client went away", file_id)
        return resp
    await resp.write_eof()
    return resp


# what aiohttp's multipart reader raises on a body that is not valid multipart
_MALFORMED = (ValueError, HttpProcessingError)


MAX_FORM_FIELDS_BYTES = 64 * 1024
"""Bytes of multipart fields before ``file`` that POST /upload reads (and drops)."""
_PART_HEAD = 8192


async def _skip_part(part: BodyPartReader, deadline: StreamDeadline, budget: int) -> int:
    """Read and drop a field before ``file`` under the body deadline; the bytes left of
    ``budget`` (PayloadTooLarge past it)."""
    while data := await deadline.read(part.read_chunk, 8192):
        budget -= len(data)
        if budget < 0:
            raise PayloadTooLarge(
                f"multipart fields before 'file' exceed {MAX_FORM_FIELDS_BYTES} bytes"
            )
    return budget


async def _file_field(request: web.Request, deadline: StreamDeadline) -> BodyPartReader:
    """The multipart body's field ``file``. Fields before it are read and dropped under the
    same slow-body deadline as the file itself, and at most MAX_FORM_FIELDS_BYTES of them
    (unread, aiohttp would drain them with no deadline at all)."""
    budget = MAX_FORM_FIELDS_BYTES
    try:
        reader = await request.multipart()
        for _ in range(16):
            part = await deadline.within(reader.next, _PART_HEAD)
            if part is None:
                raise InvalidRequest("multipart body has no field 'file'")
            if not isinstance(part, BodyPartReader):
                raise InvalidRequest("nested multipart bodies are not accepted")
            if part.name == "file":
                return part
            budget = await _skip_part(part, deadline, budget)
    except DfsError:
        raise  # 408, 413 (a ValueError too, but no malformed body)
    except _MALFORMED as exc:
        raise InvalidRequest(f"malformed multipart body: {exc}") from None
    raise InvalidRequest("multipart body has no field 'file' among its first 16")


async def upload(request: web.Request) -> web.Response:
    coord = request.app[COORDINATOR]
    tenant = principal(request).tenant
    profile = ChunkerProfile.default()
    deadline = StreamDeadline(request)  # slow clients cannot pin the server
    if request.content_type.startswith("multipart/"):
        file_part = await _file_field(request, deadline)
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
    request.app[VERIFIED].record(str(done.body["file_id"]))  # its bytes were hashed here
    if not done.created:
        body = {
            "error": {"code": "conflict", "message": "this content is already stored"},
            "file_id": done.body["file_id"],
            "file": done.body,
        }
        return web.json_response(body, status=409)
    return web.json_response(done.body, status=201)


async def check(request: web.Request) -> web.Response:
    """Does this tenant store a complete file with these bytes: answered only for a file the
    servers verified holds them (``dfs.api.content_check``), never on a declared sha256."""
    sha256 = parse_sha256(query_param(request, "sha256"))
    proof = request.query.get("manifest_sha256")
    if proof is not None:
        proof = parse_sha256(proof, "manifest_sha256")
    coord = request.app[COORDINATOR]
    rec = await coord.find_by_sha256(principal(request).tenant, sha256)
    if rec is not None:
        reads = proof is None and not rec.sha256_verified
        reads = reads and request.app[VERIFIED].known(rec.file_id) is None
        async with big_slot(request, reads and rec.size > protocol.MIB):
            if not await confirms(coord, rec, sha256, proof, request.app[VERIFIED]):
                rec = None
    return web.json_response(
        {"exists": rec is not None, "file": file_body(rec) if rec is not None else None}
    )


_HASHES_PARAMS = frozenset({"limit", "last_evaluated_key", "next_page"})


def _hashes_query(request: web.Request) -> tuple[int, str | None]:
    """``limit`` and the page key of an /admin/hashes request. The key is accepted under
    the seed's name ``last_evaluated_key`` and under ``next_page`` (the answer's field, which
    a hand-written client naturally sends back); an unknown parameter is refused rather than
    silently ignored (which answered page 1 again: an endless loop for such a client)."""
    unknown = sorted(set(request.query) - _HASHES_PARAMS)
    if unknown:
        raise InvalidRequest(f"unknown query parameter(s) {', '.join(unknown)[:200]}")
    if any(len(request.query.getall(k)) > 1 for k in request.query):
        raise InvalidRequest("each query parameter may be given once")
    raw_limit = request.query.get("limit", "100")
    if not raw_limit.isascii() or not raw_limit.isdigit() or len(raw_limit) > 4:
        raise InvalidRequest(f"limit must be an integer in [1, {MAX_HASHES_PAGE}]")
    limit = int(raw_limit)
    if not 1 <= limit <= MAX_HASHES_PAGE:
        raise InvalidRequest(f"limit must be an integer in [1, {MAX_HASHES_PAGE}]")
    keys = {request.query.get(k) for k in ("last_evaluated_key", "next_page")} - {None}
    if len(keys) > 1:
        raise InvalidRequest("last_evaluated_key and next_page name the same key: give one")
    return limit, keys.pop() if keys else None


async def admin_hashes(request: web.Request) -> web.Response:
    admin(request)
    coord = request.app[COORDINATOR]
    limit, key = _hashes_query(request)
    after = auth.unseal(coord.cfg.api_secret, _PAGE_PURPOSE, key) if key else None
    hashes, cursor = await coord.chunk_ids_page(limit, after)
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
