"""The API's routes kept from the dedup-service seed, with its field names, plus the content check.

| method | path                          | answer                                                  |
|--------|-------------------------------|---------------------------------------------------------|
| GET    | /file/{id}, /metadata/{id}    | the file's metadata (404 unknown, pending or another tenant's) |
| GET    | /download/{id}                | ``{"download_url", "filename", "size", "expires_at"}``  |
| GET    | /signed-download/{id}?tenant=&sig=&name= | the file's bytes, verified chunk by chunk; no token: the signature is the credential (it binds ``name``, the name the answer gives: an object's link names the key, never the file's own name) |
| POST   | /upload                       | raw body with ``?filename=``, or multipart field ``file``: 201 new file's metadata with ``new_bytes`` (its bytes new to this tenant), 409 ``{"error", "file_id", "file"}`` if the tenant stores the same bytes; with ``?bucket=&key=`` (and ``content_type=``, ``meta-NAME=``, ``tag-NAME=``) also linked as that object's new version: always 201, plus ``"object"`` (a read-write grantee's own file is released: the version links the owner's clone) |
| GET    | /check?sha256=&manifest_sha256= | ``{"exists", "file"}``: does this tenant store a complete file (its own or an object's) with these bytes (verified, see ``dfs.api.content_check``) |
| GET    | /admin/hashes?limit=&next_page= | ``{"hashes", "next_page"}``: chunk ids (admin); the key also as ``last_evaluated_key`` |

``/admin/hashes`` lists the ids (sha256) of the chunks complete files reference: the store's
content-addressed units, across tenants, hence admin-only. ``next_page`` is sealed with the
API secret (``DFS_API_SECRET``, never given to nodes), so a client can neither forge nor alter
it (400 ``invalid page key``).

Whole files through the API (chunking an upload, verified streaming) are ``dfs.api.ingest``'s.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from dfs import auth, protocol
from dfs.api.bodies import file_body
from dfs.api.context import (
    COORDINATOR,
    NAMESPACE,
    STREAMS,
    VERIFIED,
    admin,
    principal,
    stored_file,
)
from dfs.api.file_stream import stream_file
from dfs.api.ingest import check_download_cap, check_name, download_cap, ingest
from dfs.api.namespace_bodies import ObjectFields, object_body, parse_target
from dfs.api.object_files import link_made
from dfs.chunking import ChunkerProfile
from dfs.errors import DfsError, InvalidRequest, PayloadTooLarge
from dfs.ids import parse_file_id, parse_sha256, parse_tenant
from dfs.meta.namespace import BucketRecord
from dfs.server import StreamDeadline, json_response, query_param

DOWNLOAD_URL_TTL = 15 * 60  # the most a capability may live
MAX_UPLOAD_BYTES = 64 * protocol.GIB
MAX_HASHES_PAGE = 1000
_PAGE_PURPOSE = "admin-hashes"

log = logging.getLogger("dfs.api.routes_seed")


async def get_file(request: web.Request) -> web.Response:
    file_id = parse_file_id(request.match_info["file_id"])
    coord = request.app[COORDINATOR]
    rec = await coord.get_complete_file(file_id, principal(request).tenant)
    return json_response(file_body(rec))


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
    return json_response(
        {
            "download_url": f"{_base_url(request)}{url}",
            "filename": rec.name,
            "size": rec.size,
            "expires_at": int(sig.partition(".")[0]),
        }
    )


async def signed_download(request: web.Request) -> web.StreamResponse:
    """Stream a file (or one Range of it) to whoever holds a valid signature (no bearer
    token: this route is public in the auth middleware). Bytes are sent only after their
    chunk verified (``dfs.api.file_stream``). HEAD answers the same headers and no body."""
    file_id = parse_file_id(request.match_info["file_id"])
    tenant = parse_tenant(query_param(request, "tenant"))
    name = request.query.get("name")  # an object's link: the key's, never the file's own
    if name is not None:
        name = check_name(name)
    coord = request.app[COORDINATOR]
    check_download_cap(coord, file_id, tenant, request.query.get("sig"), name)
    rec = await coord.get_complete_file(file_id, tenant)
    return await stream_file(request, coord, rec, name=name)


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


@dataclass(frozen=True)
class _Upload:
    """What ``POST /upload`` checks before it takes a slot: its query (400), its bucket
    (404, 403) and, for a raw body, its name (400)."""

    target: tuple[str, str] | None
    fields: ObjectFields
    bucket: BucketRecord | None
    name: str | None  # None: the multipart body's ``file`` field names it


async def upload(request: web.Request) -> web.Response:
    """``POST /upload``, in one of the tenant's stream slots (``dfs.api.body_slots``: 503
    when it cannot get one in time), taken before any byte of the body is read: each
    upload holds a chunker's buffers and thread for as long as its client sends. What the
    query decides (400, and a bucket missing or not the caller's to write: 404, 403) is
    answered before the slot: a tenant holding all of its own waited 30 s for a 503 first
    (found by review)."""
    target = parse_target(request.query.get("bucket"), request.query.get("key"))
    fields = ObjectFields.from_query(request.query)  # 400 before any byte is read
    b = None
    if target is not None:
        b = await request.app[NAMESPACE].require_writable(principal(request), target[0])
    multipart = request.content_type.startswith("multipart/")
    name = None if multipart else check_name(query_param(request, "filename"))
    async with request.app[STREAMS].slot(principal(request).tenant):
        return await _upload(request, _Upload(target, fields, b, name))


async def _upload(request: web.Request, checked: _Upload) -> web.Response:
    coord = request.app[COORDINATOR]
    tenant = principal(request).tenant
    profile = ChunkerProfile.default()
    deadline = StreamDeadline(request)  # slow clients cannot pin the server
    if checked.name is None:
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
        name = checked.name

        async def read(n: int) -> bytes:
            return await deadline.read(request.content.read, min(n, 1 << 20))

    target, fields, b = checked.target, checked.fields, checked.bucket
    # an object's file is the namespace's (released with its last version): a new file,
    # never one found by content (``dfs.api.ingest``, ``reuse``), committed marked; a
    # grantee's is cloned into the owner's tenant by the link and released (``link_made``)
    reuse = b is None
    done = await ingest(coord, tenant, name, read, profile, MAX_UPLOAD_BYTES, reuse=reuse)
    request.app[VERIFIED].record(str(done.body["file_id"]))  # its bytes were hashed here
    if target is not None:  # with a key, known bytes make a new object or version too
        file_id = str(done.body["file_id"])
        ns = request.app[NAMESPACE]
        linked = await link_made(ns, principal(request), target, file_id, fields, made=True)
        answer = {**done.body, "new_bytes": done.new_bytes, "object": object_body(linked.version)}
        return json_response(answer, status=201)
    if not done.created:
        body = {
            "error": {"code": "conflict", "message": "this content is already stored"},
            "file_id": done.body["file_id"],
            "file": done.body,
        }
        return json_response(body, status=409)
    return json_response({**done.body, "new_bytes": done.new_bytes}, status=201)


async def check(request: web.Request) -> web.Response:
    """Does this tenant store a complete file with these bytes (a file of its own or an
    object's): answered only for a file the servers verified holds them
    (``dfs.api.content_check``), never on a declared sha256."""
    sha256 = parse_sha256(query_param(request, "sha256"))
    proof = request.query.get("manifest_sha256")
    rec = await stored_file(request, sha256, proof)
    return json_response(
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
    return json_response({"hashes": hashes, "next_page": next_page})


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get(protocol.FILE, get_file)
    r.add_get(protocol.METADATA, get_file)
    r.add_get(protocol.DOWNLOAD, get_download_url)
    r.add_get(protocol.SIGNED_DOWNLOAD + "{file_id}", signed_download, name="signed-download")
    r.add_post(protocol.UPLOAD_FILE, upload)
    r.add_get(protocol.CHECK, check)
    r.add_get(protocol.ADMIN_HASHES, admin_hashes)
