"""CopyObject (``PUT /{bucket}/{key}`` with ``x-amz-copy-source``) as metadata: the new
version links the source's stored file, no chunk is read or written
(``dfs.api.namespace_service``'s copy). A source ``?versionId=``, the
``x-amz-copy-source-if-*`` conditions (412 ``PreconditionFailed``, ``dfs.s3.conditional``)
and ``x-amz-acl`` (private, public-read) are honoured; the copy keeps the source's ETag,
content type, metadata (checksums included) and tags. ``REPLACE`` directives answer 501.
"""

from __future__ import annotations

from aiohttp import web

from dfs.api.namespace_bodies import ObjectFields
from dfs.meta.namespace import VERSIONING_UNVERSIONED
from dfs.s3 import acl, conditional, object_writes
from dfs.s3.checksums import Checksums
from dfs.s3.context import NAMESPACE, iso_time, principal, xml, xml_response
from dfs.s3.errors import S3Error, not_implemented


async def copy_object(request: web.Request, bucket: str, key: str) -> web.Response:
    """CopyObject as metadata: the new version links the source's file (no chunk is read or
    written); its ETag, metadata and tags are the source's (``x-amz-metadata-directive``
    and ``x-amz-tagging-directive`` COPY); ``x-amz-acl`` applies to the copy."""
    h = request.headers
    object_writes.refuse_unkept(request)
    for directive in ("x-amz-metadata-directive", "x-amz-tagging-directive"):
        if h.get(directive, "COPY").upper() != "COPY":
            raise not_implemented(f"CopyObject with {directive} REPLACE")
    src_bucket, src_key, src_version = object_writes.copy_source(h["x-amz-copy-source"])
    if (src_bucket, src_key, src_version) == (bucket, key, None):
        raise S3Error(
            "InvalidRequest",
            400,
            "This copy request is illegal because it is "
            "trying to copy an object to itself without changing anything.",
        )
    ns, who = request.app[NAMESPACE], principal(request)
    access = acl.canned(h.get("x-amz-acl"))
    await ns.bucket(src_bucket)  # NoSuchBucket, as S3
    src = await ns.resolve(who, src_bucket, src_key, src_version)
    conditional.check_copy_source(h, src.version.etag, src.version.created_at)
    made = await ns.copy(who, (src_bucket, src_key), (bucket, key), version=src.version.version_id)
    v = made[0]
    if access is not None:
        v = await ns.update_object(
            who, bucket, key, v.version_id, ObjectFields(access=access), None
        )
    inner = xml("LastModified", iso_time(v.created_at)) + xml("ETag", f'"{v.etag}"')
    resp = xml_response("CopyObjectResult", inner)
    resp.headers.update(object_writes.put_headers(await ns.bucket(bucket), v, Checksums({})))
    if src_version is not None or src.bucket.versioning != VERSIONING_UNVERSIONED:
        resp.headers["x-amz-copy-source-version-id"] = src.version.version_id
    return resp
