"""The XML of S3's multipart calls: the CompleteMultipartUpload body read (and checked against
the upload's parts: S3's ``InvalidPart``, ``InvalidPartOrder``, ``EntityTooSmall``; a part's
``ChecksumCRC32`` & co. must be the checksum verified when it was uploaded), and the
ListParts and ListMultipartUploads answers written."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from dfs.api.multipart import MIN_PART_BYTES
from dfs.meta.multipart import MAX_PARTS, MultipartUpload, UploadPart
from dfs.s3.context import iso_time, xml
from dfs.s3.errors import S3Error
from dfs.s3.safe_xml import malformed as malformed  # the routes' XML errors
from dfs.s3.safe_xml import parse_untrusted

MAX_COMPLETE_BODY = 2 * 1024 * 1024  # 10,000 parts of about 100 bytes each, with room
MAX_COMPLETE_NODES = MAX_PARTS * 8 + 16
"""Elements of a part list: each part's ``Part``, ``PartNumber``, ``ETag`` and checksums."""


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


_ELEMENTS = {"ChecksumCRC32": "crc32", "ChecksumCRC32C": "crc32c", "ChecksumSHA1": "sha1"}
_ELEMENTS["ChecksumSHA256"] = "sha256"
_NAMES = {a: e for e, a in _ELEMENTS.items()}


def checksum_elements(sums: Sequence[tuple[str, str]]) -> str:
    """``<ChecksumCRC32>`` & co. of (algorithm, value) pairs."""
    return "".join(xml(_NAMES[a], v) for a, v in sums if a in _NAMES)


class Asked(NamedTuple):
    """A part as CompleteMultipartUpload lists it."""

    number: int
    etag: str
    checksums: tuple[tuple[str, str], ...] = ()


def parse_complete(body: bytes) -> list[Asked]:
    """The parts a CompleteMultipartUpload body lists (ETags without quotes), in the order
    given. A document type declaration is refused (``dfs.s3.safe_xml``: no expansion)."""
    root = parse_untrusted(body, MAX_COMPLETE_NODES)
    if _local(root.tag) != "CompleteMultipartUpload":
        raise malformed()
    out: list[Asked] = []
    for part in root:
        if _local(part.tag) != "Part":
            continue
        fields = {_local(child.tag): (child.text or "").strip() for child in part}
        try:
            number = int(fields["PartNumber"])
            etag = fields["ETag"].strip('"').lower()
        except (KeyError, ValueError):
            raise malformed() from None
        sums = tuple(sorted((a, fields[e]) for e, a in _ELEMENTS.items() if e in fields))
        out.append(Asked(number, etag, sums))
    if not out:
        raise malformed("The XML you provided did not list any part")
    if len(out) > MAX_PARTS:
        raise malformed(f"more than {MAX_PARTS} parts")
    return out


def _invalid_part(detail: str = "") -> S3Error:
    return S3Error(
        "InvalidPart",
        400,
        "One or more of the specified parts could not be found. The part may not have "
        "been uploaded, or the specified entity tag may not match the part's entity tag." + detail,
    )


def _check_sums(part: UploadPart, asked: Asked) -> None:
    kept = dict(part.checksums)
    for algorithm, value in asked.checksums:
        if kept.get(algorithm) != value:
            raise _invalid_part(f" (part {part.part_number}'s {algorithm} checksum differs)")


def choose_parts(stored: Sequence[UploadPart], asked: Sequence[Asked]) -> list[UploadPart]:
    """The stored parts ``asked`` names, in order, checked as S3 checks them."""
    by_number = {p.part_number: p for p in stored}
    chosen: list[UploadPart] = []
    last = 0
    for item in asked:
        number, etag = item.number, item.etag
        if number <= last:
            raise S3Error(
                "InvalidPartOrder",
                400,
                "The list of parts was not in ascending order. Parts must be ordered by part "
                "number.",
            )
        last = number
        part = by_number.get(number)
        if part is None or part.etag != etag:
            raise _invalid_part()
        _check_sums(part, item)
        chosen.append(part)
    for part in chosen[:-1]:
        if part.size < MIN_PART_BYTES:
            raise S3Error(
                "EntityTooSmall",
                400,
                f"Your proposed upload is smaller than the minimum allowed object size "
                f"(part {part.part_number} has {part.size} bytes; every part but the last "
                f"must have at least {MIN_PART_BYTES}).",
            )
    return chosen


def _who(tenant: str, tag: str) -> str:
    return f"<{tag}>{xml('ID', tenant)}{xml('DisplayName', tenant)}</{tag}>"


def list_parts_xml(
    upload: MultipartUpload, parts: Sequence[UploadPart], marker: int, max_parts: int
) -> str:
    truncated = len(parts) > max_parts
    shown = parts[:max_parts]
    nxt = shown[-1].part_number if shown else marker
    items = "".join(
        "<Part>"
        + xml("PartNumber", p.part_number)
        + xml("LastModified", iso_time(p.last_modified))
        + xml("ETag", f'"{p.etag}"')
        + xml("Size", p.size)
        + checksum_elements(p.checksums)
        + "</Part>"
        for p in shown
    )
    algorithm = (
        xml("ChecksumAlgorithm", upload.checksum.upper()) + xml("ChecksumType", "COMPOSITE")
        if upload.checksum
        else ""
    )
    return (
        xml("Bucket", upload.bucket)
        + xml("Key", upload.key)
        + xml("UploadId", upload.upload_id)
        + _who(upload.tenant, "Initiator")
        + _who(upload.tenant, "Owner")
        + xml("StorageClass", "STANDARD")
        + xml("PartNumberMarker", marker)
        + xml("NextPartNumberMarker", nxt)
        + xml("MaxParts", max_parts)
        + xml("IsTruncated", "true" if truncated else "false")
        + algorithm
        + items
    )
