"""The bucket and key a request names (path-style), with S3's errors for bad ones."""

from __future__ import annotations

from aiohttp import web

from dfs import protocol
from dfs.api.namespace_bodies import parse_bucket_name, parse_key
from dfs.errors import InvalidRequest
from dfs.s3.errors import S3Error

KEY_PATTERN = protocol.KEY_IN_PATH
"""The key in an object call's path: any characters, a line break too."""
OBJECT_PATH = "/{bucket}/" + KEY_PATTERN


def bucket_name(request: web.Request) -> str:
    try:
        return parse_bucket_name(request.match_info["bucket"])
    except InvalidRequest as exc:
        raise S3Error("InvalidBucketName", 400, exc.message) from None


def target(request: web.Request) -> tuple[str, str]:
    """The bucket and key of an object request."""
    bucket = bucket_name(request)
    try:
        return bucket, parse_key(request.match_info["key"])
    except InvalidRequest as exc:
        code = "KeyTooLongError" if "long" in exc.message else "InvalidArgument"
        raise S3Error(code, 400, exc.message) from None
