"""Single byte ranges (RFC 9110 ``Range: bytes=...``) of a file, and the chunks they need.

Signed download URLs answer a single range with 206 and ``Content-Range``, reading and
verifying only the chunks the range overlaps; a range that starts past the end answers 416
(``Content-Range: bytes */SIZE``). As RFC 9110 allows, anything else is ignored and the whole
file is sent: a header that is not ``bytes=``, a malformed spec, or several ranges
(multipart/byteranges answers are not worth their complexity here).

Pure: parsing and arithmetic over a download plan's ``chunks``, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

_SPEC = re.compile(r"([0-9]{0,19})-([0-9]{0,19})")


class Unsatisfiable(Exception):
    """The range starts at or past the end of the file (or asks for an empty suffix)."""


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Bytes ``start`` to ``end`` inclusive of a file of ``size`` bytes."""

    start: int
    end: int
    size: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self) -> str:
        return f"bytes {self.start}-{self.end}/{self.size}"


def parse(header: str | None, size: int) -> ByteRange | None:
    """The one range ``header`` asks of a file of ``size`` bytes; None to send it whole.
    Raises Unsatisfiable when no byte of the file is in the range."""
    if header is None:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    m = _SPEC.fullmatch(spec.strip())
    if m is None or m.group(1) == m.group(2) == "":
        return None
    first, last = m.group(1), m.group(2)
    if first == "":  # a suffix: the last N bytes
        n = int(last)
        if n == 0 or size == 0:
            raise Unsatisfiable
        return ByteRange(max(size - n, 0), size - 1, size)
    start = int(first)
    if last != "" and int(last) < start:
        return None  # an invalid spec is ignored
    if start >= size:
        raise Unsatisfiable
    end = size - 1 if last == "" else min(int(last), size - 1)
    return ByteRange(start, end, size)


def pieces(
    chunks: Sequence[dict[str, Any]], r: ByteRange
) -> Iterator[tuple[dict[str, Any], int, int]]:
    """Each chunk of a plan that ``r`` overlaps, in order, with the slice ``[lo, hi)`` of
    its bytes that falls inside ``r``."""
    for chunk in chunks:
        offset, size = int(chunk["offset"]), int(chunk["size"])
        if offset + size <= r.start:
            continue
        if offset > r.end:
            return
        yield chunk, max(r.start - offset, 0), min(r.end + 1 - offset, size)
