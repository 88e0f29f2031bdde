"""A presigned URL's ``X-Amz-Expires`` that is not a whole number of seconds from 0 to a
week is S3's 400 ``AuthorizationQueryParametersError`` (a review's finding: it was answered
403 ``AccessDenied``, and ``int()`` took a sign, blanks and underscores), on a live gateway."""

from __future__ import annotations

import urllib.parse

import pytest
from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.e2e.conftest import Gateway
from tests.e2e.test_s3_declared_bodies import DATA, _code, _send

pytestmark = pytest.mark.e2e


def _presigned_get(gw: Gateway, expires: str) -> tuple[int, str]:
    """GET ``decl/obj`` by a URL presigned for an hour, its X-Amz-Expires then replaced
    (the signature no longer matches: the parameter is refused before it is checked)."""
    request = AWSRequest("GET", f"{gw.url}/decl/obj")
    S3SigV4QueryAuth(Credentials(gw.key_id, gw.secret), "s3", "us-east-1", 3600).add_auth(request)
    url = request.url.replace("X-Amz-Expires=3600", f"X-Amz-Expires={expires}")
    return _send(gw, "GET", url[len(gw.url) :], {}, b"")


def test_presigned_expiry_out_of_range_is_a_query_parameters_error(sqlite_gateway: Gateway) -> None:
    gw = sqlite_gateway
    s3 = gw.client()
    s3.create_bucket(Bucket="decl")
    s3.put_object(Bucket="decl", Key="obj", Body=DATA)
    for expires in ("604801", "-1", "abc", "1.5", "", "+60"):
        status, text = _presigned_get(gw, urllib.parse.quote(expires))
        assert (status, _code(text)) == (400, "AuthorizationQueryParametersError"), (expires, text)
    status, text = _presigned_get(gw, "604800")  # a week is still a valid expiry
    assert (status, _code(text)) == (403, "SignatureDoesNotMatch"), text
    status, text = _presigned_get(gw, "3600")
    assert (status, text.encode()) == (200, DATA)
