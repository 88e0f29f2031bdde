"""Item <-> record codecs of the DynamoDB store: how each record of ``dfs.meta.base`` is laid
out as a DynamoDB item in the low-level wire form (``{"S": ...}``, ``{"N": ...}``), and how
manifest entries are packed into items.

Pure functions, no requests: the store modules build requests from these and read answers
back through them, so the layout of an item is written down once. ``S``/``N`` are named after
the wire form's type tags they produce.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import re
import struct
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

from dfs.meta.base import (
    FILE_COMPLETE,
    FILE_PENDING,
    ChunkInfo,
    ChunkState,
    FileRecord,
    Lease,
    ManifestEntry,
    NodeRecord,
    TokenRecord,
)
from dfs.meta.dynamo.schema import TABLES

Item = dict[str, Any]  # a DynamoDB item in the low-level wire form

FILE_COMMITTING = "committing"  # internal: reported as pending
FILE_DELETING = "deleting"  # internal: reported as pending, finished by delete_file
# On a file item: a file recorded before the write that links it, deleted if that link does
# not come (the two-write path of ``store_namespace_create``, a cross-tenant copy's own file):
# no lookup by content hands it out until it is linked. Also set, with no deletion pending,
# by a commit ``for_object`` (``commit_file``): the object writer links it next.
UNLINKED_ATTR = "unl"
# On a chunk item: garbage collection deleted the chunk (``delete_chunk_if_unreferenced``) at
# this wall-clock time. The item keeps only its key and this mark (a tombstone, which no read
# returns) so that a commit that took the chunk as held cannot recreate it over the deleted
# copies (``store_refcounts``); ``add_locations`` records a copy sent again on it as on a new
# item, and a scan drops it after ``store_chunks.TOMBSTONE_TTL``.
GONE_ATTR = "gone"
KEEP_ATTR = "keep"  # on a tombstone: seconds it is kept (the longer of a day and the GC grace)


def is_tombstone(item: Item) -> bool:
    """A collected chunk's tombstone: ``GONE_ATTR`` and no refcount. An API process older
    than tombstones may have recorded a copy or a reference on one (its writes know nothing
    of ``GONE_ATTR``): that item is a chunk again, never hidden or dropped as collected."""
    return GONE_ATTR in item and "refcount" not in item


# The attributes of a FileRecord, as the by-tenant index projects them.
FILE_ATTRS = (
    "file_id",
    *TABLES["files"]["GlobalSecondaryIndexes"][0]["Projection"]["NonKeyAttributes"],
)
# ... and what the index does not project (tables made before files kept them), which only
# reads of the item itself return.
FILE_ITEM_ATTRS = (*FILE_ATTRS, "mode", "mtime", "sha256_verified")
# ... and with the manifest (or where its pages are).
FILE_WITH_MANIFEST_ATTRS = (*FILE_ITEM_ATTRS, "mid", "pages", "mf", "m", "apages")
COUNTERS = ("total_files", "logical_bytes", "stored_bytes", "unique_chunks", "duplicates_avoided")

_ENTRY = struct.Struct(">QQ32s")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")


def S(value: str) -> dict[str, str]:
    return {"S": value}


def N(value: float) -> dict[str, str]:
    return {"N": repr(value) if isinstance(value, float) else str(int(value))}


def attr_names(*attrs: str) -> dict[str, str]:
    """ExpressionAttributeNames that alias every attribute as ``#name``."""
    return {f"#{a}": a for a in attrs}


def projection(attrs: Sequence[str]) -> str:
    """A ProjectionExpression of ``attrs`` through their ``#name`` aliases."""
    return ", ".join(f"#{a}" for a in attrs)


def int_of(item: Item, attr: str, default: int = 0) -> int:
    return int(item[attr]["N"]) if attr in item else default


def string_set(item: Item, attr: str) -> set[str]:
    return set(item.get(attr, {}).get("SS", []))


# --- nodes ------------------------------------------------------------------------------------


def node_item(n: NodeRecord) -> Item:
    return {
        "node_id": S(n.node_id),
        "host": S(n.host),
        "port": N(n.port),
        "zone": S(n.zone),
        "capacity_bytes": N(n.capacity_bytes),
        "used_bytes": N(n.used_bytes),
        "status": S(n.status),
        "last_heartbeat": N(float(n.last_heartbeat)),
        "expires_at": N(float(n.expires_at)),
        "disk_id": S(n.disk_id),
        "boot": N(n.boot),
        "seq": N(n.seq),
    }


def node_record(item: Item) -> NodeRecord:
    return NodeRecord(
        node_id=item["node_id"]["S"],
        host=item["host"]["S"],
        port=int(item["port"]["N"]),
        zone=item["zone"]["S"],
        capacity_bytes=int(item["capacity_bytes"]["N"]),
        used_bytes=int(item["used_bytes"]["N"]),
        status=item["status"]["S"],
        last_heartbeat=float(item["last_heartbeat"]["N"]),
        expires_at=float(item["expires_at"]["N"]),
        disk_id=item.get("disk_id", {}).get("S", ""),  # absent in items written before it
        boot=int(item.get("boot", {}).get("N", "0")),  # and these too
        seq=int(item.get("seq", {}).get("N", "0")),
    )


# --- files ------------------------------------------------------------------------------------


def file_item(rec: FileRecord, state: str, mid: str, chunk_count: int) -> Item:
    """A file item without its manifest (``pages`` and inline ``m``/``mf`` are added to it)."""
    item: Item = {
        "file_id": S(rec.file_id),
        "tenant": S(rec.tenant),
        "name": S(rec.name),
        "size": N(rec.size),
        "sha256": S(rec.sha256),
        "chunker": S(rec.chunker),
        "state": S(state),
        "created_at": N(float(rec.created_at)),
        "chunk_count": N(chunk_count),
        "mid": S(mid),
    }
    if rec.mode is not None:
        item["mode"] = N(rec.mode)
    if rec.mtime is not None:
        item["mtime"] = N(float(rec.mtime))
    if rec.sha256_verified:
        item["sha256_verified"] = {"BOOL": True}
    if rec.for_object:
        item[UNLINKED_ATTR] = S("1")  # kept out of the lookup by content until its link
    if state == FILE_COMPLETE:
        item["listed_tenant"] = S(rec.tenant)
    return item


def file_record(item: Item) -> FileRecord:
    """The file an item describes; the internal states committing/deleting read as pending."""
    state = item["state"]["S"]
    return FileRecord(
        file_id=item["file_id"]["S"],
        name=item["name"]["S"],
        size=int(item["size"]["N"]),
        sha256=item["sha256"]["S"],
        chunker=item["chunker"]["S"],
        tenant=item["tenant"]["S"],
        state=FILE_COMPLETE if state == FILE_COMPLETE else FILE_PENDING,
        created_at=float(item["created_at"]["N"]),
        chunk_count=int(item["chunk_count"]["N"]),
        mode=int(item["mode"]["N"]) if "mode" in item else None,
        mtime=float(item["mtime"]["N"]) if "mtime" in item else None,
        sha256_verified=bool(item.get("sha256_verified", {}).get("BOOL", False)),
    )


# --- manifests --------------------------------------------------------------------------------


def encode_entries(entries: Sequence[ManifestEntry], sha256: str = "") -> tuple[str, bytes]:
    """(format, bytes): "b" = 48-byte binary records; "z" = zlib'd JSON for odd ids; "w" =
    one chunk at offset 0 whose id is the file's ``sha256`` (a whole single-chunk file, the
    common small file): only its size, 8 bytes."""
    if len(entries) == 1 and sha256 and entries[0].chunk_id == sha256 and not entries[0].offset:
        return "w", struct.pack(">Q", entries[0].size)
    try:
        out = bytearray()
        for e in entries:
            if not _SHA256_RE.fullmatch(e.chunk_id):
                raise ValueError(e.chunk_id)
            out += _ENTRY.pack(e.offset, e.size, bytes.fromhex(e.chunk_id))
        return "b", bytes(out)
    except (ValueError, struct.error):
        rows = [[e.offset, e.size, e.chunk_id] for e in entries]
        return "z", zlib.compress(json.dumps(rows, separators=(",", ":")).encode())


def decode_entries(fmt: str, data: bytes, sha256: str = "") -> list[ManifestEntry]:
    """The entries ``encode_entries`` packed (with the same ``sha256`` for "w")."""
    if fmt == "w":
        return [ManifestEntry(0, struct.unpack(">Q", data)[0], sha256)]
    if fmt == "b":
        return [ManifestEntry(o, s, c.hex()) for o, s, c in _ENTRY.iter_unpack(data)]
    return [ManifestEntry(o, s, c) for o, s, c in json.loads(zlib.decompress(data))]


def page_key(mid: str, no: int) -> Item:
    """The key of page ``no`` of manifest ``mid``."""
    return {"mid": S(mid), "part": S(f"p{no:06d}")}


def appended_page_key(mid: str, no: int) -> Item:
    """The key of page ``no`` appended to a paged upload's manifest ``mid``."""
    return {"mid": S(mid), "part": S(f"{APPENDED}{no:06d}")}


APPENDED = "a"  # the part prefix of appended pages


def marker_item(mid: str, kind: str, no: int, now: float) -> Item:
    """Batch ``no`` of a big file's refcounts is applied: kind "c" by commit, "d" by delete."""
    return {"mid": S(mid), "part": S(f"{kind}{no:06d}"), "at": N(float(now))}


@dataclasses.dataclass(frozen=True, slots=True)
class Ref:
    """A distinct chunk of a manifest: how many entries reference it, and its size."""

    chunk_id: str
    count: int
    size: int


def refs_of(manifest: Iterable[ManifestEntry]) -> list[Ref]:
    """The distinct chunks of a manifest, sorted by id (so batches are a pure function of it)."""
    counts: collections.Counter[str] = collections.Counter()
    sizes: dict[str, int] = {}
    for e in manifest:
        counts[e.chunk_id] += 1
        sizes[e.chunk_id] = max(sizes.get(e.chunk_id, 0), e.size)
    return [Ref(c, counts[c], sizes[c]) for c in sorted(counts)]


# --- chunks, tokens, leases -------------------------------------------------------------------


def location_key(chunk_id: str, node_id: str) -> Item:
    return {"chunk_id": S(chunk_id), "node_id": S(node_id)}


def chunk_info(item: Item) -> ChunkInfo:
    return ChunkInfo(
        item["chunk_id"]["S"],
        int(item["size"]["N"]),
        int_of(item, "refcount"),
        float(item["created_at"]["N"]),
    )


def chunk_state(item: Item) -> ChunkState:
    """A chunk as garbage collection sees it: last touched at creation or when unreferenced."""
    created = float(item["created_at"]["N"])
    unref = float(item.get("unref_at", {"N": "0"})["N"])
    return ChunkState(
        item["chunk_id"]["S"],
        int(item["size"]["N"]),
        int_of(item, "refcount"),
        frozenset(string_set(item, "nodes")),
        max(created, unref),
    )


def auth_key(kind: str, id_: str) -> Item:
    """Tenants (kind "tenant") and tokens (kind "token") share the auth table."""
    return {"kind": S(kind), "id": S(id_)}


def token_item(rec: TokenRecord) -> Item:
    return {
        **auth_key("token", rec.token_hash),
        "tenant": S(rec.tenant),
        "role": S(rec.role),
        "label": S(rec.label),
        "created_at": N(float(rec.created_at)),
    }


def token_record(token_hash: str, item: Item) -> TokenRecord:
    return TokenRecord(
        token_hash=token_hash,
        tenant=item["tenant"]["S"],
        role=item["role"]["S"],
        label=item["label"]["S"],
        created_at=float(item["created_at"]["N"]),
    )


def lease_key(name: str) -> Item:
    return {"counter": S(f"lease#{name}")}


def lease_record(name: str, item: Item) -> Lease:
    return Lease(name, item["owner"]["S"], float(item["expires_at"]["N"]), item["info"]["S"])
