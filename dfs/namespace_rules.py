"""What the namespace accepts: bucket names, object keys, tags, user metadata, stored
response headers, content types, and how a key maps to its usage groups (top-level prefix, file type).

S3's rules, so that an S3 gateway can serve every bucket and key dfs stores and no name
dfs accepts is one S3 refuses. The stores do not validate (``dfs.meta.namespace``): the API
and the client call these before anything is written, and both metadata backends group
usage with ``top_prefix`` and ``extension`` so their counters agree.

Each validator raises ``InvalidRequest`` (400) naming the field, or returns the value in its
stored form (tags and metadata sorted by key, metadata keys lower-cased as S3 does).
Standard library only (layer 0).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from dfs.errors import InvalidRequest

# the same limits as dfs.meta.namespace (layer 0 cannot import it; a unit test checks both)
NULL_VERSION = "null"  # S3's version id of writes while versioning is off or suspended
MAX_KEY_BYTES = 1024
MAX_TAGS = 10
MAX_BUCKET_TAGS = 50
MAX_USER_METADATA_BYTES = 2048
MAX_TAG_KEY_CHARS = 128
MAX_TAG_VALUE_CHARS = 256
MAX_CONTENT_TYPE_CHARS = 255
STORED_HEADERS = (
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "expires",
)
"""The standard response headers a version keeps (``ObjectVersion.headers``, lower-case
names), answered on every read of it, as S3 keeps them."""
MAX_STORED_HEADER_BYTES = 2048  # names + values of a version's STORED_HEADERS, UTF-8

_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# S3 reserves these for its own features (punycode, access points, directory buckets, ...)
_BUCKET_BAD_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_BUCKET_BAD_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
# AWS's tag character set: letters, digits, white space and + - = . _ : / @
_TAG_RE = re.compile(r"[\w\s+\-=.:/@]*")
_TOKEN = r"[A-Za-z0-9!#$%&'*+.^_`|~-]+"
_META_KEY_RE = re.compile(_TOKEN)
_CONTENT_TYPE_RE = re.compile(rf"{_TOKEN}/{_TOKEN}(\s*;.*)?")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def validate_bucket_name(name: object) -> str:
    """A bucket name S3 allows: 3-63 characters of lowercase letters, digits, dots and
    hyphens, starting and ending with a letter or digit, no two dots in a row, not an IPv4
    address, none of S3's reserved prefixes and suffixes."""
    if not isinstance(name, str) or not _BUCKET_RE.fullmatch(name):
        raise InvalidRequest(
            "bucket name must be 3-63 characters of a-z, 0-9, '.' and '-', "
            "starting and ending with a letter or digit",
            field="bucket",
        )
    if ".." in name or ".-" in name or "-." in name:
        raise InvalidRequest("bucket name must not have '..', '.-' or '-.'", field="bucket")
    if name.startswith(_BUCKET_BAD_PREFIXES) or name.endswith(_BUCKET_BAD_SUFFIXES):
        raise InvalidRequest("bucket name uses a prefix or suffix S3 reserves", field="bucket")
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return name
    raise InvalidRequest("bucket name must not be an IP address", field="bucket")


def validate_key(key: object) -> str:
    """An object key: 1 to 1,024 bytes of UTF-8 (no lone surrogates), no NUL."""
    if not isinstance(key, str) or not key:
        raise InvalidRequest("key must be a non-empty string", field="key")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidRequest("key must be valid Unicode (UTF-8)", field="key") from None
    if size > MAX_KEY_BYTES:
        raise InvalidRequest(f"key is longer than {MAX_KEY_BYTES} bytes of UTF-8", field="key")
    if "\x00" in key:
        raise InvalidRequest("key must not contain NUL", field="key")
    return key


def validate_prefix(prefix: object) -> str:
    """A listing prefix: "" or what could start a key."""
    if prefix == "":
        return ""
    return validate_key(prefix)


def _text(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidRequest(f"{field} must be a string", field=field)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest(f"{field} must be valid Unicode", field=field) from None
    return value


def validate_tags(
    tags: Iterable[tuple[object, object]], limit: int = MAX_TAGS
) -> tuple[tuple[str, str], ...]:
    """At most ``limit`` tags (an object's 10; a bucket's ``MAX_BUCKET_TAGS``) with distinct
    keys of 1-128 and values of 0-256 characters of AWS's tag character set; keys must not
    start with ``aws:``. Sorted by key."""
    out: dict[str, str] = {}
    for raw_key, raw_value in tags:
        key, value = _text(raw_key, "tag key"), _text(raw_value, "tag value")
        if not 1 <= len(key) <= MAX_TAG_KEY_CHARS:
            raise InvalidRequest(f"tag key must be 1-{MAX_TAG_KEY_CHARS} characters", field="tags")
        if len(value) > MAX_TAG_VALUE_CHARS:
            raise InvalidRequest(
                f"tag value must be at most {MAX_TAG_VALUE_CHARS} characters", field="tags"
            )
        if not _TAG_RE.fullmatch(key) or not _TAG_RE.fullmatch(value):
            raise InvalidRequest(
                "tags may hold letters, digits, spaces and + - = . _ : / @", field="tags"
            )
        if key.lower().startswith("aws:"):
            raise InvalidRequest("tag keys starting with 'aws:' are reserved", field="tags")
        if key in out:
            raise InvalidRequest(f"tag key {key!r} given twice", field="tags")
        out[key] = value
    if len(out) > limit:
        what = "object" if limit == MAX_TAGS else "bucket"
        raise InvalidRequest(f"at most {limit} tags per {what}", field="tags")
    return tuple(sorted(out.items()))


def validate_stored_headers(
    items: Iterable[tuple[str, str]],
) -> tuple[tuple[str, str], ...]:
    """The standard response headers a version keeps (``STORED_HEADERS``; S3's
    Cache-Control, Content-Disposition, Content-Encoding, Content-Language, Expires): names
    lower-cased, values without control characters, names and values together at most
    ``MAX_STORED_HEADER_BYTES`` of UTF-8 (S3 bounds only the whole request's headers; a
    bound keeps each version's record small). Sorted by name; empty values are dropped."""
    out: dict[str, str] = {}
    for raw_name, value in items:
        name = raw_name.lower()
        if name not in STORED_HEADERS:
            raise InvalidRequest(f"{raw_name} is not a stored header", field="headers")
        if _CONTROL_RE.search(value):
            raise InvalidRequest(f"{raw_name} must not hold control characters", field="headers")
        if value:
            out[name] = value
    total = sum(len(k.encode()) + len(v.encode()) for k, v in out.items())
    if total > MAX_STORED_HEADER_BYTES:
        raise InvalidRequest(
            f"the stored headers are larger than {MAX_STORED_HEADER_BYTES} bytes",
            field="headers",
        )
    return tuple(sorted(out.items()))


def validate_user_metadata(
    items: Iterable[tuple[object, object]],
) -> tuple[tuple[str, str], ...]:
    """User metadata (S3's ``x-amz-meta-*``): keys are header tokens, lower-cased and
    distinct; values have no control characters (they travel as header values); keys and
    values together at most 2 KB of UTF-8. Sorted by key."""
    out: dict[str, str] = {}
    total = 0
    for raw_key, raw_value in items:
        key, value = _text(raw_key, "metadata key"), _text(raw_value, "metadata value")
        if not _META_KEY_RE.fullmatch(key):
            raise InvalidRequest(f"metadata key {key!r} is not a header token", field="metadata")
        if _CONTROL_RE.search(value):
            raise InvalidRequest(
                "metadata values must not hold control characters", field="metadata"
            )
        key = key.lower()
        if key in out:
            raise InvalidRequest(f"metadata key {key!r} given twice", field="metadata")
        out[key] = value
        total += len(key.encode("utf-8")) + len(value.encode("utf-8"))
    if total > MAX_USER_METADATA_BYTES:
        raise InvalidRequest(
            f"user metadata is larger than {MAX_USER_METADATA_BYTES} bytes", field="metadata"
        )
    return tuple(sorted(out.items()))


def validate_content_type(value: object) -> str:
    """A media type ``type/subtype`` with optional parameters, at most 255 characters."""
    text = _text(value, "content type")
    if len(text) > MAX_CONTENT_TYPE_CHARS or not _CONTENT_TYPE_RE.fullmatch(text):
        raise InvalidRequest("content type must look like type/subtype", field="content_type")
    if _CONTROL_RE.search(text):
        raise InvalidRequest("content type must not hold control characters", field="content_type")
    return text


def top_prefix(key: str) -> str:
    """The usage group of a key by place: its first path segment ("" without a "/")."""
    head, sep, _ = key.partition("/")
    return head if sep else ""


def extension(key: str) -> str:
    """The usage group of a key by type: the lower-cased extension of its last segment,
    without the dot ("" for none, for a folder key ending in "/" and for dot files)."""
    name = key.rpartition("/")[2]
    stem, dot, ext = name.rpartition(".")
    return ext.lower() if dot and stem else ""


def prefix_end(prefix: str) -> str | None:
    """The least string greater than every string that starts with ``prefix`` (in code point
    order, which is UTF-8 byte order), or None when there is none (all U+10FFFF).

    Listings skip a common prefix's keys by seeking to it."""
    chars = list(prefix)
    while chars:
        code = ord(chars.pop()) + 1
        if code == 0xD800:  # surrogates are not characters: the next one is U+E000
            code = 0xE000
        if code <= 0x10FFFF:
            return "".join(chars) + chr(code)
    return None
