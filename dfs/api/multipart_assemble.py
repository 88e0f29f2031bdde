"""A multipart object assembled from its parts' files at CompleteMultipartUpload, so that it
dedups like a single PUT of the same bytes.

The parts' chunks are read back in order, each verified against its SHA-256 (replica
fail-over and hedging as every API read: ``dfs.api.ingest.read_verified``), because the
object's whole-file SHA-256, which the native client checks on every download, can only be
computed from its bytes in order (SHA-256 cannot be combined from the parts'). As they pass,
``dfs.api.splice.Splicer`` re-chunks only the bytes around each part edge, so the object's
manifest is exactly the one a single stream gives; the few chunks cut there are sent to the
nodes by a ``ChunkSender`` (as ``ingest`` sends its chunks: not when the tenant holds them
already), the rest are the parts' own (held through the parts' files). The file is then
committed as an ingest's (``commit_ingested``): if the tenant already stores the same bytes
(the same SHA-256 and the same chunks), the object links that file.

Memory: the reads' window of chunks plus the splicer's window (about a maximum chunk and one
own chunk).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence

from dfs import protocol
from dfs.api import download_plans
from dfs.api.bodies import UploadRequest
from dfs.api.coordinator import Coordinator
from dfs.api.ingest import ChunkSender, Ingested, commit_ingested, read_verified
from dfs.api.splice import Own, Piece, Splicer
from dfs.chunking import ChunkerProfile
from dfs.errors import IntegrityError, PayloadTooLarge
from dfs.ids import new_file_id
from dfs.meta.base import FileRecord, ManifestEntry


class _Assembly:
    def __init__(self, sender: ChunkSender, splicer: Splicer) -> None:
        self.sender = sender
        self.splicer = splicer
        self.whole = hashlib.sha256()
        self.manifest: list[ManifestEntry] = []
        self.sent: set[str] = set()

    def step(self, own: Own) -> list[Piece]:
        """In a worker thread: hash the bytes, splice (chunking is CPU)."""
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
    """Window starts (the last chunk of every part but the last with bytes), own chunk
    starts, and the size, in object offsets."""
    windows: set[int] = set()
    starts: set[int] = set()
    base = 0
    last = max((i for i, m in enumerate(manifests) if m), default=-1)
    for i, m in enumerate(manifests):
        starts.update(base + e.offset for e in m)
        if m and i < last:
            windows.add(base + m[-1].offset)
        base += sum(e.size for e in m)
    return windows, starts, base


async def assemble(
    coord: Coordinator, tenant: str, name: str, parts: Sequence[FileRecord]
) -> Ingested:
    """Store the object made of ``parts`` (complete files of ``tenant``, in order) as a file
    chunked as one stream; ``parts`` must have been chunked with the default profile."""
    profile = ChunkerProfile.default()
    manifests = [await coord.meta.get_manifest(p.file_id) for p in parts]
    windows, starts, total = _layout(manifests)
    sender = ChunkSender(coord, tenant, new_file_id(), await coord.writable_nodes())
    job = _Assembly(sender, Splicer(profile, windows, starts, total))
    base = 0
    try:
        for rec, manifest in zip(parts, manifests, strict=True):
            plan = await download_plans.plan_of(coord, rec)
            entries = iter(manifest)
            async for data in read_verified(coord, plan):
                e = next(entries)
                if len(data) != e.size:
                    raise IntegrityError(f"part {rec.file_id}: a chunk of the wrong size")
                own = Own(base + e.offset, e.chunk_id, data)
                await job.take(await asyncio.to_thread(job.step, own))
            base += rec.size
        await job.take(await asyncio.to_thread(job.splicer.finish))
        await sender.drain()
    finally:
        await sender.cancel()
    req = UploadRequest(
        name, total, job.whole.hexdigest(), str(profile), job.manifest, sha256_verified=True
    )
    return await commit_ingested(
        coord, tenant, sender.file_id, req, sender.receipts, copies=sender.copies
    )
