"""The chunk-store port: content-addressed chunk bytes on one node.

``ChunkStore`` is the whole contract the node's routes, its background forwarding, its
scrubber, heartbeat and monitoring type against; only the code that assembles a node names an
implementation. ``FsChunkStore`` (``dfs.chunkstore.fs``, one file per chunk) and
``MemoryChunkStore`` (``dfs.chunkstore.memory``, for tests) and ``PackChunkStore``
(``dfs.chunkstore.pack``: small chunks in pack files, large ones as files; what nodes run)
implement it, and ``tests/contract/test_chunk_store.py`` runs the same suite over each.

Must not import aiohttp or anything of dfs above layer 0.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Protocol

from dfs.errors import ChunkNotFound, DfsError
from dfs.ids import ChunkId

Buffer = bytes | bytearray | memoryview
log = logging.getLogger("dfs.chunkstore")


class ChunkStore(Protocol):
    """Content-addressed chunk bytes on one node.

    Writes:

    - ``put()`` verifies ``sha256(data) == chunk_id`` before anything is stored and raises
      IntegrityError otherwise; it never leaves a partial copy. Storing an id already held
      rewrites it: the same durable work as a new write (for ``FsChunkStore``: temp file,
      write, fsync, atomic replace of the old copy, fsync of the directory), after which the
      copy held is the verified bytes just sent (a silently rotten copy is replaced, never
      acknowledged) and its age restarts (see ``delete_if_idle``). So how long an upload
      write takes does not tell whether the node held the chunk (whether any tenant stores
      those bytes); a store that packs chunks into shared files appends the chunk again and
      marks the old record dead. Returns True when no copy was held, False when one was
      replaced; the node never shows this to a tenant. Storing is idempotent in what is
      held and counted: a rewrite adds nothing to ``used_bytes`` or ``chunk_count``. It
      raises InsufficientStorage when the bytes do not fit as a new chunk's would, held or
      not (a full node answers a rewrite as it answers a new write); concurrent puts never
      overshoot the capacity together.
    - ``put_parts(chunk_id, parts)`` is ``put`` of the bytes of ``parts`` end to end (a body
      in the pieces it arrived in): the same checks and the same durable work, without a
      copy that joins them first.
    - ``put_many()`` is ``put`` for a batch: every hash is checked before any chunk is stored
      (one bad chunk stores none), then each is stored (or rewritten) as by ``put``; one bool
      per item.
    - ``delete()`` of a missing id is a no-op.
    - ``delete_if_idle()`` deletes a copy unless it was written or re-sent in the last
      ``min_age`` seconds (garbage collection races uploads this way); True if deleted, False
      when it was kept or missing.

    Reads and verification:

    - ``get()`` returns the bytes only after re-hashing them; a copy that fails, or that the
      disk cannot read (EIO: a lost copy too), is moved to quarantine (never served again)
      and ChunkNotFound is raised, as for a missing id.
    - ``get_many(ids, max_bytes)`` reads for serving many chunks: the bytes of a prefix of
      ``ids`` in order (at least one id; it stops once the bytes read reach ``max_bytes``),
      each a buffer (bytes, or a memoryview into a larger read: no copy per chunk) verified (re-hashed, or for a packed record checked against its stored CRC-32,
      the record re-hashed and quarantined when that fails) or the DfsError ``get`` would
      raise for it (ChunkNotFound when missing or quarantined). Malformed ids raise.
    - ``has()`` answers for many ids at once (a set of the ids present).
    - ``quarantined()``: ids with a quarantined copy and no good copy now (repair replaces
      them), ascending.
    - ``scrub(rate_bytes)`` re-hashes every stored copy at most ``rate_bytes`` per second,
      quarantining bad ones, and re-baselines the counters; returns (verified, quarantined).
    - ``list_chunks(after, limit)``: up to ``limit`` stored ids greater than ``after``,
      ascending, each with the seconds since it was last written or re-sent.
    - ``iter_ids()`` yields every stored id once, in no particular order.
    - ``check_writable()`` proves the store takes a durable write right now (readiness); it
      raises OSError when it cannot.

    ``used_bytes`` counts the bytes of stored chunks, ``chunk_count`` the chunks,
    ``capacity_bytes`` (> 0) the configured or physical bound. Apart from ``check_writable``'s
    OSError, no exception other than dfs errors escapes an implementation.
    """

    @property
    def used_bytes(self) -> int: ...
    @property
    def capacity_bytes(self) -> int: ...
    @property
    def chunk_count(self) -> int: ...

    async def put(self, chunk_id: ChunkId, data: Buffer) -> bool: ...
    async def put_parts(self, chunk_id: ChunkId, parts: Sequence[Buffer]) -> bool: ...
    async def put_many(self, items: Sequence[tuple[ChunkId, Buffer]]) -> list[bool]: ...
    async def delete(self, chunk_id: ChunkId) -> None: ...
    async def delete_if_idle(self, chunk_id: ChunkId, min_age: float) -> bool: ...

    async def get(self, chunk_id: ChunkId) -> bytes: ...
    async def get_many(
        self, chunk_ids: Sequence[ChunkId], max_bytes: int
    ) -> list[Buffer | DfsError]: ...
    async def has(self, chunk_ids: Iterable[ChunkId]) -> set[ChunkId]: ...
    async def quarantined(self) -> list[ChunkId]: ...
    async def scrub(self, rate_bytes: float) -> tuple[int, int]: ...
    async def list_chunks(self, after: str, limit: int) -> list[tuple[ChunkId, float]]: ...
    def iter_ids(self) -> AsyncIterator[ChunkId]: ...
    async def check_writable(self) -> None: ...


def read_prefix(
    read: Callable[[ChunkId], bytes], chunk_ids: Sequence[ChunkId], max_bytes: int
) -> list[Buffer | DfsError]:
    """``get_many`` over a blocking verifying ``read``: a prefix of ``chunk_ids`` read in
    order until ``max_bytes`` are read (at least one id), errors in place of bytes."""
    out: list[Buffer | DfsError] = []
    total = 0
    for chunk_id in chunk_ids:
        try:
            data = read(chunk_id)
        except DfsError as exc:
            out.append(exc)
            continue
        out.append(data)
        total += len(data)
        if total >= max_bytes:
            break
    return out


async def verify_all_at_rate(store: ChunkStore, rate_bytes: float) -> tuple[int, int]:
    """The scrub pass every implementation shares: ``get`` (which re-hashes and quarantines)
    each stored id, pausing so that at most ``rate_bytes`` per second are read. Returns
    (copies verified, copies quarantined)."""
    return await verify_at_rate(store.iter_ids(), store.get, rate_bytes)


async def verify_at_rate(
    ids: AsyncIterator[ChunkId],
    get: Callable[[ChunkId], Awaitable[bytes]],
    rate_bytes: float,
) -> tuple[int, int]:
    """``verify_all_at_rate`` over some ids and a verifying ``get``. One copy that fails
    otherwise (an I/O error the store did not turn into a lost copy) is logged and passed
    over: a pass that stopped there would never verify the copies after it."""
    checked = bad = 0
    loop = asyncio.get_running_loop()
    async for chunk_id in ids:
        started = loop.time()
        try:
            data = await get(chunk_id)
        except ChunkNotFound as exc:
            bad += "quarantined" in exc.message
            continue
        except (DfsError, OSError) as exc:
            log.warning("scrub: chunk %s not verified: %s", chunk_id, exc)
            continue
        checked += 1
        pause = len(data) / rate_bytes - (loop.time() - started)
        if pause > 0:
            await asyncio.sleep(pause)
    return checked, bad
