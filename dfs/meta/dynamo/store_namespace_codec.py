"""How the namespace (``dfs.meta.namespace``) is laid out in the DynamoDB store's two
namespace tables, both keyed (``p`` partition, ``s`` sort); pure functions, no requests.

``namespace`` table (p | s: what)

- ``bucket#NAME | -``: the bucket (tenant, created_at, versioning, access, grants as JSON,
  ``deleting`` while delete_bucket checks that it is empty). Names are unique across
  tenants because this item is put with ``attribute_not_exists``.
- ``tenant#T | NAME``, ``grantee#T | NAME``: the buckets a tenant owns or was granted, in
  name order (written in the transaction that creates, grants or deletes).
- ``usage#t:T`` / ``usage#b:B`` | ``all#NN``, ``prefix#P#NN``, ``type#EXT#NN``: the Usage
  fields, moved in the transaction that changes versions (stored_bytes by the jobs); each
  in USAGE_SHARDS rows chosen by the key and summed on read, because DynamoDB cancels
  concurrent transactions that touch one item, and every write to a bucket moves these.
  A bucket's ``all#NN`` rows also mirror its ``versioning`` and ``deleting``: a version
  write's update of its row is conditional on them (the bucket item is not touched, so
  writes to one bucket do not all meet on it); bucket changes write all the rows.
- ``link#FILE | tenant`` and ``link#FILE | bucket#B``: how many versions link a file, in its
  tenant and in one bucket. ``rel`` on the tenant item while the file is being released.
- ``jobs#NN | FILE#ID``: a pending job, put in the transaction where a file's link count in
  a scope crossed 0: add or drop its chunks in that scope's chunk counts (``stored_bytes``)
  and, when the last link went, release the file (``store_namespace_jobs``).
- ``jobdone#FILE#ID | NO``: batch NO of that job (one of several batches) was applied: an
  item per batch, not on the job item, since transactions that write one item at once
  cancel each other. Kept while the job is pending and until ``expires`` after it
  (``JOB_MARK_TTL`` after the job finished; DynamoDB's TTL deletes it), so a runner that
  read the job before it finished cannot apply a batch again.
- ``unlinked#NN | FILE``: a PutObject's file that is recorded before the write that links
  it (a file too big for one transaction with its link, ``store_namespace_create``): put
  first, deleted once the link is written (and the file's ``unl`` mark, which keeps it out
  of the lookups by content, removed) or the file deleted again; one older than a grace
  period is resolved by ``finish_namespace_jobs`` (the file deleted unless linked or being
  released).
- ``history#T | AT``: the usage history's samples (``store_usage_history``).
- ``chunks#t:T`` / ``chunks#b:B`` | CHUNK: how many linked manifest entries of the scope
  reference the chunk (its bytes count in ``stored_bytes`` while > 0).
- ``mpu#ID``, ``mpuk#B``, ``mpuage``: S3 multipart uploads and their parts (their layout
  is ``store_multipart``'s).

``objects`` table

- ``head#B | KEY``: every key that has versions: the latest version (or delete marker) in
  full, ``lsk`` (its version sort key, left out when it is the version id: ``latest_vsk``), ``nsk`` (the ``null`` version's, if any), ``nv``
  (versions and markers), ``rev`` (bumped by every change: the condition of every write).
- ``list#B | KEY``: the latest version of keys whose latest is not a delete marker: what
  list_objects reads, one Query per page, nothing filtered out.
- ``ver#B/KEY | VSK``: every version and delete marker; VSK sorts newest first (an inverted
  microsecond time, then the version id's random part, or ``-null``).
- ``tag#B/TAGKEY | KEY`` (value ``v``) and ``ctype#B/MAJOR | KEY`` (``ct``): sparse search
  index items of the latest live version, written with it.

A version's attributes (``version_attrs``) are the same in its version, head and listed
items: a value equal to its default is left out (``VERSION_DEFAULTS``; the etag when it is
the sha256), the file id and sha256 are stored as their 16 and 32 bytes, and the object
key (and a ``ver#`` item's version id) is read from the item's own keys. Items written before that hold every attribute as
text and the key as ``k``; ``version_record`` reads both.

Sort keys are object keys themselves (at most 1,024 bytes, DynamoDB's sort key limit), so
Queries return keys in UTF-8 byte order, S3's listing order.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import uuid
import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from dfs.errors import InvalidRequest
from dfs.meta.dynamo.codec import N, S, int_of
from dfs.meta.namespace import (
    ACCESS_PRIVATE,
    NULL_VERSION,
    VERSIONING_UNVERSIONED,
    BucketRecord,
    NewObject,
    ObjectVersion,
    Usage,
    encodable_text,
    version_of,
)

Item = dict[str, Any]

_HEX64 = re.compile(r"[0-9a-f]{64}")
USAGE_SHARDS = 8
JOB_SHARDS = 16
TTL_ATTRIBUTE = "expires"
"""The namespace table's TTL attribute (``schema.TABLES``): set only on items that expire."""
UNLINKED_SHARDS = 4
_INV_MAX = 16**16 - 1
USAGE_FIELDS = ("objects", "versions", "delete_markers", "logical_bytes", "stored_bytes")


# --- keys ---------------------------------------------------------------------------------


def bucket_key(name: str) -> Item:
    return {"p": S(f"bucket#{name}"), "s": S("-")}


def key_of(p: str, s: str) -> Item:
    return {"p": S(p), "s": S(s)}


def head_key(bucket: str, key: str) -> Item:
    return key_of(f"head#{bucket}", key)


def listed_key(bucket: str, key: str) -> Item:
    return key_of(f"list#{bucket}", key)


def version_key(bucket: str, key: str, vsk: str) -> Item:
    return key_of(f"ver#{bucket}/{key}", vsk)


def tag_key(bucket: str, tag: str, key: str) -> Item:
    return key_of(f"tag#{bucket}/{tag}", key)


def ctype_partition(bucket: str, content_type: str) -> str:
    return f"ctype#{bucket}/{content_type.split('/', 1)[0].lower()}"


def link_key(file_id: str, scope: str) -> Item:
    """``scope`` "tenant" or "bucket#B"."""
    return key_of(f"link#{file_id}", scope)


def job_partition(file_id: str) -> str:
    return f"jobs#{zlib.crc32(file_id.encode()) % JOB_SHARDS:02d}"


def job_batch_done_key(job_sort_key: str, no: int) -> Item:
    """The item that says batch ``no`` of the job ``job_sort_key`` (``FILE#uuid``: one job's
    own) was applied (``store_namespace_jobs``)."""
    return key_of(f"jobdone#{job_sort_key}", f"{no:08d}")


def unlinked_key(file_id: str) -> Item:
    return key_of(f"unlinked#{zlib.crc32(file_id.encode()) % UNLINKED_SHARDS:02d}", file_id)


def usage_partition(scope: str) -> str:
    """``scope`` "t:TENANT" or "b:BUCKET"."""
    return f"usage#{scope}"


def usage_shard_after(key: str, n: int) -> str:
    """The ``n``-th row after ``usage_shard(key)``'s: ``USAGE_SHARDS`` consecutive ``n`` name
    different rows (a job's batches in flight at once move different rows)."""
    return f"all#{(zlib.crc32(key.encode()) + n) % USAGE_SHARDS:02d}"


def usage_shard(key: str) -> str:
    """The row of a scope's totals that a change of ``key`` moves."""
    return f"all#{zlib.crc32(key.encode()) % USAGE_SHARDS:02d}"


def usage_group_row(kind: str, group: str, key: str) -> str:
    """The row of a prefix or type group (``kind`` "prefix" or "type") that a change of
    ``key`` moves: sharded as the totals are."""
    return f"{kind}#{group}#{zlib.crc32(key.encode()) % USAGE_SHARDS:02d}"


def group_of(row: str, kind: str) -> str:
    return row[len(kind) + 1 :].rsplit("#", 1)[0]


# --- version ids ---------------------------------------------------------------------------


def inverted(now: float) -> int:
    return _INV_MAX - int(now * 1_000_000)


def inv_of(vsk: str) -> int:
    return int(vsk[:16], 16)


def new_vsk(now: float, latest_vsk: str | None, null: bool) -> str:
    """A version sort key that sorts before (is newer than) the key's current latest."""
    inv = inverted(now)
    if latest_vsk is not None:
        inv = min(inv, inv_of(latest_vsk) - 1)
    return f"{inv:016x}" + ("-null" if null else secrets.token_hex(4))


def version_id_of(vsk: str) -> str:
    return NULL_VERSION if vsk.endswith("-null") else vsk


def is_version_id(version_id: str) -> bool:
    if len(version_id) != 24:
        return False
    try:
        int(version_id, 16)
    except ValueError:
        return False
    return version_id == version_id.lower()


# --- buckets -------------------------------------------------------------------------------


def bucket_item(rec: BucketRecord) -> Item:
    return {
        **bucket_key(rec.name),
        "tenant": S(rec.tenant),
        "created_at": N(float(rec.created_at)),
        "versioning": S(rec.versioning),
        "access": S(rec.access),
        "grants": S(json.dumps([list(g) for g in rec.grants])),
    }


def bucket_record(item: Item) -> BucketRecord:
    return BucketRecord(
        name=item["p"]["S"].removeprefix("bucket#"),
        tenant=item["tenant"]["S"],
        created_at=float(item["created_at"]["N"]),
        versioning=item.get("versioning", S(VERSIONING_UNVERSIONED))["S"],
        access=item.get("access", S(ACCESS_PRIVATE))["S"],
        grants=tuple((g, r) for g, r in json.loads(item.get("grants", S("[]"))["S"])),
    )


# --- versions ------------------------------------------------------------------------------


def _pairs(value: Iterable[Sequence[str]]) -> str:
    return json.dumps(sorted([str(a), str(b)] for a, b in value))


def _packed_id(value: str) -> Item:
    """A file id or sha256 as stored: its 16 or 32 bytes when it is a canonical (lowercase)
    UUID or 64 lowercase hex digits, else its text."""
    if _HEX64.fullmatch(value):
        return {"B": bytes.fromhex(value)}
    try:
        u = uuid.UUID(value)
    except ValueError:
        return S(value)
    return {"B": u.bytes} if str(u) == value else S(value)


def _file_id_of(item: Item) -> str:
    value = item.get("fid", S(""))
    return str(uuid.UUID(bytes=bytes(value["B"]))) if "B" in value else str(value["S"])


def _sha256_of(item: Item) -> str:
    value = item.get("sha", S(""))
    return bytes(value["B"]).hex() if "B" in value else str(value["S"])


def version_attrs(v: ObjectVersion) -> Item:
    """The attributes of a version as version, head and listed items carry them: a value
    that is its default is left out (most versions: no metadata, tags or sharing, private,
    the etag the sha256) and ids are stored as their bytes (``VERSION_DEFAULTS``)."""
    item: Item = {
        "vid": S(v.version_id),
        "sz": N(v.size),
        "t": N(float(v.created_at)),
        "ct": S(v.content_type),
    }
    if v.file_id:
        item["fid"] = _packed_id(v.file_id)
    if v.sha256:
        item["sha"] = _packed_id(v.sha256)
    if v.etag != v.sha256:
        item["et"] = S(v.etag)
    optional = {
        "um": _pairs(v.user_metadata),
        "tg": _pairs(v.tags),
        "ac": v.access,
        "sw": json.dumps(sorted(v.shared_with)),
    }
    item.update({a: S(text) for a, text in optional.items() if text != VERSION_DEFAULTS[a]})
    if v.is_delete_marker:
        item["dm"] = N(1)
    if v.headers:  # most versions have none: the attribute is left out (old items too)
        item["hd"] = S(_pairs(v.headers))
    return item


VERSION_DEFAULTS = {"um": "[]", "tg": "[]", "ac": ACCESS_PRIVATE, "sw": "[]"}
"""What a version item's missing ``um``, ``tg``, ``ac``, ``sw`` attributes mean. Items written
before they were left out hold every attribute (ids as text): both read the same."""


def _text(item: Item, attr: str) -> str:
    return str(item[attr]["S"]) if attr in item else VERSION_DEFAULTS[attr]


def _key_of(bucket: str, item: Item) -> str:
    """A version item's object key: the sort key of head and listed items, the end of the
    partition key of version items (``k`` in items written before it was left out)."""
    if "k" in item:
        return str(item["k"]["S"])
    p, versions = item["p"]["S"], f"ver#{bucket}/"
    return str(p[len(versions) :] if p.startswith(versions) else item["s"]["S"])


def version_item(bucket: str, vsk: str, v: ObjectVersion) -> Item:
    """A ``ver#`` item: its sort key spells the version id, so ``vid`` is left out."""
    attrs = version_attrs(v)
    if version_id_of(vsk) == v.version_id:
        del attrs["vid"]
    return {**version_key(bucket, v.key, vsk), **attrs}


def latest_vsk(head: Item) -> str:
    """The sort key of a head item's version: ``lsk``, left out when it is the version id."""
    return str(head["lsk"]["S"] if "lsk" in head else head["vid"]["S"])


def version_record(bucket: str, item: Item, is_latest: bool) -> ObjectVersion:
    sha256 = _sha256_of(item)
    return ObjectVersion(
        bucket=bucket,
        key=_key_of(bucket, item),
        version_id=item["vid"]["S"] if "vid" in item else version_id_of(item["s"]["S"]),
        file_id=_file_id_of(item),
        size=int(item["sz"]["N"]),
        created_at=float(item["t"]["N"]),
        is_latest=is_latest,
        is_delete_marker="dm" in item,
        etag=item["et"]["S"] if "et" in item else sha256,
        sha256=sha256,
        content_type=item["ct"]["S"],
        user_metadata=tuple((a, b) for a, b in json.loads(_text(item, "um"))),
        tags=tuple((a, b) for a, b in json.loads(_text(item, "tg"))),
        access=_text(item, "ac"),
        shared_with=tuple(json.loads(_text(item, "sw"))),
        headers=tuple((a, b) for a, b in json.loads(item["hd"]["S"])) if "hd" in item else (),
    )


def new_version(obj: NewObject, vsk: str, now: float) -> ObjectVersion:
    return version_of(obj, version_id_of(vsk), now)


def delete_marker(bucket: str, key: str, vsk: str, now: float) -> ObjectVersion:
    return ObjectVersion(
        bucket=bucket,
        key=key,
        version_id=version_id_of(vsk),
        file_id="",
        size=0,
        created_at=now,
        is_delete_marker=True,
        content_type="",
    )


# --- usage ---------------------------------------------------------------------------------


def usage_of(items: Iterable[Mapping[str, Any]]) -> Usage:
    """The sum of usage items (the shards of one scope, or one row)."""
    totals = dict.fromkeys(USAGE_FIELDS, 0)
    for item in items:
        for f in USAGE_FIELDS:
            totals[f] += int_of(dict(item), f)
    return Usage(**totals)


def is_empty(u: Usage) -> bool:
    return u.versions == 0 and u.delete_markers == 0 and u.objects == 0


# --- page tokens ---------------------------------------------------------------------------


def encode_token(state: Mapping[str, str]) -> str:
    raw = json.dumps(dict(state), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str | None) -> dict[str, str]:
    if not token:
        return {}
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        state = json.loads(raw)
    except (ValueError, binascii.Error):
        raise InvalidRequest("invalid continuation token") from None
    if not isinstance(state, dict) or not _token_state(state):
        raise InvalidRequest("invalid continuation token")
    return state


def _token_state(state: dict[str, object]) -> bool:
    """Whether a decoded token is one the listings make (``{}``: from the start; ``s`` "gt"
    or "ge" a key ``k``; "in" key ``k``'s versions after sort key ``v``): a forged one is
    refused, never sent to DynamoDB as a key condition it rejects (an empty key, a missing
    field)."""
    if not state:
        return True
    if not all(encodable_text(v) for v in state.values()):
        return False
    fields = {"s", "k", "v"} if state.get("s") == "in" else {"s", "k"}
    return set(state) == fields and state["s"] in ("gt", "ge", "in") and state["k"] != ""
