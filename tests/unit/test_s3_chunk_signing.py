"""Chunk-signed streaming bodies (``STREAMING-AWS4-HMAC-SHA256-PAYLOAD`` and its trailer
form), checked against the example of AWS's documentation ("Signature Calculations for the
Authorization Header: Transferring Payload in Multiple Chunks", and "... Including Trailing
Headers"): the same secret, date, request, seed and chunk signatures."""

from __future__ import annotations

import hashlib
import hmac
import io

import pytest
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from dfs.s3.bodies import BodyReader, ReadFn
from dfs.s3.errors import S3Error
from dfs.s3.sigv4 import (
    ChunkChain,
    expected_signature,
    parse_header,
    signing_key,
)

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
DATE = "20130524T000000Z"
SCOPE = "20130524/us-east-1/s3/aws4_request"
SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
CHUNK_SIGNATURES = (
    "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",  # 64 KiB of "a"
    "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",  # 1 KiB of "a"
    "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",  # the final, empty
)
SIGNED_HEADERS = (
    "content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
    "x-amz-decoded-content-length;x-amz-storage-class"
)
# the trailer example: its seed, the final chunk's signature and the trailer's
TRAILER_SEED = "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e"
TRAILER_FINAL = "e05ab64fe1dfdbf0b5870abbaabdb063c371d4e96f2767e6934d90529c5ae850"
TRAILER_SIGNATURE = "41e14ac611e27a8bb3d66c3bad6856f209297767d5dd4fc87d8fa9e422e03faf"
TRAILER = b"x-amz-checksum-crc32c:wdBDMA==\n"
DATA = b"a" * 66560


def _chain(seed: str = SEED) -> ChunkChain:
    return ChunkChain(signing_key(SECRET, "20130524", "us-east-1"), DATE, SCOPE, seed)


def _example_body(signatures: tuple[str, ...] = CHUNK_SIGNATURES) -> bytes:
    parts = [(b"a" * 65536, signatures[0]), (b"a" * 1024, signatures[1]), (b"", signatures[2])]
    return b"".join(
        f"{len(data):x};chunk-signature={sig}\r\n".encode() + data + b"\r\n" for data, sig in parts
    )


def _reader(raw: bytes) -> ReadFn:
    stream = io.BytesIO(raw)

    async def read(n: int) -> bytes:
        return stream.read(min(n, 4093))  # framing split across reads

    return read


async def _drain(body: BodyReader) -> bytes:
    out = b""
    while data := await body.read(10000):
        out += data
    return out


def test_the_seed_signature_of_the_example_request() -> None:
    headers = CIMultiDict(
        {
            "Host": "s3.amazonaws.com",
            "x-amz-date": DATE,
            "x-amz-storage-class": "REDUCED_REDUNDANCY",
            "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            "Content-Encoding": "aws-chunked",
            "x-amz-decoded-content-length": "66560",
            "Content-Length": "66824",
        }
    )
    request = make_mocked_request("PUT", "/examplebucket/chunkObject.txt", headers=headers)
    signed = parse_header(
        f"AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
        f"SignedHeaders={SIGNED_HEADERS},Signature={SEED}"
    )
    signed = type(signed)(**{**signed.__dict__, "amz_date": DATE})
    assert expected_signature(request, signed, SECRET) == SEED
    assert len(_example_body()) == 66824  # the example's Content-Length


def test_the_example_chunk_signatures_chain_from_the_seed() -> None:
    chain = _chain()
    chain.check_chunk(CHUNK_SIGNATURES[0], hashlib.sha256(b"a" * 65536).hexdigest())
    chain.check_chunk(CHUNK_SIGNATURES[1], hashlib.sha256(b"a" * 1024).hexdigest())
    chain.check_chunk(CHUNK_SIGNATURES[2], hashlib.sha256(b"").hexdigest())
    assert chain.previous == CHUNK_SIGNATURES[2]


async def test_the_example_body_decodes() -> None:
    body = BodyReader(
        _reader(_example_body()),
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "aws-chunked",
        chain=_chain(),
        decoded_length="66560",
    )
    assert await _drain(body) == DATA
    assert body.finish() == hashlib.md5(DATA).hexdigest()


async def _refused(raw: bytes, code: str, decoded: str = "66560", seed: str = SEED) -> int:
    """Drain a body that must be refused with ``code``; the bytes handed on before."""
    body = BodyReader(
        _reader(raw),
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "aws-chunked",
        chain=_chain(seed),
        decoded_length=decoded,
    )
    handed = [0]

    async def drain() -> None:
        while data := await body.read(10000):
            handed[0] += len(data)

    with pytest.raises(S3Error) as exc:
        await drain()
    assert exc.value.code == code
    return handed[0]


async def test_a_changed_chunk_is_refused_before_its_bytes_are_used() -> None:
    raw = _example_body()
    tampered = raw.replace(b"a" * 100, b"b" + b"a" * 99, 1)
    assert await _refused(tampered, "SignatureDoesNotMatch") == 0
    # the second chunk changed: the first (verified) was handed on, not one byte of the second
    second = raw.index(b"400;")
    tampered = raw[: second + 90] + b"b" + raw[second + 91 :]
    assert await _refused(tampered, "SignatureDoesNotMatch") == 65536
    # another request's seed, a swapped signature, a dropped final chunk
    assert await _refused(raw, "SignatureDoesNotMatch", seed="0" * 64) == 0
    swapped = _example_body((CHUNK_SIGNATURES[1], CHUNK_SIGNATURES[0], CHUNK_SIGNATURES[2]))
    assert await _refused(swapped, "SignatureDoesNotMatch") == 0
    assert await _refused(raw[: raw.rindex(b"\r\n0;chunk") + 2], "IncompleteBody") == 66560


async def test_the_decoded_length_is_checked() -> None:
    assert await _refused(_example_body(), "IncompleteBody", decoded="66559") == 65536
    assert await _refused(_example_body(), "IncompleteBody", decoded="70000") == 66560
    with pytest.raises(S3Error) as exc:
        BodyReader(_reader(b""), "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "", chain=_chain())
    assert exc.value.code == "MissingContentLength"


async def test_oversized_signed_chunks_are_refused_unread() -> None:
    raw = f"{64 << 20:x};chunk-signature={'0' * 64}\r\n".encode()
    assert await _refused(raw, "InvalidArgument", decoded=str(64 << 20)) == 0


def _client_signature(key: bytes, previous: str, string_to_sign_tail: str, kind: str) -> str:
    sts = f"AWS4-HMAC-SHA256-{kind}\n{DATE}\n{SCOPE}\n{previous}\n{string_to_sign_tail}"
    return hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()


def test_the_trailer_example_signature() -> None:
    chain = _chain(TRAILER_FINAL)  # after the example's final, empty chunk
    chain.check_trailer(TRAILER_SIGNATURE, TRAILER)
    with pytest.raises(S3Error):
        _chain(TRAILER_FINAL).check_trailer(TRAILER_SIGNATURE, TRAILER.replace(b"w", b"W"))


def _trailer_body(trailer_signature: str | None = None) -> bytes:
    """The example's chunks with a trailer, signed as a client signs them from the seed."""
    key, previous, out = _chain().key, TRAILER_SEED, b""
    for data in (b"a" * 65536, b"a" * 1024, b""):
        tail = f"{hashlib.sha256(b'').hexdigest()}\n{hashlib.sha256(data).hexdigest()}"
        previous = _client_signature(key, previous, tail, "PAYLOAD")
        out += f"{len(data):x};chunk-signature={previous}\r\n".encode() + data
        out += b"\r\n" if data else b""
    if trailer_signature is None:
        tail = hashlib.sha256(TRAILER).hexdigest()
        trailer_signature = _client_signature(key, previous, tail, "TRAILER")
    return out + TRAILER + f"x-amz-trailer-signature:{trailer_signature}\r\n\r\n".encode()


async def test_the_trailer_example_decodes_and_its_signature_is_checked() -> None:
    def reader(raw: bytes) -> BodyReader:
        return BodyReader(
            _reader(raw),
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
            "aws-chunked",
            chain=_chain(TRAILER_SEED),
            decoded_length="66560",
            trailer="x-amz-checksum-crc32c",  # as the example declares it
        )

    body = reader(_trailer_body())
    assert await _drain(body) == DATA
    assert body.trailers == {"x-amz-checksum-crc32c": "wdBDMA=="}
    forged = reader(_trailer_body("0" * 64))
    with pytest.raises(S3Error) as exc:
        await _drain(forged)
    assert exc.value.code == "SignatureDoesNotMatch"
    changed = reader(_trailer_body().replace(b"wdBDMA==", b"AAAAAA=="))
    with pytest.raises(S3Error) as exc:
        await _drain(changed)
    assert exc.value.code == "SignatureDoesNotMatch"
    unsigned = reader(_trailer_body().split(b"x-amz-trailer-signature")[0] + b"\r\n")
    with pytest.raises(S3Error) as exc:
        await _drain(unsigned)
    assert exc.value.code == "SignatureDoesNotMatch"
