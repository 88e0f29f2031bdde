"""The gateway's additional checksums (CRC32C, SHA1, SHA256 beside CRC32) in headers and in
aws-chunked trailers as botocore frames them, and S3's conditional-request evaluation."""

from __future__ import annotations

import base64
import hashlib
import io
import zlib

import google_crc32c
import pytest
from botocore.httpchecksum import AwsChunkedWrapper, Sha256Checksum

from dfs.s3 import conditional
from dfs.s3.bodies import BodyReader, ReadFn
from dfs.s3.checksums import Checksums, composite, upload_algorithm
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
    bad = Checksums.from_headers(
        {f"x-amz-checksum-{name}": b64(b"\0" * len(base64.b64decode(value)))}
    )
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
    trailer = headers["x-amz-trailer"]
    body = BodyReader(
        _reader(raw),
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "aws-chunked",
        check=sums,
        trailer=trailer,
        decoded_length=str(len(DATA)),
    )
    assert await _drain(body) == DATA
    assert sums.values == {"sha256": b64(hashlib.sha256(DATA).digest())}
    wrong = raw.replace(b64(hashlib.sha256(DATA).digest()).encode(), b64(b"x" * 32).encode())
    body = BodyReader(
        _reader(wrong),
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "aws-chunked",
        check=Checksums.from_headers(headers),
        trailer=trailer,
        decoded_length=str(len(DATA)),
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


def test_composite_is_the_checksum_of_the_part_checksums() -> None:
    """S3's composite: the algorithm over the parts' raw checksums, base64, then ``-N``."""
    parts = [DATA, DATA[:1000], b"tail"]
    raw = [zlib.crc32(p).to_bytes(4, "big") for p in parts]
    want = f"{b64(zlib.crc32(b''.join(raw)).to_bytes(4, 'big'))}-3"
    assert composite("crc32", [b64(r) for r in raw]) == want
    sha = [hashlib.sha256(p).digest() for p in parts]
    want = f"{b64(hashlib.sha256(b''.join(sha)).digest())}-3"
    assert composite("sha256", [b64(d) for d in sha]) == want


def test_upload_algorithm_is_composite_only() -> None:
    assert upload_algorithm({}) == ""
    assert upload_algorithm({"x-amz-checksum-algorithm": "CRC32"}) == "crc32"
    both = {"x-amz-checksum-algorithm": "sha256", "x-amz-checksum-type": "COMPOSITE"}
    assert upload_algorithm(both) == "sha256"
    for headers, code in (
        ({"x-amz-checksum-algorithm": "CRC64NVME"}, "NotImplemented"),
        (
            {"x-amz-checksum-algorithm": "CRC32", "x-amz-checksum-type": "FULL_OBJECT"},
            "NotImplemented",
        ),
        ({"x-amz-checksum-algorithm": "MD5"}, "InvalidRequest"),
        ({"x-amz-checksum-type": "COMPOSITE"}, "InvalidRequest"),
        ({"x-amz-checksum-algorithm": "CRC32", "x-amz-checksum-type": "X"}, "InvalidRequest"),
    ):
        with pytest.raises(S3Error) as exc:
            upload_algorithm(headers)
        assert exc.value.code == code, headers


def test_a_part_carries_its_upload_algorithm() -> None:
    """Computed when the part sent none; another algorithm is refused."""
    sums = Checksums.for_part({}, "crc32c")
    sums.update(b"123456789")
    sums.verify({})
    assert sums.response_headers() == {"x-amz-checksum-crc32c": "4waSgw=="}
    with pytest.raises(S3Error) as exc:
        Checksums.for_part({"x-amz-checksum-crc32": "AAAAAA=="}, "crc32c")
    assert exc.value.code == "InvalidRequest"
    wrong = Checksums.for_part({"x-amz-checksum-crc32c": "AAAAAA=="}, "crc32c")
    wrong.update(b"123456789")
    with pytest.raises(S3Error) as exc:
        wrong.verify({})
    assert exc.value.code == "BadDigest"
    free = Checksums.for_part({"x-amz-checksum-sha1": b64(hashlib.sha1(b"x").digest())}, "")
    free.update(b"x")
    free.verify({})
    assert set(free.values) == {"sha1"}
