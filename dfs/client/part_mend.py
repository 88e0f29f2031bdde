"""Mending a downloaded temp file whose whole-file sha256 did not match: the chunks that were
wrong found on disk, fetched again (verified, from another source), written over.

Why the chunks of a big file are not each verified as they arrive: the whole-file sha256,
computed anyway as the bytes are written (``PartFile``), covers every byte before the file
is given its name, so a chunk's own check only told earlier which source to skip. That check
was ~0.6 CPU-s per GiB of a download's ~3 on the client, in its busiest path (bench/README.md,
"Chunk files checked by a checksum, big chunks by the whole file"). Wrong bytes now cost a
second pass instead: this one, run only when the whole file does not match (a node serving
rot its own check missed, a bug): each chunk is read back from the temp file and hashed, the
wrong ones are fetched again through a verifying ``ChunkFetcher`` (its fail-over skips the
source that fails), and the file is hashed again from disk. A file that still does not match
after that has a manifest that does not add up, and the commit refuses it, as before.

Blocking work runs on worker threads. Standard library and the client's own modules only.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Sequence
from typing import Any

from dfs.client.chunk_fetch import ChunkFetcher
from dfs.fsutil import pwrite_all
from dfs.ids import sha256_hex

log = logging.getLogger("dfs.client")

READ_BLOCK = 4 * 1024 * 1024


def wrong_chunks(fd: int, chunks: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The chunks whose bytes in the file at ``fd`` (at their offsets) are not theirs."""
    bad = []
    for chunk in chunks:
        size = int(chunk["size"])
        data = os.pread(fd, size, int(chunk["offset"]))
        if len(data) != size or sha256_hex(data) != chunk["sha256"]:
            bad.append(chunk)
    return bad


def hash_file(fd: int, size: int) -> hashlib._Hash:
    """The sha256 of the first ``size`` bytes of the file at ``fd`` (cut to that size)."""
    os.ftruncate(fd, size)
    h = hashlib.sha256()
    offset = 0
    while offset < size and (block := os.pread(fd, min(READ_BLOCK, size - offset), offset)):
        h.update(block)
        offset += len(block)
    return h


async def mend(
    fd: int, chunks: Sequence[dict[str, Any]], fetcher: ChunkFetcher, what: str
) -> hashlib._Hash:
    """Rewrite the chunks of the file at ``fd`` that are wrong with verified bytes
    (``fetcher`` must verify), make it durable, and return its sha256 hashed again."""
    bad = await asyncio.to_thread(wrong_chunks, fd, chunks)
    log.warning("%s: whole-file sha256 did not match; %d chunk(s) fetched again", what, len(bad))
    for chunk in bad:
        pieces = await fetcher.fetch(chunk)
        await asyncio.to_thread(pwrite_all, fd, pieces, int(chunk["offset"]))
    size = max((int(c["offset"]) + int(c["size"]) for c in chunks), default=0)
    whole = await asyncio.to_thread(hash_file, fd, size)
    await asyncio.to_thread(os.fsync, fd)
    return whole
