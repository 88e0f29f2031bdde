"""Packs: the small chunks of an ``/init-uploads`` plan grouped into ``/store-chunks`` requests,
each with the one capability its primary checks before reading the body (issue 12).

A node must authorize a batch from its headers, before a byte of the body is read, so the
capability cannot be one per chunk inside the body: it binds the whole batch. The API plans
the batches itself, when it plans the upload: chunks of at most ``PACK_CHUNK_MAX`` bytes with
the same targets (in order) go together, at most ``PACK_MAX_CHUNKS`` chunks and
``PACK_MAX_BYTES`` bytes per pack, and each pack gets one ``put-batch`` capability for its
first target as primary, bound to the forward list naming the others, the SHA-256 of its
ordered chunk-id list and the SHA-256 of the ordered file ids of those chunks
(``protocol.list_sha256``). The client sends each pack as planned, with
``protocol.batch_headers``. The plan's entries of packed chunks carry no per-chunk ``put``
capabilities (minting them was an HMAC per chunk and rotation that a working pack never
used): a pack whose primary fails is sent chunk by chunk with the entries of a
``/resume-upload`` plan, which has them (and rotates the primary).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from dfs import auth, protocol
from dfs.api.coordinator import Coordinator

Entry = tuple[str, dict[str, Any]]  # (file id, plan item)


def _groups(plans: Sequence[dict[str, Any]]) -> Iterator[list[Entry]]:
    """The packable items of ``plans``, one list per target sequence, in plan order."""
    groups: dict[tuple[str, ...], list[Entry]] = {}
    for plan in plans:
        for item in plan["upload"]:
            if int(item["size"]) <= protocol.PACK_CHUNK_MAX:
                key = tuple(str(t["node_id"]) for t in item["targets"])
                groups.setdefault(key, []).append((str(plan["file_id"]), item))
    yield from groups.values()


def _split(group: list[Entry]) -> Iterator[list[Entry]]:
    pack: list[Entry] = []
    size = 0
    for entry in group:
        chunk_size = int(entry[1]["size"])
        full = len(pack) >= protocol.PACK_MAX_CHUNKS
        if pack and (full or size + chunk_size > protocol.PACK_MAX_BYTES):
            yield pack
            pack, size = [], 0
        pack.append(entry)
        size += chunk_size
    if pack:
        yield pack


def pack_cap(
    coord: Coordinator,
    targets: Sequence[dict[str, str]],
    chunk_ids: Sequence[str],
    files: Sequence[str],
) -> str:
    """The ``put-batch`` capability of one pack: ``targets[0]`` as primary, forwarding to the
    others in order."""
    forward = protocol.forward_header([(t["node_id"], t["url"]) for t in targets[1:]])
    extra = protocol.put_cap_extra(
        protocol.list_sha256(files), forward, asynchronous=coord.asynchronous
    )
    digest = protocol.list_sha256(chunk_ids)
    return coord.cap(auth.OP_PUT_BATCH, digest, targets[0]["node_id"], extra)


def plan_packs(coord: Coordinator, plans: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The packs of ``plans`` (``/init-uploads`` answers): ``{"targets", "chunks": [{"file_id",
    "sha256", "size"}], "cap"}`` each."""
    packs = []
    for group in _groups(plans):
        for pack in _split(group):
            targets = pack[0][1]["targets"]
            chunks = [{"file_id": f, "sha256": it["sha256"], "size": it["size"]} for f, it in pack]
            cap = pack_cap(coord, targets, [c["sha256"] for c in chunks], [f for f, _ in pack])
            packs.append({"targets": targets, "chunks": chunks, "cap": cap})
    return packs
