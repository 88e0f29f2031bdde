"""CopyObject (``PUT /{bucket}/{key}`` with ``x-amz-copy-source``) as metadata: the new
version links the source's stored file, no chunk is read or written
(``dfs.api.namespace_service``'s copy). A source ``?versionId=``, the
``x-amz-copy-source-if-*`` conditions (412 ``PreconditionFailed``, ``dfs.s3.conditional``),
``If-None-Match: *`` and ``If-Match`` on the target (decided atomically by the store, as on
PutObject: ``dfs.s3.object_writes``) and ``x-amz-acl`` (private, public-read) are honoured.

A source written between the gateway's read of it and the copy is read again and its
conditions checked again (``dfs.api.namespace_moves``): the copy is one version's bytes,
metadata and stored checksums, never a mix (503 ``ServiceUnavailable`` after
``COPY_ATTEMPTS`` reads each written over meanwhile).

The directives, as S3: ``x-amz-metadata-directive`` COPY (the default) keeps the source's
content type, ``x-amz-meta-*`` and stored headers (``Cache-Control``…), REPLACE takes them
from the request (the verified checksums stay: the bytes are the same);
``x-amz-tagging-directive`` COPY keeps the source's tags, REPLACE takes ``x-amz-tagging``.
A copy onto itself must REPLACE something (400 ``InvalidRequest`` otherwise): that is how
clients change an object's metadata, still without moving a byte.
"""

from __future__ import annotations

import dataclasses

from aiohttp import hdrs, web

from dfs.api import access as rules
from dfs.api.namespace_bodies import ObjectFields, parse_content_type
from dfs.api.namespace_moves import COPY_ATTEMPTS
from dfs.api.namespace_records import Resolved
from dfs.errors import InvalidRequest, SourceChanged
from dfs.meta.namespace import VERSIONING_UNVERSIONED, ObjectVersion
from dfs.s3 import acl, checksums, conditional, object_reads, object_writes
from dfs.s3.checksums import Checksums
from dfs.s3.context import NAMESPACE, iso_time, owner_ok, principal, xml, xml_response
from dfs.s3.errors import S3Error
from dfs.s3.routes_tagging import tagging_header

S3_DEFAULT_TYPE = "binary/octet-stream"  # S3's content type of a REPLACE that names none


def _directive(request: web.Request, name: str) -> bool:
    """Whether the directive header says REPLACE (COPY when absent)."""
    value = request.headers.get(name, "COPY").upper()
    if value not in ("COPY", "REPLACE"):
        raise S3Error("InvalidArgument", 400, f"{name} must be COPY or REPLACE")
    return value == "REPLACE"


def replaced_fields(request: web.Request, src: ObjectVersion) -> ObjectFields:
    """What the request's directives replace of the source's fields (None: kept)."""
    h = request.headers
    fields = ObjectFields()
    if _directive(request, "x-amz-metadata-directive"):
        kept = tuple((k, v) for k, v in src.user_metadata if checksums.is_reserved(k))
        ctype = h.get(hdrs.CONTENT_TYPE)
        try:
            fields = ObjectFields(
                content_type=parse_content_type(ctype) if ctype else S3_DEFAULT_TYPE,
                metadata=tuple(sorted((object_writes.request_metadata(request) or ()) + kept)),
                headers=object_writes.stored_headers(request),
            )
        except InvalidRequest as exc:
            raise object_writes.invalid(exc) from None
    if _directive(request, "x-amz-tagging-directive"):
        fields = ObjectFields(
            fields.content_type,
            fields.metadata,
            tagging_header(h.get("x-amz-tagging")) or (),
            headers=fields.headers,
        )
    return fields


def _no_change(fields: ObjectFields) -> bool:
    return fields.metadata is None and fields.tags is None


async def copy_object(request: web.Request, bucket: str, key: str) -> web.Response:
    """CopyObject as metadata: the new version links the source's file (no chunk is read or
    written); its ETag is the source's, its other fields as the directives say;
    ``x-amz-acl`` applies to the copy. A source written between this request's read of it
    and the copy (an unversioned key's ``null`` version holds other bytes by then) is read
    and checked again: a copy is never one version's bytes with another's fields."""
    h = request.headers
    object_writes.refuse_unkept(request)
    acl.refuse_grant_headers(request)  # the copy would be private: 501, as on PutObject
    source = object_writes.copy_source(h["x-amz-copy-source"])
    ns = request.app[NAMESPACE]
    access = acl.canned(h.get("x-amz-acl"))
    await ns.bucket(source[0])  # NoSuchBucket, as S3
    for _ in range(COPY_ATTEMPTS):
        try:
            src, v = await _copy_as_read(request, source, bucket, key, access)
            break
        except SourceChanged:
            continue
    else:
        raise S3Error("ServiceUnavailable", 503, "The copy source kept changing; try again.")
    inner = xml("LastModified", iso_time(v.created_at)) + xml("ETag", f'"{v.etag}"')
    resp = xml_response("CopyObjectResult", inner)
    resp.headers.update(object_writes.put_headers(await ns.bucket(bucket), v, Checksums({})))
    if source[2] is not None or src.bucket.versioning != VERSIONING_UNVERSIONED:
        resp.headers["x-amz-copy-source-version-id"] = src.version.version_id
    return resp


async def _copy_as_read(
    request: web.Request,
    source: tuple[str, str, str | None],
    bucket: str,
    key: str,
    access: str | None,
) -> tuple[Resolved, ObjectVersion]:
    """One read of the source, its checks and the copy of that version: SourceChanged
    when the store finds the source written since this read (nothing written)."""
    h, ns, who = request.headers, request.app[NAMESPACE], principal(request)
    src_bucket, src_key, src_version = source
    src = await object_reads.copy_source_version(
        ns, who, src_bucket, src_key, src_version, owner_ok(request, src_bucket)
    )
    fields = replaced_fields(request, src.version)
    if (src_bucket, src_key, src_version) == (bucket, key, None) and _no_change(fields):
        raise S3Error(
            "InvalidRequest",
            400,
            "This copy request is illegal because it is trying to copy an object to itself "
            "without changing the object's metadata, storage class, website redirect "
            "location or encryption attributes.",
        )
    conditional.check_copy_source(h, src.version.etag, src.version.created_at)
    # refused before anything is written: a grantee's copy with a canned ACL it may not
    # set answered 403 with the copy left behind
    rules.require_may_share(who, await ns.bucket(bucket), access)
    cond = await object_writes.check_condition(request, ns, bucket, key)
    with object_writes.lost_as_412():
        made = await ns.copy(
            who,
            (src_bucket, src_key),
            (bucket, key),
            version=src.version.version_id,
            # the canned ACL in the copy's one write: set by a second one, a copy asked to be
            # public stayed private if the gateway died between them
            fields=fields if access is None else dataclasses.replace(fields, access=access),
            if_absent=cond.if_absent,
            if_match=cond.if_match,
            expect_file=src.version.file_id,
        )
    return src, made[0]
