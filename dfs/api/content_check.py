"""The seed's sha256 lookups (``POST /upload``'s 409, ``GET /check``), resting only on what
the servers verified, never on a client's claim (issue 12 item 6).

A file's whole-file sha256 is what the client declared at ``init-upload``: the API never sees
the bytes of a chunked upload, and a sha256 cannot be composed from the chunks' hashes. Its
chunk ids, on the other hand, are hashes the nodes verified before storing the bytes. So a
file found by its declared sha256 is taken for "these bytes" only when one of these holds:

1. **Manifest proof**: its chunk ids, in order, are those the caller computed. ``POST
   /upload`` chunks the body itself, so it compares the candidate's manifest with its own
   (409 only then; otherwise the genuine bytes are stored as a new file). ``/check`` takes
   ``manifest_sha256`` (``manifest_digest``: the SHA-256 of the chunk ids in order, as
   lowercase hex, concatenated) from a caller that chunked the file with the same profile.
2. **Server verification**: an API process hashed the file's bytes itself: it ingested
   them (``POST /upload``; the metadata store keeps ``FileRecord.sha256_verified``, so
   every API process knows it), or ``/check`` in this process read the file, verified
   chunk by chunk, and hashed it (files of at most ``VERIFY_MAX_BYTES``; larger ones need
   the manifest proof). Files are immutable, so what this process found stays true
   (``VerifiedFiles``, bounded): a file is read at most once per process, whether its
   claim held or not; a claim found true is recorded in the metadata store
   (``mark_sha256_verified``), so no API process reads that file again.

A file whose declared sha256 is false is thus never answered for the genuine bytes. And it
cannot stand in their way either: the metadata store names verified files apart from claimed
ones (``find_file_by_sha256``), and the lookup (``Coordinator.find_by_sha256``) takes a
verified file first, so once the genuine bytes are stored through ``POST /upload`` they are
the ones found, whatever was committed with the same claim before.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager

from dfs import protocol
from dfs.api import download_plans
from dfs.api.coordinator import Coordinator
from dfs.api.verified_reads import read_verified
from dfs.errors import DfsError, Unavailable
from dfs.meta.base import FileRecord, ManifestEntry

VERIFY_MAX_BYTES = 256 * protocol.MIB
"""The largest file /check reads and hashes to verify a declared sha256."""
VERIFIED_CAPACITY = 100_000


def manifest_digest(manifest: Sequence[ManifestEntry]) -> str:
    """SHA-256 of a manifest's chunk ids in order (lowercase hex, concatenated)."""
    h = hashlib.sha256()
    for e in manifest:
        h.update(e.chunk_id.encode("ascii"))
    return h.hexdigest()


class VerifiedFiles:
    """Whether each file's declared sha256 matched its bytes, for the files this process
    hashed (LRU). Files are immutable, so both answers stay true: a false claim is read
    once, not at every /check."""

    def __init__(self, capacity: int = VERIFIED_CAPACITY) -> None:
        self._seen: OrderedDict[str, bool] = OrderedDict()
        self._capacity = capacity

    def record(self, file_id: str, matched: bool = True) -> None:
        self._seen[file_id] = matched
        self._seen.move_to_end(file_id)
        while len(self._seen) > self._capacity:
            self._seen.popitem(last=False)

    def known(self, file_id: str) -> bool | None:
        """True or False if this process hashed the file, None if it did not."""
        return self._seen.get(file_id)


async def _hash_of(coord: Coordinator, rec: FileRecord) -> str:
    """The whole-file sha256 of ``rec``'s verified bytes."""
    plan = await download_plans.plan_of(coord, rec)
    h = hashlib.sha256()
    try:
        async for data in read_verified(coord, plan):
            await asyncio.to_thread(h.update, data)
    except DfsError as exc:
        raise Unavailable(
            f"file {rec.file_id} cannot be read to verify it: {exc.message}"
        ) from None
    return h.hexdigest()


async def confirms(
    coord: Coordinator,
    rec: FileRecord,
    sha256: str,
    proof: str | None,
    verified: VerifiedFiles,
) -> bool:
    """Whether complete file ``rec`` (found by its declared ``sha256``) is known to hold
    those bytes: by the caller's manifest proof, or by this process's verification."""
    if proof is not None:
        return manifest_digest(await coord.meta.get_manifest(rec.file_id)) == proof
    if rec.sha256_verified:  # an API process hashed its bytes when it stored them
        return True
    known = verified.known(rec.file_id)
    if known is not None:
        return known
    if rec.size > VERIFY_MAX_BYTES:
        return False
    matched = await _hash_of(coord, rec) == sha256
    verified.record(rec.file_id, matched)
    if matched:  # hashed here: a fact now, for every API process and every lookup
        await coord.meta.mark_sha256_verified(rec.file_id)
    return matched


async def stored_file(
    coord: Coordinator,
    tenant: str,
    sha256: str,
    proof: str | None,
    verified: VerifiedFiles,
    slot: Callable[[bool], AbstractAsyncContextManager[object]],
) -> FileRecord | None:
    """The tenant's complete file (its own or an object's) found to hold the bytes of
    ``sha256``: by the caller's manifest proof (``proof``, when not None) or by the servers'
    verification (``confirms``); None if there is none. ``slot(big)``: held while a file is
    read to verify it (``big``: one over a MiB, read through this process)."""
    rec = await coord.find_by_sha256(tenant, sha256, linked=True)
    if rec is None:
        return None
    reads = proof is None and not rec.sha256_verified and verified.known(rec.file_id) is None
    async with slot(reads and rec.size > protocol.MIB):
        if not await confirms(coord, rec, sha256, proof, verified):
            return None
    return rec
