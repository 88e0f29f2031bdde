"""``PackChunkStore``: what storage nodes run; small chunks in pack files, large ones as files.

A chunk smaller than ``threshold`` bytes is appended to a pack file (``dfs.chunkstore.packs``:
one write and one fsync per batch, records with a versioned header, torn tails dropped on
open, compaction of packs with dead records); a larger one is a file of its own in the
``FsChunkStore`` layout (``dfs.chunkstore.fs``), where its size makes the per-file cost small.
The threshold was chosen by measurement (``bench/pack_threshold.py``, figures in
``docs/ARCHITECTURE.md``); 0 stores every new chunk as a file (packs already written are
still read).

On-disk layout under the node's data directory:

| path                              | what                                                  |
|-----------------------------------|-------------------------------------------------------|
| ``chunks/ab/<sha256>``            | a large chunk (``FsChunkStore``; ``chunks/ab/cd/`` in a |
|                                   | store made before layout 1, ``dfs.chunkstore.fan_out``) |
| ``chunks/packs/pack-<seq>.pack``  | small chunks' records and tombstones, append-only      |
| ``chunks/.disk-id``               | the disk identity (``dfs.node.disk_identity``)          |
| ``quarantine/<sha256>.<time>``    | a copy (file or record payload) that failed verification; empty if its bytes could not be read or kept |

Packs live inside ``chunks/`` so that wiping that folder takes them along with the disk
identity. This class owns the whole-store rules over both halves: one capacity (a batch is
reserved whole: it fits or none of it is stored; without a configured one, the free disk
less a headroom that keeps deletes' tombstones and compaction possible on a full disk), every hash of a batch checked before any of
it is stored, and a chunk held by one half under an older threshold moved to the other when
it is written again (held and counted once). ``scrub`` verifies both halves at the given
rate, then compacts packs whose dead fraction is high.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import os
import shutil
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from dfs.chunkstore.base import Buffer, ChunkStore, verify_at_rate
from dfs.chunkstore.fs import FsChunkStore
from dfs.chunkstore.pack_reads import read_many
from dfs.chunkstore.pack_state import Loc
from dfs.chunkstore.packs import COMPACT_DEAD_FRACTION, DEFAULT_MAX_PACK, PackSet
from dfs.config import DEFAULT_PACK_THRESHOLD
from dfs.errors import DfsError, InsufficientStorage, IntegrityError
from dfs.ids import ChunkId, parse_chunk_id, sha256_hex, sha256_hex_parts


class PackChunkStore:
    """ChunkStore over pack files and single files; see the module docstring."""

    def __init__(
        self,
        root: Path,
        capacity_bytes: int | None = None,
        *,
        threshold: int = DEFAULT_PACK_THRESHOLD,
        max_pack: int = DEFAULT_MAX_PACK,
    ) -> None:
        self._root = root
        self._files = FsChunkStore(root)
        self._packs = PackSet(root / "chunks" / "packs", root / "quarantine", max_pack)
        self._threshold = threshold
        self._capacity = capacity_bytes
        self._max_pack = max_pack
        self._reserved = 0
        self._lock = threading.Lock()

    @classmethod
    async def open(
        cls,
        root: Path,
        capacity_bytes: int | None = None,
        *,
        threshold: int = DEFAULT_PACK_THRESHOLD,
        max_pack: int = DEFAULT_MAX_PACK,
    ) -> PackChunkStore:
        store = cls(root, capacity_bytes, threshold=threshold, max_pack=max_pack)
        store._files = await FsChunkStore.open(root)
        await asyncio.to_thread(store._packs.load)
        if store._packs.chunk_count and store._files.chunk_count:
            # a crash while a chunk moved between halves (the threshold changed): keep the
            # pack's copy, so it is held and counted once
            files = [c async for c in store._files.iter_ids()]
            for chunk_id in store._packs.held(files):
                await store._files.delete(chunk_id)
        return store

    @property
    def files(self) -> FsChunkStore:
        """The large-chunk half (tests and tools)."""
        return self._files

    @property
    def packs(self) -> PackSet:
        """The small-chunk half (tests and tools)."""
        return self._packs

    @property
    def threshold(self) -> int:
        return self._threshold

    @property
    def used_bytes(self) -> int:
        return self._files.used_bytes + self._packs.used_bytes

    @property
    def chunk_count(self) -> int:
        return self._files.chunk_count + self._packs.chunk_count

    @property
    def capacity_bytes(self) -> int:
        """The configured capacity, else what the disk can take for chunks: the bytes held
        and the free space less the headroom (``_room``)."""
        if self._capacity is not None:
            return self._capacity
        return max(self.used_bytes + self._room(), 1)

    def _room(self) -> int:
        """Free disk bytes new chunks may take: a headroom (a pack's size, at least 1% of the
        disk) stays free, so a delete's tombstone and a compaction's copy still fit on a disk
        that chunks filled (else the node could never free space again)."""
        usage = shutil.disk_usage(self._root)
        return max(usage.free - max(self._max_pack, usage.total // 100), 0)

    async def close(self) -> None:
        """Close the active pack (after any append in flight); the store takes no writes
        after this."""
        await asyncio.to_thread(self._packs.close)

    # --- writes ---------------------------------------------------------------------------

    async def put(self, chunk_id: ChunkId, data: Buffer) -> bool:
        return await self.put_parts(chunk_id, [data])

    async def put_parts(self, chunk_id: ChunkId, parts: Sequence[Buffer]) -> bool:
        size = sum(len(p) for p in parts)
        if size < self._threshold:
            data = parts[0] if len(parts) == 1 else b"".join(parts)  # small: one pack record
            [new] = await self.put_many([(chunk_id, data)])
            return new
        # a large chunk alone (each /store-chunk of a big file): the same steps as put_many's
        # (hash, reservation, file write with its fsyncs), in one worker-thread hand-off
        # instead of two: each hand-off is a wake-up and a fight for the interpreter lock
        in_packs = self._packs.held([chunk_id])
        new, replaced = await asyncio.to_thread(self._put_file, chunk_id, parts, size)
        self._files.release([replaced])
        for held in in_packs:
            await asyncio.to_thread(self._packs.remove, held)
        return new and not in_packs

    def _put_file(
        self, chunk_id: ChunkId, parts: Sequence[Buffer], size: int
    ) -> tuple[bool, int | None]:
        parse_chunk_id(chunk_id)  # InvalidRequest unless 64 lowercase hex
        if sha256_hex_parts(parts) != chunk_id:
            raise IntegrityError(f"body does not hash to chunk {chunk_id}")
        held = self._hold(size)
        try:
            return self._files.put_verified_blocking(chunk_id, parts, held.end)
        finally:
            held.end()

    async def put_many(self, items: Sequence[tuple[ChunkId, Buffer]]) -> list[bool]:
        """Check every hash, reserve the whole batch's bytes, then store the small chunks in
        one pack append and the large ones as files; one bool per item (True: not held)."""
        need = sum(len(d) for _, d in items)
        if not self._small_files_possible() and all(len(d) < self._threshold for _, d in items):
            # the usual batch: the same steps in one worker-thread hand-off instead of two
            return await asyncio.to_thread(self._put_packed, items, need)
        await asyncio.to_thread(self._verify_all, items)
        await asyncio.to_thread(self._reserve, need)  # its locks are held across syscalls
        # the batch's reservation, split into the parts that end as each is counted (the
        # pack append's, each file's): ended only after the batch returned, the bytes were
        # counted twice meanwhile and refused concurrent writes that fitted
        held = [_Held(self, len(d)) for _, d in items]
        try:
            return await self._store(items, held)
        finally:
            for h in held:
                h.end()

    def _put_packed(self, items: Sequence[tuple[ChunkId, Buffer]], need: int) -> list[bool]:
        """``put_many`` of small chunks none of which can be a file here, blocking. The
        reservation ends in the step that counts the records as used (``counted``): a group
        commit counts other callers' records before they wake up to release theirs."""
        self._verify_all(items)
        held = self._hold(need)
        try:
            return self._packs.append(items, held.end)
        finally:
            held.end()

    def _hold(self, need: int) -> _Held:
        """``_reserve`` for a write whose half ends the reservation as it counts the bytes
        (``_Held.end`` as its ``counted``): a pack group commit counts other callers' records
        before they wake up, and a file counts before its directory fsync, so a reservation
        ended only after the write returned had the bytes counted twice meanwhile and
        refused concurrent writes that fitted."""
        self._reserve(need)
        return _Held(self, need)

    def _reserve(self, need: int) -> None:
        """Count ``need`` bytes as being written, or InsufficientStorage if they do not fit.
        The halves' accounting locks first: their used bytes and the reservations they end
        (``_hold``) change in one step under them. Without a configured capacity, the disk's
        free space less a headroom is the bound (``_room``)."""
        room = self._room() if self._capacity is None else 0
        with self._packs.accounting(), self._files.accounting(), self._lock:
            if self._capacity is None and self._reserved + need > room:
                raise InsufficientStorage(
                    f"node disk is full: {room} bytes free for chunks"
                    f" ({self._reserved} being written), the write needs {need}"
                )
            if (
                self._capacity is not None
                and self.used_bytes + self._reserved + need > self._capacity
            ):
                raise InsufficientStorage(
                    f"node is full: {self.used_bytes} of {self._capacity} bytes used"
                    f" ({self._reserved} being written), the write needs {need}"
                )
            self._reserved += need

    def _verify_all(self, items: Sequence[tuple[ChunkId, Buffer]]) -> None:
        for chunk_id, data in items:
            parse_chunk_id(chunk_id)  # InvalidRequest unless 64 lowercase hex
            if sha256_hex(data) != chunk_id:
                raise IntegrityError(f"body does not hash to chunk {chunk_id}")

    async def _store(
        self, items: Sequence[tuple[ChunkId, Buffer]], held: Sequence[_Held]
    ) -> list[bool]:
        """Store reserved, verified ``items``; ``held[i]`` ends item i's reservation."""
        out = [False] * len(items)
        small = [i for i, (_, d) in enumerate(items) if len(d) < self._threshold]
        large = [i for i, (_, d) in enumerate(items) if len(d) >= self._threshold]
        if small:
            batch = [items[i] for i in small]
            as_files: set[ChunkId] = set()
            if self._small_files_possible():  # else a stat per chunk would find nothing
                as_files = await self._files.has(c for c, _ in batch)
            ends = [held[i].end for i in small]
            stored = await asyncio.to_thread(self._packs.append, batch, lambda: _run_all(ends))
            for i, new in zip(small, stored, strict=True):
                out[i] = new and items[i][0] not in as_files
            for chunk_id in as_files:
                await self._files.delete(chunk_id)
        if large:
            batch = [items[i] for i in large]
            in_packs = self._packs.held([c for c, _ in batch])
            counted = [held[i].end for i in large]
            stored = await self._files.put_many(batch, verified=True, counted=counted)
            for i, new in zip(large, stored, strict=True):
                out[i] = new and items[i][0] not in in_packs
            for chunk_id in in_packs:
                await asyncio.to_thread(self._packs.remove, chunk_id)
        return out

    def _small_files_possible(self) -> bool:
        """Whether the file half may hold a chunk now under the threshold: only files found
        at open can (every file written since is at least the threshold; a chunk id names
        one size), and only if one of them was smaller than it."""
        smallest = self._files.smallest_at_open
        return smallest is not None and smallest < self._threshold

    async def delete(self, chunk_id: ChunkId) -> None:
        parse_chunk_id(chunk_id)  # InvalidRequest unless 64 lowercase hex
        await asyncio.to_thread(self._packs.remove, chunk_id)
        await self._files.delete(chunk_id)

    async def delete_if_idle(self, chunk_id: ChunkId, min_age: float) -> bool:
        parse_chunk_id(chunk_id)  # InvalidRequest unless 64 lowercase hex
        if self._packs.lookup(chunk_id) is not None:
            return await asyncio.to_thread(self._packs.remove, chunk_id, min_age)
        return await self._files.delete_if_idle(chunk_id, min_age)

    async def compact(self, fraction: float = COMPACT_DEAD_FRACTION) -> int:
        """Rewrite packs whose dead fraction is at least ``fraction``; packs removed."""
        return await asyncio.to_thread(self._packs.compact, fraction)

    # --- reads ----------------------------------------------------------------------------

    async def get(self, chunk_id: ChunkId) -> bytes:
        parse_chunk_id(chunk_id)  # InvalidRequest unless 64 lowercase hex
        if self._packs.lookup(chunk_id) is not None:
            data = await asyncio.to_thread(self._packs.read, chunk_id)
            if data is not None:
                return data
        return await self._files.get(chunk_id)

    async def get_many(
        self, chunk_ids: Sequence[ChunkId], max_bytes: int
    ) -> list[Buffer | DfsError]:
        """Packed chunks in batches (``pack_reads``: CRC-checked, neighbours in one pread),
        the rest as ``FsChunkStore`` reads them, all on one worker thread."""
        for chunk_id in chunk_ids:
            parse_chunk_id(chunk_id)  # InvalidRequest unless 64 lowercase hex (no path built)
        return await asyncio.to_thread(self._get_many, chunk_ids, max_bytes)

    def _get_many(self, chunk_ids: Sequence[ChunkId], max_bytes: int) -> list[Buffer | DfsError]:
        out: list[Buffer | DfsError] = []
        packed: list[ChunkId] = []  # packed ids not read yet, in order: read together
        locs: list[Loc | None] = []  # where each was found
        total = 0

        def flush() -> None:
            got_all = read_many(self._packs, packed, locs)
            for chunk_id, got in zip(packed, got_all, strict=True):
                out.append(self._file_read(chunk_id) if got is None else got)
            packed.clear()
            locs.clear()

        for chunk_id in chunk_ids:
            loc = self._packs.lookup(chunk_id)
            if loc is not None:
                packed.append(chunk_id)
                locs.append(loc)
                total += loc.length
            else:  # a large chunk (a file), or none here
                flush()
                got = self._file_read(chunk_id)
                out.append(got)
                total += len(got) if isinstance(got, bytes) else 0
            if total >= max_bytes:
                break
        flush()
        return out

    def _file_read(self, chunk_id: ChunkId) -> bytes | DfsError:
        try:
            return self._files.read(chunk_id)
        except DfsError as exc:
            return exc

    async def has(self, chunk_ids: Iterable[ChunkId]) -> set[ChunkId]:
        ids = list(chunk_ids)
        for chunk_id in ids:
            parse_chunk_id(chunk_id)  # InvalidRequest unless 64 lowercase hex
        packed = await asyncio.to_thread(self._held_on_disk, ids)
        return packed | await self._files.has(c for c in ids if c not in packed)

    def _held_on_disk(self, chunk_ids: Sequence[ChunkId]) -> set[ChunkId]:
        """The packed ones of ``chunk_ids``, once the packs of their records are seen to exist
        (a stat each): a pack lost from disk while the node runs has its chunks forgotten
        first (``PackSet.forget_missing``, else only at the next scrub pass), so has-chunks
        and the listing never answer a copy that is not there (repair would count it, and a
        trim delete a real one instead). Blocking."""
        seqs = {loc.pack for c in chunk_ids if (loc := self._packs.lookup(c)) is not None}
        if not all(self._packs.path(seq).exists() for seq in seqs):
            self._packs.forget_missing()
        return self._packs.held(chunk_ids)

    async def quarantined(self) -> list[ChunkId]:
        """Ids with a quarantined copy (file or record) and no good copy here now."""
        no_file = await self._files.quarantined()
        packed = self._packs.held(no_file)
        return [c for c in no_file if c not in packed]

    async def scrub(self, rate_bytes: float) -> tuple[int, int]:
        """Verify the packed chunks, then the files (re-counting them), at ``rate_bytes``
        per second; then compact packs with many dead records. (verified, quarantined)."""

        async def packed() -> AsyncIterator[ChunkId]:
            for chunk_id in self._packs.ids():
                yield chunk_id

        await asyncio.to_thread(self._packs.forget_missing)
        checked, bad = await verify_at_rate(packed(), self.get, rate_bytes)
        more, worse = await self._files.scrub(rate_bytes)
        await self.compact()
        return checked + more, bad + worse

    async def list_chunks(self, after: str, limit: int) -> list[tuple[ChunkId, float]]:
        """Both halves' pages merged in id order (a chunk in both is listed once). Each half
        gives ``limit`` ids unless it has no more, so a page is short only at the end: the
        packed ids are a snapshot, and a record dropped since (a delete, compaction) is
        skipped for the next id, never left as a gap that reads as the end of the listing.
        A pack lost from disk has its chunks forgotten before they are listed."""
        page = await asyncio.to_thread(self._packed_page, after, limit)
        for chunk_id, age in await self._files.list_chunks(after, limit):
            page.setdefault(chunk_id, age)
        return sorted(page.items())[:limit]

    def _packed_page(self, after: str, limit: int) -> dict[ChunkId, float]:
        """Up to ``limit`` packed ids after ``after``, ascending, with their ages; taken again
        if one of their packs was lost from disk (``_held_on_disk`` forgot its ids)."""
        for _ in range(2):
            ids = self._packs.sorted_ids()
            now = time.time()
            page: dict[ChunkId, float] = {}
            for chunk_id in itertools.islice(ids, bisect.bisect_right(ids, after), None):
                loc = self._packs.lookup(chunk_id)
                if loc is not None:
                    page[chunk_id] = max(now - loc.written, 0.0)
                    if len(page) == limit:
                        break
            if len(self._held_on_disk(list(page))) == len(page):
                break
        return page

    async def iter_ids(self) -> AsyncIterator[ChunkId]:
        packed = self._packs.ids()
        for chunk_id in packed:
            yield chunk_id
        seen = set(packed)
        async for chunk_id in self._files.iter_ids():
            if chunk_id not in seen:
                yield chunk_id

    async def check_writable(self) -> None:
        """Create, fsync and remove a small file beside the packs (OSError if it can't)."""
        await asyncio.to_thread(self._probe_write)

    def _probe_write(self) -> None:
        path = self._packs.directory / f".readyz-{os.getpid()}-{threading.get_ident()}.tmp"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"ok")
            os.fsync(fd)
        finally:
            os.close(fd)
            path.unlink(missing_ok=True)


if TYPE_CHECKING:
    _: type[ChunkStore] = PackChunkStore


def _run_all(calls: Sequence[Callable[[], None]]) -> None:
    for call in calls:
        call()


class _Held:
    """Bytes one write holds reserved in a ``PackChunkStore`` until they count as used."""

    def __init__(self, store: PackChunkStore, need: int) -> None:
        self._store = store
        self._need = need

    def end(self) -> None:
        """Give the reservation back (once: later calls do nothing). Run by the half in the
        step that counts the bytes, under its accounting lock, or after a failed write."""
        with self._store._lock:
            self._store._reserved -= self._need
            self._need = 0
