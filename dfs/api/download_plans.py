"""Download plans: where each chunk of a complete file is, with a read capability per replica;
one file (``/download-plan``, signed downloads) or many (``/download-plans``).

No amplification: the plans of one ``/download-plans`` answer hold at most
``MAX_PLANNED_CHUNKS`` chunks in all, repeated ids counted each time (the answer repeats
them). Ids are taken in order, each if it still fits; the first complete file always fits
(no file has more chunks), those that do not answer ``{"file_id", "error": {"code": "payload_too_large"}}``
and are asked for again in another request. Each distinct file's record and plan is read and
built once: the records of all the answer's files in one metadata call, their manifests in
another, the live nodes and the locations of all its chunks once per answer.
Answers of more than ``PLAN_IN_THREAD`` chunks are built in a worker thread, so a
100,000-chunk plan (placement order and an HMAC per replica) never stalls the event loop.

Batched answers (``"batched": true``, what clients restoring directories ask for): the
chunks of the answer's files of at most ``protocol.BATCHED_FILE_MAX`` bytes are grouped into
read batches, one ``get-batch`` capability each instead of a ``get`` capability per chunk
and replica (issue 19): every distinct chunk is in one batch per live holder, grouped by
its holder of that rank (its first-ranked holders' batches come first, so a client asks
those first and the others only for what failed), at most ``READ_BATCH_CHUNKS`` chunks and
``READ_BATCH_BYTES`` bytes each. Each capability binds the holder, the SHA-256 of the
batch's ordered chunk ids and the tenant: it is minted only over chunks of the tenant's own
complete files, and a node serves no other chunk with it. Those files' replicas then name
their batch and position (``"batch"``, ``"at"``) instead of carrying a ``cap``; bigger files
keep per-chunk capabilities (they are read chunk by chunk).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dfs import auth, protocol
from dfs.api.bodies import (
    DEFAULT_TENANT,
    distinct_chunks,
    error_entry,
    file_body,
    node_ref,
    with_local_attrs,
)
from dfs.api.coordinator import PLAN_IN_THREAD, Coordinator
from dfs.durability_policy import rank_nodes
from dfs.errors import DfsError, FileNotFound, InvalidRequest, PayloadTooLarge, Unavailable
from dfs.meta.base import FILE_COMPLETE, FileRecord, ManifestEntry, NodeRecord

MAX_PLANNED_CHUNKS = protocol.MAX_CHUNKS_PER_FILE
"""Chunks all the plans of one /download-plans answer may hold: the work and the bytes of one
request stay those of one file of the largest size, however many ids it names (one
100,000-chunk file's id repeated 1000 times built and sent 1000 plans of ~140 MiB each)."""


Ranked = Mapping[str, list[NodeRecord]]
"""chunk id -> its live holders, best first."""
Refs = Mapping[tuple[str, str], tuple[int, int]]
"""(chunk id, node id) -> (read batch, position in it)."""


def _ranked(
    chunk_ids: Iterable[str], locations: Mapping[str, set[str]], live: Mapping[str, NodeRecord]
) -> dict[str, list[NodeRecord]]:
    return {
        c: rank_nodes(c, [live[h] for h in locations.get(c, ()) if h in live]) for c in chunk_ids
    }


def _replicas(
    coord: Coordinator,
    file_id: str,
    chunk_ids: Iterable[str],
    ranked: Ranked,
    refs: Refs | None,
    compact: bool = False,
) -> dict[str, list[dict[str, Any]]]:
    """Each chunk's live holders, best first, each with a read capability (or, with
    ``refs``, the read batch and position that hold it on that holder; ``compact``: only
    those, the batch names the holder)."""
    replicas: dict[str, list[dict[str, Any]]] = {}
    for chunk_id in chunk_ids:
        up = ranked[chunk_id]
        if not up:
            raise Unavailable(
                f"chunk {chunk_id[:12]} of file {file_id} has no live replica right now"
            )
        if refs is None:
            replicas[chunk_id] = [
                {**node_ref(n), "cap": coord.cap(auth.OP_GET, chunk_id, n.node_id)} for n in up
            ]
        else:
            at = [refs[chunk_id, n.node_id] for n in up]
            if compact:
                replicas[chunk_id] = [{"batch": b, "at": pos} for b, pos in at]
                continue
            replicas[chunk_id] = [
                {**node_ref(n), "batch": b, "at": pos} for n, (b, pos) in zip(up, at, strict=True)
            ]
    return replicas


def _body(
    coord: Coordinator,
    rec: FileRecord,
    manifest: Sequence[ManifestEntry],
    ranked: Ranked,
    refs: Refs | None = None,
    compact: bool = False,
) -> dict[str, Any]:
    replicas = _replicas(coord, rec.file_id, distinct_chunks(manifest), ranked, refs, compact)
    if compact:
        body = compact_file(rec)
    else:
        body = file_body(rec)
        body["replication_factor"] = coord.rf
    body["chunks"] = [
        {"offset": e.offset, "size": e.size, "sha256": e.chunk_id, "replicas": replicas[e.chunk_id]}
        for e in manifest
    ]
    return body


def compact_file(rec: FileRecord) -> dict[str, Any]:
    """What a compact plan says of its file: what a client writes and checks, no more (no
    chunker, state, creation time, chunk count or replication factor)."""
    body: dict[str, Any] = {
        "file_id": rec.file_id,
        "name": rec.name,
        "size": rec.size,
        "sha256": rec.sha256,
    }
    return with_local_attrs(body, rec)


def single_chunk(rec: FileRecord) -> list[ManifestEntry] | None:
    """The manifest of a file of one chunk whose sha256 this service computed: that chunk
    is the whole file, so its id is the file's sha256 (no metadata read; the chunk is still
    verified against that id when read). None for any other file."""
    if rec.chunk_count == 1 and rec.size > 0 and rec.sha256_verified:
        return [ManifestEntry(0, rec.size, rec.sha256)]
    return None


async def plan_of(coord: Coordinator, rec: FileRecord) -> dict[str, Any]:
    """The download plan of complete file ``rec``."""
    manifest = single_chunk(rec) or await coord.meta.get_manifest(rec.file_id)
    live = {n.node_id: n for n in await coord.live_nodes()}
    ids = list(distinct_chunks(manifest))
    locations = await coord.meta.get_locations(ids)
    if len(manifest) <= PLAN_IN_THREAD:
        return _body(coord, rec, manifest, _ranked(ids, locations, live))
    return await asyncio.to_thread(
        lambda: _body(coord, rec, manifest, _ranked(ids, locations, live))
    )


async def plan(coord: Coordinator, file_id: str, tenant: str = DEFAULT_TENANT) -> dict[str, Any]:
    """The download plan of the tenant's complete file ``file_id`` (404 for anyone else's)."""
    return await plan_of(coord, await coord.get_complete_file(file_id, tenant))


@dataclass
class PlanSelection:
    """What one /download-plans answer holds: each asked id's record (or why it has none),
    which positions this answer plans (within MAX_PLANNED_CHUNKS) and the chunks planned."""

    file_ids: list[str]
    records: dict[str, FileRecord | DfsError]
    tenant: str = DEFAULT_TENANT
    batched: bool = False
    """Read batches for the small files (see the module's docstring)."""
    compact: bool = False
    """Compact plans (``compact_file``; batched replicas without the holder's id and url)."""
    fits: list[bool] = field(default_factory=list)
    """Per position of ``file_ids``: planned in this answer (an error entry otherwise)."""
    chunks: int = 0

    def over_budget(self, file_id: str) -> DfsError:
        return PayloadTooLarge(
            f"this answer already plans {self.chunks} chunks, at most {MAX_PLANNED_CHUNKS} "
            f"per request: ask for file {file_id} in another request"
        )


async def select(
    coord: Coordinator,
    file_ids: Sequence[str],
    tenant: str = DEFAULT_TENANT,
    *,
    batched: bool = False,
    compact: bool = False,
) -> PlanSelection:
    """Which of ``file_ids`` one answer plans (see the module's docstring)."""
    distinct = list(dict.fromkeys(file_ids))
    found = await coord.meta.get_files(distinct, tenant)
    records: dict[str, FileRecord | DfsError] = {}
    for file_id in distinct:
        got = found.get(file_id)
        # unfinished files, and other tenants' files, do not exist to readers
        complete = got is not None and got.state == FILE_COMPLETE
        records[file_id] = (
            got if got is not None and complete else FileNotFound(f"no file {file_id}")
        )
    sel = PlanSelection(list(file_ids), records, tenant, batched, compact)
    for file_id in file_ids:
        rec = records[file_id]
        # the first file always fits: a paged upload's may have more chunks than the bound
        first = not any(sel.fits)
        fits = isinstance(rec, FileRecord) and (
            first or sel.chunks + rec.chunk_count <= MAX_PLANNED_CHUNKS
        )
        if fits and isinstance(rec, FileRecord):
            sel.chunks += rec.chunk_count
        sel.fits.append(fits)
    return sel


@dataclass
class ReadBatches:
    """The read batches of one batched answer and where each chunk is in them."""

    batches: list[dict[str, Any]] = field(default_factory=list)
    refs: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)


def _split(items: list[tuple[str, int]]) -> Iterator[list[str]]:
    part: list[str] = []
    size = 0
    for chunk_id, n in items:
        full = len(part) >= protocol.READ_BATCH_CHUNKS or size + n > protocol.READ_BATCH_BYTES
        if part and full:
            yield part
            part, size = [], 0
        part.append(chunk_id)
        size += n
    if part:
        yield part


def plan_batches(
    coord: Coordinator, tenant: str, sizes: Mapping[str, int], ranked: Ranked
) -> ReadBatches:
    """Read batches over the chunks ``sizes`` names (id -> size, distinct), each chunk in
    one batch per live holder; the batches of first-ranked holders come first."""
    groups: dict[tuple[int, str], list[tuple[str, int]]] = {}
    for chunk_id, size in sizes.items():
        for rank, node in enumerate(ranked[chunk_id]):
            groups.setdefault((rank, node.node_id), []).append((chunk_id, size))
    nodes = {n.node_id: n for up in ranked.values() for n in up}
    out = ReadBatches()
    for (_rank, node_id), items in sorted(groups.items(), key=lambda kv: kv[0][0]):
        for ids in _split(items):
            index = len(out.batches)
            for pos, chunk_id in enumerate(ids):
                out.refs[chunk_id, node_id] = (index, pos)
            cap = coord.cap(auth.OP_GET_BATCH, protocol.list_sha256(ids), node_id, tenant)
            batch = {**node_ref(nodes[node_id]), "tenant": tenant, "chunk_ids": ids, "cap": cap}
            out.batches.append(batch)
    return out


def _batched_sizes(
    wanted: Mapping[str, FileRecord], manifests: Mapping[str, list[ManifestEntry]]
) -> dict[str, int]:
    """chunk id -> size of the chunks of the files read through batches, distinct."""
    sizes: dict[str, int] = {}
    for file_id, rec in wanted.items():
        if rec.size <= protocol.BATCHED_FILE_MAX:
            for e in manifests[file_id]:
                sizes.setdefault(e.chunk_id, e.size)
    return sizes


async def build(coord: Coordinator, sel: PlanSelection) -> list[dict[str, Any]]:
    """The answer's plans (``answer`` without the batches)."""
    plans, _batches = await answer_parts(coord, sel)
    return plans


async def answer(coord: Coordinator, sel: PlanSelection) -> dict[str, Any]:
    """The ``/download-plans`` answer: ``{"plans"}``, plus ``"batches"`` when batched."""
    plans, batches = await answer_parts(coord, sel)
    out: dict[str, Any] = {"plans": plans}
    if sel.batched:
        out["batches"] = batches
    return out


async def answer_parts(
    coord: Coordinator, sel: PlanSelection
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The answer's entries in order (a plan or ``{"file_id", "error"}`` each; each
    distinct file's plan is built once) and its read batches. The live nodes are read once
    and the locations of all the answer's chunks in one call, not per file, as are the
    manifests."""
    wanted = {
        f: rec
        for f, fits in zip(sel.file_ids, sel.fits, strict=True)
        if fits and isinstance(rec := sel.records[f], FileRecord)
    }
    manifests = await coord.meta.get_manifests(list(wanted))
    live = {n.node_id: n for n in await coord.live_nodes()}
    ids = list(dict.fromkeys(e.chunk_id for m in manifests.values() for e in m))
    locations = await coord.meta.get_locations(ids)

    def built() -> tuple[dict[str, dict[str, Any] | DfsError], list[dict[str, Any]]]:
        ranked = _ranked(ids, locations, live)
        batches = ReadBatches()
        if sel.batched:
            batches = plan_batches(coord, sel.tenant, _batched_sizes(wanted, manifests), ranked)
        plans: dict[str, dict[str, Any] | DfsError] = {}
        for f, rec in wanted.items():
            small = sel.batched and rec.size <= protocol.BATCHED_FILE_MAX
            try:
                refs = batches.refs if small else None
                plans[f] = _body(coord, rec, manifests[f], ranked, refs, sel.compact)
            except DfsError as exc:
                plans[f] = exc
        return plans, batches.batches

    if sel.chunks <= PLAN_IN_THREAD:
        plans, batches = built()
    else:
        plans, batches = await asyncio.to_thread(built)
    out: list[dict[str, Any]] = []
    for file_id, fits in zip(sel.file_ids, sel.fits, strict=True):
        got = plans[file_id] if fits else sel.records[file_id]
        if isinstance(got, FileRecord):  # a complete file past the budget
            got = sel.over_budget(file_id)
        out.append(error_entry(file_id, got) if isinstance(got, DfsError) else got)
    return out, batches


def parse_flag(body: Mapping[str, Any], name: str) -> bool:
    """A flag of a ``/download-plans`` body (``batched``, ``compact``; default false)."""
    flag = body.get(name, False)
    if not isinstance(flag, bool):
        raise InvalidRequest(f"{name} must be true or false")
    return flag


async def plans(
    coord: Coordinator, file_ids: Sequence[str], tenant: str = DEFAULT_TENANT
) -> list[dict[str, Any]]:
    """The plans of many files, in order, within MAX_PLANNED_CHUNKS."""
    return await build(coord, await select(coord, file_ids, tenant))
