"""S3's XML error documents, with S3's codes and HTTP statuses.

``S3Error`` is raised by the gateway's own checks (signatures, unsupported calls); the
middleware maps dfs's errors (``dfs.errors``) to the S3 code a client expects, so that boto3
and the AWS CLI see ``NoSuchKey``, ``NoSuchBucket``, ``AccessDenied`` and the rest.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from xml.sax.saxutils import escape

from aiohttp import web

from dfs.errors import (
    AuthError,
    BucketExists,
    BucketNotEmpty,
    BucketNotFound,
    DfsError,
    Forbidden,
    IncompleteUpload,
    InsufficientStorage,
    InvalidRequest,
    KeyNotFound,
    PayloadTooLarge,
    ReplicationError,
    RequestTimeout,
    Unavailable,
    UploadNotFound,
)

log = logging.getLogger("dfs.s3")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class S3Error(Exception):
    def __init__(
        self, code: str, status: int, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message
        self.headers = headers or {}  # e.g. x-amz-delete-marker on a marker's 405


def not_implemented(what: str) -> S3Error:
    return S3Error("NotImplemented", 501, f"{what} is not implemented by this dfs-s3 gateway")


def access_denied(message: str = "Access Denied") -> S3Error:
    return S3Error("AccessDenied", 403, message)


def signature_mismatch() -> S3Error:
    return S3Error(
        "SignatureDoesNotMatch",
        403,
        "The request signature we calculated does not match the signature you provided.",
    )


# dfs error class -> (S3 code, status); the first match in order wins (subclasses first)
_MAPPED: list[tuple[type[DfsError], str, int]] = [
    (BucketNotFound, "NoSuchBucket", 404),
    (KeyNotFound, "NoSuchKey", 404),
    (UploadNotFound, "NoSuchUpload", 404),
    (BucketNotEmpty, "BucketNotEmpty", 409),
    (BucketExists, "BucketAlreadyExists", 409),
    (Forbidden, "AccessDenied", 403),
    (AuthError, "AccessDenied", 403),
    (PayloadTooLarge, "EntityTooLarge", 400),
    # a body sent too slowly (``dfs.server.StreamDeadline``): S3's code, which SDKs retry
    # (botocore's transient errors), where InvalidRequest told them not to
    (RequestTimeout, "RequestTimeout", 400),
    (InvalidRequest, "InvalidRequest", 400),
    (Unavailable, "ServiceUnavailable", 503),
    # a chunk's copies could not all be written, even placed again around the nodes that
    # failed (dfs.api.chunk_writes): a node died or hung; SDKs retry a 503
    (ReplicationError, "ServiceUnavailable", 503),
    # no node has room: S3 has no code of its own for it; the message says what is wrong
    # ("cluster is full"), where InternalError's says nothing
    (InsufficientStorage, "ServiceUnavailable", 503),
    # chunks short of copies at the commit (a node drained or lost meanwhile): SDKs retry a
    # 503, and the PUT sent again is placed on the writable nodes
    (IncompleteUpload, "ServiceUnavailable", 503),
]


def from_dfs(exc: DfsError) -> S3Error:
    for cls, code, status in _MAPPED:
        if isinstance(exc, cls):
            return S3Error(code, status, exc.message)
    return S3Error("InternalError", 500, "We encountered an internal error. Please try again.")


def error_response(err: S3Error, resource: str) -> web.Response:
    request_id = secrets.token_hex(8).upper()
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{err.code}</Code><Message>{escape(err.message)}</Message>"
        f"<Resource>{escape(resource)}</Resource><RequestId>{request_id}</RequestId></Error>"
    )
    resp = web.Response(status=err.status, text=body, content_type="application/xml")
    resp.headers.update(err.headers)
    resp.headers["x-amz-request-id"] = request_id
    return resp


@web.middleware
async def s3_error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except S3Error as err:
        return error_response(err, request.path)
    except DfsError as exc:
        mapped = from_dfs(exc)
        if mapped.status >= 500:
            log.warning("%s %s: %s", request.method, request.path, exc.message)
        return error_response(mapped, request.path)
    except web.HTTPException:
        raise
    except ConnectionResetError:
        if request.transport is not None and not request.transport.is_closing():
            log.exception("%s %s failed", request.method, request.path)
        else:  # the client hung up (mid-body, say): nothing to answer, no fault here
            log.info("%s %s: the client closed the connection", request.method, request.path)
        return error_response(from_dfs(DfsError("internal")), request.path)
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return error_response(from_dfs(DfsError("internal")), request.path)
