"""The S3 action a request names (``PutObject``, ``ListObjectsV2``, ``UploadPart``...), for
the gateway's metrics: series are labelled by action, never by the raw path or query, so
their number stays bounded whatever buckets and keys clients use.

The name is read from what the routes dispatch on: the target (service, bucket or object:
the route's ``bucket`` and ``key`` match info, which virtual-host addressing fills too),
the method, the sub-resource in the query and ``x-amz-copy-source``. A request no route
answers is ``Unknown``; health probes and scrapes name themselves (``Probe``, ``Metrics``).
"""

from __future__ import annotations

from aiohttp import web

from dfs.s3.context import params

UNKNOWN = "Unknown"
COPY_SOURCE = "x-amz-copy-source"

# (method, sub-resource in the query) -> action; the first sub-resource found wins
_BUCKET_SUBS: dict[tuple[str, str], str] = {
    ("GET", "location"): "GetBucketLocation",
    ("GET", "versioning"): "GetBucketVersioning",
    ("PUT", "versioning"): "PutBucketVersioning",
    ("GET", "versions"): "ListObjectVersions",
    ("GET", "uploads"): "ListMultipartUploads",
    ("GET", "acl"): "GetBucketAcl",
    ("PUT", "acl"): "PutBucketAcl",
    ("GET", "cors"): "GetBucketCors",
    ("PUT", "cors"): "PutBucketCors",
    ("DELETE", "cors"): "DeleteBucketCors",
    ("GET", "tagging"): "GetBucketTagging",
    ("PUT", "tagging"): "PutBucketTagging",
    ("DELETE", "tagging"): "DeleteBucketTagging",
    ("POST", "delete"): "DeleteObjects",
}
_BUCKET_PLAIN = {
    "PUT": "CreateBucket",
    "DELETE": "DeleteBucket",
    "HEAD": "HeadBucket",
    "POST": "PostBucket",
}
_OBJECT_SUBS: dict[tuple[str, str], str] = {
    ("GET", "tagging"): "GetObjectTagging",
    ("PUT", "tagging"): "PutObjectTagging",
    ("DELETE", "tagging"): "DeleteObjectTagging",
    ("GET", "acl"): "GetObjectAcl",
    ("PUT", "acl"): "PutObjectAcl",
    ("POST", "uploads"): "CreateMultipartUpload",
    ("POST", "uploadId"): "CompleteMultipartUpload",
    ("GET", "uploadId"): "ListParts",
    ("DELETE", "uploadId"): "AbortMultipartUpload",
}
_OBJECT_PLAIN = {
    "GET": "GetObject",
    "HEAD": "HeadObject",
    "DELETE": "DeleteObject",
    "POST": "PostObject",
}


def _sub(method: str, query: dict[str, str], table: dict[tuple[str, str], str]) -> str | None:
    for sub in query:
        found = table.get((method, sub))
        if found is not None:
            return found
    return None


def _bucket_action(method: str, query: dict[str, str]) -> str:
    found = _sub(method, query, _BUCKET_SUBS)
    if found is not None:
        return found
    if method == "GET":
        return "ListObjectsV2" if query.get("list-type") == "2" else "ListObjects"
    return _BUCKET_PLAIN.get(method, UNKNOWN)


def _object_action(method: str, query: dict[str, str], copy: bool) -> str:
    if method == "PUT" and "partNumber" in query and "uploadId" in query:
        return "UploadPartCopy" if copy else "UploadPart"
    found = _sub(method, query, _OBJECT_SUBS)
    if found is not None:
        return found
    if method == "PUT":
        return "CopyObject" if copy else "PutObject"
    return _OBJECT_PLAIN.get(method, UNKNOWN)


def action_of(request: web.Request) -> str:
    """The S3 action ``request`` asks for, from a fixed set of names."""
    method = request.method
    if method == "OPTIONS":
        return "PreflightCors"
    info = request.match_info
    if info.http_exception is not None:
        return UNKNOWN
    query = params(request)
    if "key" in info and "bucket" in info:
        return _object_action(method, query, COPY_SOURCE in request.headers)
    if "bucket" in info:
        return _bucket_action(method, query)
    return "ListBuckets" if method in ("GET", "HEAD") else UNKNOWN
