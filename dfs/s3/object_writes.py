"""What PutObject and CopyObject say beyond the bytes: the new version's fields from the
headers (``Content-Type``, ``x-amz-meta-*``, ``x-amz-tagging``, ``x-amz-acl``), a
conditional create (``If-None-Match: *``), the verified checksums kept with the version,
and the answer's ``x-amz-version-id`` and checksum headers; CopyObject's source
(``x-amz-copy-source`` with an optional ``?versionId=``) and its ``x-amz-copy-source-if-*``
conditions.

``If-None-Match: *`` (create only if the key has no current object) is checked before the
body is read and again just before the version is linked, but NOT atomically with the link:
the namespace store has no conditional put, so two concurrent creates of one key can both
succeed (the later one becomes the current version). ``If-Match`` on PutObject answers 501,
and so do headers asking for what the namespace cannot keep (``refuse_unkept``).
"""

from __future__ import annotations

from urllib.parse import unquote

from aiohttp import hdrs, web

from dfs.api.namespace_bodies import (
    ObjectFields,
    parse_bucket_name,
    parse_content_type,
    parse_key,
    parse_metadata,
)
from dfs.api.namespace_service import Namespace
from dfs.errors import InvalidRequest, KeyNotFound
from dfs.meta.namespace import BucketRecord, ObjectVersion
from dfs.s3 import acl, checksums, conditional
from dfs.s3.errors import S3Error, not_implemented
from dfs.s3.object_reads import version_headers
from dfs.s3.routes_tagging import tagging_header

# headers S3 would act on or keep that the namespace cannot: refused (501), never ignored
_UNKEPT_PREFIXES = ("x-amz-server-side-encryption", "x-amz-object-lock-")
_UNKEPT = frozenset(
    {"cache-control", "content-disposition", "content-language", "expires"}
    | {"x-amz-website-redirect-location"}
)


def refuse_unkept(request: web.Request) -> None:
    """501 for a write asking for what dfs would silently drop: encryption settings, object
    lock, storage classes but STANDARD, stored response headers, a content encoding other
    than the ``aws-chunked`` framing."""
    h = request.headers
    for name in h:
        if name.lower().startswith(_UNKEPT_PREFIXES) or name.lower() in _UNKEPT:
            raise not_implemented(f"{request.method} with {name}")
    if h.get("x-amz-storage-class", "STANDARD") != "STANDARD":
        raise not_implemented("storage classes other than STANDARD")
    encodings = [e.strip() for e in h.get("Content-Encoding", "").split(",") if e.strip()]
    if any(e != "aws-chunked" for e in encodings):
        raise not_implemented("a stored Content-Encoding")


def put_fields(request: web.Request) -> ObjectFields:
    """The new version's fields from PutObject's headers (S3's errors for bad ones)."""
    refuse_unkept(request)
    h = request.headers
    meta = {k[11:].lower(): v for k, v in h.items() if k.lower().startswith("x-amz-meta-")}
    if any(checksums.is_reserved(k) for k in meta):
        raise S3Error("InvalidArgument", 400, f"x-amz-meta-{checksums.STORED}* is reserved")
    acl.refuse_grant_headers(request)
    try:
        ctype = h.get(hdrs.CONTENT_TYPE)
        return ObjectFields(
            content_type=parse_content_type(ctype) if ctype else None,
            metadata=parse_metadata(meta) if meta else None,
            tags=tagging_header(h.get("x-amz-tagging")),
            access=acl.canned(h.get("x-amz-acl")),
        )
    except InvalidRequest as exc:
        raise S3Error("InvalidArgument", 400, exc.message) from None


def with_checksums(fields: ObjectFields, sums: checksums.Checksums) -> ObjectFields:
    """The fields with the verified checksums among the metadata (reserved keys)."""
    stored = sums.stored()
    if not stored:
        return fields
    meta = tuple(sorted((fields.metadata or ()) + stored))
    return ObjectFields(fields.content_type, meta, fields.tags, fields.access)


async def check_create(request: web.Request, ns: Namespace, bucket: str, key: str) -> None:
    """``If-None-Match: *``: 412 PreconditionFailed when the key has a current object."""
    h = request.headers
    if "If-Match" in h:
        raise not_implemented("PutObject with If-Match")
    wanted = h.get("If-None-Match")
    if wanted is None:
        return
    if wanted.strip() != "*":
        raise not_implemented("PutObject with If-None-Match other than *")
    try:
        await ns.store.get_object(bucket, key)
    except KeyNotFound:
        return
    raise conditional.precondition_failed("If-None-Match")


def put_headers(b: BucketRecord, v: ObjectVersion, sums: checksums.Checksums) -> dict[str, str]:
    """A write's answer headers: ``x-amz-version-id`` (as bucket ``b`` was read for this
    request) and the checksums verified."""
    return {**version_headers(b, v), **sums.response_headers()}


def copy_source(header: str) -> tuple[str, str, str | None]:
    """``x-amz-copy-source``: ``bucket/key`` (URL-encoded), optionally ``?versionId=``."""
    path, _, query = header.lstrip("/").partition("?")
    version = None
    if query:
        name, _, value = query.partition("=")
        if name != "versionId" or not value:
            raise S3Error("InvalidArgument", 400, "x-amz-copy-source takes only ?versionId=")
        version = unquote(value)
    src_bucket, _, src_key = unquote(path).partition("/")
    try:
        return parse_bucket_name(src_bucket), parse_key(src_key), version
    except InvalidRequest as exc:
        raise S3Error("InvalidArgument", 400, f"x-amz-copy-source: {exc.message}") from None
