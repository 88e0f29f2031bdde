"""Parsing the XML bodies clients send, with no document type declaration (so no entity).

S3's bodies never need a DTD, and an entity declared in one is expanded by the parser: a
2 MiB body became ~90 MiB of text. A byte search for ``<!DOCTYPE`` missed a body in UTF-16,
whose bytes hold no such ASCII text, so the parser itself is asked instead: a first pass of
expat (which reads the encoding the document declares) stops at the start of any DTD, before
an entity is declared, and only then is the tree built.

That first pass also counts the elements and attributes, and refuses a document with more
than its caller's ``max_nodes`` before any tree is built: a 2 MiB body of empty elements
(``<a/>`` over and over) became a tree of ~40 MiB (and half a second of the event loop),
as many at once as a tenant sent such bodies (found by review). S3's own documents hold a
few elements per entry (``MAX_NODES``: a DeleteObjects of 1000 keys, with versions, holds
~4000); CompleteMultipartUpload passes its own bound (``dfs.s3.multipart_xml``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from xml.parsers import expat

from dfs.s3.errors import S3Error


def malformed(message: str = "The XML you provided was not well-formed") -> S3Error:
    return S3Error("MalformedXML", 400, message)


MAX_NODES = 16_384
"""Elements and attributes of an S3 XML body (a tree of at most ~3 MiB)."""


class _Dtd(Exception):
    pass


class _TooMany(Exception):
    pass


def _refuse(*_args: object) -> None:
    raise _Dtd


def parse_untrusted(data: bytes, max_nodes: int = MAX_NODES) -> ET.Element:
    """The document's root element; MalformedXML when it is not well-formed, has a
    document type declaration (in any encoding) or more than ``max_nodes`` elements and
    attributes."""
    scan = expat.ParserCreate()
    scan.StartDoctypeDeclHandler = _refuse
    scan.EntityDeclHandler = _refuse
    nodes = [0]

    def counted(_name: str, attrs: dict[str, str]) -> None:
        nodes[0] += 1 + len(attrs)
        if nodes[0] > max_nodes:
            raise _TooMany

    scan.StartElementHandler = counted
    try:
        scan.Parse(data, True)
    except _Dtd:
        raise malformed("document type declarations are not accepted") from None
    except _TooMany:
        raise malformed(f"the document holds more than {max_nodes} elements") from None
    except (expat.ExpatError, ValueError):
        raise malformed() from None
    try:
        return ET.fromstring(data)
    except (ET.ParseError, ValueError):  # ValueError: an encoding it cannot read
        raise malformed() from None
