"""``MemoryChunkStore``: the whole ChunkStore contract over a dict, for tests and tools.

A second real implementation of ``dfs.chunkstore.base.ChunkStore``: it verifies hashes,
bounds capacity (concurrent puts included), replaces a held copy on every put (as a new
write, capacity check included), quarantines copies that fail verification,
keeps each copy's age for garbage collection and pages ids in order, exactly as the contract
says; only durability is missing (everything is gone with the process). Unit tests use it to
run node code without a disk, and the contract suite runs against it beside ``FsChunkStore``,
which keeps the contract honest about what is the port and what is the file layout.

Hashing runs on a worker thread (as in ``FsChunkStore``); the bookkeeping runs on the event
loop between awaits, so it needs no lock. ``corrupt`` and ``backdate`` are test hooks that
damage or age a copy behind the store's back, as a disk or a clock would; ``write_serial``
tells tests which write put a copy there.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import TYPE_CHECKING

from dfs.chunkstore.base import Buffer, ChunkStore, verify_all_at_rate
from dfs.errors import (
    ChunkNotFound,
    DfsError,
    InsufficientStorage,
    IntegrityError,
    InvalidRequest,
)
from dfs.ids import ChunkId, sha256_hex

DEFAULT_CAPACITY = 1 << 40
"""What ``capacity_bytes`` reports when no bound is configured (the contract wants > 0)."""

_HEX = frozenset("0123456789abcdef")


def _check_id(chunk_id: str) -> None:
    if not (isinstance(chunk_id, str) and len(chunk_id) == 64 and set(chunk_id) <= _HEX):
        raise InvalidRequest("chunk_id must be 64 lowercase hex characters (sha256)")


class MemoryChunkStore:
    """ChunkStore in process memory; see the module docstring."""

    def __init__(self, capacity_bytes: int | None = None) -> None:
        self._capacity = capacity_bytes
        self._chunks: dict[ChunkId, bytes] = {}
        self._written: dict[ChunkId, float] = {}  # last write or re-send (time.time())
        self._quarantine: set[ChunkId] = set()
        self._used = 0
        self._writes = 0  # copies written so far, new or rewritten
        self._serial: dict[ChunkId, int] = {}  # the write that put each copy here

    @property
    def used_bytes(self) -> int:
        return self._used

    @property
    def chunk_count(self) -> int:
        return len(self._chunks)

    @property
    def capacity_bytes(self) -> int:
        return self._capacity if self._capacity is not None else DEFAULT_CAPACITY

    # --- writes ---------------------------------------------------------------------------

    async def put(self, chunk_id: ChunkId, data: Buffer) -> bool:
        await asyncio.to_thread(self._verify, [(chunk_id, data)])
        return self._store(chunk_id, data)

    async def put_parts(self, chunk_id: ChunkId, parts: Sequence[Buffer]) -> bool:
        return await self.put(chunk_id, b"".join(parts))

    async def put_many(self, items: Sequence[tuple[ChunkId, Buffer]]) -> list[bool]:
        await asyncio.to_thread(self._verify, items)
        return [self._store(c, d) for c, d in items]

    @staticmethod
    def _verify(items: Sequence[tuple[ChunkId, Buffer]]) -> None:
        for chunk_id, data in items:
            _check_id(chunk_id)
            if sha256_hex(data) != chunk_id:
                raise IntegrityError(f"body does not hash to chunk {chunk_id}")

    def _store(self, chunk_id: ChunkId, data: Buffer) -> bool:
        """Store verified bytes, replacing any copy held (no await inside: atomic on the event
        loop). A held chunk takes the same steps and the same capacity check as a new one;
        True when no copy was here."""
        size = len(data)
        if self._capacity is not None and self._used + size > self._capacity:
            raise InsufficientStorage(
                f"node is full: {self._used} of {self._capacity} bytes used, chunk needs {size}"
            )
        old = self._chunks.get(chunk_id)
        self._chunks[chunk_id] = bytes(data)
        self._written[chunk_id] = time.time()
        self._writes += 1
        self._serial[chunk_id] = self._writes
        self._quarantine.discard(chunk_id)
        self._used += size - (len(old) if old is not None else 0)
        return old is None

    async def delete(self, chunk_id: ChunkId) -> None:
        self._remove(chunk_id, 0.0)

    async def delete_if_idle(self, chunk_id: ChunkId, min_age: float) -> bool:
        return self._remove(chunk_id, min_age)

    def _remove(self, chunk_id: ChunkId, min_age: float) -> bool:
        _check_id(chunk_id)
        written = self._written.get(chunk_id)
        if written is None or time.time() - written < min_age:
            return False
        self._used -= len(self._chunks.pop(chunk_id))
        del self._written[chunk_id]
        del self._serial[chunk_id]
        return True

    # --- reads ----------------------------------------------------------------------------

    async def get(self, chunk_id: ChunkId) -> bytes:
        _check_id(chunk_id)
        data = self._chunks.get(chunk_id)
        if data is None:
            raise ChunkNotFound(f"chunk {chunk_id} is not on this node")
        if await asyncio.to_thread(sha256_hex, data) != chunk_id:
            if self._chunks.get(chunk_id) is data:  # not replaced or quarantined meanwhile
                self._remove(chunk_id, 0.0)
                self._quarantine.add(chunk_id)
            raise ChunkNotFound(f"chunk {chunk_id} failed verification and was quarantined")
        return data

    async def get_many(
        self, chunk_ids: Sequence[ChunkId], max_bytes: int
    ) -> list[Buffer | DfsError]:
        for c in chunk_ids:
            _check_id(c)
        out: list[Buffer | DfsError] = []
        total = 0
        for c in chunk_ids:
            try:
                data = await self.get(c)
            except DfsError as exc:
                out.append(exc)
                continue
            out.append(data)
            total += len(data)
            if total >= max_bytes:
                break
        return out

    async def has(self, chunk_ids: Iterable[ChunkId]) -> set[ChunkId]:
        ids = list(chunk_ids)
        for c in ids:
            _check_id(c)
        return {c for c in ids if c in self._chunks}

    async def quarantined(self) -> list[ChunkId]:
        return sorted(c for c in self._quarantine if c not in self._chunks)

    async def scrub(self, rate_bytes: float) -> tuple[int, int]:
        return await verify_all_at_rate(self, rate_bytes)  # the counters never drift here

    async def list_chunks(self, after: str, limit: int) -> list[tuple[ChunkId, float]]:
        ids = sorted(self._chunks)
        now = time.time()
        page = ids[bisect.bisect_right(ids, after) :][:limit]
        return [(c, max(now - self._written[c], 0.0)) for c in page]

    async def iter_ids(self) -> AsyncIterator[ChunkId]:
        for chunk_id in list(self._chunks):
            yield chunk_id

    async def check_writable(self) -> None:
        """Memory always takes a write."""

    # --- test hooks -----------------------------------------------------------------------

    def corrupt(self, chunk_id: ChunkId) -> None:
        """Flip one bit of a stored (non-empty) copy, as a bad disk would."""
        raw = bytearray(self._chunks[chunk_id])
        raw[len(raw) // 2] ^= 0x01
        self._chunks[chunk_id] = bytes(raw)

    def write_serial(self, chunk_id: ChunkId) -> int:
        """Which write (1, 2, ...) put the copy held now: a rewrite changes it, as it changes
        the file (inode) under ``FsChunkStore``."""
        return self._serial[chunk_id]

    def backdate(self, chunk_id: ChunkId, seconds: float) -> None:
        """Make a copy look written ``seconds`` ago."""
        self._written[chunk_id] = time.time() - seconds


if TYPE_CHECKING:
    _: type[ChunkStore] = MemoryChunkStore
