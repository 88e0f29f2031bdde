"""Unsigned (anonymous) requests: allowed only for what the namespace's public access
allows, which through S3 is reading objects (and the CORS preflight, ``dfs.s3.cors``): GET and HEAD of an object (optionally of a
``versionId``), answered when the object or its bucket is ``public-read``
(``dfs.api.access`` decides, with no principal). Every other unsigned request answers
``AccessDenied`` (403) before any route runs, and so does a refused anonymous read (S3
answers anonymous callers 403, not 404, for what they may not read; a missing bucket is
still ``NoSuchBucket``). An anonymous read asking for ``response-*`` header overrides
answers 400 ``InvalidRequest``, as S3 answers it.
"""

from __future__ import annotations

from aiohttp import hdrs, web

from dfs.api.bodies import Principal
from dfs.s3.context import CALLER, principal
from dfs.s3.errors import S3Error, access_denied

_READ_PARAMS = frozenset({"versionId"})


def unsigned(request: web.Request) -> bool:
    """No SigV4 (or version 2) signature in the headers or the query."""
    q = request.query
    return (
        "Authorization" not in request.headers
        and "X-Amz-Signature" not in q
        and "X-Amz-Credential" not in q
        and "AWSAccessKeyId" not in q
        and "Signature" not in q
    )


def admit(request: web.Request) -> None:
    """Let an unsigned request on only when it reads an object or is a CORS preflight
    (``dfs.s3.cors``: browsers never sign those); AccessDenied otherwise."""
    if request.method == hdrs.METH_OPTIONS:
        request[CALLER] = None
        return
    reads = request.method in (hdrs.METH_GET, hdrs.METH_HEAD)
    extra = set(request.query) - _READ_PARAMS
    if not reads or "key" not in request.match_info:
        raise access_denied()
    if extra and all(p.startswith("response-") for p in extra):
        raise S3Error(
            "InvalidRequest",
            400,
            "Request specific response headers cannot be used for anonymous GET requests.",
        )
    if extra:
        raise access_denied()
    request[CALLER] = None


def is_anonymous(request: web.Request) -> bool:
    return request.get(CALLER, "") is None


def who(request: web.Request) -> Principal | None:
    """The caller as ``dfs.api.access`` knows it: None when anonymous."""
    return None if is_anonymous(request) else principal(request)
