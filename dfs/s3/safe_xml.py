"""Parsing the XML bodies clients send, with no document type declaration (so no entity).

S3's bodies never need a DTD, and an entity declared in one is expanded by the parser: a
2 MiB body became ~90 MiB of text. A byte search for ``<!DOCTYPE`` missed a body in UTF-16,
whose bytes hold no such ASCII text, so the parser itself is asked instead: a first pass of
expat (which reads the encoding the document declares) stops at the start of any DTD, before
an entity is declared, and only then is the tree built.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from xml.parsers import expat

from dfs.s3.errors import S3Error


def malformed(message: str = "The XML you provided was not well-formed") -> S3Error:
    return S3Error("MalformedXML", 400, message)


class _Dtd(Exception):
    pass


def _refuse(*_args: object) -> None:
    raise _Dtd


def parse_untrusted(data: bytes) -> ET.Element:
    """The document's root element; MalformedXML when it is not well-formed or has a
    document type declaration, in any encoding."""
    scan = expat.ParserCreate()
    scan.StartDoctypeDeclHandler = _refuse
    scan.EntityDeclHandler = _refuse
    try:
        scan.Parse(data, True)
    except _Dtd:
        raise malformed("document type declarations are not accepted") from None
    except (expat.ExpatError, ValueError):
        raise malformed() from None
    try:
        return ET.fromstring(data)
    except (ET.ParseError, ValueError):  # ValueError: an encoding it cannot read
        raise malformed() from None
