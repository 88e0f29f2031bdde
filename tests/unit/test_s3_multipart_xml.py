"""The multipart calls' parts that need no cluster: the Complete body, S3's part-list checks,
the ETag, the byte-stream reader, and a slow Complete's keep-alive answer."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from dfs.api.multipart import MIN_PART_BYTES, StreamReader, multipart_etag
from dfs.meta.multipart import MultipartUpload, UploadPart
from dfs.s3 import complete_answer, xmlbody
from dfs.s3.context import xml, xml_response
from dfs.s3.errors import S3Error
from dfs.s3.multipart_xml import Asked, choose_parts, list_parts_xml, parse_complete

BODY = b"""<?xml version="1.0" encoding="UTF-8"?>
<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Part><ETag>"aa"</ETag><PartNumber>1</PartNumber></Part>
  <Part><PartNumber>3</PartNumber><ETag>BB</ETag></Part>
</CompleteMultipartUpload>"""


def test_parse_complete() -> None:
    assert parse_complete(BODY) == [Asked(1, "aa"), Asked(3, "bb")]
    with_sums = BODY.replace(
        b"<PartNumber>1</PartNumber>",
        b"<PartNumber>1</PartNumber><ChecksumCRC32>AAAAAA==</ChecksumCRC32>",
    )
    assert parse_complete(with_sums)[0] == Asked(1, "aa", (("crc32", "AAAAAA=="),))
    for bad in (
        b"<CompleteMultipartUpload/>",
        b"<Other><Part><PartNumber>1</PartNumber><ETag>a</ETag></Part></Other>",
        b"<CompleteMultipartUpload><Part><PartNumber>x</PartNumber><ETag>a</ETag></Part>"
        b"</CompleteMultipartUpload>",
        b"not xml",
        b'<!DOCTYPE x [<!ENTITY a "b">]><CompleteMultipartUpload/>',
    ):
        with pytest.raises(S3Error) as exc:
            parse_complete(bad)
        assert exc.value.code == "MalformedXML"


def _part(n: int, etag: str, size: int = MIN_PART_BYTES) -> UploadPart:
    return UploadPart(n, f"f{n}", size, etag, 0.0)


def test_choose_parts_checks_as_s3_does() -> None:
    stored = [_part(1, "a"), _part(2, "b"), _part(3, "c", 10)]
    assert choose_parts(stored, [Asked(1, "a"), Asked(3, "c")]) == [stored[0], stored[2]]
    cases = [
        ([Asked(2, "b"), Asked(1, "a")], "InvalidPartOrder"),
        ([Asked(1, "a"), Asked(1, "a")], "InvalidPartOrder"),
        ([Asked(1, "x")], "InvalidPart"),
        ([Asked(4, "d")], "InvalidPart"),
        ([Asked(1, "a"), Asked(3, "c"), Asked(4, "d")], "InvalidPart"),
    ]
    for asked, code in cases:
        with pytest.raises(S3Error) as exc:
            choose_parts(stored, asked)
        assert exc.value.code == code, asked
    small = [_part(1, "a", MIN_PART_BYTES - 1), _part(2, "b", 1)]
    with pytest.raises(S3Error) as exc:
        choose_parts(small, [Asked(1, "a"), Asked(2, "b")])
    assert exc.value.code == "EntityTooSmall"
    assert choose_parts(small, [Asked(2, "b")]) == [small[1]]  # the last part may be small


def test_a_listed_part_checksum_must_be_the_one_verified_at_upload() -> None:
    part = UploadPart(1, "f1", 5, "a", 0.0, (("crc32", "AAAAAQ=="),))
    assert choose_parts([part], [Asked(1, "a", (("crc32", "AAAAAQ=="),))]) == [part]
    assert choose_parts([part], [Asked(1, "a")]) == [part]  # listing none is allowed
    for sums in ((("crc32", "AAAAAg=="),), (("sha256", "AAAAAQ=="),)):
        with pytest.raises(S3Error) as exc:
            choose_parts([part], [Asked(1, "a", sums)])
        assert exc.value.code == "InvalidPart"


def test_list_parts_names_the_algorithm_and_each_part_checksum() -> None:
    upload = MultipartUpload("id1", "t", "bkt", "k", 0.0, checksum="crc32c")
    part = UploadPart(1, "f1", 5, "a", 0.0, (("crc32c", "AAAAAQ=="),))
    text = list_parts_xml(upload, [part], 0, 10)
    assert "<ChecksumAlgorithm>CRC32C</ChecksumAlgorithm>" in text
    assert "<ChecksumType>COMPOSITE</ChecksumType>" in text
    assert "<ChecksumCRC32C>AAAAAQ==</ChecksumCRC32C>" in text
    plain = list_parts_xml(MultipartUpload("id1", "t", "bkt", "k", 0.0), [part], 0, 10)
    assert "ChecksumAlgorithm" not in plain


def test_multipart_etag() -> None:
    parts = [b"one", b"two"]
    joined = b"".join(hashlib.md5(p).digest() for p in parts)
    want = f"{hashlib.md5(joined).hexdigest()}-2"
    assert multipart_etag([hashlib.md5(p).hexdigest() for p in parts]) == want


async def test_stream_reader_hands_out_at_most_n_bytes() -> None:
    async def source() -> AsyncIterator[bytes]:
        for piece in (b"abcde", b"", b"fg"):
            yield piece

    reader = StreamReader(source())
    got = [await reader.read(3) for _ in range(5)]
    assert got == [b"abc", b"de", b"fg", b"", b""]


async def test_a_slow_complete_keeps_the_connection_alive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past KEEPALIVE the answer starts (200), spaces follow, then the result or an
    ``<Error>`` document ends it (what botocore reads as this call's error)."""
    monkeypatch.setattr(complete_answer, "KEEPALIVE", 0.05)

    async def slow(fail: bool) -> web.Response:
        await asyncio.sleep(0.3)
        if fail:
            raise S3Error("InvalidPart", 400, "gone")
        return xml_response("CompleteMultipartUploadResult", xml("ETag", '"abc-2"'))

    async def handler(request: web.Request) -> web.StreamResponse:
        return await complete_answer.answer(request, slow("fail" in request.query))

    app = web.Application()
    app.router.add_post("/bkt/k", handler)
    async with TestClient(TestServer(app)) as client:
        ok = await client.post("/bkt/k")
        text = await ok.text()
        assert ok.status == 200
        assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n  ')
        assert "<ETag>&quot;abc-2&quot;</ETag>" in text or '<ETag>"abc-2"</ETag>' in text
        assert "<CompleteMultipartUploadResult" in text
        assert text.count("<?xml") == 1
        bad = await client.post("/bkt/k?fail=1")
        text = await bad.text()
        assert bad.status == 200
        assert "<Error><Code>InvalidPart</Code>" in text
        assert text.count("<?xml") == 1


def _doc(encoding: str, dtd: bool) -> bytes:
    doc = (
        f'<?xml version="1.0" encoding="{encoding}"?>'
        + ('<!DOCTYPE x [<!ENTITY e "aa">]>' if dtd else "")
        + "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>"
        + ("<ETag>&e;</ETag>" if dtd else "<ETag>aa</ETag>")
        + "</Part></CompleteMultipartUpload>"
    )
    return doc.encode(encoding)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_a_dtd_is_refused_in_any_encoding(encoding: str) -> None:
    """A body in UTF-16 holds no ASCII ``<!DOCTYPE``: a byte search let its entity through
    (the upload completed; a 2 MiB tagging body expanded to ~90 MiB in the gateway)."""
    with pytest.raises(S3Error, match="document type") as exc:
        parse_complete(_doc(encoding, dtd=True))
    assert exc.value.code == "MalformedXML"
    with pytest.raises(S3Error, match="document type"):
        xmlbody.parse(_doc(encoding, dtd=True), "CompleteMultipartUpload")
    assert parse_complete(_doc(encoding, dtd=False))[0].etag == "aa"


@pytest.mark.parametrize("encoding", ["utf-16-be", "utf-32"])
def test_an_encoding_the_parser_does_not_read_is_refused(encoding: str) -> None:
    for dtd in (True, False):
        with pytest.raises(S3Error) as exc:
            parse_complete(_doc(encoding, dtd))
        assert exc.value.code == "MalformedXML"
