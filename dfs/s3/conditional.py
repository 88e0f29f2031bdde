"""Conditional requests as S3 evaluates them (RFC 7232's order):

- GET/HEAD: ``If-Match`` (else ``If-Unmodified-Since``) failing answers 412
  ``PreconditionFailed``; then ``If-None-Match`` (else ``If-Modified-Since``) failing
  answers 304 Not Modified with the object's ETag and Last-Modified, and no body.
- CopyObject and UploadPartCopy: the same four as ``x-amz-copy-source-if-*`` on the
  source; any failing one answers 412 ``PreconditionFailed``.

ETag lists (``"a", "b"``), ``*`` and weak tags (``W/"a"``) are understood; a date that does
not parse is ignored (RFC 7232), and so is an ``If-Modified-Since`` later than the server's
clock (RFC 7232 3.3: such a date is invalid; S3 then answers the object, not 304). Times
compare at whole seconds, as Last-Modified carries them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

from dfs.s3.errors import S3Error


def precondition_failed(condition: str) -> S3Error:
    return S3Error(
        "PreconditionFailed",
        412,
        f"At least one of the pre-conditions you specified did not hold ({condition})",
    )


def etag_matches(header: str, etag: str) -> bool:
    for item in header.split(","):
        tag = item.strip()
        if tag == "*":
            return True
        tag = tag.removeprefix("W/").strip('"')
        if tag == etag:
            return True
    return False


def _date(header: str | None) -> int | None:
    if not header:
        return None
    try:
        return int(parsedate_to_datetime(header).timestamp())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def evaluate(
    headers: Mapping[str, str],
    etag: str,
    modified: float,
    prefix: str = "",
    now: float | None = None,
) -> str:
    """ "" when every condition holds, else "412:<header>" or "304:<header>" for the first
    one that fails (``prefix`` "x-amz-copy-source-" reads CopyObject's; ``now``: the
    server's clock, by default ``time.time()``)."""
    at = int(modified)
    if_match = headers.get(f"{prefix}If-Match")
    if if_match is not None:
        if not etag_matches(if_match, etag):
            return f"412:{prefix}If-Match"
    else:
        since = _date(headers.get(f"{prefix}If-Unmodified-Since"))
        if since is not None and at > since:
            return f"412:{prefix}If-Unmodified-Since"
    if_none = headers.get(f"{prefix}If-None-Match")
    if if_none is not None:
        if etag_matches(if_none, etag):
            return f"304:{prefix}If-None-Match"
    else:
        since = _date(headers.get(f"{prefix}If-Modified-Since"))
        future = since is not None and since > (time.time() if now is None else now)
        if since is not None and not future and at <= since:
            return f"304:{prefix}If-Modified-Since"
    return ""


def check_copy_source(headers: Mapping[str, str], etag: str, modified: float) -> None:
    """CopyObject's and UploadPartCopy's source conditions: every failure is 412."""
    failed = evaluate(headers, etag, modified, "x-amz-copy-source-")
    if failed:
        raise precondition_failed(failed[4:])
