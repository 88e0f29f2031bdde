"""Small XML request bodies of S3 calls (versioning, tagging, DeleteObjects, ACLs, CORS),
read whole, bounded and checked (``dfs.s3.bodies``), and parsed with no document type declaration (``dfs.s3.safe_xml``);
element names are compared without their namespace, as S3 accepts bodies with or without
``xmlns``."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from aiohttp import web

from dfs.s3.bodies import read_small
from dfs.s3.safe_xml import malformed as malformed  # the routes' XML errors
from dfs.s3.safe_xml import parse_untrusted

MAX_XML_BODY = 2 * 1024 * 1024  # DeleteObjects: 1000 keys of up to 1 KiB, escaped


async def read_body(request: web.Request, limit: int = MAX_XML_BODY) -> bytes:
    """The whole body, decoded and checked (``dfs.s3.bodies.read_small``)."""
    return await read_small(request, limit, malformed("the XML body is too large"))


def parse(data: bytes, root: str) -> ET.Element:
    """The document's root element, which must be named ``root``."""
    elem = parse_untrusted(data)
    if local(elem.tag) != root:
        raise malformed(f"the root element must be {root}")
    return elem


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def children(elem: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in elem if local(c.tag) == name]


def text(elem: ET.Element, name: str) -> str | None:
    """The text of the first child ``name`` ("" when empty), None when there is none."""
    found = children(elem, name)
    return None if not found else (found[0].text or "")
