"""Conditional headers as S3 evaluates them (``dfs.s3.conditional``)."""

from __future__ import annotations

from email.utils import formatdate

from dfs.s3.conditional import evaluate

MODIFIED = 1_700_000_000.0
NOW = MODIFIED + 3600


def _at(seconds: float) -> str:
    return formatdate(seconds, usegmt=True)


def test_if_modified_since_answers_304_for_an_object_not_modified_since() -> None:
    headers = {"If-Modified-Since": _at(MODIFIED + 60)}
    assert evaluate(headers, "e", MODIFIED, now=NOW) == "304:If-Modified-Since"
    assert evaluate({"If-Modified-Since": _at(MODIFIED - 60)}, "e", MODIFIED, now=NOW) == ""


def test_an_if_modified_since_in_the_future_is_ignored() -> None:
    """RFC 7232 3.3: a date later than the server's clock is invalid; S3 answers the object
    (it answered 304: every object is older than a future date)."""
    headers = {"If-Modified-Since": _at(NOW + 86400)}
    assert evaluate(headers, "e", MODIFIED, now=NOW) == ""
    copy = {"x-amz-copy-source-If-Modified-Since": _at(NOW + 86400)}
    assert evaluate(copy, "e", MODIFIED, "x-amz-copy-source-", now=NOW) == ""
    assert evaluate({"If-Modified-Since": _at(NOW)}, "e", MODIFIED, now=NOW) != ""
