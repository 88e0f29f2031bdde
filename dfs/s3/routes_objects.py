"""S3 object calls (path-style): PutObject, GetObject (with Range), HeadObject, DeleteObject.

| method | path             | call                                                        |
|--------|------------------|-------------------------------------------------------------|
| PUT    | /{bucket}/{key}  | with ``x-amz-copy-source``: CopyObject, metadata only (the source's file and ETag; its metadata unless REPLACE) |
| PUT    | /{bucket}/{key}  | PutObject: the body streams through ``dfs.api.ingest`` (server-side FastCDC and SHA-256 straight to the nodes); ETag = MD5 of the body |
| GET    | /{bucket}/{key}  | GetObject: verified chunks (``dfs.api.file_stream``), Range |
| HEAD   | /{bucket}/{key}  | HeadObject                                                   |
| DELETE | /{bucket}/{key}  | DeleteObject (204, also for a missing key, as S3 answers)    |

GET, HEAD and DELETE, and sub-resources (``?tagging``, ``?acl``…), are answered by the
modules ``dfs.s3.subresources`` names (versions, conditional reads, tagging, ACLs);
POST (multipart calls aside) and other sub-resources answer 501 NotImplemented.
Multipart calls (``?uploads``, ``?uploadId``) never reach these routes:
``dfs.s3.routes_multipart``'s middleware takes them first.
"""

from __future__ import annotations

from aiohttp import web

from dfs.api import access
from dfs.api.ingest import ingest
from dfs.chunking import ChunkerProfile
from dfs.meta.namespace import PutResult
from dfs.s3 import object_writes, routes_copy, subresources
from dfs.s3.bodies import declared_length, request_body
from dfs.s3.checksums import Checksums
from dfs.s3.context import (
    COORDINATOR,
    NAMESPACE,
    caller,
    params,
    principal,
    stream_slot,
)
from dfs.s3.errors import S3Error, not_implemented
from dfs.s3.names import OBJECT_PATH, target

MAX_OBJECT_BYTES = 5 * 1024**3  # S3's largest single PUT
_UNSUPPORTED_PUT_HEADERS = ("x-amz-object-lock-mode", "x-amz-copy-source-range")


async def put_object(request: web.Request) -> web.StreamResponse:
    if params(request):
        return await subresources.object_call(request)
    for name in _UNSUPPORTED_PUT_HEADERS:
        if name in request.headers:
            raise not_implemented(f"PutObject with {name}")
    bucket, key = target(request)
    if "x-amz-copy-source" in request.headers:
        return await routes_copy.copy_object(request, bucket, key)
    fields = object_writes.put_fields(request)
    ns = request.app[NAMESPACE]
    # NoSuchBucket, and a caller who may not write refused, before the body is read (the
    # bucket as read within BUCKET_CACHE_SECONDS: the link checks it again, atomically)
    b = await ns.bucket_for_write(bucket)
    access.require_write(principal(request), b)
    cond = await object_writes.check_condition(request, ns, bucket, key)
    sums = Checksums.from_headers(request.headers)
    body = request_body(request, sums)
    declared = declared_length(request, body)
    if declared is not None and int(declared) > MAX_OBJECT_BYTES:  # refused before the read
        raise S3Error(
            "EntityTooLarge", 400, "Your proposed upload exceeds the maximum allowed size"
        )
    file_id, written = "", None
    linked: list[PutResult] = []  # the version, when the file's write made it too
    if declared is not None and int(declared) == 0:
        await body.read(1)  # an empty object: its framing (and chunk signature) is checked
    else:
        own = b.tenant == caller(request).tenant
        async with stream_slot(request):  # before any byte of the body is read
            done = await ingest(
                request.app[COORDINATOR],
                caller(request).tenant,
                key.rsplit("/", 1)[-1] or "object",
                body.read,
                ChunkerProfile.default(),
                MAX_OBJECT_BYTES,
                # the object gets a file of its own (its last version's release deletes it),
                # never a file of the tenant's found by content; a grantee's is cloned into the
                # owner's tenant by the link, and released then (``link_made``)
                reuse=False,
                body_sha256=body.sha256_hex,
                commit=object_writes.linking_commit(
                    request, b, key, fields, sums, cond, body.finish, linked
                )
                if own
                else None,
            )
        file_id, written = str(done.body["file_id"]), done.record
    etag = body.finish()  # the body's checks ran as its end was read (or run now, if empty)
    fields = object_writes.with_checksums(fields, sums)
    made = (
        linked[0]
        if linked
        else await object_writes.link_made(
            request, bucket, key, file_id, fields, etag, cond, read=b, written=written
        )
    )
    headers = object_writes.put_headers(b, made.version, sums)
    return web.Response(status=200, headers={"ETag": f'"{etag}"', **headers})


async def unsupported(request: web.Request) -> web.Response:
    raise not_implemented(f"{request.method} on an object (multipart uploads and the rest)")


def add_routes(app: web.Application) -> None:
    r = app.router
    path = OBJECT_PATH
    r.add_put(path, put_object)
    r.add_get(path, subresources.object_call)  # GetObject, HeadObject and sub-resources
    r.add_delete(path, subresources.object_call)
    r.add_post(path, unsupported)
