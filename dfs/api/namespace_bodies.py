"""The namespace's JSON: records to answer bodies, request bodies and queries to values.

Routes parse with these and answer with these, so the wire shape of a bucket, an object
version, a listing and usage counters is written once (docs/WIRE.md, dfs/openapi/api.yaml).
Tags and user metadata travel as JSON objects; the records keep them as sorted pairs.
What is a valid name, key, tag or metadata entry is ``dfs.namespace_rules``'s (S3's rules).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dfs import namespace_rules as rules
from dfs.api.bodies import unicode_text
from dfs.errors import InvalidRequest
from dfs.ids import parse_tenant
from dfs.meta.namespace import (
    BUCKET_ACCESS,
    GRANT_READ,
    GRANT_READ_WRITE,
    OBJECT_ACCESS,
    VERSIONING_STATES,
    BucketRecord,
    ObjectListing,
    ObjectVersion,
    SearchQuery,
    Usage,
)

MAX_PAGE = 1000
NAMESPACE_BODY = 256 * 1024
"""Bytes of the JSON body of a route that writes one bucket or one object version: its
tags, metadata and content type fit ~60 KiB even with every character escaped as JSON's
``\\uXXXX``; one above 64 KiB is read in one of the tenant's body slots
(``dfs.api.context.body_slot``: up to ~9 MiB once parsed). The batch routes
(``/objects-link``, ``/objects-remove``) take up to ``MAX_JSON_BODY``, read in a
big-request slot (``dfs.api.context.big_body_slot``): a big JSON body costs ~35 times its
size once parsed (empty objects), so none is read outside a slot."""
# tenants one bucket (or one object version, its ``shared_with``) may be shared with:
# DynamoDB changes a bucket's grants (an index item per grantee, both removed and added ones)
# in one transaction of at most 100 actions, with the bucket and its 8 versioning guard
# rows: 1 + 8 + 2 * 45 = 99
MAX_GRANTS = 45


def bucket_body(b: BucketRecord, for_owner: bool = True) -> dict[str, Any]:
    """``for_owner`` False (a grantee, anyone reading a public bucket): without the grants,
    which name the other tenants it is shared with (S3 keeps them to READ_ACP)."""
    return {
        "name": b.name,
        "owner": b.tenant,
        "created_at": b.created_at,
        "versioning": b.versioning,
        "access": b.access,
        "grants": dict(b.grants) if for_owner else {},
    }


def object_body(o: ObjectVersion, for_owner: bool = True) -> dict[str, Any]:
    """``for_owner`` False: without ``shared_with``, the tenants the owner shared it with."""
    body = _object_fields(o)
    if not for_owner:
        body["shared_with"] = []
    return body


def _object_fields(o: ObjectVersion) -> dict[str, Any]:
    return {
        "bucket": o.bucket,
        "key": o.key,
        "version_id": o.version_id,
        "file_id": o.file_id,
        "size": o.size,
        "created_at": o.created_at,
        "is_latest": o.is_latest,
        "is_delete_marker": o.is_delete_marker,
        "etag": o.etag,
        "sha256": o.sha256,
        "content_type": o.content_type,
        "metadata": dict(o.user_metadata),
        "tags": dict(o.tags),
        "access": o.access,
        "shared_with": list(o.shared_with),
    }


def listing_body(page: ObjectListing, for_owner: bool = True) -> dict[str, Any]:
    return {
        "objects": [object_body(o, for_owner) for o in page.objects],
        "common_prefixes": list(page.common_prefixes),
        "next_token": page.next_token,
    }


def usage_body(u: Usage) -> dict[str, int]:
    return {
        "objects": u.objects,
        "versions": u.versions,
        "delete_markers": u.delete_markers,
        "logical_bytes": u.logical_bytes,
        "stored_bytes": u.stored_bytes,
        "saved_bytes": u.saved_bytes,
    }


# --- parsing --------------------------------------------------------------------------------


def parse_bucket_name(value: object) -> str:
    return rules.validate_bucket_name(value)


def parse_key(value: object, field: str = "key") -> str:
    if isinstance(value, str):
        value = unicode_text(value, field)  # a lone surrogate from a URL escape: 400
    return rules.validate_key(value)


def parse_target(bucket: object, key: object) -> tuple[str, str] | None:
    """The optional ``bucket`` and ``key`` of an upload that also links its file as an
    object (both or neither)."""
    if bucket is None and key is None:
        return None
    return parse_bucket_name(bucket), parse_key(key)


def parse_prefix(value: str | None) -> str:
    return "" if not value else parse_key(value, "prefix")


def _choice(value: object, field: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise InvalidRequest(f"{field} must be one of {', '.join(allowed)}")
    return str(value)


def parse_versioning(value: object) -> str:
    return _choice(value, "versioning", VERSIONING_STATES)


def parse_bucket_access(value: object) -> str:
    return _choice(value, "access", BUCKET_ACCESS)


def parse_object_access(value: object) -> str:
    return _choice(value, "access", OBJECT_ACCESS)


def _string_map(value: object, field: str) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidRequest(f"{field} must be an object of strings")
    return {unicode_text(k, field): unicode_text(v, field) for k, v in value.items()}


def parse_tags(value: object) -> tuple[tuple[str, str], ...]:
    return rules.validate_tags(_string_map(value, "tags").items())


def parse_metadata(value: object) -> tuple[tuple[str, str], ...]:
    return rules.validate_user_metadata(_string_map(value, "metadata").items())


def parse_grants(value: object) -> tuple[tuple[str, str], ...]:
    """A bucket's ``grants``: at most ``MAX_GRANTS`` tenants, each named as a tenant is
    (``dfs.ids.parse_tenant``: an empty or odd name would become a DynamoDB index key)."""
    grants = _string_map(value, "grants")
    if len(grants) > MAX_GRANTS:
        raise InvalidRequest(f"a bucket may be shared with at most {MAX_GRANTS} tenants")
    for t, v in grants.items():
        parse_tenant(t, "a grant's tenant")
        _choice(v, "a grant", (GRANT_READ, GRANT_READ_WRITE))
    return tuple(sorted(grants.items()))


def parse_tenants(value: object) -> tuple[str, ...]:
    """An object's ``shared_with``: at most ``MAX_GRANTS`` tenant names (``parse_tenant``).
    Stored on the version and read with it by every listing, so unbounded it let one
    request store megabytes on one version (and a DynamoDB item refused past 400 KB)."""
    if not isinstance(value, list) or len(value) > MAX_GRANTS:
        raise InvalidRequest(f"shared_with must be a list of at most {MAX_GRANTS} tenant names")
    return tuple(sorted({parse_tenant(t, "a shared_with tenant") for t in value}))


def parse_content_type(value: object) -> str:
    return rules.validate_content_type(value)


def query_int(raw: str, field: str, lo: int, hi: int) -> int:
    """A query's integer in ``[lo, hi]``: ASCII digits, no more of them than ``hi`` has.
    Python's ``int()`` refuses a string of over 4300 digits with a ValueError, which a
    request line of 8 KiB can carry: 500 (logged with its traceback) for anyone, a listing
    of a public bucket needing no token."""
    if not raw.isascii() or not raw.isdigit() or len(raw) > len(str(hi)):
        raise InvalidRequest(f"{field} must be an integer in [{lo}, {hi}]")
    value = int(raw)
    if not lo <= value <= hi:
        raise InvalidRequest(f"{field} must be an integer in [{lo}, {hi}]")
    return value


def parse_limit(raw: str | None, default: int = MAX_PAGE) -> int:
    return default if raw is None else query_int(raw, "limit", 1, MAX_PAGE)


def _number(raw: str | None, field: str) -> float | None:
    """A finite number (Unix seconds): ``nan`` matched nothing and ``inf`` everything."""
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise InvalidRequest(f"{field} must be a number") from None
    if not math.isfinite(value):
        raise InvalidRequest(f"{field} must be a finite number")
    return value


MAX_SIZE_FILTER = (1 << 63) - 1
"""The largest size filter: what a store's signed 64-bit integer holds."""


def _size(raw: str | None, field: str) -> int | None:
    """A byte count, ASCII digits only, as the spec says (``1e400`` and ``nan`` answered
    500: a float that ``int()`` cannot convert)."""
    return None if raw is None or raw == "" else query_int(raw, field, 0, MAX_SIZE_FILTER)


def parse_search(q: Mapping[str, str]) -> SearchQuery:
    """``prefix``, ``contains``, ``tag`` (``k`` or ``k=v``), ``content_type``,
    ``min_size``/``max_size`` (bytes), ``after``/``before`` (Unix seconds)."""
    tag: tuple[str, str | None] | None = None
    if q.get("tag"):
        k, eq, v = q["tag"].partition("=")
        tag = (k, v if eq else None)
    return SearchQuery(
        prefix=parse_prefix(q.get("prefix")),
        contains=q.get("contains", ""),
        tag=tag,
        content_type=q.get("content_type", ""),
        min_size=_size(q.get("min_size"), "min_size"),
        max_size=_size(q.get("max_size"), "max_size"),
        modified_after=_number(q.get("after"), "after"),
        modified_before=_number(q.get("before"), "before"),
    )


@dataclass(frozen=True)
class ObjectFields:
    """What a write may say about the new version (None: the default, or kept on copy)."""

    content_type: str | None = None
    metadata: tuple[tuple[str, str], ...] | None = None
    tags: tuple[tuple[str, str], ...] | None = None
    access: str | None = None
    headers: tuple[tuple[str, str], ...] | None = None  # the S3 gateway's stored headers

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> ObjectFields:
        ct, meta, tags, acc = (body.get(f) for f in ("content_type", "metadata", "tags", "access"))
        return cls(
            content_type=None if ct is None else parse_content_type(ct),
            metadata=None if meta is None else parse_metadata(meta),
            tags=None if tags is None else parse_tags(tags),
            access=None if acc is None else parse_object_access(acc),
        )

    @classmethod
    def from_query(cls, q: Mapping[str, str]) -> ObjectFields:
        """The same from a query (``POST /upload``): ``content_type``, ``meta-NAME=v``,
        ``tag-NAME=v``."""
        meta = {k[5:]: v for k, v in q.items() if k.startswith("meta-")}
        tags = {k[4:]: v for k, v in q.items() if k.startswith("tag-")}
        body: dict[str, Any] = {"metadata": meta or None, "tags": tags or None}
        body["content_type"] = q.get("content_type")
        return cls.parse(body)
