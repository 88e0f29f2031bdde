"""GetObject and HeadObject: the latest version or a ``versionId``, conditional headers
(``dfs.s3.conditional``), checksums when ``x-amz-checksum-mode: ENABLED``
(``dfs.s3.checksums``), a single Range, ``partNumber`` (``dfs.s3.part_numbers``), and
anonymous reads of public objects (``dfs.s3.anonymous``). The bytes stream verified from the
nodes (``dfs.api.file_stream``), with the version's own headers only: its stored
``Cache-Control``, ``Content-Disposition``, ``Content-Encoding``, ``Content-Language`` and
``Expires``, never the native API's ``Content-Disposition: attachment`` or ``X-Dfs-Sha256``.
The ``response-*`` query parameters override those and ``Content-Type`` on a signed request
(an anonymous one answers 400 ``InvalidRequest``, ``dfs.s3.anonymous``), as S3 does.

S3's answers: ``NoSuchBucket``, ``NoSuchKey``, ``NoSuchVersion`` (404); a delete marker's
version id answers 405 ``MethodNotAllowed`` with ``x-amz-delete-marker: true``; a failing
``If-Match``/``If-Unmodified-Since`` 412, a failing ``If-None-Match``/``If-Modified-Since``
304. ``x-amz-version-id`` is sent for objects of a bucket that has (had) versioning on, and
whenever a version was asked for.
"""

from __future__ import annotations

from aiohttp import hdrs, web

from dfs.api import access, ranges
from dfs.api.bodies import Principal
from dfs.api.file_stream import stream_file
from dfs.api.namespace_service import Namespace, Resolved
from dfs.meta.namespace import (
    VERSIONING_UNVERSIONED,
    BucketRecord,
    ObjectVersion,
)
from dfs.namespace_rules import STORED_HEADERS
from dfs.s3 import anonymous, checksums, conditional, part_numbers
from dfs.s3.context import COORDINATOR, NAMESPACE, http_time, owner_ok, params
from dfs.s3.errors import S3Error, access_denied, not_implemented
from dfs.s3.names import target

OVERRIDES = {
    "response-content-type": "Content-Type",
    "response-content-language": "Content-Language",
    "response-expires": "Expires",
    "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
}
GET_PARAMS = frozenset({"versionId", "partNumber", *OVERRIDES})
_NAMES = {n: "-".join(w.capitalize() for w in n.split("-")) for n in STORED_HEADERS}


def version_param(request: web.Request) -> str | None:
    v = params(request).get("versionId")
    if v == "":
        raise S3Error("InvalidArgument", 400, "Version id cannot be the empty string")
    return v


def no_version() -> S3Error:
    return S3Error("NoSuchVersion", 404, "The specified version does not exist.")


def version_headers(b: BucketRecord, v: ObjectVersion, asked: bool = False) -> dict[str, str]:
    """``x-amz-version-id`` where S3 sends it: versioning on or suspended, or asked for."""
    if b.versioning == VERSIONING_UNVERSIONED and not asked:
        return {}
    return {"x-amz-version-id": v.version_id}


async def readable(
    ns: Namespace,
    who: Principal | None,
    bucket: str,
    key: str,
    version: str | None,
    owner_ok: bool = True,
) -> tuple[BucketRecord, ObjectVersion]:
    """The version (a delete marker too) ``who`` may read, or S3's error for a missing or
    refused one (a refused anonymous read is 403). ``owner_ok`` False: the bucket is not
    the owner's the request expects (``dfs.s3.expected_owner``), and ``who`` may not list
    it: refused as an unreadable object is, whatever the object's own access."""
    # S3 tells a missing bucket (NoSuchBucket) from a missing key
    b, v = await ns.bucket_and_object(bucket, key, version)
    if not owner_ok:
        raise access_denied() if who is None else access.no_key(bucket, key)
    if v is None:
        if who is None and not access.can_list(None, b):
            raise access_denied()
        # NoSuchVersion only to a caller who may list the bucket: to others it would tell
        # a key that exists (every object of an unversioned bucket has version null) from
        # one that does not, where a refused read answers NoSuchKey
        if version is not None and access.can_list(who, b):
            raise no_version()
        raise access.no_key(bucket, key)
    if not access.can_read(who, b, v):
        if who is None:
            raise access_denied()
        raise access.no_key(bucket, key)
    return b, v


async def resolve(ns: Namespace, request: web.Request, version: str | None) -> Resolved:
    """The version the caller may read, or S3's error; a delete marker's version id 405."""
    bucket, key = target(request)
    who = anonymous.who(request)
    b, v = await readable(ns, who, bucket, key, version, owner_ok(request, bucket))
    if v.is_delete_marker:
        raise S3Error(
            "MethodNotAllowed",
            405,
            "The specified method is not allowed against this resource.",
            headers={"x-amz-delete-marker": "true", **version_headers(b, v, True)},
        )
    return Resolved(b, v)


async def copy_source_version(
    ns: Namespace,
    who: Principal | None,
    bucket: str,
    key: str,
    version: str | None,
    owner_ok: bool = True,
) -> Resolved:
    """A copy's source (CopyObject, UploadPartCopy) as S3 answers for it: ``resolve``'s
    errors (``NoSuchVersion`` for a version id that is not there, to a caller who may list
    the bucket; ``NoSuchKey`` for a key whose latest version is a marker), but a delete
    marker's id is 400 ``InvalidRequest``."""
    b, v = await readable(ns, who, bucket, key, version, owner_ok)
    if v.is_delete_marker:
        raise S3Error(
            "InvalidRequest",
            400,
            "The source of a copy request may not specifically refer to a delete marker "
            "by version id.",
        )
    return Resolved(b, v)


def object_headers(request: web.Request, r: Resolved, asked: bool) -> dict[str, str]:
    v = r.version
    headers = {
        "ETag": f'"{v.etag}"',
        "Last-Modified": http_time(v.created_at),
        "Content-Type": v.content_type,
        "Accept-Ranges": "bytes",
        **{_NAMES[name]: value for name, value in v.headers},
        **checksums.user_metadata(v),
        **version_headers(r.bucket, v, asked),
    }
    if v.tags:
        headers["x-amz-tagging-count"] = str(len(v.tags))
    whole = not request.headers.get(hdrs.RANGE)
    if whole and request.headers.get("x-amz-checksum-mode", "").upper() == "ENABLED":
        headers.update(checksums.of_version(v))
    q = params(request)
    for param, name in OVERRIDES.items():
        value = q.get(param)
        if value is not None:  # anonymous callers never get here (dfs.s3.anonymous)
            if not value.isprintable():
                raise S3Error("InvalidArgument", 400, f"{param} must be printable")
            headers[name] = value
    return headers


def _check_range(request: web.Request, size: int) -> ranges.ByteRange | None:
    """The one Range asked of an object of ``size`` bytes (None: the whole object);
    ``InvalidRange`` 416 when no byte of it is in the object."""
    try:
        return ranges.parse(request.headers.get(hdrs.RANGE), size)
    except ranges.Unsatisfiable:
        raise S3Error("InvalidRange", 416, "The requested range is not satisfiable") from None


def _head(
    request: web.Request, v: ObjectVersion, headers: dict[str, str], rng: ranges.ByteRange | None
) -> web.Response:
    """HeadObject's answer (headers only; aiohttp sends no body): with a ``partNumber``
    (``rng``) or a satisfiable ``Range``, 206 with that range's length and Content-Range,
    as S3 answers (only the length changes); an unsatisfiable Range 416 ``InvalidRange``."""
    if rng is None:
        rng = _check_range(request, v.size)
    resp = web.Response(status=200 if rng is None else 206, headers=headers)
    resp.headers[hdrs.CONTENT_LENGTH] = str(v.size if rng is None else rng.length)
    if rng is not None:
        resp.headers[hdrs.CONTENT_RANGE] = rng.content_range()
    return resp


async def get_object(request: web.Request) -> web.StreamResponse:
    extra = sorted(set(params(request)) - GET_PARAMS)
    if extra:
        raise not_implemented(f"{request.method} object ?{'&'.join(extra)}")
    version = version_param(request)
    part = params(request).get("partNumber")
    if part is not None:
        if request.headers.get(hdrs.RANGE):
            raise S3Error("InvalidRequest", 400, "Cannot specify both Range and partNumber")
        number = part_numbers.parse(part)
    r = await resolve(request.app[NAMESPACE], request, version)
    v = r.version
    headers = object_headers(request, r, version is not None)
    part_rng: ranges.ByteRange | None = None
    if part is not None:
        request, part_rng = part_numbers.as_range(request, v, number, headers)
    failed = conditional.evaluate(request.headers, v.etag, v.created_at)
    if failed.startswith("412"):
        raise conditional.precondition_failed(failed[4:])
    if failed:
        keep = ("ETag", "Last-Modified", "x-amz-version-id")
        return web.Response(status=304, headers={k: headers[k] for k in keep if k in headers})
    if part_rng is not None and part_rng.length == 0:
        return part_numbers.empty_part(headers)
    if request.method == hdrs.METH_HEAD:
        return _head(request, v, headers, part_rng)
    _check_range(request, v.size)  # a malformed Range is ignored, an empty object's too
    if not v.file_id:  # an empty object
        return web.Response(body=b"", headers=headers)
    coord = request.app[COORDINATOR]
    rec = await coord.get_complete_file(v.file_id, r.bucket.tenant)
    return await stream_file(
        request, coord, rec, content_type=headers["Content-Type"], extra=headers, native=False
    )
