"""PutObject bodies as the gateway decodes them: plain and aws-chunked (as botocore frames
them over HTTPS, STREAMING-UNSIGNED-PAYLOAD-TRAILER with a CRC32 trailer)."""

from __future__ import annotations

import base64
import hashlib
import io
import zlib

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum

from dfs.s3.bodies import DIGEST_BATCH, BodyReader, ReadFn, declared_length, request_body
from dfs.s3.context import READ_BUFSIZE, wide_reads
from dfs.s3.errors import S3Error
from dfs.transport.http import SOCKET_READ


def _reader(raw: bytes) -> ReadFn:
    stream = io.BytesIO(raw)

    async def read(n: int) -> bytes:
        return stream.read(min(n, 7))  # small reads: framing split across them

    return read


async def _drain(body: BodyReader) -> bytes:
    out = b""
    while data := await body.read(5):
        out += data
    return out


def _botocore_chunked(data: bytes) -> bytes:
    wrapper = AwsChunkedWrapper(
        io.BytesIO(data),
        checksum_cls=Crc32Checksum,
        checksum_name="x-amz-checksum-crc32",
        chunk_size=1000,
    )
    return wrapper.read()


UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
CRC32_TRAILER = "x-amz-checksum-crc32"
"""``x-amz-trailer`` as botocore declares the trailer it sends."""


async def test_aws_chunked_body_decodes_and_checks_its_trailer() -> None:
    data = bytes(range(256)) * 20
    raw = _botocore_chunked(data)
    body = BodyReader(
        _reader(raw), UNSIGNED_TRAILER, "", trailer=CRC32_TRAILER, decoded_length=str(len(data))
    )
    assert await _drain(body) == data
    assert body.finish() == hashlib.md5(data).hexdigest()


async def test_aws_chunked_body_with_a_wrong_trailer_is_refused() -> None:
    raw = _botocore_chunked(b"hello world").replace(
        base64.b64encode(zlib.crc32(b"hello world").to_bytes(4, "big")), b"AAAAAA=="
    )
    body = BodyReader(
        _reader(raw), UNSIGNED_TRAILER, "aws-chunked", trailer=CRC32_TRAILER, decoded_length="11"
    )
    with pytest.raises(S3Error) as exc:
        await _drain(body)
    assert exc.value.code == "BadDigest"


async def test_signed_payload_hash_is_checked() -> None:
    data = b"signed bytes"
    md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
    good = BodyReader(_reader(data), hashlib.sha256(data).hexdigest(), "", content_md5=md5)
    assert await _drain(good) == data
    assert good.finish() == hashlib.md5(data).hexdigest()
    # refused as the end of the body is read: before ingest could commit a file
    bad = BodyReader(_reader(data), hashlib.sha256(b"other").hexdigest(), "")
    with pytest.raises(S3Error) as exc:
        await _drain(bad)
    assert exc.value.code == "XAmzContentSHA256Mismatch"
    other_md5 = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    wrong_md5 = BodyReader(_reader(data), "UNSIGNED-PAYLOAD", "", content_md5=other_md5)
    with pytest.raises(S3Error) as exc:
        await _drain(wrong_md5)
    assert exc.value.code == "BadDigest"
    with pytest.raises(S3Error) as exc:  # not an MD5 at all: refused before any byte is read
        BodyReader(_reader(data), "UNSIGNED-PAYLOAD", "", content_md5="AAAA")
    assert exc.value.code == "InvalidDigest"


def test_chunk_signed_streaming_without_a_header_signature_is_not_implemented() -> None:
    # a presigned or unsigned caller has no seed signature to check chunks against
    with pytest.raises(S3Error) as exc:
        BodyReader(_reader(b""), "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "aws-chunked")
    assert exc.value.status == 501


def test_an_aws_chunked_body_with_a_hex_payload_hash_is_refused() -> None:
    # the hash would sign the framing, which nothing checks: S3 wants a STREAMING- value
    with pytest.raises(S3Error) as exc:
        BodyReader(_reader(b""), hashlib.sha256(b"").hexdigest(), "aws-chunked")
    assert exc.value.code == "InvalidArgument"


async def test_a_body_of_many_digest_batches_hashes_every_byte_in_order() -> None:
    # several DIGEST_BATCH hand-offs to the digest threads, and a last batch above the
    # inline size: the digests must see exactly the bytes, in order
    data = bytes(range(251)) * (DIGEST_BATCH * 3 // 251 + 4099)
    stream = io.BytesIO(data)

    async def read(n: int) -> bytes:
        return stream.read(min(n, 96 * 1024))

    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
    body = BodyReader(read, hashlib.sha256(data).hexdigest(), "", content_md5=md5, crc32_header=crc)
    got = b""
    while piece := await body.read(1 << 20):
        got += piece
    assert got == data
    assert body.sha256_hex() == hashlib.sha256(data).hexdigest()
    assert body.crc32 == zlib.crc32(data)
    assert body.finish() == hashlib.md5(data).hexdigest()


async def test_checks_asked_before_the_end_was_read_cover_the_bytes_read() -> None:
    # finish() before any read saw the end: the bytes batched so far are hashed then
    data = b"x" * (DIGEST_BATCH + 10)
    stream = io.BytesIO(data)

    async def read(n: int) -> bytes:
        return stream.read(n)

    body = BodyReader(read, "UNSIGNED-PAYLOAD", "")
    got = b""
    while len(got) < len(data):  # every byte, but no read that sees the end
        got += await body.read(len(data) - len(got))
    assert body.sha256_hex() == hashlib.sha256(data).hexdigest()
    assert body.finish() == hashlib.md5(data).hexdigest()


async def test_a_streamed_body_is_received_in_wide_socket_reads() -> None:
    """A request body read through ``request_body`` once admitted (``stream_slot`` calls
    ``wide_reads``) asks the socket ``SOCKET_READ`` bytes per receive on a plain
    connection, buffers up to 2 x ``READ_BUFSIZE``, and still reads every byte in order."""
    seen: dict[str, object] = {}

    async def put(request: web.Request) -> web.Response:
        body = request_body(request)
        wide_reads(request)
        seen["limits"] = request.content.get_read_buffer_limits()
        got = hashlib.md5(usedforsecurity=False)
        while data := await body.read(1 << 20):
            got.update(data)
        seen["max_size"] = getattr(request.transport, "max_size", None)
        return web.Response(text=body.finish() if got.hexdigest() == body.finish() else "")

    app = web.Application()
    app.router.add_put("/", put)
    data = bytes(range(256)) * (12 << 12)  # 12 MiB
    async with TestClient(TestServer(app)) as client:
        answer = await client.put("/", data=io.BytesIO(data))
        assert await answer.text() == hashlib.md5(data).hexdigest()
    assert seen["max_size"] == SOCKET_READ
    assert seen["limits"] == (READ_BUFSIZE, 2 * READ_BUFSIZE)


async def test_a_body_of_many_tiny_chunks_costs_time_linear_in_its_length() -> None:
    """One-byte aws-chunked chunks: each chunk's framing used to be cut off a copy of the
    whole read-ahead buffer (a 2.4 MB body held the gateway's event loop 11 s). Counted in
    bytes copied, not timed: the framing of n chunks copies O(n) bytes, not O(n x buffer)."""
    n = 50_000
    raw = b"".join(b"1\r\n" + bytes([i % 256]) + b"\r\n" for i in range(n)) + b"0\r\n\r\n"
    reads = 0

    async def read(k: int) -> bytes:  # the socket hands out 1 MiB reads, as the server's do
        nonlocal reads
        reads += 1
        start = (reads - 1) * (1 << 20)
        return raw[start : start + min(k, 1 << 20)]

    body = BodyReader(read, UNSIGNED_TRAILER, "aws-chunked", decoded_length=str(n))
    copied = 0
    real = body._consume

    def counted(k: int) -> bytes:
        nonlocal copied
        data = real(k)
        copied += len(data)
        return data

    body._consume = counted  # type: ignore[method-assign]
    got = await _drain(body)
    assert got == bytes(i % 256 for i in range(n))
    assert copied <= 6 * n + 64  # each chunk: its size line, its byte, its CRLF


@pytest.mark.parametrize("size", [b"0x1", b"+1", b"-1", b" 1 1", b"1" * 17])
async def test_a_chunk_size_that_is_not_plain_hex_is_refused(size: bytes) -> None:
    raw = size + b"\r\nA\r\n0\r\n\r\n"
    body = BodyReader(_reader(raw), UNSIGNED_TRAILER, "aws-chunked", decoded_length="1")
    with pytest.raises(S3Error) as exc:
        await _drain(body)
    assert exc.value.code == "IncompleteBody"


async def test_a_decoded_length_on_a_plain_body_declares_nothing() -> None:
    """``x-amz-decoded-content-length: 0`` on a body that is not aws-chunked: the body's
    length is its Content-Length (a 100-byte body was stored as an empty object)."""
    seen: list[int | None] = []

    async def handler(request: web.Request) -> web.Response:
        body = request_body(request)
        seen.append(declared_length(request, body))
        return web.Response(body=await _drain(body))

    app = web.Application()
    app.router.add_put("/", handler)
    headers = {"x-amz-content-sha256": "UNSIGNED-PAYLOAD", "x-amz-decoded-content-length": "0"}
    async with TestClient(TestServer(app)) as client:
        resp = await client.put("/", data=b"x" * 100, headers=headers)
        assert await resp.read() == b"x" * 100
    assert seen == [100]


def test_an_unsigned_streaming_body_must_declare_its_decoded_length() -> None:
    """S3 answers MissingContentLength (411) to an aws-chunked body that does not say how
    long it is decoded, unsigned too: the length is what bounds the upload before its read."""
    with pytest.raises(S3Error) as exc:
        BodyReader(_reader(b"0\r\n\r\n"), UNSIGNED_TRAILER, "aws-chunked")
    assert (exc.value.code, exc.value.status) == ("MissingContentLength", 411)
