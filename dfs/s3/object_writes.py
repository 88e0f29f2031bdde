"""What PutObject, CreateMultipartUpload and CopyObject say beyond the bytes: the new
version's fields from the headers (``Content-Type``, ``x-amz-meta-*``, ``x-amz-tagging``,
``x-amz-acl``, and the standard headers S3 keeps and answers on reads: ``Cache-Control``,
``Content-Disposition``, ``Content-Encoding`` without the ``aws-chunked`` transport coding,
``Content-Language``, ``Expires``), a conditional write (``If-None-Match: *``, ``If-Match``), the
verified checksums kept with the version, and the answer's ``x-amz-version-id`` and checksum
headers; CopyObject's source (``x-amz-copy-source`` with an optional ``?versionId=``) and its
``x-amz-copy-source-if-*`` conditions.

``If-None-Match: *`` (create only if the key has no current object) and ``If-Match: ETAG``
(replace only the object with that ETag; 404 NoSuchKey when there is none, as S3) are
checked before the body is read, so a doomed upload sends no byte, and then decided
atomically by the store when the version is linked (``put_object(..., if_absent=True)`` or
``if_match=``: a conditional write on DynamoDB, a check inside the write transaction on
SQLite): of two concurrent creates of one key exactly one wins, and of two replaces that
read the same ETag exactly one wins; the loser answers 412. Headers asking for what the
namespace cannot keep answer 501 (``refuse_unkept``).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from urllib.parse import unquote

from aiohttp import hdrs, web

from dfs import namespace_rules
from dfs.api import access, object_files
from dfs.api.ingest import CommitFn
from dfs.api.namespace_bodies import (
    ObjectFields,
    parse_bucket_name,
    parse_content_type,
    parse_key,
    parse_metadata,
)
from dfs.api.namespace_service import Namespace
from dfs.errors import EtagMismatch, InvalidRequest, KeyExists, KeyNotFound
from dfs.meta.base import FILE_COMPLETE, FileRecord, Location, ManifestEntry
from dfs.meta.namespace import NULL_VERSION, BucketRecord, ObjectVersion, PutResult
from dfs.namespace_rules import STORED_HEADERS
from dfs.s3 import acl, checksums, conditional
from dfs.s3.context import NAMESPACE, principal
from dfs.s3.errors import S3Error, not_implemented
from dfs.s3.object_reads import version_headers
from dfs.s3.routes_tagging import tagging_header

# headers S3 would act on or keep that the namespace cannot: refused (501), never ignored
_UNKEPT_PREFIXES = ("x-amz-server-side-encryption", "x-amz-object-lock-")
_UNKEPT = frozenset({"x-amz-website-redirect-location"})


def refuse_unkept(request: web.Request) -> None:
    """501 for a write asking for what dfs would silently drop: encryption settings, object
    lock, storage classes but STANDARD, a website redirect."""
    h = request.headers
    for name in h:
        if name.lower().startswith(_UNKEPT_PREFIXES) or name.lower() in _UNKEPT:
            raise not_implemented(f"{request.method} with {name}")
    if h.get("x-amz-storage-class", "STANDARD") != "STANDARD":
        raise not_implemented("storage classes other than STANDARD")


def invalid(exc: InvalidRequest) -> S3Error:
    """S3's error for a refused field: ``MetadataTooLarge`` for a size, else InvalidArgument."""
    if exc.details.get("field") in ("metadata", "headers") and "larger than" in exc.message:
        return S3Error("MetadataTooLarge", 400, exc.message)
    return S3Error("InvalidArgument", 400, exc.message)


def stored_headers(request: web.Request) -> tuple[tuple[str, str], ...]:
    """The standard headers of a write that the version keeps; ``aws-chunked`` (the body's
    transport framing, decoded by ``dfs.s3.bodies``) is taken out of ``Content-Encoding``."""
    found = []
    for name in STORED_HEADERS:
        value = request.headers.get(name)
        if value is None:
            continue
        if name == "content-encoding":
            codings = [c.strip() for c in value.split(",")]
            value = ", ".join(c for c in codings if c and c.lower() != "aws-chunked")
        found.append((name, value))
    try:
        return namespace_rules.validate_stored_headers(found)
    except InvalidRequest as exc:
        raise invalid(exc) from None


def request_metadata(request: web.Request) -> tuple[tuple[str, str], ...] | None:
    """``x-amz-meta-*`` of a write (None when there is none); the checksums' keys are dfs's."""
    h = request.headers
    meta = {k[11:].lower(): v for k, v in h.items() if k.lower().startswith("x-amz-meta-")}
    if any(checksums.is_reserved(k) for k in meta):
        raise S3Error("InvalidArgument", 400, f"x-amz-meta-{checksums.RESERVED}* is reserved")
    try:
        return parse_metadata(meta) if meta else None
    except InvalidRequest as exc:
        raise invalid(exc) from None


def put_fields(request: web.Request) -> ObjectFields:
    """The new version's fields from PutObject's headers (S3's errors for bad ones)."""
    refuse_unkept(request)
    acl.refuse_grant_headers(request)
    h = request.headers
    try:
        ctype = h.get(hdrs.CONTENT_TYPE)
        return ObjectFields(
            content_type=parse_content_type(ctype) if ctype else None,
            metadata=request_metadata(request),
            tags=tagging_header(h.get("x-amz-tagging")),
            access=acl.canned(h.get("x-amz-acl")),
            headers=stored_headers(request),
        )
    except InvalidRequest as exc:
        raise invalid(exc) from None


def with_checksums(fields: ObjectFields, sums: checksums.Checksums) -> ObjectFields:
    """The fields with the verified checksums among the metadata (reserved keys)."""
    stored = sums.stored()
    if not stored:
        return fields
    meta = tuple(sorted((fields.metadata or ()) + stored))
    return dataclasses.replace(fields, metadata=meta)


@dataclasses.dataclass(frozen=True)
class WriteCondition:
    """A write's precondition: ``If-None-Match: *`` (``if_absent``) or ``If-Match``."""

    if_absent: bool = False
    if_match: str | None = None


def write_condition(request: web.Request) -> WriteCondition:
    """The write's precondition; 501 for the forms S3 does not define on writes (an
    ``If-None-Match`` ETag, a list of ETags, both headers at once)."""
    h = request.headers
    wanted, match = h.get("If-None-Match"), h.get("If-Match")
    if wanted is not None and match is not None:
        raise not_implemented(f"{request.method} with both If-Match and If-None-Match")
    if wanted is not None:
        if wanted.strip() != "*":
            raise not_implemented(f"{request.method} with If-None-Match other than *")
        return WriteCondition(if_absent=True)
    if match is None:
        return WriteCondition()
    if "," in match:
        raise not_implemented(f"{request.method} with a list of ETags in If-Match")
    return WriteCondition(if_match=match.strip().removeprefix("W/").strip('"').lower())


async def check_condition(
    request: web.Request, ns: Namespace, bucket: str, key: str
) -> WriteCondition:
    """The write's precondition, checked now against the key's current object (before any
    byte is read): 412 PreconditionFailed, or 404 NoSuchKey for ``If-Match`` on a key
    with no current object; the store decides again, atomically, at the link. Only for a
    caller who may write the bucket: its answers tell whether the key exists and what
    its ETag (the MD5 of a plain PUT's bytes) is, which no one else may learn."""
    cond = write_condition(request)
    if cond == WriteCondition():
        return cond
    access.require_write(principal(request), await ns.bucket(bucket))
    try:
        current = await ns.store.get_object(bucket, key)
    except KeyNotFound:
        if cond.if_match is not None:
            raise
        return cond
    if cond.if_absent:
        raise conditional.precondition_failed("If-None-Match")
    if cond.if_match not in ("*", current.etag):
        raise conditional.precondition_failed("If-Match")
    return cond


async def link(
    request: web.Request,
    bucket: str,
    key: str,
    file_id: str,
    fields: ObjectFields,
    etag: str,
    cond: WriteCondition,
    *,
    read: BucketRecord | None = None,
    written: FileRecord | None = None,
) -> PutResult:
    """Link the written file as the key's current version; a conditional write that lost
    (the store's ``KeyExists`` or ``EtagMismatch``) is S3's 412 PreconditionFailed. ``read``
    and ``written``: see ``Namespace.link``."""
    ns = request.app[NAMESPACE]
    with lost_as_412():
        return await ns.link(
            principal(request),
            bucket,
            key,
            file_id,
            fields,
            etag=etag,
            if_absent=cond.if_absent,
            if_match=cond.if_match,
            read=read,
            written=written,
        )


async def link_made(
    request: web.Request,
    bucket: str,
    key: str,
    file_id: str,
    fields: ObjectFields,
    etag: str,
    cond: WriteCondition,
    *,
    read: BucketRecord | None = None,
    written: FileRecord | None = None,
) -> PutResult:
    """``link`` of a file this request made for the object (committed ``for_object``: no
    lookup by content handed it to anyone): released again when the version links another
    file (a read-write grantee's, cloned into the owner's tenant by the link) and when the
    link is refused, so no file of the caller's is left behind."""
    ns, tenant = request.app[NAMESPACE], principal(request).tenant
    try:
        made = await link(
            request, bucket, key, file_id, fields, etag, cond, read=read, written=written
        )
    except BaseException:  # a refused link, or the request cancelled: no version links it
        await object_files.release_made(ns, tenant, file_id)
        raise
    if made.version.file_id != file_id:
        await object_files.release_made(ns, tenant, file_id)
    return made


def linking_commit(
    request: web.Request,
    b: BucketRecord,
    key: str,
    fields: ObjectFields,
    sums: checksums.Checksums,
    cond: WriteCondition,
    finish: Callable[[], str],
    linked: list[PutResult],
) -> CommitFn:
    """PutObject's ``CommitFn`` for ``dfs.api.ingest``: the file recorded complete and
    linked as the key's version in one store write (``Namespace.create_and_link``), the
    version appended to ``linked``. Called once the whole body was read: ``finish`` (the
    body's checks, then its ETag) runs before anything is written, so a body that fails
    a check leaves nothing recorded."""

    async def commit(
        rec: FileRecord, manifest: Sequence[ManifestEntry], locs: Sequence[Location], now: float
    ) -> FileRecord:
        etag = finish()
        ns = request.app[NAMESPACE]
        with lost_as_412():
            made = await ns.create_and_link(
                principal(request),
                b,
                key,
                (rec, manifest, locs),
                with_checksums(fields, sums),
                etag,
                now,
                if_absent=cond.if_absent,
                if_match=cond.if_match,
            )
        linked.append(made)
        return dataclasses.replace(rec, state=FILE_COMPLETE)

    return commit


@contextlib.contextmanager
def lost_as_412() -> Iterator[None]:
    """A conditional write that lost in the store (``KeyExists``, ``EtagMismatch``) as S3's
    412 PreconditionFailed."""
    try:
        yield
    except KeyExists:
        raise conditional.precondition_failed("If-None-Match") from None
    except EtagMismatch:
        raise conditional.precondition_failed("If-Match") from None


def version_header(b: BucketRecord, v: ObjectVersion) -> dict[str, str]:
    """A write's ``x-amz-version-id``: as bucket ``b`` was read for this request, or
    whenever the write made a version (versioning was turned on since that read)."""
    return version_headers(b, v, asked=v.version_id != NULL_VERSION)


def put_headers(b: BucketRecord, v: ObjectVersion, sums: checksums.Checksums) -> dict[str, str]:
    """A write's answer headers: ``x-amz-version-id`` (``version_header``) and the
    checksums verified."""
    return {**version_header(b, v), **sums.response_headers()}


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
