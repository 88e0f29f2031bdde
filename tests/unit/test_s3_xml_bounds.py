"""S3 XML bodies are bounded in what they cost parsed, not only in bytes (found by review):
a 2 MiB body of empty elements was a tree of ~40 MiB, built on the event loop, as many at
once as a tenant sent. ``dfs.s3.safe_xml`` now refuses a document with more elements and
attributes than S3's documents need, before any tree is built."""

from __future__ import annotations

import pytest

from dfs.meta.multipart import MAX_PARTS
from dfs.s3 import routes_deletes
from dfs.s3.errors import S3Error
from dfs.s3.multipart_xml import MAX_COMPLETE_BODY, parse_complete
from dfs.s3.safe_xml import MAX_NODES, parse_untrusted
from dfs.s3.xmlbody import MAX_XML_BODY

MIB = 1 << 20


def _filled(root: str, piece: bytes, size: int) -> bytes:
    """A ``root`` document of ``piece`` repeated to about ``size`` bytes."""
    head, tail = f"<{root}>".encode(), f"</{root}>".encode()
    return head + piece * ((size - len(head) - len(tail)) // len(piece)) + tail


@pytest.mark.parametrize(
    "piece", [b"<a/>", b"<Object/>", b"<a b='' c='' d='' e=''/>", b"<Part><x/></Part>"]
)
def test_bodies_of_many_tiny_elements_are_refused_before_a_tree(piece: bytes) -> None:
    for size in (MAX_XML_BODY, MAX_COMPLETE_BODY):
        body = _filled("Delete", piece, size)
        with pytest.raises(S3Error) as exc:
            parse_untrusted(body)
        assert (exc.value.code, exc.value.status) == ("MalformedXML", 400)
        assert "elements" in exc.value.message
    with pytest.raises(S3Error):
        parse_complete(_filled("CompleteMultipartUpload", piece, MAX_COMPLETE_BODY))


def test_the_largest_documents_s3_sends_still_parse() -> None:
    """A DeleteObjects of 1000 keys with versions, a Complete of 10,000 parts each with a
    checksum: what clients send stays accepted."""
    objects = b"".join(
        b"<Object><Key>%s</Key><VersionId>v%d</VersionId></Object>" % (b"k" * 900, i)
        for i in range(routes_deletes.MAX_DELETE_KEYS)
    )
    delete = b"<Delete><Quiet>true</Quiet>" + objects + b"</Delete>"
    assert len(delete) < MAX_XML_BODY
    quiet, items = routes_deletes._parse(delete)
    assert quiet
    assert len(items) == routes_deletes.MAX_DELETE_KEYS
    parts = b"".join(
        b'<Part><PartNumber>%d</PartNumber><ETag>"%s"</ETag>'
        b"<ChecksumCRC32>AAAAAA==</ChecksumCRC32></Part>" % (i + 1, b"0" * 32)
        for i in range(MAX_PARTS)
    )
    complete = b"<CompleteMultipartUpload>" + parts + b"</CompleteMultipartUpload>"
    assert len(complete) < MAX_COMPLETE_BODY
    assert len(parse_complete(complete)) == MAX_PARTS
    assert MAX_NODES > 4 * routes_deletes.MAX_DELETE_KEYS
