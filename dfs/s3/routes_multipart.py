"""S3 multipart uploads (path-style), on ``dfs.api.multipart``'s service.

| method | path                          | call                                             |
|--------|-------------------------------|--------------------------------------------------|
| POST   | /{bucket}/{key}?uploads       | CreateMultipartUpload (``Content-Type``, ``x-amz-meta-*`` and the stored headers, ``dfs.s3.object_writes``, kept for the object; ``x-amz-acl`` other than private, ``x-amz-grant-*``, ``x-amz-tagging`` and what PutObject refuses, ``object_writes.refuse_unkept``: 501) |
| PUT    | /{bucket}/{key}?partNumber&uploadId | UploadPart; with ``x-amz-copy-source`` (and ``x-amz-copy-source-range``, ``x-amz-copy-source-if-*``: 412 as CopyObject): UploadPartCopy |
| POST   | /{bucket}/{key}?uploadId      | CompleteMultipartUpload (``If-None-Match: *``: atomic create, 412; the part sizes kept for ``partNumber`` reads, ``dfs.s3.part_numbers``; ``x-amz-version-id`` as PutObject, unless the answer started before the result) |
| DELETE | /{bucket}/{key}?uploadId      | AbortMultipartUpload (204)                       |
| GET    | /{bucket}/{key}?uploadId      | ListParts (``max-parts``, ``part-number-marker``) |
| GET    | /{bucket}?uploads             | ListMultipartUploads (``prefix``, ``delimiter``, ``key-marker``, ``upload-id-marker``, ``max-uploads``, ``encoding-type``; ``dfs.s3.multipart_listing``): the owner's list is every upload, another caller's its own |

These calls share their paths with the object and bucket calls and are told apart by their
query, so ``dispatch`` (a middleware after SigV4) hands them here before the object routes
see them. An upload is one of its bucket as the bucket is now (``Multipart.upload``: never
one made in an earlier bucket of the name), and every call that adds to it (UploadPart,
UploadPartCopy, Complete) checks again that the caller may write the bucket. UploadPart
taps the part's bytes for the object's SHA-256 (``Multipart.chains``).
CompleteMultipartUpload re-chunks the parts around their edges (``Multipart.assemble``;
reading every part back when the SHA-256 was not kept), which takes time growing with the
object: its answer is kept alive past ``dfs.s3.complete_answer.KEEPALIVE``, and a Complete
sent again while the first is assembling waits for that one's result
(``dfs.s3.complete_answer``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from aiohttp import hdrs, web

from dfs.api import access, ranges
from dfs.api.ingest import Ingested
from dfs.api.multipart import MAX_PART_BYTES, Multipart, StreamReader, multipart_etag
from dfs.api.namespace_bodies import (
    ObjectFields,
    parse_content_type,
    parse_key,
)
from dfs.errors import DfsError, FileNotFound, InvalidRequest, UploadNotFound
from dfs.meta.base import ManifestEntry
from dfs.meta.multipart import (
    MAX_PARTS,
    UPLOAD_COMPLETING,
    UPLOAD_OPEN,
    MultipartUpload,
    UploadPart,
)
from dfs.meta.namespace import ACCESS_PRIVATE, VERSIONING_UNVERSIONED, BucketRecord, PutResult
from dfs.s3 import (
    acl,
    checksums,
    complete_answer,
    conditional,
    multipart_listing,
    multipart_retry,
    multipart_xml,
    object_reads,
    object_writes,
    part_numbers,
)
from dfs.s3.bodies import declared_length, read_small, request_body
from dfs.s3.context import (
    COORDINATOR,
    NAMESPACE,
    caller,
    iso_time,
    owner_ok,
    params,
    principal,
    stream_slot,
    xml,
    xml_response,
)
from dfs.s3.errors import (
    Handler,
    S3Error,
    access_denied,
    not_implemented,
)
from dfs.s3.names import bucket_name

log = logging.getLogger("dfs.s3.multipart")

MULTIPART = web.AppKey("multipart", Multipart)
MAX_LISTED = 1000


def _key(request: web.Request) -> tuple[str, str]:
    try:
        return bucket_name(request), parse_key(request.match_info["key"])
    except InvalidRequest as exc:
        code = "KeyTooLongError" if "long" in exc.message else "InvalidArgument"
        raise S3Error(code, 400, exc.message) from None


def _refuse_params(request: web.Request, allowed: set[str]) -> dict[str, str]:
    q = params(request)
    extra = sorted(set(q) - allowed)
    if extra:
        raise not_implemented(f"{request.method} with ?{'&'.join(extra)}")
    return q


def _int_param(
    q: dict[str, str], name: str, default: int, lo: int, hi: int, *, clamp: bool = False
) -> int:
    """An integer parameter in decimal digits (``int`` also took "+1", " 1" and "1_0"),
    from ``lo`` to ``hi``; above ``hi`` taken as ``hi`` with ``clamp`` (a page size: S3
    answers at most 1000 of whatever was asked)."""
    raw = q.get(name)
    if raw is None:
        return default
    if not _INTEGER.fullmatch(raw):
        raise S3Error("InvalidArgument", 400, f"{name} must be an integer")
    value = int(raw)
    if clamp and value > hi:
        return hi
    if not lo <= value <= hi:
        raise S3Error("InvalidArgument", 400, f"{name} must be between {lo} and {hi}")
    return value


_INTEGER = re.compile(r"-?[0-9]{1,19}", re.ASCII)


async def _upload(
    request: web.Request, bucket: str, key: str, *, write: bool = True
) -> MultipartUpload:
    """The caller's upload named by ``uploadId``, of the bucket as it is now
    (``Multipart.upload``). ``write``: a call that adds to it (a part, Complete), refused
    unless the caller may still write the bucket (a grant revoked since the upload began
    ends it, as it ends PutObject); Abort and ListParts only need the upload to be theirs."""
    return (await _bucket_and_upload(request, bucket, key, write=write))[1]


async def _bucket_and_upload(
    request: web.Request, bucket: str, key: str, *, write: bool = True
) -> tuple[BucketRecord, MultipartUpload]:
    """``_upload``, with the bucket as read for it."""
    b = await request.app[NAMESPACE].bucket_for_write(bucket)
    if write:
        access.require_write(principal(request), b)
    upload_id = params(request).get("uploadId", "")
    u = await request.app[MULTIPART].upload(upload_id, caller(request).tenant, b, key)
    if not owner_ok(request, bucket):  # the caller's own upload: it knows the bucket
        raise access_denied()
    return b, u


# --- create ---------------------------------------------------------------------------------


def _fields(request: web.Request) -> tuple[str, tuple[tuple[str, str], ...]]:
    try:
        ctype = request.headers.get(hdrs.CONTENT_TYPE)
        return (
            parse_content_type(ctype) if ctype else "",
            object_writes.request_metadata(request) or (),
        )
    except InvalidRequest as exc:
        raise S3Error("InvalidArgument", 400, exc.message) from None


async def create_upload(request: web.Request, bucket: str, key: str) -> web.Response:
    _refuse_params(request, {"uploads"})
    # what PutObject refuses (encryption, object lock, storage classes, a redirect), and
    # tags, which the upload does not keep for Complete: refused rather than dropped
    object_writes.refuse_unkept(request)
    if "x-amz-tagging" in request.headers:
        raise not_implemented("CreateMultipartUpload with x-amz-tagging")
    # the upload keeps no ACL for Complete to apply: refused rather than a private object
    # where PutObject with the same header makes a public one
    acl.refuse_grant_headers(request)
    if acl.canned(request.headers.get("x-amz-acl")) not in (None, ACCESS_PRIVATE):
        raise not_implemented("CreateMultipartUpload with x-amz-acl other than private")
    ctype, meta = _fields(request)
    headers = object_writes.stored_headers(request)
    algorithm = checksums.upload_algorithm(request.headers)
    b = await request.app[NAMESPACE].bucket(bucket)
    access.require_write(principal(request), b)
    u = await request.app[MULTIPART].create(
        caller(request).tenant, bucket, key, ctype, meta, headers, algorithm, b.created_at
    )
    inner = xml("Bucket", bucket) + xml("Key", key) + xml("UploadId", u.upload_id)
    resp = xml_response("InitiateMultipartUploadResult", inner)
    if algorithm:
        resp.headers[checksums.ALGORITHM_HEADER] = algorithm.upper()
        resp.headers[checksums.TYPE_HEADER] = checksums.COMPOSITE
    return resp


# --- parts ----------------------------------------------------------------------------------


async def upload_part(request: web.Request, bucket: str, key: str) -> web.Response:
    q = _refuse_params(request, {"uploadId", "partNumber"})
    number = _int_param(q, "partNumber", 0, 1, MAX_PARTS)
    if "x-amz-copy-source" in request.headers:
        return await upload_part_copy(request, bucket, key, number)
    u = await _upload(request, bucket, key)
    if u.state != UPLOAD_OPEN:
        raise S3Error("NoSuchUpload", 404, "The specified upload is being completed.")
    mp = request.app[MULTIPART]
    sums = checksums.Checksums.for_part(request.headers, u.checksum)
    body = request_body(request, sums)
    declared = declared_length(request, body)
    if declared is not None and int(declared) > MAX_PART_BYTES:
        raise S3Error("EntityTooLarge", 400, f"a part has at most {MAX_PART_BYTES} bytes")
    file_id, size = "", 0
    chunks: Sequence[ManifestEntry] = ()
    tap = mp.chains.tap(u.upload_id, number)  # its bytes for the object's SHA-256
    try:
        if declared is not None and int(declared) == 0:
            await body.read(1)  # an empty part: its framing (and chunk signature) is checked
        else:
            read = tap.reading(body.read)
            async with stream_slot(request):  # before any byte of the body is read
                file_id, size, chunks = await mp.ingest_part(u, number, read, body.sha256_hex)
        try:
            etag = body.finish()
        except BaseException:
            await mp.release_files(u.tenant, [file_id])
            raise
        part = UploadPart(number, file_id, size, etag, time.time(), tuple(sums.values.items()))
        await mp.record_part(u, part)
        await mp.hashed(u, tap, (file_id, size, chunks))
    finally:
        tap.release()
    return web.Response(status=200, headers={"ETag": f'"{etag}"', **sums.response_headers()})


def _copy_range(header: str | None, size: int) -> ranges.ByteRange | None:
    """``x-amz-copy-source-range: bytes=first-last`` (both given, inside the source)."""
    if header is None:
        return None
    unit, _, spec = header.strip().partition("=")
    first, _, last = spec.partition("-")
    try:
        start, end = int(first), int(last)
    except ValueError:
        start, end = -1, -1
    if unit != "bytes" or start < 0 or end < start or end >= size:
        raise S3Error(
            "InvalidArgument",
            400,
            f"Range specified is not valid for source object of size: {size}",
        )
    return ranges.ByteRange(start, end, size)


async def _hashed(
    source: AsyncIterator[bytes], update: Callable[[bytes], None]
) -> AsyncIterator[bytes]:
    async for data in source:
        update(data)
        yield data


async def upload_part_copy(
    request: web.Request, bucket: str, key: str, number: int
) -> web.Response:
    """A part made of a source object's bytes (or a range of them), read verified and
    chunked like any part (the source's chunks dedup)."""
    u = await _upload(request, bucket, key)
    if u.state != UPLOAD_OPEN:
        raise S3Error("NoSuchUpload", 404, "The specified upload is being completed.")
    # split at "?" before the path is decoded: a key's own "?" comes as %3F
    src_bucket, src_key, version = object_writes.copy_source(request.headers["x-amz-copy-source"])
    ns = request.app[NAMESPACE]
    await ns.bucket(src_bucket)
    # a version named: that one, read by its file (S3's errors: ``copy_source_version``)
    r = await object_reads.copy_source_version(
        ns, principal(request), src_bucket, src_key, version, owner_ok(request, src_bucket)
    )
    # as CopyObject: s3transfer's managed copy sends x-amz-copy-source-if-match every part
    conditional.check_copy_source(request.headers, r.version.etag, r.version.created_at)
    rng = _copy_range(request.headers.get("x-amz-copy-source-range"), r.version.size)
    length = r.version.size if rng is None else rng.length
    if length > MAX_PART_BYTES:
        raise S3Error("EntityTooLarge", 400, f"a part has at most {MAX_PART_BYTES} bytes")
    mp = request.app[MULTIPART]
    mp.chains.breaks(u.upload_id)  # its bytes pass no tap: Complete reads the parts back
    md5 = hashlib.md5(usedforsecurity=False)
    sums = checksums.Checksums({}, also=u.checksum)  # the upload's algorithm, if any

    def update(data: bytes) -> None:
        md5.update(data)
        sums.update(data)

    file_id, size = "", 0
    if length:
        source = _hashed(mp.part_source(r.bucket.tenant, r.version.file_id, rng), update)
        async with stream_slot(request):  # a chunker's buffers and thread, as UploadPart's
            file_id, size, _ = await mp.ingest_part(u, number, StreamReader(source).read)
    now = time.time()
    sums.verify({})
    kept = tuple(sums.values.items())
    await mp.record_part(u, UploadPart(number, file_id, size, md5.hexdigest(), now, kept))
    inner = xml("LastModified", iso_time(now)) + xml("ETag", f'"{md5.hexdigest()}"')
    resp = xml_response("CopyPartResult", inner + multipart_xml.checksum_elements(kept))
    if version is not None or r.bucket.versioning != VERSIONING_UNVERSIONED:
        resp.headers["x-amz-copy-source-version-id"] = r.version.version_id  # as CopyObject
    return resp


# --- complete, abort, lists -----------------------------------------------------------------


async def _assemble_and_link(
    request: web.Request,
    u: MultipartUpload,
    parts: list[UploadPart],
    cond: object_writes.WriteCondition,
) -> tuple[str, PutResult]:
    """Build the object from ``parts`` and make it the key's current version; its ETag and
    the link's result (the answer's ``x-amz-version-id``)."""
    mp = request.app[MULTIPART]
    etag = multipart_etag([p.etag for p in parts])
    made: Ingested | None = None
    try:
        file_id = ""
        if sum(p.size for p in parts):
            try:
                made = await mp.assemble(u, parts)
            except FileNotFound:  # a part's file was deleted by its file id
                raise S3Error("InvalidPart", 400, "a part's stored bytes are gone") from None
            file_id = str(made.body["file_id"])
        metadata = _object_metadata(u, parts)
        fields = ObjectFields(
            content_type=u.content_type or None, metadata=metadata, headers=u.headers
        )
        made_version = await object_writes.link(
            request, u.bucket, u.key, file_id, fields, etag, cond
        )
    except BaseException:
        if made is not None and made.created:
            with contextlib.suppress(DfsError):
                await mp.release_files(u.tenant, [str(made.body["file_id"])])
        await mp.reopen(u)
        raise
    if file_id and made_version.version.file_id != file_id:
        # a read-write grantee's file, cloned into the owner's tenant by the link: the
        # grantee's is nobody's now (made here, committed for_object: never a dedup answer)
        with contextlib.suppress(DfsError):
            await mp.release_files(u.tenant, [file_id])
    with contextlib.suppress(DfsError):  # collected meanwhile: its parts are released already
        await mp.finish(u, {UPLOAD_COMPLETING})
    return etag, made_version


def _composite(u: MultipartUpload, parts: list[UploadPart]) -> str:
    """The object's composite checksum ("" when the upload has no algorithm, or a part
    stored before parts' checksums were kept has none)."""
    values = [dict(p.checksums).get(u.checksum, "") for p in parts]
    if not u.checksum or not all(values):
        return ""
    return checksums.composite(u.checksum, values)


def _object_metadata(u: MultipartUpload, parts: list[UploadPart]) -> tuple[tuple[str, str], ...]:
    """The object's user metadata: the client's, then the reserved entries (its composite
    checksum, the part sizes and part checksums when they fit: ``dfs.s3.part_numbers``)."""
    metadata = u.user_metadata
    composite = _composite(u, parts)
    if composite:
        metadata = tuple(sorted((*metadata, (checksums.STORED + u.checksum, composite))))
    metadata = part_numbers.with_part_sizes(metadata, [p.size for p in parts])
    if composite:
        values = [dict(p.checksums)[u.checksum] for p in parts]
        metadata = part_numbers.with_part_checksums(metadata, u.checksum, values)
    return metadata


def _check_expected(request: web.Request, u: MultipartUpload, parts: list[UploadPart]) -> None:
    """A Complete's ``x-amz-checksum-<algorithm>`` header: the object's checksum it expects
    (with or without the ``-N``), BadDigest when it is not the composite."""
    for name, value in request.headers.items():
        algorithm = name.lower().removeprefix(checksums.HEADER)
        if algorithm in checksums.ALGORITHMS and name.lower().startswith(checksums.HEADER):
            got = _composite(u, parts) if algorithm == u.checksum else ""
            if value.strip() not in (got, got.rpartition("-")[0]) or not got:
                raise checksums.bad_checksum(algorithm)


def _complete_xml(
    request: web.Request, u: MultipartUpload, etag: str, parts: list[UploadPart]
) -> str:
    location = f"{request.scheme}://{request.host}/{u.bucket}/{u.key}"
    composite = _composite(u, parts)
    sums = (
        multipart_xml.checksum_elements([(u.checksum, composite)])
        + xml("ChecksumType", checksums.COMPOSITE)
        if composite
        else ""
    )
    return (
        xml("Location", location)
        + xml("Bucket", u.bucket)
        + xml("Key", u.key)
        + xml("ETag", f'"{etag}"')
        + sums
    )


async def complete_upload(request: web.Request, bucket: str, key: str) -> web.StreamResponse:
    _refuse_params(request, {"uploadId"})
    too_long = multipart_xml.malformed("the part list is too long")
    # x-amz-checksum-* of a Complete names the object's checksum, not the part list's; its
    # body slot is not held through the assembly below (minutes for a big object)
    raw = await read_small(
        request,
        multipart_xml.MAX_COMPLETE_BODY,
        too_long,
        body_crc32=False,
        until_answered=False,
    )
    asked = multipart_xml.parse_complete(raw)
    del raw  # not kept through the assembly either
    try:
        b, u = await _bucket_and_upload(request, bucket, key)
    except UploadNotFound:  # gone: perhaps a Complete sent again after it succeeded
        if again := await multipart_retry.completed_before(request, bucket, key, asked):
            return again
        raise
    mp = request.app[MULTIPART]
    if u.state == UPLOAD_COMPLETING:  # another Complete of it is under way: its condition rules
        return await _after_another(request, mp, u, asked)
    try:
        cond = await object_writes.check_condition(request, request.app[NAMESPACE], bucket, key)
    except S3Error as err:  # perhaps the object the first Complete linked since u was read
        if err.code == "PreconditionFailed" and await _taken_since(mp, u):
            return await _after_another(request, mp, u, asked)
        raise
    try:
        parts = await mp.begin_complete(u)
    except UploadNotFound:  # another Complete took it meanwhile (or it just ended)
        return await _after_another(request, mp, u, asked)
    try:
        chosen = multipart_xml.choose_parts(parts, asked)
        _check_expected(request, u, chosen)
    except BaseException:
        await mp.reopen(u)
        raise
    return await complete_answer.answer(request, _completed(request, b, u, chosen, cond))


async def _taken_since(mp: Multipart, u: MultipartUpload) -> bool:
    """Whether another Complete has taken the upload since ``u`` was read open."""
    return await complete_answer.upload_state(mp, u.upload_id) != UPLOAD_OPEN


async def _after_another(
    request: web.Request, mp: Multipart, u: MultipartUpload, asked: Sequence[multipart_xml.Asked]
) -> web.StreamResponse:
    waiting = complete_answer.after_another(request, mp, u, asked)
    return await complete_answer.answer(request, waiting, finish=False)


async def _completed(
    request: web.Request,
    b: BucketRecord,
    u: MultipartUpload,
    chosen: list[UploadPart],
    cond: object_writes.WriteCondition,
) -> web.Response:
    """The object of ``chosen`` assembled and linked; its answer."""
    etag, made = await _assemble_and_link(request, u, chosen, cond)
    resp = xml_response("CompleteMultipartUploadResult", _complete_xml(request, u, etag, chosen))
    resp.headers.update(object_writes.version_header(b, made.version))
    return resp


async def abort_upload(request: web.Request, bucket: str, key: str) -> web.Response:
    _refuse_params(request, {"uploadId"})
    u = await _upload(request, bucket, key, write=False)
    await request.app[MULTIPART].finish(u, {UPLOAD_OPEN})
    return web.Response(status=204)


async def list_parts(request: web.Request, bucket: str, key: str) -> web.Response:
    q = _refuse_params(request, {"uploadId", "max-parts", "part-number-marker", "encoding-type"})
    max_parts = _int_param(q, "max-parts", MAX_LISTED, 0, MAX_LISTED, clamp=True)
    marker = _int_param(q, "part-number-marker", 0, 0, MAX_PARTS)
    u = await _upload(request, bucket, key, write=False)
    parts = await request.app[MULTIPART].store.list_upload_parts(
        u.upload_id, after=marker, limit=max_parts + 1
    )
    return xml_response(
        "ListPartsResult", multipart_xml.list_parts_xml(u, parts, marker, max_parts)
    )


async def list_uploads(request: web.Request, bucket: str) -> web.Response:
    allowed = {"uploads", "prefix", "delimiter", "key-marker", "upload-id-marker", "max-uploads"}
    q = _refuse_params(request, allowed | {"encoding-type"})
    if q.get("encoding-type", "url") != "url":
        raise S3Error("InvalidArgument", 400, "Invalid Encoding Method specified in Request")
    max_uploads = _int_param(q, "max-uploads", MAX_LISTED, 0, MAX_LISTED, clamp=True)
    who = principal(request)
    b = await request.app[NAMESPACE].visible_bucket(who, bucket)
    # the owner's list is every upload; anyone else who may list the bucket gets its own:
    # each upload names its initiator, and a reader (any tenant, of a public-read bucket)
    # learnt from them which tenants may write it, which the ACL tells the owner alone
    mine = None if access.is_owner(who, b) else who.tenant
    query = multipart_listing.Query(
        q.get("prefix", ""),
        q.get("delimiter", ""),
        q.get("key-marker", ""),
        # S3 ignores an upload-id-marker sent without a key-marker
        q.get("upload-id-marker", "") if q.get("key-marker") else "",
        "encoding-type" in q,
    )
    mp = request.app[MULTIPART]

    def lister(after: multipart_listing.After, limit: int) -> Awaitable[list[MultipartUpload]]:
        return mp.uploads_of(b, query.prefix, after, limit, mine)  # not an earlier bucket's

    entries, truncated = await multipart_listing.uploads_page(lister, query, max_uploads)
    inner = multipart_listing.list_uploads_xml(bucket, entries, truncated, query, max_uploads)
    return xml_response("ListMultipartUploadsResult", inner)


# --- dispatch -------------------------------------------------------------------------------


@web.middleware
async def dispatch(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Multipart calls, told apart from object and bucket calls by their query."""
    q = params(request)
    m = request.method
    if "key" in request.match_info and (
        "uploadId" in q or (m == hdrs.METH_POST and "uploads" in q)
    ):
        bucket, key = _key(request)
        call = {
            hdrs.METH_POST: complete_upload if "uploadId" in q else create_upload,
            hdrs.METH_PUT: upload_part,
            hdrs.METH_DELETE: abort_upload,
            hdrs.METH_GET: list_parts,
        }.get(m)
        if call is not None:
            return await call(request, bucket, key)
    elif "bucket" in request.match_info and m == hdrs.METH_GET and "uploads" in q:
        return await list_uploads(request, bucket_name(request))
    return await handler(request)


def add_routes(app: web.Application) -> None:
    """The multipart service and the dispatch middleware (after SigV4's)."""
    app[MULTIPART] = Multipart(app[COORDINATOR])
    app.middlewares.append(dispatch)
