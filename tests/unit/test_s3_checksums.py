"""The gateway's additional checksums (CRC32C, SHA1, SHA256 beside CRC32) in headers and in
aws-chunked trailers as botocore frames them, and S3's conditional-request evaluation."""

from __future__ import annotations

import base64
import hashlib
import io

import google_crc32c
import pytest
from botocore.httpchecksum import AwsChunkedWrapper, Sha256Checksum

from dfs.s3 import conditional
from dfs.s3.bodies import BodyReader, ReadFn
from dfs.s3.checksums import Checksums
from dfs.s3.errors import S3Error

DATA = bytes(range(256)) * 40


def _reader(raw: bytes) -> ReadFn:
    stream = io.BytesIO(raw)

    async def read(n: int) -> bytes:
        return stream.read(min(n, 11))

    return read


async def _drain(body: BodyReader) -> bytes:
    out = b""
    while data := await body.read(64):
        out += data
    return out


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def test_crc32c_matches_the_known_vector() -> None:
    sums = Checksums.from_headers({"x-amz-checksum-crc32c": "4waSgw=="})  # "123456789"
    sums.update(b"123456789")
    sums.verify({})
    assert sums.response_headers() == {"x-amz-checksum-crc32c": "4waSgw=="}
    assert google_crc32c.value(b"123456789") == 0xE3069283


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("sha1", b64(hashlib.sha1(DATA).digest())),
        ("sha256", b64(hashlib.sha256(DATA).digest())),
        ("crc32c", b64(google_crc32c.value(DATA).to_bytes(4, "big"))),
    ],
)
async def test_header_checksums_are_verified(name: str, value: str) -> None:
    good = Checksums.from_headers({f"x-amz-checksum-{name}": value})
    body = BodyReader(_reader(DATA), "UNSIGNED-PAYLOAD", "", check=good)
    assert await _drain(body) == DATA
    assert good.stored() == ((f"dfs-checksum-{name}", value),)
    bad = Checksums.from_headers({f"x-amz-checksum-{name}": b64(b"\0" * 4)})
    body = BodyReader(_reader(DATA), "UNSIGNED-PAYLOAD", "", check=bad)
    with pytest.raises(S3Error) as exc:
        await _drain(body)
    assert exc.value.code == "BadDigest"


async def test_a_trailer_checksum_is_verified() -> None:
    raw = AwsChunkedWrapper(
        io.BytesIO(DATA),
        checksum_cls=Sha256Checksum,
        checksum_name="x-amz-checksum-sha256",
        chunk_size=1000,
    ).read()
    headers = {"x-amz-trailer": "x-amz-checksum-sha256"}
    sums = Checksums.from_headers(headers)
    body = BodyReader(_reader(raw), "STREAMING-UNSIGNED-PAYLOAD-TRAILER", "aws-chunked", check=sums)
    assert await _drain(body) == DATA
    assert sums.values == {"sha256": b64(hashlib.sha256(DATA).digest())}
    wrong = raw.replace(b64(hashlib.sha256(DATA).digest()).encode(), b64(b"x" * 32).encode())
    body = BodyReader(
        _reader(wrong),
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "aws-chunked",
        check=Checksums.from_headers(headers),
    )
    with pytest.raises(S3Error) as exc:
        await _drain(body)
    assert exc.value.code == "BadDigest"


def test_unknown_algorithms_are_not_implemented() -> None:
    with pytest.raises(S3Error) as exc:
        Checksums.from_headers({"x-amz-checksum-crc64nvme": "AAAAAAAAAAA="})
    assert exc.value.status == 501
    assert Checksums.from_headers({"x-amz-checksum-mode": "ENABLED"}).declared == {}


def test_conditions_in_rfc_order() -> None:
    t = 1_700_000_000.5
    before, after = "Tue, 14 Nov 2023 22:13:19 GMT", "Tue, 14 Nov 2023 22:13:21 GMT"
    same = "Tue, 14 Nov 2023 22:13:20 GMT"
    assert conditional.evaluate({}, "e", t) == ""
    assert conditional.evaluate({"If-Match": '"x", "e"'}, "e", t) == ""
    assert conditional.evaluate({"If-Match": '"x"'}, "e", t) == "412:If-Match"
    assert conditional.evaluate({"If-Match": "*", "If-Unmodified-Since": before}, "e", t) == ""
    assert conditional.evaluate({"If-Unmodified-Since": before}, "e", t).startswith("412")
    assert conditional.evaluate({"If-Unmodified-Since": same}, "e", t) == ""
    assert conditional.evaluate({"If-None-Match": 'W/"e"'}, "e", t) == "304:If-None-Match"
    assert conditional.evaluate({"If-Modified-Since": same}, "e", t).startswith("304")
    assert conditional.evaluate({"If-Modified-Since": before}, "e", t) == ""
    assert conditional.evaluate({"If-Modified-Since": "not a date"}, "e", t) == ""
    assert conditional.evaluate({"If-None-Match": '"x"', "If-Modified-Since": after}, "e", t) == ""
    with pytest.raises(S3Error) as exc:
        conditional.check_copy_source({"x-amz-copy-source-If-None-Match": '"e"'}, "e", t)
    assert exc.value.status == 412
