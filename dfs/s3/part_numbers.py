"""``partNumber`` on GetObject and HeadObject: the bytes of one part of a multipart object.

S3 answers the part's byte range (206, ``Content-Range``) with ``x-amz-mp-parts-count``;
an object stored in one piece has one part, the whole object. The part edges are not in the
object's file (Complete re-chunks across them, ``dfs.api.multipart_assemble``), so Complete
keeps the parts' sizes with the version, in its user metadata under the reserved key
``dfs-part-sizes`` (hidden from ``x-amz-meta-*`` and refused from clients like the
checksums' keys, ``dfs.s3.checksums``), run-length encoded: ``8388608*12,1048583`` is twelve
8 MiB parts then one of 1048583 bytes. Clients upload equal parts but the last, so that is
a few bytes; the entry is left out when it would not fit in S3's 2 KB of user metadata
beside the client's own.

An upload with a checksum algorithm also keeps its parts' checksums, ``dfs-part-checksums``
(``crc32:v1,v2,...``), when they fit beside the rest: a ``partNumber`` read with
``x-amz-checksum-mode: ENABLED`` answers that part's checksum (clients check it against the
part's bytes); without the entry a part answer carries no checksum.

A multipart object without the entry (completed before sizes were kept, or whose sizes did
not fit) answers its part 1 only when it has a single part; any other part of it answers
501 ``NotImplemented`` (its edges are unknown). The part count is the ``-N`` of its ETag.

An empty part (S3 lets the last part be empty) answers 206 with ``Content-Length: 0``, the
parts count and no ``Content-Range``: no byte range names zero bytes.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import hdrs, web

from dfs.api import ranges
from dfs.meta.multipart import MAX_PARTS
from dfs.meta.namespace import ObjectVersion
from dfs.namespace_rules import MAX_USER_METADATA_BYTES
from dfs.s3.errors import S3Error, not_implemented

PART_SIZES = "dfs-part-sizes"
PART_CHECKSUMS = "dfs-part-checksums"


def encode(sizes: Sequence[int]) -> str:
    """``size*count`` runs, comma-separated (``*1`` left out)."""
    runs: list[list[int]] = []
    for size in sizes:
        if runs and runs[-1][0] == size:
            runs[-1][1] += 1
        else:
            runs.append([size, 1])
    return ",".join(f"{s}*{n}" if n > 1 else str(s) for s, n in runs)


def decode(text: str) -> list[int]:
    out: list[int] = []
    for run in text.split(","):
        size, _, count = run.partition("*")
        out += [int(size)] * int(count or "1")
    return out


def _with_entry(
    metadata: tuple[tuple[str, str], ...], entry: tuple[str, str]
) -> tuple[tuple[str, str], ...]:
    used = sum(len(k.encode()) + len(v.encode()) for k, v in (*metadata, entry))
    return metadata if used > MAX_USER_METADATA_BYTES else tuple(sorted((*metadata, entry)))


def with_part_sizes(
    metadata: tuple[tuple[str, str], ...], sizes: Sequence[int]
) -> tuple[tuple[str, str], ...]:
    """``metadata`` with the parts' sizes added, if they fit in S3's user-metadata bytes."""
    return metadata if len(sizes) < 2 else _with_entry(metadata, (PART_SIZES, encode(sizes)))


def with_part_checksums(
    metadata: tuple[tuple[str, str], ...], algorithm: str, values: Sequence[str]
) -> tuple[tuple[str, str], ...]:
    """``metadata`` with the parts' ``algorithm`` checksums added, if they fit."""
    if not algorithm or not values:
        return metadata
    return _with_entry(metadata, (PART_CHECKSUMS, f"{algorithm}:{','.join(values)}"))


def part_checksum(v: ObjectVersion, number: int) -> dict[str, str]:
    """The checksum headers of part ``number`` of ``v`` (empty when they were not kept)."""
    stored = dict(v.user_metadata).get(PART_CHECKSUMS)
    if stored is None:
        return {}
    algorithm, _, values = stored.partition(":")
    found = values.split(",")
    if not 1 <= number <= len(found):
        return {}
    return {f"x-amz-checksum-{algorithm}": found[number - 1], "x-amz-checksum-type": "COMPOSITE"}


def parts_count(v: ObjectVersion) -> int:
    """How many parts the object was uploaded in (1 unless its ETag says ``-N``)."""
    _, dash, count = v.etag.rpartition("-")
    return int(count) if dash and count.isdigit() else 1


def parse(raw: str) -> int:
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_PARTS:
        raise S3Error(
            "InvalidArgument", 400, f"Part number must be an integer from 1 to {MAX_PARTS}"
        )
    return int(raw)


def part_range(v: ObjectVersion, number: int) -> ranges.ByteRange | None:
    """The bytes of part ``number`` of ``v`` (None: the whole object, which may be empty)."""
    count = parts_count(v)
    if number > count:
        raise S3Error("InvalidPartNumber", 416, "The requested partnumber is not satisfiable")
    if count == 1:
        return None
    stored = dict(v.user_metadata).get(PART_SIZES)
    if stored is None:
        raise not_implemented("partNumber of a multipart object whose part sizes were not kept")
    sizes = decode(stored)
    start = sum(sizes[: number - 1])
    return ranges.ByteRange(start, start + sizes[number - 1] - 1, v.size)


def empty_part(headers: dict[str, str]) -> web.Response:
    """The answer to an empty part (only the last may be empty): 200 with no byte. Not a
    cloned Range: ``bytes=S-(S-1)`` is invalid, so the Range would be ignored and the whole
    object streamed; nor a 206, which HTTP requires to carry a ``Content-Range``, and no
    range covers zero bytes (``bytes S-(S-1)/S`` is malformed)."""
    resp = web.Response(status=200, headers=headers)
    resp.headers[hdrs.CONTENT_LENGTH] = "0"
    return resp


def as_range(
    request: web.Request, v: ObjectVersion, number: int, headers: dict[str, str]
) -> tuple[web.Request, ranges.ByteRange | None]:
    """The request as the Range of part ``number`` (unchanged for a whole object), and that
    range; ``headers`` get the part count of a multipart object, and the part's checksum in
    place of the whole object's when a part is answered (none when it was not kept)."""
    rng = part_range(v, number)
    count = parts_count(v)
    if count > 1:
        headers["x-amz-mp-parts-count"] = str(count)
    if rng is None:
        return request, None
    asked = [h for h in headers if h.lower().startswith("x-amz-checksum-")]  # checksum mode
    for name in asked:
        del headers[name]
    if asked:
        headers.update(part_checksum(v, number))
    if rng.length == 0:  # an empty last part: no Range names zero bytes (empty_part answers)
        return request, rng
    wanted = {**request.headers, hdrs.RANGE: f"bytes={rng.start}-{rng.end}"}
    return request.clone(headers=wanted), rng
