"""ListMultipartUploads pages: uploads in (key, upload id) order, rolled up into common
prefixes with a ``delimiter``, as S3 answers them.

The multipart store lists a bucket's uploads after a (key, upload id) pair; the roll-up is
done here so both backends need nothing more. A common prefix counts as one entry of the
page (``max-uploads`` counts uploads and prefixes together, as in S3). Once a page holds a
prefix, the next store read starts past every key under it (the prefix followed by
U+10FFFF, the highest code point, so the highest in UTF-8 byte order too); a rare key that
sorts past even that rolls into the same prefix and is dropped as a repeat.

A ``key-marker`` that is itself a common prefix of the listing (the ``NextKeyMarker`` of a
page that ended on one) resumes after every key under it, as ListObjects' markers do.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote

from dfs.meta.multipart import MultipartUpload
from dfs.s3.context import iso_time, xml
from dfs.s3.listing import rolls_up

Entry = MultipartUpload | str  # an upload, or a common prefix
After = tuple[str, str] | None  # (key, upload id) to list strictly after
Lister = Callable[[After, int], Awaitable[list[MultipartUpload]]]

LAST_UPLOAD_ID = "~"  # sorts after every upload id (hex digits): "every upload of the key"
PAST_PREFIX = "\U0010ffff"
READ_LIMIT = 1000


@dataclass(frozen=True)
class Query:
    """What the client asked: the markers, prefix and delimiter as sent."""

    prefix: str = ""
    delimiter: str = ""
    key_marker: str = ""
    upload_id_marker: str = ""
    encode: bool = False


def common_prefix(key: str, prefix: str, delimiter: str) -> str | None:
    """The common prefix ``key`` rolls into (prefix, then up to the first delimiter after
    it), or None when it is listed as itself."""
    if not delimiter:
        return None
    at = key.find(delimiter, len(prefix))
    return key[: at + len(delimiter)] if at >= 0 else None


def _start(q: Query) -> tuple[After, str | None]:
    """Where the first read starts, and the prefix already passed (a marker that is one)."""
    if not q.key_marker:
        return None, None
    if q.upload_id_marker:
        return (q.key_marker, q.upload_id_marker), None
    passed = q.key_marker if rolls_up(q.key_marker, q.prefix, q.delimiter) else None
    return (q.key_marker, LAST_UPLOAD_ID), passed


async def uploads_page(lister: Lister, q: Query, limit: int) -> tuple[list[Entry], bool]:
    """Up to ``limit`` entries (uploads and common prefixes, in key order) and whether more
    follow."""
    after, last_prefix = _start(q)
    entries: list[Entry] = []
    while True:
        asked = min(max(limit + 1 - len(entries), 1), READ_LIMIT)
        batch = await lister(after, asked)
        for u in batch:
            cp = common_prefix(u.key, q.prefix, q.delimiter)
            if cp is None:
                entries.append(u)
            elif cp != last_prefix:
                entries.append(cp)
                last_prefix = cp
            if len(entries) > limit:
                return entries[:limit], True
        if len(batch) < asked:  # the store answers short only at the end (done ones skipped)
            return entries, False
        last = batch[-1]
        if last_prefix is not None and last.key.startswith(last_prefix):
            after = (last_prefix + PAST_PREFIX, LAST_UPLOAD_ID)
        else:
            after = (last.key, last.upload_id)


def _who(tenant: str, tag: str) -> str:
    return f"<{tag}>{xml('ID', tenant)}{xml('DisplayName', tenant)}</{tag}>"


def _upload_xml(u: MultipartUpload, key_text: Callable[[str], str]) -> str:
    return (
        "<Upload>"
        + xml("Key", key_text(u.key))
        + xml("UploadId", u.upload_id)
        + _who(u.tenant, "Initiator")
        + _who(u.tenant, "Owner")
        + xml("StorageClass", "STANDARD")
        + xml("Initiated", iso_time(u.created_at))
        + "</Upload>"
    )


def list_uploads_xml(
    bucket: str, entries: list[Entry], truncated: bool, q: Query, max_uploads: int
) -> str:
    """ListMultipartUploadsResult's inner XML."""

    def key_text(key: str) -> str:
        return quote(key, safe="/") if q.encode else key

    head = (
        xml("Bucket", bucket)
        + xml("KeyMarker", key_text(q.key_marker))
        + xml("UploadIdMarker", q.upload_id_marker)
    )
    if truncated and entries:
        last = entries[-1]
        key, upload_id = (last, "") if isinstance(last, str) else (last.key, last.upload_id)
        head += xml("NextKeyMarker", key_text(key)) + xml("NextUploadIdMarker", upload_id)
    if q.delimiter:
        head += xml("Delimiter", key_text(q.delimiter))
    head += xml("Prefix", key_text(q.prefix))
    if q.encode:
        head += xml("EncodingType", "url")
    head += xml("MaxUploads", max_uploads) + xml("IsTruncated", "true" if truncated else "false")
    uploads = "".join(_upload_xml(e, key_text) for e in entries if not isinstance(e, str))
    prefixes = "".join(
        f"<CommonPrefixes>{xml('Prefix', key_text(e))}</CommonPrefixes>"
        for e in entries
        if isinstance(e, str)
    )
    return head + uploads + prefixes
