"""A multipart object assembled from its parts' files at CompleteMultipartUpload, so that it
dedups like a single PUT of the same bytes.

``dfs.api.splice.Splicer`` re-chunks only the bytes around each part edge, so the object's
manifest is exactly the one a single stream gives; the few chunks cut there are sent to the
nodes by a ``ChunkSender`` (as ``ingest`` sends its chunks: not when the tenant holds them
already), the rest are the parts' own (held through the parts' files). Chunks are read back
verified against their SHA-256 (replica fail-over and hedging as every API read), in one of
two ways:

- the object's whole-file SHA-256 (which the native client checks on every download) is
  known, hashed from the parts' bytes as they arrived (``dfs.api.multipart_hash``): only the
  chunks the splicer cuts again are read (``_read_edges``: each part's last chunk and the
  next part's first ones, fetched ahead), the others are fed by their length;
- otherwise (parts through several gateways, UploadPartCopy, a part over the hashing
  budget) every chunk is read back in order and hashed (``_read_all``), since SHA-256
  cannot be combined from the parts'.

The file is then committed as an ingest's (``commit_ingested``), always as a new file of
its own (``reuse`` off): the object's last version releases (deletes) it, so it must never
be a file of the tenant's found by content; its chunks dedup as any upload's. As an
ingest's, the commit is refused once the first chunk it sent is older than 0.9 x
DFS_GC_GRACE (``dfs.api.ingest.check_sent_age``: GC's orphan sweep may have deleted it).

The chunks spliced and sent ahead as the parts arrived (``send_ahead``,
``dfs.api.multipart_ahead``) are committed by ``assemble_ahead`` only while that bound
holds for the first of them (``Ahead.sent_at``): older, they may be gone, so nothing more is
sent ahead and Complete assembles the object from its parts (``assemble``), sending the
edge chunks again.

Memory: the reads' window of chunks (or the edge chunks of two parts) plus the splicer's
window (about a maximum chunk and one own chunk).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from dfs import protocol
from dfs.api import download_plans
from dfs.api.bodies import UploadRequest
from dfs.api.coordinator import Coordinator
from dfs.api.ingest import ChunkSender, Ingested, commit_ingested, sent_too_long_ago
from dfs.api.multipart_ahead import Ahead
from dfs.api.splice import Own, Piece, Splicer
from dfs.api.verified_reads import fetch_verified, read_verified
from dfs.auth import RECEIPT_TTL
from dfs.chunking import ChunkerProfile
from dfs.errors import DfsError, IntegrityError, PayloadTooLarge
from dfs.ids import new_file_id
from dfs.meta.base import FileRecord, ManifestEntry

log = logging.getLogger("dfs.api.multipart")

HEAD_CHUNKS = 2
"""A part's first chunks fetched ahead at an edge. The splicer needs the first two at every
edge and a third at few (measured with FastCDC 256K:1M:4M on 8 MiB parts of random bytes:
the third at 5 edges of 31, a fourth at 3): those are fetched when asked, as a third fetched
ahead everywhere was read from a node and verified for nothing at most edges."""


class _Assembly:
    def __init__(self, sender: ChunkSender, splicer: Splicer, hashing: bool) -> None:
        self.sender = sender
        self.splicer = splicer
        self.whole = hashlib.sha256() if hashing else None
        self.manifest: list[ManifestEntry] = []
        self.sent: set[str] = set()

    def step(self, own: Own) -> list[Piece]:
        """In a worker thread: hash the bytes, splice (chunking is CPU)."""
        if self.whole is not None:
            assert own.data is not None
            self.whole.update(own.data)
        return self.splicer.feed(own)

    async def take(self, pieces: Sequence[Piece]) -> None:
        for p in pieces:
            self.manifest.append(ManifestEntry(p.offset, p.size, p.chunk_id))
            if p.data is not None and p.chunk_id not in self.sent:
                self.sent.add(p.chunk_id)
                await self.sender.send(p.chunk_id, p.data)
        if len(self.manifest) > protocol.MAX_CHUNKS_PER_FILE:
            raise PayloadTooLarge(f"more than {protocol.MAX_CHUNKS_PER_FILE} chunks")


def _layout(
    manifests: Sequence[Sequence[ManifestEntry]],
) -> tuple[set[int], set[int], int]:
    """Window starts (the first chunk of every part, the last of every part but the last
    with bytes: ``dfs.api.splice``), own chunk starts, and the size, in object offsets."""
    windows: set[int] = set()
    starts: set[int] = set()
    base = 0
    last = max((i for i, m in enumerate(manifests) if m), default=-1)
    for i, m in enumerate(manifests):
        starts.update(base + e.offset for e in m)
        if m:
            windows.add(base + m[0].offset)
        if m and i < last:
            windows.add(base + m[-1].offset)
        base += sum(e.size for e in m)
    return windows, starts, base


def _checked(rec: FileRecord, e: ManifestEntry, data: bytes) -> bytes:
    if len(data) != e.size:
        raise IntegrityError(f"part {rec.file_id}: a chunk of the wrong size")
    return data


async def _read_all(
    coord: Coordinator,
    job: _Assembly,
    parts: Sequence[FileRecord],
    manifests: Sequence[Sequence[ManifestEntry]],
) -> None:
    """Every chunk of every part read back in order (verified), hashed and spliced."""
    base = 0
    for rec, manifest in zip(parts, manifests, strict=True):
        plan = await download_plans.plan_of(coord, rec)
        entries = iter(manifest)
        async for data in read_verified(coord, plan):
            e = next(entries)
            own = Own(base + e.offset, e.chunk_id, _checked(rec, e, data))
            await job.take(await asyncio.to_thread(job.step, own))
        base += rec.size


class _Edges:
    """The chunks of one part the splicer probably cuts again, fetched (verified) ahead:
    the first ``HEAD_CHUNKS`` (after a part edge) and the last (before one)."""

    def __init__(self, coord: Coordinator, plan: dict[str, Any], head: bool, tail: bool) -> None:
        self.coord = coord
        self.chunks: list[dict[str, Any]] = plan["chunks"]
        n = len(self.chunks)
        likely = set(range(min(HEAD_CHUNKS, n)) if head else ()) | (
            {n - 1} if tail and n else set()
        )
        self.tasks = {i: asyncio.create_task(fetch_verified(coord, self.chunks[i])) for i in likely}

    async def get(self, i: int) -> bytes:
        task = self.tasks.pop(i, None)
        return await task if task is not None else await fetch_verified(self.coord, self.chunks[i])

    async def close(self) -> None:
        for t in self.tasks.values():
            t.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        self.tasks.clear()


async def _read_edges(
    coord: Coordinator,
    job: _Assembly,
    parts: Sequence[FileRecord],
    manifests: Sequence[Sequence[ManifestEntry]],
) -> None:
    """Only the chunks the splicer cuts again are read (verified): the whole-object SHA-256
    is known (``dfs.api.multipart_hash``). The next part's likely chunks are fetched while
    this part's are spliced."""
    plans = [await download_plans.plan_of(coord, rec) for rec in parts[:1]]
    last = len(parts) - 1
    edges = [_Edges(coord, plans[0], True, last > 0)] if parts else []
    base = 0
    try:
        for k, (rec, manifest) in enumerate(zip(parts, manifests, strict=True)):
            if k < last:
                nxt = await download_plans.plan_of(coord, parts[k + 1])
                edges.append(_Edges(coord, nxt, True, k + 1 < last))
            for i, e in enumerate(manifest):
                at = base + e.offset
                if not job.splicer.wants(at):
                    await job.take(job.splicer.feed(Own(at, e.chunk_id, None, e.size)))
                    continue
                own = Own(at, e.chunk_id, _checked(rec, e, await edges[k].get(i)))
                await job.take(await asyncio.to_thread(job.step, own))
            await edges[k].close()
            base += rec.size
    finally:
        for ahead in edges:
            await ahead.close()


async def assemble(
    coord: Coordinator,
    tenant: str,
    name: str,
    parts: Sequence[FileRecord],
    whole: str | None = None,
) -> Ingested:
    """Store the object made of ``parts`` (complete files of ``tenant``, in order) as a file
    chunked as one stream; ``parts`` must have been chunked with the default profile.
    ``whole``: the object's SHA-256 when it is known (hashed as the parts arrived): then only
    the chunks around the part edges are read back."""
    profile = ChunkerProfile.default()
    manifests = [await coord.meta.get_manifest(p.file_id) for p in parts]
    windows, starts, total = _layout(manifests)
    sender = ChunkSender(coord, tenant, new_file_id(), await coord.writable_nodes())
    job = _Assembly(sender, Splicer(profile, windows, starts, total), hashing=whole is None)
    try:
        if whole is None:
            await _read_all(coord, job, parts, manifests)
        else:
            await _read_edges(coord, job, parts, manifests)
        await job.take(await asyncio.to_thread(job.splicer.finish))
        await sender.drain()
    finally:
        await sender.cancel()
    if job.whole is not None:
        whole = job.whole.hexdigest()
    assert whole is not None
    req = UploadRequest(name, total, whole, str(profile), job.manifest, sha256_verified=True)
    return await commit_ingested(
        coord,
        tenant,
        sender.file_id,
        req,
        sender.receipts,
        False,
        copies=sender.copies,
        sent_at=sender.since,
    )


async def send_ahead(
    coord: Coordinator, tenant: str, ahead: Ahead, pieces: Sequence[Piece]
) -> None:
    """Store the new chunks an object spliced ahead was cut into (``pieces``) under its file
    id, keeping their receipts and copies in ``ahead``; a failure marks it ``failed`` (its
    Complete reads the edges back instead) and is no error of the part that brought them, as
    does a first chunk sent ahead too long ago (``sent_too_long_ago``: it may be gone)."""
    if not pieces or ahead.failed:
        return
    if sent_too_long_ago(coord, ahead.sent_at):
        log.info("object of %s: edge chunks sent ahead too long ago: read back", ahead.file_id)
        ahead.failed = True
        return
    if ahead.sent_at is None:  # before any send starts: two parts' sends may run at once
        ahead.sent_at = coord.clock()
    try:
        sender = ChunkSender(coord, tenant, ahead.file_id, await coord.writable_nodes())
        try:
            # distinct ids: ``Ahead`` hands each new chunk over once
            await sender.send_many([(p.chunk_id, p.data) for p in pieces if p.data is not None])
            await sender.drain()
        finally:
            await sender.cancel()
    except DfsError as exc:
        log.warning("object of %s: edge chunks not stored ahead (%s)", ahead.file_id, exc)
        ahead.failed = True
        return
    except BaseException:  # cancelled: some of them may not be stored
        ahead.failed = True
        raise
    ahead.receipts.update(sender.receipts)
    for chunk_id, nodes in sender.copies.items():
        ahead.copies[chunk_id] = set(nodes)


async def assemble_ahead(
    coord: Coordinator, tenant: str, name: str, ahead: Ahead, whole: str
) -> Ingested | None:
    """Store the object spliced ahead (every part fed, ``whole`` its SHA-256): its last
    chunks cut and sent, its manifest committed. None when that cannot be done (a chunk was
    not stored, its receipts are too old, its first chunk was sent ahead too long ago for
    GC's grace to cover it): the caller assembles it from the parts."""
    if ahead.failed or time.monotonic() - ahead.made > RECEIPT_TTL / 2:
        return None
    if sent_too_long_ago(coord, ahead.sent_at):
        log.info("object of %s: edge chunks sent ahead too long ago: read back", ahead.file_id)
        return None
    ahead.finish()
    await send_ahead(coord, tenant, ahead, ahead.take_unsent())
    if ahead.failed:
        return None
    if len(ahead.manifest) > protocol.MAX_CHUNKS_PER_FILE:
        raise PayloadTooLarge(f"more than {protocol.MAX_CHUNKS_PER_FILE} chunks")
    profile = str(ahead.profile)
    req = UploadRequest(name, ahead.base, whole, profile, ahead.manifest, sha256_verified=True)
    # refused (``RequestTimeout``: the caller reads the edges back) if the sends above took long
    return await commit_ingested(
        coord,
        tenant,
        ahead.file_id,
        req,
        ahead.receipts,
        False,
        copies=ahead.copies,
        sent_at=ahead.sent_at,
    )
