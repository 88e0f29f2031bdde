"""S3 object calls (path-style): PutObject, GetObject (with Range), HeadObject, DeleteObject.

| method | path             | call                                                        |
|--------|------------------|-------------------------------------------------------------|
| PUT    | /{bucket}/{key}  | with ``x-amz-copy-source``: CopyObject, metadata only (the source's file, ETag and metadata) |
| PUT    | /{bucket}/{key}  | PutObject: the body streams through ``dfs.api.ingest`` (server-side FastCDC and SHA-256 straight to the nodes); ETag = MD5 of the body |
| GET    | /{bucket}/{key}  | GetObject: verified chunks (``dfs.api.file_stream``), Range |
| HEAD   | /{bucket}/{key}  | HeadObject                                                   |
| DELETE | /{bucket}/{key}  | DeleteObject (204, also for a missing key, as S3 answers)    |

Sub-resources (``?tagging``, ``?acl``, ``?uploadId``, ``?versionId``…), CopyObject of a
source version, with REPLACE or with conditions, other POSTs and conditional GETs answer
501 NotImplemented. Multipart calls (``?uploads``, ``?uploadId``) never reach these routes:
``dfs.s3.routes_multipart``'s middleware takes them first.
"""

from __future__ import annotations

import contextlib
from urllib.parse import unquote

from aiohttp import hdrs, web

from dfs.api import ranges
from dfs.api.file_stream import stream_file
from dfs.api.ingest import ingest
from dfs.api.namespace_bodies import (
    ObjectFields,
    parse_bucket_name,
    parse_content_type,
    parse_key,
    parse_metadata,
)
from dfs.api.namespace_service import Resolved
from dfs.chunking import ChunkerProfile
from dfs.errors import InvalidRequest, KeyNotFound
from dfs.meta.namespace import ObjectVersion
from dfs.s3.bodies import BodyReader
from dfs.s3.context import (
    COORDINATOR,
    NAMESPACE,
    caller,
    http_time,
    iso_time,
    params,
    principal,
    xml,
    xml_response,
)
from dfs.s3.errors import S3Error, not_implemented
from dfs.s3.routes_buckets import bucket_name
from dfs.server import StreamDeadline

MAX_OBJECT_BYTES = 5 * 1024**3  # S3's largest single PUT
_CONDITIONAL = ("If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since")
_UNSUPPORTED_PUT_HEADERS = ("x-amz-tagging", "x-amz-object-lock-mode", "x-amz-copy-source-range")
_COPY_CONDITIONS = tuple(
    f"x-amz-copy-source-{c}"
    for c in ("if-match", "if-none-match", "if-modified-since", "if-unmodified-since")
)


def _target(request: web.Request) -> tuple[str, str]:
    try:
        return bucket_name(request), parse_key(request.match_info["key"])
    except InvalidRequest as exc:
        raise S3Error(
            "KeyTooLongError" if "long" in exc.message else "InvalidArgument", 400, exc.message
        ) from None


def _refuse_subresources(request: web.Request, allowed: frozenset[str] = frozenset()) -> None:
    extra = sorted(set(params(request)) - allowed)
    if extra:
        raise not_implemented(f"{request.method} object ?{'&'.join(extra)}")


def _fields(request: web.Request) -> ObjectFields:
    meta = {
        k[11:].lower(): v for k, v in request.headers.items() if k.lower().startswith("x-amz-meta-")
    }
    try:
        ctype = request.headers.get(hdrs.CONTENT_TYPE)
        return ObjectFields(
            content_type=parse_content_type(ctype) if ctype else None,
            metadata=parse_metadata(meta) if meta else None,
        )
    except InvalidRequest as exc:
        raise S3Error("InvalidArgument", 400, exc.message) from None


async def put_object(request: web.Request) -> web.Response:
    _refuse_subresources(request)
    for name in _UNSUPPORTED_PUT_HEADERS:
        if name in request.headers:
            raise not_implemented(f"PutObject with {name}")
    bucket, key = _target(request)
    if "x-amz-copy-source" in request.headers:
        return await copy_object(request, bucket, key)
    fields = _fields(request)
    ns = request.app[NAMESPACE]
    await ns.bucket(bucket)  # NoSuchBucket before reading the body
    deadline = StreamDeadline(request)  # slow clients cannot pin the server

    async def read_raw(n: int) -> bytes:
        return await deadline.read(request.content.read, n)

    h = request.headers
    body = BodyReader(
        read_raw,
        caller(request).payload_hash,
        h.get("Content-Encoding", ""),
        content_md5=h.get("Content-MD5"),
        crc32_header=h.get("x-amz-checksum-crc32"),
        chain=caller(request).chain,
        decoded_length=h.get("x-amz-decoded-content-length"),
    )
    declared = h.get("x-amz-decoded-content-length") or request.content_length
    file_id = ""
    if declared is not None and int(declared) == 0:
        await body.read(1)  # an empty object: its framing (and chunk signature) is checked
    else:
        coord = request.app[COORDINATOR]
        done = await ingest(
            coord,
            caller(request).tenant,
            key.rsplit("/", 1)[-1] or "object",
            body.read,
            ChunkerProfile.default(),
            MAX_OBJECT_BYTES,
        )
        file_id = str(done.body["file_id"])
    etag = body.finish()  # the body's checks ran as its end was read (or run now, if empty)
    await ns.link(principal(request), bucket, key, file_id, fields, etag=etag)
    return web.Response(status=200, headers={"ETag": f'"{etag}"'})


def _copy_source(header: str) -> tuple[str, str]:
    path, _, query = unquote(header).lstrip("/").partition("?")
    if query:
        raise not_implemented("CopyObject of a given source version")
    src_bucket, _, src_key = path.partition("/")
    try:
        return parse_bucket_name(src_bucket), parse_key(src_key)
    except InvalidRequest as exc:
        raise S3Error("InvalidArgument", 400, f"x-amz-copy-source: {exc.message}") from None


async def copy_object(request: web.Request, bucket: str, key: str) -> web.Response:
    """CopyObject as metadata: the new version links the source's file (no chunk is read or
    written); its ETag and metadata are the source's (``x-amz-metadata-directive: COPY``)."""
    if request.headers.get("x-amz-metadata-directive", "COPY").upper() != "COPY":
        raise not_implemented("CopyObject with x-amz-metadata-directive REPLACE")
    if any(h in request.headers for h in _COPY_CONDITIONS):
        raise not_implemented("CopyObject with x-amz-copy-source-if-* conditions")
    src = _copy_source(request.headers["x-amz-copy-source"])
    if src == (bucket, key):
        raise S3Error(
            "InvalidRequest",
            400,
            "This copy request is illegal because it is "
            "trying to copy an object to itself without changing anything.",
        )
    ns = request.app[NAMESPACE]
    await ns.bucket(src[0])
    made = await ns.copy(principal(request), src, (bucket, key))
    v = made[0]
    inner = xml("LastModified", iso_time(v.created_at)) + xml("ETag", f'"{v.etag}"')
    return xml_response("CopyObjectResult", inner)


def _headers(v: ObjectVersion) -> dict[str, str]:
    headers = {
        "ETag": f'"{v.etag}"',
        "Last-Modified": http_time(v.created_at),
        "Content-Type": v.content_type,
        "Accept-Ranges": "bytes",
    }
    headers.update({f"x-amz-meta-{k}": val for k, val in v.user_metadata if val.isprintable()})
    return headers


async def _resolve(request: web.Request) -> Resolved:
    _refuse_subresources(request)
    for name in _CONDITIONAL:
        if name in request.headers:
            raise not_implemented(f"{request.method} object with {name}")
    bucket, key = _target(request)
    ns = request.app[NAMESPACE]
    await ns.bucket(bucket)  # S3 tells a missing bucket (NoSuchBucket) from a missing key
    return await ns.resolve(principal(request), bucket, key, None)


def _check_range(request: web.Request, size: int) -> None:
    try:
        ranges.parse(request.headers.get(hdrs.RANGE), size)
    except ranges.Unsatisfiable:
        raise S3Error("InvalidRange", 416, "The requested range is not satisfiable") from None


async def get_object(request: web.Request) -> web.StreamResponse:
    r = await _resolve(request)
    v = r.version
    if request.method == hdrs.METH_HEAD:  # headers only; aiohttp sends no body
        resp = web.Response(status=200, headers=_headers(v))
        resp.headers[hdrs.CONTENT_LENGTH] = str(v.size)
        return resp
    if not v.file_id:  # an empty object
        if request.headers.get(hdrs.RANGE):
            raise S3Error("InvalidRange", 416, "The requested range is not satisfiable")
        return web.Response(body=b"", headers=_headers(v))
    _check_range(request, v.size)
    coord = request.app[COORDINATOR]
    rec = await coord.get_complete_file(v.file_id, r.bucket.tenant)
    return await stream_file(
        request, coord, rec, name=v.key, content_type=v.content_type, extra=_headers(v)
    )


async def delete_object(request: web.Request) -> web.Response:
    _refuse_subresources(request)
    bucket, key = _target(request)
    with contextlib.suppress(KeyNotFound):  # S3 answers 204 for a key that is not there
        await request.app[NAMESPACE].delete(principal(request), bucket, key, None)
    return web.Response(status=204)


async def unsupported(request: web.Request) -> web.Response:
    raise not_implemented(f"{request.method} on an object (multipart uploads and the rest)")


def add_routes(app: web.Application) -> None:
    r = app.router
    path = "/{bucket}/{key:.+}"
    r.add_put(path, put_object)
    r.add_get(path, get_object)  # also HEAD
    r.add_delete(path, delete_object)
    r.add_post(path, unsupported)
