"""The gateway's SigV4 header parsing and its time rules (signatures themselves are checked
end to end with boto3 in tests/e2e/test_s3_boto3.py)."""

from __future__ import annotations

import calendar
import time

import pytest

from dfs.s3.errors import S3Error
from dfs.s3.sigv4 import Signed, check_time, parse_header

HEADER = (
    "AWS4-HMAC-SHA256 Credential=DFSKAAAAAAAAAAAAAAAA/20261202/us-east-1/s3/aws4_request, "
    "SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=abcd"
)


def test_authorization_header_is_parsed() -> None:
    signed = parse_header(HEADER)
    assert signed.access_key_id == "DFSKAAAAAAAAAAAAAAAA"
    assert signed.region == "us-east-1"
    assert signed.signed_headers == ("host", "x-amz-content-sha256", "x-amz-date")
    assert signed.signature == "abcd"
    for bad in ("AWS4-HMAC-SHA1 " + HEADER[17:], HEADER.replace("/s3/", "/ec2/"), HEADER[:60]):
        with pytest.raises(S3Error):
            parse_header(bad)


def _at(amz_date: str) -> float:
    return float(calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ")))


def test_header_dates_must_be_within_fifteen_minutes() -> None:
    signed = Signed("k", "20261202T050000Z", "us-east-1", ("host",), "s", presigned=False)
    check_time(signed, _at("20261202T051400Z"))
    with pytest.raises(S3Error) as exc:
        check_time(signed, _at("20261202T051600Z"))
    assert exc.value.code == "RequestTimeTooSkewed"


def test_presigned_urls_expire() -> None:
    signed = Signed("k", "20261202T050000Z", "us-east-1", ("host",), "s", True, expires=60)
    check_time(signed, _at("20261202T050100Z"))
    with pytest.raises(S3Error) as exc:
        check_time(signed, _at("20261202T050101Z"))
    assert exc.value.code == "AccessDenied"
    too_long = Signed("k", "20261202T050000Z", "us-east-1", ("host",), "s", True, 8 * 86400)
    with pytest.raises(S3Error):
        check_time(too_long, _at("20261202T050001Z"))


@pytest.mark.parametrize(
    "amz_date", ["20261202T050000Z", "20240229T235959Z", "19700101T000000Z", "20261231T235960Z"]
)
def test_dates_read_as_strptime_reads_them(amz_date: str) -> None:
    signed = Signed("k", amz_date, "us-east-1", ("host",), "s", presigned=False)
    check_time(signed, _at(amz_date))  # the date itself is within the window


@pytest.mark.parametrize(
    "amz_date",
    [
        "20230229T000000Z",  # no such day
        "20261302T050000Z",
        "20261200T050000Z",
        "20261202T240000Z",
        "20261202T050061Z",
        "00000101T000000Z",
        "2026122T050000Z",  # strptime took a one-digit day; S3's format has two
        "20261202T050000",
        "\uff12\uff10\uff12\uff161202T050000Z",  # full-width digits
    ],
)
def test_malformed_dates_are_refused(amz_date: str) -> None:
    signed = Signed("k", amz_date, "us-east-1", ("host",), "s", presigned=False)
    with pytest.raises(S3Error) as exc:
        check_time(signed, _at("20261202T050000Z"))
    assert exc.value.code == "AccessDenied"


def test_a_malformed_presigned_date_is_a_query_parameters_error() -> None:
    signed = Signed("k", "20261202T0500Z", "us-east-1", ("host",), "s", True, expires=60)
    with pytest.raises(S3Error) as exc:
        check_time(signed, _at("20261202T050000Z"))
    assert (exc.value.code, exc.value.status) == ("AuthorizationQueryParametersError", 400)


@pytest.mark.parametrize("presigned", [False, True])
def test_the_credential_scope_must_name_the_day_of_the_request_date(presigned: bool) -> None:
    """S3 refuses a credential scope dated another day than X-Amz-Date as malformed, not
    as a signature that does not match (the day is part of the signing key)."""
    amz_date = "20261202T050000Z"
    ok = Signed("k", amz_date, "us-east-1", ("host",), "s", presigned, 60, "20261202")
    check_time(ok, _at(amz_date))
    other_day = Signed("k", amz_date, "us-east-1", ("host",), "s", presigned, 60, "20261201")
    with pytest.raises(S3Error) as exc:
        check_time(other_day, _at(amz_date))
    code = "AuthorizationQueryParametersError" if presigned else "AuthorizationHeaderMalformed"
    assert (exc.value.code, exc.value.status) == (code, 400)
    assert parse_header(HEADER).scope_date == "20261202"
