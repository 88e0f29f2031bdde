"""Download plans: where each chunk of a complete file is, with a read capability per replica;
one file (``/download-plan``, signed downloads) or many (``/download-plans``).

No amplification: the plans of one ``/download-plans`` answer hold at most
``MAX_PLANNED_CHUNKS`` chunks in all, repeated ids counted each time (the answer repeats
them). Ids are taken in order, each if it still fits; the first complete file always fits
(no file has more chunks), those that do not answer ``{"file_id", "error": {"code": "payload_too_large"}}``
and are asked for again in another request. Each distinct file's record and plan is read and
built once; the live nodes and the locations of all its chunks are read once per answer.
Answers of more than ``PLAN_IN_THREAD`` chunks are built in a worker thread, so a
100,000-chunk plan (placement order and an HMAC per replica) never stalls the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dfs import auth, protocol
from dfs.api.bodies import DEFAULT_TENANT, distinct_chunks, error_entry, file_body, node_ref
from dfs.api.coordinator import PLAN_IN_THREAD, Coordinator
from dfs.durability_policy import rank_nodes
from dfs.errors import DfsError, PayloadTooLarge, Unavailable
from dfs.meta.base import FileRecord, ManifestEntry, NodeRecord

PLANS_AT_ONCE = 8
"""Download plans of one batch built concurrently."""
MAX_PLANNED_CHUNKS = protocol.MAX_CHUNKS_PER_FILE
"""Chunks all the plans of one /download-plans answer may hold: the work and the bytes of one
request stay those of one file of the largest size, however many ids it names (one
100,000-chunk file's id repeated 1000 times built and sent 1000 plans of ~140 MiB each)."""


def _replicas(
    coord: Coordinator,
    file_id: str,
    locations: Mapping[str, set[str]],
    live: Mapping[str, NodeRecord],
) -> dict[str, list[dict[str, str]]]:
    """Each chunk's live holders, best first, each with a read capability."""
    replicas: dict[str, list[dict[str, str]]] = {}
    for chunk_id, holders in locations.items():
        up = [live[h] for h in holders if h in live]
        if not up:
            raise Unavailable(
                f"chunk {chunk_id[:12]} of file {file_id} has no live replica right now"
            )
        replicas[chunk_id] = [
            {**node_ref(n), "cap": coord.cap(auth.OP_GET, chunk_id, n.node_id)}
            for n in rank_nodes(chunk_id, up)
        ]
    return replicas


def _body(
    coord: Coordinator,
    rec: FileRecord,
    manifest: Sequence[ManifestEntry],
    locations: Mapping[str, set[str]],
    live: Mapping[str, NodeRecord],
) -> dict[str, Any]:
    replicas = _replicas(coord, rec.file_id, locations, live)
    body = file_body(rec)
    body["replication_factor"] = coord.rf
    body["chunks"] = [
        {"offset": e.offset, "size": e.size, "sha256": e.chunk_id, "replicas": replicas[e.chunk_id]}
        for e in manifest
    ]
    return body


async def plan_of(coord: Coordinator, rec: FileRecord) -> dict[str, Any]:
    """The download plan of complete file ``rec``."""
    manifest = await coord.meta.get_manifest(rec.file_id)
    live = {n.node_id: n for n in await coord.live_nodes()}
    locations = await coord.meta.get_locations(list(distinct_chunks(manifest)))
    if len(manifest) <= PLAN_IN_THREAD:
        return _body(coord, rec, manifest, locations, live)
    return await asyncio.to_thread(_body, coord, rec, manifest, locations, live)


async def plan(coord: Coordinator, file_id: str, tenant: str = DEFAULT_TENANT) -> dict[str, Any]:
    """The download plan of the tenant's complete file ``file_id`` (404 for anyone else's)."""
    return await plan_of(coord, await coord.get_complete_file(file_id, tenant))


@dataclass
class PlanSelection:
    """What one /download-plans answer holds: each asked id's record (or why it has none),
    which positions this answer plans (within MAX_PLANNED_CHUNKS) and the chunks planned."""

    file_ids: list[str]
    records: dict[str, FileRecord | DfsError]
    fits: list[bool] = field(default_factory=list)
    """Per position of ``file_ids``: planned in this answer (an error entry otherwise)."""
    chunks: int = 0

    def over_budget(self, file_id: str) -> DfsError:
        return PayloadTooLarge(
            f"this answer already plans {self.chunks} chunks, at most {MAX_PLANNED_CHUNKS} "
            f"per request: ask for file {file_id} in another request"
        )


async def select(
    coord: Coordinator, file_ids: Sequence[str], tenant: str = DEFAULT_TENANT
) -> PlanSelection:
    """Which of ``file_ids`` one answer plans (see the module's docstring)."""
    sem = asyncio.Semaphore(PLANS_AT_ONCE)

    async def record(file_id: str) -> FileRecord | DfsError:
        async with sem:
            try:
                return await coord.get_complete_file(file_id, tenant)
            except DfsError as exc:
                return exc

    distinct = list(dict.fromkeys(file_ids))
    records = dict(zip(distinct, await asyncio.gather(*map(record, distinct)), strict=True))
    sel = PlanSelection(list(file_ids), records)
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


async def build(coord: Coordinator, sel: PlanSelection) -> list[dict[str, Any]]:
    """The answer's entries in order: a plan or ``{"file_id", "error"}`` each; each distinct
    file's plan is built once. The live nodes are read once and the locations of all the
    answer's chunks in one call, not per file: the work of an answer of many small files
    is a manifest read per file."""
    wanted = {
        f: rec
        for f, fits in zip(sel.file_ids, sel.fits, strict=True)
        if fits and isinstance(rec := sel.records[f], FileRecord)
    }
    manifests = await _manifests(coord, list(wanted))
    live = {n.node_id: n for n in await coord.live_nodes()}
    ids = list(
        dict.fromkeys(e.chunk_id for m in manifests.values() if isinstance(m, list) for e in m)
    )
    locations = await coord.meta.get_locations(ids)

    def one(rec: FileRecord) -> dict[str, Any] | DfsError:
        manifest = manifests[rec.file_id]
        if isinstance(manifest, DfsError):
            return manifest
        mine = {c: locations.get(c, set()) for c in distinct_chunks(manifest)}
        try:
            return _body(coord, rec, manifest, mine, live)
        except DfsError as exc:
            return exc

    if sel.chunks <= PLAN_IN_THREAD:
        built = {f: one(rec) for f, rec in wanted.items()}
    else:
        built = await asyncio.to_thread(lambda: {f: one(rec) for f, rec in wanted.items()})
    out: list[dict[str, Any]] = []
    for file_id, fits in zip(sel.file_ids, sel.fits, strict=True):
        got = built[file_id] if fits else sel.records[file_id]
        if isinstance(got, FileRecord):  # a complete file past the budget
            got = sel.over_budget(file_id)
        out.append(error_entry(file_id, got) if isinstance(got, DfsError) else got)
    return out


async def _manifests(coord: Coordinator, file_ids: Sequence[str]) -> dict[str, list[ManifestEntry]]:
    sem = asyncio.Semaphore(PLANS_AT_ONCE)

    async def one(file_id: str) -> list[ManifestEntry]:
        async with sem:
            return await coord.meta.get_manifest(file_id)

    return dict(zip(file_ids, await asyncio.gather(*map(one, file_ids)), strict=True))


async def plans(
    coord: Coordinator, file_ids: Sequence[str], tenant: str = DEFAULT_TENANT
) -> list[dict[str, Any]]:
    """The plans of many files, in order, within MAX_PLANNED_CHUNKS."""
    return await build(coord, await select(coord, file_ids, tenant))
