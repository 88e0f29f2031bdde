"""S3's bucket-owner conditions: ``x-amz-expected-bucket-owner`` (the request's bucket) and
``x-amz-source-expected-bucket-owner`` (a copy's source bucket, CopyObject and
UploadPartCopy), which the AWS SDKs send as ``ExpectedBucketOwner`` and
``ExpectedSourceBucketOwner``. The owner id is the bucket's tenant, as ACLs and listings
name it. Bucket names are global: a client asks for the check so that its data does not go
to (or come from) a bucket of that name that another tenant holds, say one created after
its own was deleted and shared with it read-write. Ignored, such a PutObject succeeded into
the other tenant's bucket.

A bucket of another owner answers 403 ``AccessDenied`` before the call runs to a caller who
may list the bucket (it sees the owner in listings anyway). To anyone else the answer must
not tell whether the guessed owner was right, so the call runs as for a bucket it may not
see: it is refused as it would be, and an object it could read only through the object's
own access (``public-read``, ``shared``) is refused as unreadable (``object_reads``, through
``dfs.s3.context.owner_ok``). A missing bucket is left to the call (``NoSuchBucket``, or CreateBucket).
"""

from __future__ import annotations

from aiohttp import web

from dfs.api import access
from dfs.errors import BucketNotFound
from dfs.s3 import anonymous
from dfs.s3.context import NAMESPACE, NOT_EXPECTED_OWNER
from dfs.s3.errors import Handler, access_denied
from dfs.s3.names import bucket_name
from dfs.s3.object_writes import copy_source

HEADER = "x-amz-expected-bucket-owner"
SOURCE_HEADER = "x-amz-source-expected-bucket-owner"


async def _check(request: web.Request, bucket: str, expected: str) -> None:
    try:
        b = await request.app[NAMESPACE].store.get_bucket(bucket)
    except BucketNotFound:
        return
    if b.tenant == expected.strip():
        return
    if access.can_list(anonymous.who(request), b):
        raise access_denied()
    request.setdefault(NOT_EXPECTED_OWNER, set()).add(bucket)


@web.middleware
async def expected_owner(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The request's owner conditions, checked after its signature, before its call."""
    h = request.headers
    if HEADER in h and "bucket" in request.match_info:
        await _check(request, bucket_name(request), h[HEADER])
    if SOURCE_HEADER in h and "x-amz-copy-source" in h:
        await _check(request, copy_source(h["x-amz-copy-source"])[0], h[SOURCE_HEADER])
    return await handler(request)
