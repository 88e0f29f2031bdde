"""The ChunkStore contract (dfs/chunkstore/base.py), run against every implementation.

A new implementation joins by adding a ``Backend`` to ``BACKENDS``: how to open it (with an
optional capacity), how to damage a stored copy behind its back, how to make a copy look
old and what identifies the copy held now (a rewrite must change it). Every test taking the
``store`` or ``backend`` fixture runs once per implementation: files (``FsChunkStore``),
memory, and packs (``PackChunkStore`` with a threshold that sends the suite's small chunks to
packs and its large ones to files). What is about files on disk (``FsChunkStore`` only) is in
``test_chunk_store_fs.py``; pack files (torn tails, rot, compaction) in
``test_chunk_store_pack.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import struct
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from dfs.chunkstore.base import ChunkStore
from dfs.chunkstore.fs import FsChunkStore
from dfs.chunkstore.memory import MemoryChunkStore
from dfs.chunkstore.pack import PackChunkStore
from dfs.chunkstore.record import HEADER_SIZE
from dfs.errors import ChunkNotFound, DfsError, InsufficientStorage, IntegrityError
from dfs.ids import ChunkId
from tests.conftest import random_bytes


def chunk(seed: int, size: int = 1000) -> tuple[ChunkId, bytes]:
    data = random_bytes(seed, size)
    return ChunkId(hashlib.sha256(data).hexdigest()), data


@dataclass
class Backend:
    name: str
    open: Callable[[int | None], Awaitable[ChunkStore]]
    corrupt: Callable[[ChunkStore, ChunkId], None]
    age: Callable[[ChunkStore, ChunkId, float], None]
    copy_id: Callable[[ChunkStore, ChunkId], object]
    """What identifies the copy held now; a put of the chunk (a rewrite) changes it."""


def _fs_backend(tmp_path: Path) -> Backend:
    async def open_fs(capacity: int | None) -> ChunkStore:
        return await FsChunkStore.open(tmp_path / "node", capacity)

    def corrupt_fs(store: ChunkStore, chunk_id: ChunkId) -> None:
        assert isinstance(store, FsChunkStore)
        path = store.path_of(chunk_id)
        raw = bytearray(path.read_bytes())
        raw[len(raw) // 2] ^= 0x01
        path.write_bytes(raw)

    def age_fs(store: ChunkStore, chunk_id: ChunkId, seconds: float) -> None:
        assert isinstance(store, FsChunkStore)
        _age(store, chunk_id, seconds)

    def copy_id_fs(store: ChunkStore, chunk_id: ChunkId) -> object:
        assert isinstance(store, FsChunkStore)
        # a rewrite's temp file exists beside the old copy until it replaces it: a new inode
        return store.path_of(chunk_id).stat().st_ino

    return Backend("fs", open_fs, corrupt_fs, age_fs, copy_id_fs)


def _age(store: FsChunkStore, cid: ChunkId, seconds: float) -> None:
    """Make a copy look written ``seconds`` ago."""
    past = time.time() - seconds
    os.utime(store.path_of(cid), (past, past))


def _memory_backend(_tmp_path: Path) -> Backend:
    async def open_memory(capacity: int | None) -> ChunkStore:
        return MemoryChunkStore(capacity)

    def corrupt_memory(store: ChunkStore, chunk_id: ChunkId) -> None:
        assert isinstance(store, MemoryChunkStore)
        store.corrupt(chunk_id)

    def age_memory(store: ChunkStore, chunk_id: ChunkId, seconds: float) -> None:
        assert isinstance(store, MemoryChunkStore)
        store.backdate(chunk_id, seconds)

    def copy_id_memory(store: ChunkStore, chunk_id: ChunkId) -> object:
        assert isinstance(store, MemoryChunkStore)
        return store.write_serial(chunk_id)

    return Backend("memory", open_memory, corrupt_memory, age_memory, copy_id_memory)


PACK_THRESHOLD = 4096
"""The pack backend's threshold here: chunks under 4 KiB go to packs, larger ones to files,
so the suite's chunk sizes (0 B .. 1 MiB) exercise both halves."""
PACK_MAX = 16 * 1024
"""Small packs, so that a test's writes span several (rotation) and compaction has work."""


async def open_pack(root: Path, capacity: int | None = None) -> PackChunkStore:
    return await PackChunkStore.open(root, capacity, threshold=PACK_THRESHOLD, max_pack=PACK_MAX)


def corrupt_packed(store: PackChunkStore, chunk_id: ChunkId) -> None:
    """Flip one bit in the middle of a packed chunk's payload, in the pack file."""
    loc = store.packs.lookup(chunk_id)
    assert loc is not None
    assert loc.length > 0
    path = store.packs.path(loc.pack)
    raw = bytearray(path.read_bytes())
    raw[loc.offset + HEADER_SIZE + loc.length // 2] ^= 0x01
    path.write_bytes(raw)


def _pack_backend(tmp_path: Path) -> Backend:
    async def open_packs(capacity: int | None) -> ChunkStore:
        return await open_pack(tmp_path / "node", capacity)

    def corrupt_pack(store: ChunkStore, chunk_id: ChunkId) -> None:
        assert isinstance(store, PackChunkStore)
        if store.packs.lookup(chunk_id) is not None:
            corrupt_packed(store, chunk_id)
        else:
            _fs_backend(tmp_path).corrupt(store.files, chunk_id)

    def age_pack(store: ChunkStore, chunk_id: ChunkId, seconds: float) -> None:
        assert isinstance(store, PackChunkStore)
        if store.packs.lookup(chunk_id) is not None:
            store.packs.backdate(chunk_id, seconds)
        else:
            _age(store.files, chunk_id, seconds)

    def copy_id_pack(store: ChunkStore, chunk_id: ChunkId) -> object:
        assert isinstance(store, PackChunkStore)
        loc = store.packs.lookup(chunk_id)
        if loc is not None:
            return ("pack", loc.pack, loc.offset)
        return ("file", store.files.path_of(chunk_id).stat().st_ino)

    return Backend("pack", open_packs, corrupt_pack, age_pack, copy_id_pack)


BACKENDS: dict[str, Callable[[Path], Backend]] = {
    "fs": _fs_backend,
    "memory": _memory_backend,
    "pack": _pack_backend,
}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return BACKENDS[request.param](tmp_path)


@pytest.fixture
async def store(backend: Backend) -> ChunkStore:
    return await backend.open(None)


async def ids_of(store: ChunkStore) -> set[ChunkId]:
    return {c async for c in store.iter_ids()}


# --- put / get -----------------------------------------------------------------------------


async def test_empty_store(store: ChunkStore) -> None:
    assert store.used_bytes == 0
    assert store.chunk_count == 0
    assert store.capacity_bytes > 0
    assert await ids_of(store) == set()


@pytest.mark.parametrize("size", [0, 1, 4096, 1024 * 1024 + 3])
async def test_put_get_round_trip(store: ChunkStore, size: int) -> None:
    cid, data = chunk(size, size)
    assert await store.put(cid, data) is True
    assert await store.get(cid) == data
    assert store.used_bytes == size
    assert store.chunk_count == 1


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
async def test_put_accepts_any_buffer(store: ChunkStore, kind: type) -> None:
    cid, data = chunk(1)
    assert await store.put(cid, kind(data)) is True
    assert await store.get(cid) == data


@pytest.mark.parametrize("size", [0, 1000, 1024 * 1024 + 3])
async def test_put_parts_stores_the_parts_end_to_end(store: ChunkStore, size: int) -> None:
    """A body kept in the pieces it arrived in is stored as its bytes end to end (packed or
    as a file by its total size), checked against the id as a whole: wrong or missing
    pieces store nothing."""
    cid, data = chunk(size, size)
    third = size // 3
    parts = [data[:third], bytearray(data[third : 2 * third]), memoryview(data)[2 * third :]]
    for wrong in ([*parts, b"x"], [parts[0], parts[1], parts[2][:-1]] if size else [b"y"]):
        with pytest.raises(IntegrityError):
            await store.put_parts(cid, wrong)
    assert (store.used_bytes, store.chunk_count) == (0, 0)
    assert await store.put_parts(cid, parts) is True
    assert await store.get(cid) == data
    assert await store.put_parts(cid, [data]) is False
    assert (store.used_bytes, store.chunk_count) == (size, 1)


async def test_put_is_idempotent_and_counted_once(store: ChunkStore) -> None:
    cid, data = chunk(1)
    assert await store.put(cid, data) is True
    assert await store.put(cid, data) is False
    assert await store.put(cid, bytearray(data)) is False
    assert store.used_bytes == len(data)
    assert store.chunk_count == 1
    assert await ids_of(store) == {cid}


async def test_put_of_a_held_chunk_rewrites_the_copy(backend: Backend, store: ChunkStore) -> None:
    """No fast path for a chunk already here: the copy is written again (the same durable
    work as a new write, so the time does not tell whether it was held), counted once."""
    cid, data = chunk(1, 4096)
    assert await store.put(cid, data) is True
    first = backend.copy_id(store, cid)
    assert await store.put(cid, data) is False
    second = backend.copy_id(store, cid)
    assert second != first
    assert await store.put_many([(cid, data)]) == [False]
    assert backend.copy_id(store, cid) != second  # (an inode freed earlier may come back)
    assert (store.used_bytes, store.chunk_count) == (len(data), 1)
    assert await store.get(cid) == data


async def test_put_replaces_a_rotten_copy_with_the_verified_bytes(
    backend: Backend, store: ChunkStore
) -> None:
    """A copy that rotted silently (not yet read or scrubbed) is replaced by a re-sent good
    one: the store never acknowledges bytes it does not hold."""
    (a, da), (b, db) = chunk(1, 3000), chunk(2, 2000)
    await store.put(a, da)
    await store.put(b, db)
    backend.corrupt(store, a)
    backend.corrupt(store, b)
    assert await store.put(a, da) is False  # a copy was held: replaced
    assert await store.put_many([(b, db)]) == [False]
    assert await store.get(a) == da
    assert await store.get(b) == db
    assert await store.quarantined() == []
    assert (store.used_bytes, store.chunk_count) == (len(da) + len(db), 2)
    assert await store.scrub(rate_bytes=1e9) == (2, 0)


async def test_put_with_wrong_hash_raises_and_stores_nothing(
    backend: Backend, store: ChunkStore
) -> None:
    cid, data = chunk(1)
    _, other = chunk(2)
    with pytest.raises(IntegrityError):
        await store.put(cid, other)
    with pytest.raises(IntegrityError):
        await store.put(cid, data[:-1])
    assert store.used_bytes == 0
    assert store.chunk_count == 0
    assert await store.has([cid]) == set()
    assert await ids_of(store) == set()
    with pytest.raises(ChunkNotFound):
        await store.get(cid)
    # and the right bytes are still accepted afterwards
    assert await store.put(cid, data) is True


async def test_get_missing_raises_chunk_not_found(store: ChunkStore) -> None:
    cid, _ = chunk(1)
    with pytest.raises(ChunkNotFound):
        await store.get(cid)


async def test_corrupted_copy_is_never_served(backend: Backend, store: ChunkStore) -> None:
    cid, data = chunk(1)
    keep, keep_data = chunk(2)
    await store.put(cid, data)
    await store.put(keep, keep_data)
    backend.corrupt(store, cid)
    with pytest.raises(ChunkNotFound):
        await store.get(cid)
    with pytest.raises(ChunkNotFound):  # and not on a second try either
        await store.get(cid)
    assert store.used_bytes == len(keep_data)
    assert store.chunk_count == 1
    assert await store.has([cid, keep]) == {keep}
    assert await ids_of(store) == {keep}
    # a good copy can be stored again (repair)
    assert await store.put(cid, data) is True
    assert await store.get(cid) == data
    assert store.used_bytes == len(data) + len(keep_data)


async def test_get_many_reads_a_prefix_in_order_with_errors_in_place(store: ChunkStore) -> None:
    stored = [chunk(i, size) for i, size in enumerate((300, 9000, 0, 300, 5000, 300))]
    for cid, data in stored:
        await store.put(cid, data)
    missing = chunk(99)[0]
    asked = [stored[0][0], missing, *[c for c, _ in stored[1:]], stored[0][0]]
    want = [stored[0][1], None, *[d for _, d in stored[1:]], stored[0][1]]

    def same(got: list[bytes | memoryview | DfsError], expected: list[bytes | None]) -> None:
        assert len(got) == len(expected)
        for g, e in zip(got, expected, strict=True):
            assert isinstance(g, ChunkNotFound) if e is None else g == e

    same(await store.get_many(asked, 1 << 30), want)
    # a budget reads a prefix (at least one id), so a caller loops
    assert len(await store.get_many(asked, 1)) == 1
    got: list[bytes | memoryview | DfsError] = []
    while len(got) < len(asked):
        part = await store.get_many(asked[len(got) :], 700)
        assert part
        got += part
    same(got, want)
    with pytest.raises(DfsError):
        await store.get_many([ChunkId("../etc/passwd")], 100)


async def test_get_many_never_serves_a_corrupted_copy(backend: Backend, store: ChunkStore) -> None:
    chunks = [chunk(i, 300) for i in range(5)]
    for cid, data in chunks:
        await store.put(cid, data)
    bad = chunks[2][0]
    backend.corrupt(store, bad)
    got = await store.get_many([c for c, _ in chunks], 1 << 30)
    assert isinstance(got[2], ChunkNotFound)
    assert [g for n, g in enumerate(got) if n != 2] == [
        d for n, (_c, d) in enumerate(chunks) if n != 2
    ]
    assert await store.quarantined() == [bad]
    assert await store.has([bad]) == set()
    assert (store.used_bytes, store.chunk_count) == (4 * 300, 4)


async def test_rot_that_keeps_a_packed_records_crc_is_found_by_scrub(tmp_path: Path) -> None:
    """Serving checks a packed record's CRC-32 (every reader verifies the SHA-256 itself);
    scrub re-hashes, so rot a CRC cannot see (here: forged to match) is still found there."""
    store = await open_pack(tmp_path / "node")
    chunks = [chunk(i, 300) for i in range(3)]
    for cid, data in chunks:
        await store.put(cid, data)
    bad = chunks[1][0]
    loc = store.packs.lookup(bad)
    assert loc is not None
    path = store.packs.path(loc.pack)
    raw = bytearray(path.read_bytes())
    start = loc.offset + HEADER_SIZE
    raw[start] ^= 0x01
    payload_crc = zlib.crc32(raw[start : start + loc.length])
    struct.pack_into("<I", raw, loc.offset + 64, payload_crc)
    struct.pack_into("<I", raw, loc.offset + 68, zlib.crc32(raw[loc.offset : loc.offset + 68]))
    path.write_bytes(raw)
    got = await store.get_many([bad], 1 << 20)
    assert isinstance(got[0], bytes | memoryview)  # served: a view into the read, not copied
    assert hashlib.sha256(got[0]).hexdigest() != bad  # what the reader's own check refuses
    assert await store.scrub(rate_bytes=1e9) == (2, 1)
    assert await store.quarantined() == [bad]


# --- has / delete / iter_ids ---------------------------------------------------------------


async def test_has_answers_a_set(store: ChunkStore) -> None:
    present = [chunk(i) for i in range(3)]
    absent = [chunk(i)[0] for i in range(10, 13)]
    for cid, data in present:
        await store.put(cid, data)
    asked = [c for c, _ in present] + absent
    assert await store.has(asked) == {c for c, _ in present}
    assert await store.has(iter(asked)) == {c for c, _ in present}  # any iterable, once
    assert await store.has([]) == set()
    assert await store.has(absent) == set()


async def test_delete_is_idempotent(store: ChunkStore) -> None:
    cid, data = chunk(1)
    keep, keep_data = chunk(2)
    await store.put(cid, data)
    await store.put(keep, keep_data)
    await store.delete(cid)
    await store.delete(cid)
    await store.delete(chunk(3)[0])  # never stored
    assert store.used_bytes == len(keep_data)
    assert store.chunk_count == 1
    assert await store.has([cid, keep]) == {keep}
    with pytest.raises(ChunkNotFound):
        await store.get(cid)
    assert await store.put(cid, data) is True  # and it can come back


async def test_iter_ids_lists_what_is_stored(store: ChunkStore) -> None:
    stored = {}
    for i in range(20):
        cid, data = chunk(i, 100 + i)
        await store.put(cid, data)
        stored[cid] = data
    assert await ids_of(store) == set(stored)
    assert store.chunk_count == 20
    assert store.used_bytes == sum(len(d) for d in stored.values())


# --- concurrency and capacity --------------------------------------------------------------


async def test_concurrent_puts_of_one_chunk_store_it_once(store: ChunkStore) -> None:
    cid, data = chunk(1, 256 * 1024)
    results = await asyncio.gather(*(store.put(cid, data) for _ in range(16)))
    assert results.count(True) == 1
    assert store.used_bytes == len(data)
    assert store.chunk_count == 1
    assert await store.get(cid) == data
    assert await ids_of(store) == {cid}


async def test_concurrent_puts_of_many_chunks(store: ChunkStore) -> None:
    chunks = [chunk(i, 10_000) for i in range(32)]
    results = await asyncio.gather(*(store.put(c, d) for c, d in chunks))
    assert all(results)
    assert store.chunk_count == 32
    assert store.used_bytes == 32 * 10_000
    assert await ids_of(store) == {c for c, _ in chunks}


async def test_capacity_bound_raises_insufficient_storage(backend: Backend) -> None:
    store = await backend.open(2500)
    assert store.capacity_bytes == 2500
    a, a_data = chunk(1)
    b, b_data = chunk(2)
    c, c_data = chunk(3)
    assert await store.put(a, a_data)
    assert await store.put(b, b_data)
    with pytest.raises(InsufficientStorage):
        await store.put(c, c_data)
    assert store.used_bytes == 2000
    assert store.chunk_count == 2
    assert await store.has([c]) == set()
    assert await ids_of(store) == {a, b}
    # a held chunk is rewritten, so a full store refuses it as it refuses a new one (the
    # answer must not tell whether the chunk was here); the copy held stays as it was
    held = backend.copy_id(store, a)
    with pytest.raises(InsufficientStorage):
        await store.put(a, a_data)
    with pytest.raises(InsufficientStorage):
        await store.put_many([(a, a_data)])
    assert backend.copy_id(store, a) == held
    assert await store.get(a) == a_data
    assert (store.used_bytes, store.chunk_count) == (2000, 2)
    # deleting makes room again
    await store.delete(a)
    assert await store.put(c, c_data) is True
    # and a rewrite that fits is counted once
    await store.delete(b)
    assert await store.put(c, c_data) is False
    assert (store.used_bytes, store.chunk_count) == (1000, 1)


async def test_capacity_exactly_filled(backend: Backend) -> None:
    store = await backend.open(2000)
    assert await store.put(*chunk(1))
    assert await store.put(*chunk(2))
    assert store.used_bytes == store.capacity_bytes


async def test_concurrent_puts_respect_capacity(backend: Backend) -> None:
    store = await backend.open(4 * 100_000)
    chunks = [chunk(i, 100_000) for i in range(16)]
    results = await asyncio.gather(*(store.put(c, d) for c, d in chunks), return_exceptions=True)
    stored = [c for (c, _), r in zip(chunks, results, strict=True) if r is True]
    assert all(r is True or isinstance(r, InsufficientStorage) for r in results)
    assert len(stored) == 4
    assert store.used_bytes <= store.capacity_bytes


async def test_errors_are_dfs_errors(store: ChunkStore) -> None:
    cid, _ = chunk(1)
    with pytest.raises(DfsError):
        await store.get(cid)
    with pytest.raises(DfsError):
        await store.put(cid, b"nope")


# --- batches, garbage collection, listing, quarantine, scrub ----------------------------------


async def test_put_many_stores_each_once(store: ChunkStore) -> None:
    chunks = [chunk(i, 500 + i) for i in range(5)]
    assert await store.put_many(chunks[:2]) == [True, True]
    assert await store.put_many(chunks) == [False, False, True, True, True]
    assert store.chunk_count == 5
    assert store.used_bytes == sum(len(d) for _, d in chunks)
    for cid, data in chunks:
        assert await store.get(cid) == data


async def test_put_many_with_one_bad_hash_stores_none(store: ChunkStore) -> None:
    good = [chunk(i) for i in range(3)]
    bad_id, _ = chunk(9)
    with pytest.raises(IntegrityError):
        await store.put_many([*good, (bad_id, b"not these bytes")])
    assert (store.used_bytes, store.chunk_count) == (0, 0)
    assert await store.has([c for c, _ in good]) == set()


async def test_delete_if_idle_keeps_copies_written_or_re_sent_recently(
    backend: Backend, store: ChunkStore
) -> None:
    cid, data = chunk(1)
    await store.put(cid, data)
    assert await store.delete_if_idle(cid, 60.0) is False  # just written
    backend.age(store, cid, 120.0)
    await store.put(cid, data)  # an upload re-sends it: young again
    assert await store.delete_if_idle(cid, 60.0) is False
    assert await store.get(cid) == data
    backend.age(store, cid, 120.0)
    assert await store.delete_if_idle(cid, 60.0) is True
    assert (store.used_bytes, store.chunk_count) == (0, 0)
    assert await store.delete_if_idle(cid, 0.0) is False  # missing: a no-op
    assert await store.put(cid, data) is True  # collected: stored afresh


async def test_list_chunks_pages_in_order_with_ages(backend: Backend, store: ChunkStore) -> None:
    chunks = [chunk(i, 50) for i in range(25)]
    for cid, data in chunks:
        await store.put(cid, data)
    backend.age(store, chunks[0][0], 500.0)
    seen: list[tuple[ChunkId, float]] = []
    after = ""
    for _ in range(10):
        page = await store.list_chunks(after, 7)
        seen += page
        if len(page) < 7:
            break
        after = page[-1][0]
    assert [c for c, _ in seen] == sorted(c for c, _ in chunks)
    ages = dict(seen)
    assert 499.0 <= ages[chunks[0][0]] <= 560.0
    assert all(0.0 <= ages[c] < 60.0 for c, _ in chunks[1:])
    assert await store.list_chunks(max(c for c, _ in chunks), 10) == []


async def test_quarantined_lists_bad_copies_until_stored_again(
    backend: Backend, store: ChunkStore
) -> None:
    (a, da), (b, db) = chunk(1), chunk(2)
    await store.put(a, da)
    await store.put(b, db)
    assert await store.quarantined() == []
    backend.corrupt(store, a)
    with pytest.raises(ChunkNotFound):
        await store.get(a)
    assert await store.quarantined() == [a]
    await store.put(a, da)  # repair copied a good one back
    assert await store.quarantined() == []
    assert await store.get(a) == da


async def test_scrub_quarantines_bad_copies(backend: Backend, store: ChunkStore) -> None:
    chunks = [chunk(i, 300) for i in range(6)]
    for cid, data in chunks:
        await store.put(cid, data)
    bad = chunks[2][0]
    backend.corrupt(store, bad)
    assert await store.scrub(rate_bytes=1e9) == (5, 1)
    assert await store.quarantined() == [bad]
    assert await store.has([bad]) == set()
    assert (store.used_bytes, store.chunk_count) == (5 * 300, 5)
    assert await store.scrub(rate_bytes=1e9) == (5, 0)


async def test_check_writable(store: ChunkStore) -> None:
    await store.check_writable()
    assert (store.used_bytes, store.chunk_count) == (0, 0)
