"""Which gateway module answers an S3 call that the base routes (``routes_buckets``,
``routes_objects``) hand over: a sub-resource (``?versioning``, ``?tagging``, ``?acl``…), a
version id, ListObjects version 1. Anything not in these tables answers 501 NotImplemented.

| method | target | query                         | call                         | module            |
|--------|--------|-------------------------------|------------------------------|-------------------|
| GET    | bucket | (none, or ``marker`` & co.)   | ListObjects (version 1)      | ``routes_listing`` |
| GET    | bucket | ``versioning``                | GetBucketVersioning          | ``routes_versions`` |
| PUT    | bucket | ``versioning``                | PutBucketVersioning          | ``routes_versions`` |
| GET    | bucket | ``versions``                  | ListObjectVersions           | ``routes_versions`` |
| GET    | bucket | ``acl``                       | GetBucketAcl                 | ``acl``            |
| PUT    | bucket | ``acl``                       | PutBucketAcl                 | ``acl``            |
| POST   | bucket | ``delete``                    | DeleteObjects                | ``routes_deletes`` |
| GET, PUT, DELETE | bucket | ``cors``            | Get/Put/DeleteBucketCors     | ``cors``           |
| GET, PUT, DELETE | bucket | ``tagging``         | Get/Put/DeleteBucketTagging  | ``routes_tagging`` |
| GET    | object | (none, ``versionId``, ``partNumber``, ``response-*``) | GetObject, HeadObject | ``object_reads`` |
| DELETE | object | (none, or ``versionId``)      | DeleteObject                 | ``routes_deletes`` |
| GET    | object | ``tagging``                   | GetObjectTagging             | ``routes_tagging`` |
| PUT    | object | ``tagging``                   | PutObjectTagging             | ``routes_tagging`` |
| DELETE | object | ``tagging``                   | DeleteObjectTagging          | ``routes_tagging`` |
| GET    | object | ``acl``                       | GetObjectAcl                 | ``acl``            |
| PUT    | object | ``acl``                       | PutObjectAcl                 | ``acl``            |

The CORS preflight (``OPTIONS``) is ``dfs.s3.cors``'s own route.
"""

from __future__ import annotations

from aiohttp import hdrs, web

from dfs.s3 import acl, cors, object_reads, routes_deletes, routes_listing, routes_tagging
from dfs.s3 import routes_versions as versions
from dfs.s3.context import params
from dfs.s3.errors import Handler, not_implemented

_BUCKET: dict[tuple[str, str], Handler] = {
    ("GET", "versioning"): versions.get_bucket_versioning,
    ("PUT", "versioning"): versions.put_bucket_versioning,
    ("GET", "versions"): versions.list_object_versions,
    ("GET", "acl"): acl.get_bucket_acl,
    ("PUT", "acl"): acl.put_bucket_acl,
    ("POST", "delete"): routes_deletes.delete_objects,
    ("GET", "cors"): cors.get_bucket_cors,
    ("PUT", "cors"): cors.put_bucket_cors,
    ("DELETE", "cors"): cors.delete_bucket_cors,
    ("GET", "tagging"): routes_tagging.get_bucket_tagging,
    ("PUT", "tagging"): routes_tagging.put_bucket_tagging,
    ("DELETE", "tagging"): routes_tagging.delete_bucket_tagging,
}
_OBJECT: dict[tuple[str, str], Handler] = {
    ("GET", "tagging"): routes_tagging.get_object_tagging,
    ("PUT", "tagging"): routes_tagging.put_object_tagging,
    ("DELETE", "tagging"): routes_tagging.delete_object_tagging,
    ("GET", "acl"): acl.get_object_acl,
    ("PUT", "acl"): acl.put_object_acl,
}
_PLAIN_OBJECT: dict[str, Handler] = {
    "GET": object_reads.get_object,
    "HEAD": object_reads.get_object,
    "DELETE": routes_deletes.delete_object,
}
_VERSION_ONLY = frozenset({"versionId"})


def _find(request: web.Request, table: dict[tuple[str, str], Handler]) -> Handler | None:
    found = [
        table[(request.method, sub)] for sub in params(request) if (request.method, sub) in table
    ]
    return found[0] if len(found) == 1 else None


async def bucket_call(request: web.Request) -> web.StreamResponse:
    """A bucket request with a query the base routes do not answer."""
    handler = _find(request, _BUCKET)
    q = set(params(request))
    if handler is None and request.method == hdrs.METH_GET and q <= routes_listing.PARAMS:
        handler = routes_listing.list_objects_v1
    if handler is None:
        raise not_implemented(f"{request.method} bucket ?{'&'.join(sorted(q))}")
    return await handler(request)


async def object_call(request: web.Request) -> web.StreamResponse:
    """An object request the base routes hand over (GET, HEAD, DELETE; PUT with a query)."""
    q = set(params(request))
    handler = _find(request, _OBJECT)
    if handler is None and q <= _VERSION_ONLY:
        handler = _PLAIN_OBJECT.get(request.method)
    if handler is None and request.method in ("GET", "HEAD") and q <= object_reads.GET_PARAMS:
        handler = object_reads.get_object
    if handler is None:
        raise not_implemented(f"{request.method} object ?{'&'.join(sorted(q))}")
    return await handler(request)
