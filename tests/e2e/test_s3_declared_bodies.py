"""What a request declares of its body, refused as S3 refuses it, on a live gateway and
cluster (a review's findings; raw requests signed by botocore's signer, as boto3 would
never send them):

- more than one checksum: S3 takes one ``x-amz-checksum-*``, in a header or in the
  ``aws-chunked`` trailer, and refuses more (``InvalidRequest``). Declared twice for one
  algorithm (a header and the trailer), the trailer's value went unchecked: a body whose
  trailer did not match it was stored.
- ``x-amz-sdk-checksum-algorithm`` naming another algorithm than the checksum sent, or one
  with no checksum (``InvalidRequest``).
- a checksum or ``Content-MD5`` value that is not a digest at all (``InvalidRequest``,
  ``InvalidDigest``), refused before the body is read rather than as a mismatch after.

In each case nothing is stored under the key.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import urllib.parse
import zlib

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.e2e.conftest import Gateway

pytestmark = pytest.mark.e2e

DATA = b"the bytes of an object, declared and sent " * 64
UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


SHA256 = _b64(hashlib.sha256(DATA).digest())
WRONG_SHA256 = _b64(hashlib.sha256(b"other bytes").digest())
CRC32 = _b64(zlib.crc32(DATA).to_bytes(4, "big"))


class _PayloadAuth(S3SigV4Auth):
    """botocore's S3 signer with a given ``x-amz-content-sha256`` (a streaming form)."""

    def __init__(self, payload_hash: str, creds: Credentials) -> None:
        super().__init__(creds, "s3", "us-east-1")
        self.payload_hash = payload_hash

    def payload(self, request: AWSRequest) -> str:
        return self.payload_hash


def _send(
    gw: Gateway, method: str, path: str, headers: dict[str, str], body: bytes
) -> tuple[int, str]:
    url = urllib.parse.urlsplit(gw.url)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()


def _put(
    gw: Gateway, key: str, headers: dict[str, str], trailers: list[str] | None = None
) -> tuple[int, str]:
    """PUT ``DATA`` under ``decl/key`` signed by ``gw``'s key with these headers: a plain
    body with a signed SHA-256, or (``trailers`` given) the unsigned aws-chunked trailer
    form with these trailer lines."""
    if trailers is None:
        body = DATA
        auth: S3SigV4Auth = S3SigV4Auth(Credentials(gw.key_id, gw.secret), "s3", "us-east-1")
    else:
        body = f"{len(DATA):x}\r\n".encode() + DATA + b"\r\n0\r\n"
        body += "".join(f"{t}\r\n" for t in trailers).encode() + b"\r\n"
        headers = {
            "Content-Encoding": "aws-chunked",
            "x-amz-decoded-content-length": str(len(DATA)),
            **headers,
        }
        auth = _PayloadAuth(UNSIGNED_TRAILER, Credentials(gw.key_id, gw.secret))
    request = AWSRequest("PUT", f"{gw.url}/decl/{key}", data=body, headers=headers)
    auth.add_auth(request)
    return _send(gw, "PUT", f"/decl/{key}", dict(request.headers.items()), body)


def _code(text: str) -> str:
    return text.partition("<Code>")[2].partition("</Code>")[0]


def _stored(s3: object, key: str) -> bool:
    try:
        s3.head_object(Bucket="decl", Key=key)  # type: ignore[attr-defined]
    except ClientError as exc:
        status = exc.response["ResponseMetadata"]["HTTPStatusCode"]
    else:
        return True
    assert status == 404
    return False


TRAILER = "x-amz-trailer"
SDK = "x-amz-sdk-checksum-algorithm"
REFUSED = [
    # a SHA-256 header and a SHA-256 trailer: the trailer's wrong value went unchecked
    (
        "header-and-trailer",
        {"x-amz-checksum-sha256": SHA256, TRAILER: "x-amz-checksum-sha256"},
        [f"x-amz-checksum-sha256:{WRONG_SHA256}"],
        "InvalidRequest",
    ),
    (
        "two-headers",
        {"x-amz-checksum-crc32": CRC32, "x-amz-checksum-sha256": SHA256},
        None,
        "InvalidRequest",
    ),
    (
        "header-and-other-trailer",
        {"x-amz-checksum-sha256": SHA256, TRAILER: "x-amz-checksum-crc32"},
        [f"x-amz-checksum-crc32:{CRC32}"],
        "InvalidRequest",
    ),
    (
        "sdk-other-trailer",
        {SDK: "CRC32C", TRAILER: "x-amz-checksum-crc32"},
        [f"x-amz-checksum-crc32:{CRC32}"],
        "InvalidRequest",
    ),
    ("sdk-other-header", {SDK: "SHA256", "x-amz-checksum-crc32": CRC32}, None, "InvalidRequest"),
    ("sdk-no-checksum", {SDK: "CRC32"}, None, "InvalidRequest"),
    ("crc32-not-a-crc", {"x-amz-checksum-crc32": "zz"}, None, "InvalidRequest"),
    ("sha256-too-short", {"x-amz-checksum-sha256": CRC32}, None, "InvalidRequest"),
    ("md5-not-an-md5", {"Content-MD5": "abc"}, None, "InvalidDigest"),
    ("md5-not-an-md5-chunked", {"Content-MD5": CRC32}, [], "InvalidDigest"),
]


def test_one_checksum_per_body_and_well_formed_digests(sqlite_gateway: Gateway) -> None:
    gw = sqlite_gateway
    s3 = gw.client()
    s3.create_bucket(Bucket="decl")
    for key, headers, trailers, code in REFUSED:
        status, text = _put(gw, key, dict(headers), trailers)
        assert (status, _code(text)) == (400, code), (key, text)
        assert not _stored(s3, key), key
    # what clients send is still taken: one checksum, in a header or the trailer, with or
    # without a matching x-amz-sdk-checksum-algorithm, and a right Content-MD5
    md5 = _b64(hashlib.md5(DATA).digest())
    for key, headers, trailers in (
        ("one-header", {SDK: "SHA256", "x-amz-checksum-sha256": SHA256, "Content-MD5": md5}, None),
        (
            "one-trailer",
            {SDK: "CRC32", TRAILER: "x-amz-checksum-crc32"},
            [f"x-amz-checksum-crc32:{CRC32}"],
        ),
        ("no-checksum", {}, []),
    ):
        status, text = _put(gw, key, dict(headers), trailers)
        assert status == 200, (key, text)
        assert s3.get_object(Bucket="decl", Key=key)["Body"].read() == DATA


def _framed_put(gw: Gateway, key: str, body: bytes, decoded: int | None) -> tuple[int, str]:
    """PUT the raw aws-chunked ``body`` (the unsigned trailer form, no trailer declared)."""
    headers = {"Content-Encoding": "aws-chunked"}
    if decoded is not None:
        headers["x-amz-decoded-content-length"] = str(decoded)
    request = AWSRequest("PUT", f"{gw.url}/decl/{key}", data=body, headers=headers)
    _PayloadAuth(UNSIGNED_TRAILER, Credentials(gw.key_id, gw.secret)).add_auth(request)
    return _send(gw, "PUT", f"/decl/{key}", dict(request.headers.items()), body)


def test_bytes_after_the_final_chunk_are_refused(sqlite_gateway: Gateway) -> None:
    """An aws-chunked body ends with its final, empty chunk and trailer: bytes sent after it
    were dropped and the object stored without them (the rest of the body a client sent
    after a stray empty chunk, answered 200)."""
    gw = sqlite_gateway
    s3 = gw.client()
    s3.create_bucket(Bucket="decl")
    first, rest = DATA[:1000], DATA[1000:]
    ended = f"{len(first):x}\r\n".encode() + first + b"\r\n0\r\n\r\n"
    more = f"{len(rest):x}\r\n".encode() + rest + b"\r\n0\r\n\r\n"
    for key, body, decoded in (
        ("more-chunks", ended + more, len(DATA)),
        ("more-chunks-declared", ended + more, len(first)),
        ("garbage", ended + b"garbage", len(first)),
    ):
        status, text = _framed_put(gw, key, body, decoded)
        assert (status, _code(text)) == (400, "IncompleteBody"), (key, text)
        assert not _stored(s3, key), key
    whole = ended[: -len(b"0\r\n\r\n")] + more  # the same chunks without the stray end
    status, text = _framed_put(gw, "whole", whole + b"\r\n", len(DATA))  # a CRLF more: taken
    assert status == 200, text
    assert s3.get_object(Bucket="decl", Key="whole")["Body"].read() == first + rest


def test_a_streaming_body_declares_its_length_and_at_most_5_gib(sqlite_gateway: Gateway) -> None:
    """An aws-chunked PutObject without ``x-amz-decoded-content-length`` is refused as S3
    refuses it (411 MissingContentLength; the unsigned trailer form was taken without it),
    and one declaring more than a single PUT may hold (5 GiB) is refused before its body is
    read (EntityTooLarge), not once 5 GiB of it had streamed through the chunker."""
    gw = sqlite_gateway
    s3 = gw.client()
    s3.create_bucket(Bucket="decl")
    body = f"{len(DATA):x}\r\n".encode() + DATA + b"\r\n0\r\n\r\n"
    for key, decoded, expected in (
        ("undeclared", None, (411, "MissingContentLength")),
        ("too-large", 5 * 1024**3 + 1, (400, "EntityTooLarge")),
    ):
        status, text = _framed_put(gw, key, body, decoded)
        assert (status, _code(text)) == expected, (key, text)
        assert not _stored(s3, key), key
    status, text = _framed_put(gw, "declared", body, len(DATA))
    assert status == 200, text
