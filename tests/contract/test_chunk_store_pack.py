"""``PackChunkStore`` only: what the ChunkStore contract (``test_chunk_store.py``) leaves to the
implementation and is about pack files: the record header, the restart that rebuilds the
index (tombstones, rewrites), a torn tail cut off and never served, rot in a pack found by
scrub or on open and quarantined, compaction (also racing puts and deletes of the chunks it
moves), and a threshold changed between runs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dfs.chunkstore import fs as fs_module
from dfs.chunkstore import packindex, record
from dfs.chunkstore.pack import PackChunkStore
from dfs.chunkstore.packs import PackSet
from dfs.chunkstore.record import HEADER_SIZE
from dfs.errors import ChunkNotFound
from dfs.ids import ChunkId
from tests.contract.test_chunk_store import PACK_THRESHOLD, chunk, corrupt_packed, ids_of, open_pack


def packs_of(root: Path) -> list[Path]:
    return sorted((root / "chunks" / "packs").glob("pack-*.pack"))


async def reopen(store: PackChunkStore, root: Path) -> PackChunkStore:
    """Close the store (which seals its active pack) and open it again."""
    await store.close()
    return await open_pack(root)


async def crash_and_reopen(root: Path) -> PackChunkStore:
    """Open the store again as after kill -9: the active pack left unsealed (no index)."""
    return await open_pack(root)


async def test_pack_layout_and_record_header(tmp_path: Path) -> None:
    store = await open_pack(tmp_path)
    (small, sd), (large, ld) = chunk(1, 1000), chunk(2, PACK_THRESHOLD)
    assert await store.put_many([(small, sd), (large, ld)]) == [True, True]
    assert store.files.path_of(large).read_bytes() == ld  # large: a plain file
    assert not store.files.path_of(small).exists()
    loc = store.packs.lookup(small)
    assert loc is not None
    raw = store.packs.path(loc.pack).read_bytes()
    assert raw[:4] == b"DFSR"
    head = record.decode_header(raw, loc.offset)
    assert head is not None
    assert (head.kind, head.flags, head.length, head.size) == (1, 0, 1000, 1000)
    assert head.chunk_id == small
    assert raw[loc.offset + HEADER_SIZE : loc.offset + HEADER_SIZE + 1000] == sd
    assert (store.used_bytes, store.chunk_count) == (1000 + PACK_THRESHOLD, 2)


async def test_one_write_and_one_fsync_per_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await open_pack(tmp_path)
    batch = [chunk(i, 500) for i in range(8)]
    calls: list[str] = []
    for name in ("write", "writev", "fsync"):
        real = getattr(os, name)

        def traced(*a: object, _real: object = real, _name: str = name) -> object:
            calls.append(_name)
            return _real(*a)  # type: ignore[operator]

        monkeypatch.setattr(os, name, traced)
    assert await store.put_many(batch) == [True] * 8
    assert await store.put_many(batch) == [False] * 8  # a rewrite: fresh records, tombstones
    monkeypatch.undo()
    assert calls == ["writev", "fsync", "writev", "fsync"]  # records and tombstones at once


async def test_reopen_rebuilds_what_is_held(tmp_path: Path) -> None:
    store = await open_pack(tmp_path)
    chunks = [chunk(i, 700) for i in range(30)]  # several packs (16 KiB each here)
    await store.put_many(chunks[:15])
    await store.put_many(chunks[15:])
    await store.put_many(chunks[:5])  # rewritten: the old records are tombstoned
    for cid, _ in chunks[25:]:
        await store.delete(cid)
    assert len(packs_of(tmp_path)) > 1
    store = await reopen(store, tmp_path)
    assert await ids_of(store) == {c for c, _ in chunks[:25]}
    assert (store.used_bytes, store.chunk_count) == (25 * 700, 25)
    for cid, data in chunks[:25]:
        assert await store.get(cid) == data
    assert await store.put_many(chunks[20:]) == [False] * 5 + [True] * 5


def _cut(path: Path, keep: int) -> None:
    with path.open("r+b") as f:
        f.truncate(keep)


@pytest.mark.parametrize("where", ["payload", "header", "garbage"])
async def test_torn_tail_is_cut_off_and_never_served(tmp_path: Path, where: str) -> None:
    """A crash mid-append (power loss after a partial write) leaves the last record short or
    an unfinished header after it: on open it is dropped from the file, never served, and
    everything before it is intact."""
    store = await open_pack(tmp_path)
    committed = [chunk(i, 600) for i in range(5)]
    await store.put_many(committed)
    torn, torn_data = chunk(9, 900)
    await store.put(torn, torn_data)
    loc = store.packs.lookup(torn)
    assert loc is not None
    path = store.packs.path(loc.pack)
    good_end = loc.offset
    await store.close()
    if where == "payload":
        _cut(path, loc.offset + HEADER_SIZE + 300)
    elif where == "header":
        _cut(path, loc.offset + HEADER_SIZE // 2)
    else:  # a whole record, then half a header of the next write
        with path.open("ab") as f:
            f.write(record.chunk_record(*chunk(10, 100), 0.0)[: HEADER_SIZE - 5])
        good_end = loc.offset + HEADER_SIZE + 900
    store = await open_pack(tmp_path)
    assert path.stat().st_size == good_end
    expect = {c for c, _ in committed} | ({torn} if where == "garbage" else set())
    assert await ids_of(store) == expect
    for cid, data in committed:
        assert await store.get(cid) == data
    if where != "garbage":
        assert await store.has([torn]) == set()
        with pytest.raises(ChunkNotFound):
            await store.get(torn)
        assert await store.put(torn, torn_data) is True  # repair sends it again
    store = await reopen(store, tmp_path)
    assert await store.get(torn) == torn_data
    assert store.chunk_count == 6


async def test_flipped_byte_in_a_pack_is_found_by_scrub_and_quarantined(tmp_path: Path) -> None:
    store = await open_pack(tmp_path)
    chunks = [chunk(i, 800) for i in range(10)]
    await store.put_many(chunks)
    bad, bad_data = chunks[4]
    corrupt_packed(store, bad)
    assert await store.scrub(rate_bytes=1e9) == (9, 1)
    assert await store.quarantined() == [bad]
    [kept] = list((tmp_path / "quarantine").iterdir())
    assert kept.name.startswith(f"{bad}.")
    assert len(kept.read_bytes()) == len(bad_data)  # the record's bytes, for inspection
    assert (store.used_bytes, store.chunk_count) == (9 * 800, 9)
    store = await reopen(store, tmp_path)  # tombstoned: it stays gone, quarantined once
    assert await store.has([bad]) == set()
    assert await store.quarantined() == [bad]
    assert len(list((tmp_path / "quarantine").iterdir())) == 1
    assert await store.put(bad, bad_data) is True  # repair
    assert await store.quarantined() == []
    assert await store.scrub(rate_bytes=1e9) == (10, 0)


async def test_rot_in_the_middle_of_a_pack_is_found_on_open(tmp_path: Path) -> None:
    """Rot the node never read is found when the packs are read on open: the record is
    quarantined (listed for repair), the records after it are served."""
    store = await open_pack(tmp_path)
    chunks = [chunk(i, 800) for i in range(6)]
    await store.put_many(chunks)
    corrupt_packed(store, chunks[1][0])
    loc = store.packs.lookup(chunks[3][0])
    assert loc is not None
    path = store.packs.path(loc.pack)
    raw = bytearray(path.read_bytes())
    raw[loc.offset + 10] ^= 0x01  # chunk 3's header: its length can no longer be trusted
    path.write_bytes(raw)
    store = await crash_and_reopen(tmp_path)
    lost = {chunks[1][0], chunks[3][0]}
    assert await ids_of(store) == {c for c, _ in chunks} - lost
    for cid, data in chunks:
        if cid not in lost:
            assert await store.get(cid) == data
    assert await store.quarantined() == [chunks[1][0]]  # the header-damaged one is unreadable


async def _fill_and_kill(store: PackChunkStore, n: int, keep: int) -> list[tuple[ChunkId, bytes]]:
    chunks = [chunk(i, 1500) for i in range(n)]
    for i in range(0, n, 5):
        await store.put_many(chunks[i : i + 5])
    for cid, _ in chunks[keep:]:
        await store.delete(cid)
    return chunks[:keep]


def _disk(root: Path) -> int:
    return sum(p.stat().st_size for p in packs_of(root))


async def test_compaction_rewrites_packs_with_dead_records(tmp_path: Path) -> None:
    store = await open_pack(tmp_path)
    live = await _fill_and_kill(store, 40, 6)
    before = _disk(tmp_path)
    assert await store.compact() > 0
    assert _disk(tmp_path) < before / 2
    for cid, data in live:
        assert await store.get(cid) == data
    assert (store.used_bytes, store.chunk_count) == (6 * 1500, 6)
    store = await reopen(store, tmp_path)  # the deleted stay deleted, the moved are found
    assert await ids_of(store) == {c for c, _ in live}
    assert await store.compact() >= 0
    store = await reopen(store, tmp_path)
    assert await ids_of(store) == {c for c, _ in live}
    assert await store.scrub(rate_bytes=1e9) == (6, 0)


@pytest.fixture
def paused_compaction(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[threading.Event, threading.Event]]:
    """Compaction stops after reading a pack (before it takes the append lock) until
    ``go`` is set; ``reading`` is set when it got there."""
    reading, go = threading.Event(), threading.Event()
    real = PackSet._prepare

    def prepare(self: PackSet, seq: int) -> tuple[bytes, set[tuple[ChunkId, int]]]:
        out = real(self, seq)
        reading.set()
        go.wait(10)
        return out

    monkeypatch.setattr(PackSet, "_prepare", prepare)
    yield reading, go
    go.set()


async def test_compaction_racing_puts_and_deletes_loses_nothing(
    tmp_path: Path, paused_compaction: tuple[threading.Event, threading.Event]
) -> None:
    """While a pack is being compacted: a dead chunk in it is re-sent (an upload refers to
    it again), a live one is re-sent, another live one is deleted. Afterwards, and after a
    restart, the re-sent ones are held and the deleted one is not."""
    reading, go = paused_compaction
    store = await open_pack(tmp_path)
    chunks = [chunk(i, 2000) for i in range(10)]  # all in pack 1, full after the 2nd batch
    await store.put_many(chunks[:5])
    await store.put_many(chunks[5:])
    first = store.packs.lookup(chunks[0][0])
    assert first is not None
    in_first = [c for c, d in chunks if (loc := store.packs.lookup(c)) and loc.pack == first.pack]
    assert len(in_first) >= 4
    dead, resent, dropped = in_first[0], in_first[1], in_first[2]
    for cid in in_first[3:]:
        await store.delete(cid)
    await store.delete(dead)
    task = asyncio.create_task(store.compact())
    await asyncio.to_thread(reading.wait, 10)
    data = dict(chunks)
    assert await store.put_many([(dead, data[dead]), (resent, data[resent])]) == [True, False]
    await store.delete(dropped)
    go.set()
    assert await task >= 1
    assert not store.packs.path(first.pack).exists()
    expect = {c for c, _ in chunks} - set(in_first) | {dead, resent}
    assert await ids_of(store) == expect
    for cid in expect:
        assert await store.get(cid) == data[cid]
    store = await reopen(store, tmp_path)
    assert await ids_of(store) == expect
    assert (store.used_bytes, store.chunk_count) == (2000 * len(expect), len(expect))


async def test_a_changed_threshold_moves_a_chunk_when_it_is_written_again(tmp_path: Path) -> None:
    store = await PackChunkStore.open(tmp_path, threshold=0)  # every chunk a file
    cid, data = chunk(1, 1000)
    assert await store.put(cid, data) is True
    assert store.files.path_of(cid).exists()
    await store.close()
    store = await open_pack(tmp_path)  # now it is a small chunk
    assert await store.get(cid) == data
    assert await store.put(cid, data) is False
    assert store.packs.lookup(cid) is not None
    assert not store.files.path_of(cid).exists()
    assert (store.used_bytes, store.chunk_count) == (1000, 1)
    await store.close()
    store = await PackChunkStore.open(tmp_path, threshold=0)  # and back
    assert await store.put(cid, data) is False
    assert store.packs.lookup(cid) is None
    assert store.files.path_of(cid).exists()
    store = await reopen(store, tmp_path)
    assert (store.used_bytes, store.chunk_count) == (1000, 1)


async def test_a_record_in_an_unknown_encoding_is_not_served(tmp_path: Path) -> None:
    """A record whose flags this version does not know (a later node's zstd, say) is held
    but never served as if it were plain bytes."""
    store = await open_pack(tmp_path)
    cid, data = chunk(1, 1000)
    await store.put(cid, data)
    loc = store.packs.lookup(cid)
    assert loc is not None
    path = store.packs.path(loc.pack)
    raw = bytearray(path.read_bytes())
    head = bytearray(raw[loc.offset : loc.offset + HEADER_SIZE - 4])
    struct.pack_into("<H", head, 6, record.FLAG_ZSTD)
    raw[loc.offset : loc.offset + HEADER_SIZE] = head + struct.pack("<I", zlib.crc32(head))
    path.write_bytes(raw)
    with pytest.raises(ChunkNotFound, match="encoding"):
        await store.get(cid)
    assert await store.quarantined() == []


@pytest.mark.parametrize("cut", [1, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 50, 99])
def test_scan_drops_any_cut_of_the_last_record(cut: int) -> None:
    first = record.chunk_record(*chunk(1, 100), 1.0)
    last = record.chunk_record(*chunk(2, 100), 2.0)
    found = record.scan(first + last[: len(last) - cut])
    assert [h.chunk_id for _, h in found.records] == [chunk(1, 100)[0]]
    assert found.end == len(first)
    assert found.rotten == []


async def test_sealed_packs_are_indexed_from_their_index_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pack that no longer takes appends gets an index file; a restart reads only the
    packs without one that checks (the one that was active, one whose index is damaged)."""
    store = await open_pack(tmp_path)
    chunks = [chunk(i, 900) for i in range(60)]
    for i in range(0, 60, 6):
        await store.put_many(chunks[i : i + 6])
    for cid, _ in chunks[50:]:
        await store.delete(cid)
    packs = packs_of(tmp_path)
    indexed = [p for p in packs if p.with_suffix(".idx").exists()]
    assert indexed == packs[:-1]  # all but the active one
    damaged = indexed[1].with_suffix(".idx")
    raw = bytearray(damaged.read_bytes())
    raw[20] ^= 0x01
    damaged.write_bytes(raw)
    scanned: list[int] = []
    real = PackSet._scan_pack

    def scan_pack(self: PackSet, seq: int) -> object:
        scanned.append(seq)
        return real(self, seq)

    monkeypatch.setattr(PackSet, "_scan_pack", scan_pack)
    await store.close()  # seals the active pack from the entries noted, reading no pack
    seq = [int(p.stem.split("-")[1]) for p in packs]
    assert scanned == []
    assert packs[-1].with_suffix(".idx").exists()
    scanned.clear()
    store = await open_pack(tmp_path)
    assert scanned == [seq[1]]  # only the pack whose index is damaged
    assert await ids_of(store) == {c for c, _ in chunks[:50]}
    assert (store.used_bytes, store.chunk_count) == (50 * 900, 50)
    for cid, data in chunks[:50]:
        assert await store.get(cid) == data
    await store.close()
    scanned.clear()
    store = await open_pack(tmp_path)
    assert scanned == []
    await crash_and_reopen(tmp_path)
    assert scanned == [seq[-1] + 2]  # after a crash, only the pack that was active
    assert await ids_of(store) == {c for c, _ in chunks[:50]}


async def test_a_sealed_index_is_the_one_a_read_of_the_pack_gives(tmp_path: Path) -> None:
    """The index written from the entries noted while a pack was active (chunks, re-sent
    chunks, tombstones, records moved in by a compaction) is byte for byte the index a
    whole read of the pack rebuilds."""
    store = await open_pack(tmp_path)
    chunks = [chunk(i, 700 + 13 * i) for i in range(40)]
    for i in range(0, 40, 5):
        await store.put_many(chunks[i : i + 5])
    await store.put_many(chunks[3:9])  # re-sent: fresh records and tombstones
    for cid, _ in chunks[10:30]:
        await store.delete(cid)
    assert await store.compact() > 0
    await store.put_many(chunks[30:33])
    await store.close()
    packs = packs_of(tmp_path)
    assert len(packs) >= 2
    for pack in packs:
        written = pack.with_suffix(".idx").read_bytes()
        entries, rotten = packindex.rebuild(pack)
        assert rotten == []
        assert pack.with_suffix(".idx").read_bytes() == written
        assert packindex.encode(pack.stat().st_size, entries) == written
    store = await open_pack(tmp_path)
    expect = {c for c, _ in chunks} - {c for c, _ in chunks[10:30]}
    assert await ids_of(store) == expect
    assert await store.scrub(rate_bytes=1e9) == (len(expect), 0)


async def test_appends_go_on_while_a_full_pack_is_sealed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The thread that filled a pack writes its index without the append lock: a put to the
    next pack completes meanwhile, and compaction leaves the pack alone until it is sealed."""
    sealing, go = threading.Event(), threading.Event()
    real = packindex.write_encoded

    def write_encoded(pack: Path, encoded: bytes) -> None:
        sealing.set()
        go.wait(10)
        real(pack, encoded)

    store = await open_pack(tmp_path)
    chunks = [chunk(i, 2000) for i in range(12)]
    await store.put_many(chunks[:5])
    await store.put_many(chunks[5:10])  # the first pack is now full
    first = packs_of(tmp_path)[0]
    monkeypatch.setattr(packindex, "write_encoded", write_encoded)
    filling = asyncio.create_task(store.put_many(chunks[10:11]))  # starts the next pack
    try:
        await asyncio.to_thread(sealing.wait, 10)
        assert sealing.is_set()  # that put's thread now writes the full pack's index
        assert await asyncio.wait_for(store.put_many(chunks[11:]), 10) == [True]
        assert not filling.done()
        assert int(first.stem.split("-")[1]) not in store.packs.candidates(0.0)
        assert not first.with_suffix(".idx").exists()
    finally:
        go.set()
    assert await filling == [True]
    assert first.with_suffix(".idx").exists()
    await store.close()
    store = await open_pack(tmp_path)
    assert await ids_of(store) == {c for c, _ in chunks}


async def test_a_chunk_folder_wiped_while_the_store_runs(tmp_path: Path) -> None:
    """Its packs are gone: the chunks in them are forgotten (not listed, not counted) by the
    next scrub or write, and new writes go to a new pack that is really on disk."""
    store = await open_pack(tmp_path)
    await store.put_many([chunk(i, 700) for i in range(10)])
    for path in (tmp_path / "chunks" / "packs").iterdir():
        path.unlink()
    (tmp_path / "chunks" / "packs").rmdir()
    new, data = chunk(50, 700)
    assert await store.put(new, data) is True
    assert await ids_of(store) == {new}
    assert (store.used_bytes, store.chunk_count) == (700, 1)
    assert await store.scrub(rate_bytes=1e9) == (1, 0)
    store = await crash_and_reopen(tmp_path)
    assert await ids_of(store) == {new}
    assert await store.get(new) == data


async def test_concurrent_puts_share_a_write_and_an_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Puts that arrive while another is being written are committed together (group
    commit), and a chunk sent by several of them is written once: deleting it leaves no
    record of it to come back after a restart."""
    store = await open_pack(tmp_path)
    fsyncs: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (fsyncs.append(fd), real_fsync(fd))[1])
    chunks = [chunk(i, 500) for i in range(12)]
    same, same_data = chunk(99, 500)
    with store.packs._append:  # a commit in progress: the puts queue up behind it
        puts = asyncio.gather(
            *(store.put(c, d) for c, d in chunks), *(store.put(same, same_data) for _ in range(4))
        )
        for _ in range(500):
            if len(store.packs._queue) >= 2:
                break
            await asyncio.sleep(0.01)
        assert len(store.packs._queue) >= 2
    results = await puts
    monkeypatch.undo()
    assert all(results[:12])
    assert results[12:].count(True) == 1
    assert len(fsyncs) < 16
    await store.delete(same)
    store = await crash_and_reopen(tmp_path)
    assert await ids_of(store) == {c for c, _ in chunks}


async def test_a_crash_inside_a_compaction_brings_nothing_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after the moved records are durable but before the old pack is deleted: both
    copies are on disk. The restart keeps the newer and tombstones the older, so deleting
    the chunk later does not let the older come back."""
    store = await open_pack(tmp_path)
    live = await _fill_and_kill(store, 40, 6)
    monkeypatch.setattr(Path, "unlink", lambda self, missing_ok=False: None)  # the "crash"
    assert await store.compact() > 0
    monkeypatch.undo()
    store = await crash_and_reopen(tmp_path)
    assert await ids_of(store) == {c for c, _ in live}
    assert (store.used_bytes, store.chunk_count) == (6 * 1500, 6)
    for cid, _ in live:
        await store.delete(cid)
    store = await crash_and_reopen(tmp_path)
    assert await ids_of(store) == set()


async def test_a_chunk_left_in_both_halves_is_held_once_after_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash between packing a chunk stored as a file (under an older threshold) and
    deleting the file: the restart keeps the packed copy and removes the file."""
    store = await PackChunkStore.open(tmp_path, threshold=0)
    cid, data = chunk(1, 1000)
    await store.put(cid, data)
    await store.close()
    store = await open_pack(tmp_path)

    async def crash(_chunk_id: ChunkId) -> None:
        return None

    monkeypatch.setattr(store.files, "delete", crash)
    assert await store.put(cid, data) is False
    assert store.files.path_of(cid).exists()
    store = await crash_and_reopen(tmp_path)
    assert not store.files.path_of(cid).exists()
    assert (store.used_bytes, store.chunk_count) == (1000, 1)
    assert await store.get(cid) == data


async def test_overlapping_compactions_compact_each_pack_once(tmp_path: Path) -> None:
    """The periodic compaction and a scrub's may overlap: each pack is rewritten once."""
    store = await open_pack(tmp_path)
    live = await _fill_and_kill(store, 40, 6)
    due = len(store.packs.candidates())
    assert due > 1
    assert sum(await asyncio.gather(store.compact(), store.compact())) == due
    assert await ids_of(store) == {c for c, _ in live}
    store = await crash_and_reopen(tmp_path)
    assert await ids_of(store) == {c for c, _ in live}


async def test_small_chunks_ask_the_file_half_only_when_it_held_small_ones_at_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files written since open are all at least the threshold, so a batch of small chunks
    stats no chunk file unless open found one under it (an older threshold's)."""
    store = await open_pack(tmp_path)
    big, big_data = chunk(1, PACK_THRESHOLD * 2)
    await store.put(big, big_data)  # a large chunk: a file
    store = await reopen(store, tmp_path)
    asked: list[list[ChunkId]] = []
    real = store.files.has

    async def has(ids: Iterator[ChunkId]) -> set[ChunkId]:
        wanted = list(ids)
        asked.append(wanted)
        return await real(wanted)

    monkeypatch.setattr(store.files, "has", has)
    small = [chunk(n, 100) for n in range(2, 6)]
    assert await store.put_many(small) == [True] * 4
    assert asked == []  # only a large file was found at open
    await store.close()

    old = await PackChunkStore.open(tmp_path, threshold=0)  # every chunk a file
    cid, data = chunk(9, 100)
    await old.put(cid, data)
    store = await reopen(old, tmp_path)
    monkeypatch.setattr(store.files, "has", has)
    assert await store.put_many([(cid, data)]) == [False]  # held as a file: moved
    assert asked == [[cid]]
    assert store.packs.lookup(cid) is not None
    assert not store.files.path_of(cid).exists()
    assert (store.chunk_count, await store.get(cid)) == (6, data)
    await store.close()


async def test_a_file_counts_once_while_its_directory_is_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large chunk counts as used before its directory fsync; its reservation ends in the
    same step, so a put that fits in the rest of the capacity is taken meanwhile (counted
    twice until the write returned, it was refused: a flaky test under load)."""
    store = await open_pack(tmp_path, 2 * 100_000)
    (first, first_data), (second, second_data) = chunk(1, 100_000), chunk(2, 100_000)
    loop = asyncio.get_running_loop()
    real_fsync_dir = fs_module.fsync_dir
    during: list[bool] = []

    def fsync_dir(directory: str) -> None:
        real_fsync_dir(directory)
        if not during:  # the first put's: store the second one now, from the loop
            during.append(False)
            done = asyncio.run_coroutine_threadsafe(store.put(second, second_data), loop)
            during[0] = done.result(timeout=30)

    monkeypatch.setattr(fs_module, "fsync_dir", fsync_dir)
    assert await store.put(first, first_data) is True
    assert during == [True]
    assert store.used_bytes == store.capacity_bytes == 2 * 100_000


async def test_each_file_of_a_batch_counts_once_while_its_directory_is_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``put_many`` of large chunks ends each file's share of the batch's reservation as the
    file counts as used, so a put that fits is taken while the batch's directories are
    synced (the whole reservation held until the batch returned refused it: a node of a
    full-node e2e test answered 507 with "3 MiB used (3 MiB being written)" of 6)."""
    store = await open_pack(tmp_path, 3 * 100_000)
    batch = [chunk(1, 100_000), chunk(2, 100_000)]
    late_id, late_data = chunk(3, 100_000)
    loop = asyncio.get_running_loop()
    real_fsync_dir = fs_module.fsync_dir
    during: list[bool] = []

    def fsync_dir(directory: str) -> None:
        real_fsync_dir(directory)
        if not during:  # the first of the batch's: store one more now, from the loop
            during.append(False)
            done = asyncio.run_coroutine_threadsafe(store.put(late_id, late_data), loop)
            during[0] = done.result(timeout=30)

    monkeypatch.setattr(fs_module, "fsync_dir", fsync_dir)
    assert await store.put_many(batch) == [True, True]
    assert during == [True]
    assert store.used_bytes == store.capacity_bytes == 3 * 100_000


async def test_a_group_commit_ends_every_reservation_it_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A group commit counts every queued put's records; their reservations end in the same
    step, before those puts wake up, so a put that fits is taken before they do."""
    store = await open_pack(tmp_path, 4 * 500)
    chunks = [chunk(i, 500) for i in range(4)]
    loop = asyncio.get_running_loop()
    real_commit = PackSet._commit
    late: list[concurrent.futures.Future[bool]] = []

    def commit(packs: PackSet, group: list[Any]) -> None:
        real_commit(packs, group)
        if len(group) >= 2 and not late:  # others of the group still asleep: one more put
            late.append(asyncio.run_coroutine_threadsafe(store.put(*chunks[3]), loop))
            for _ in range(3000):  # refused at once, or queued behind this commit
                if late[0].done() or packs._queue:
                    break
                time.sleep(0.01)
            assert late[0].done() or packs._queue  # (fails the group's puts otherwise)

    monkeypatch.setattr(PackSet, "_commit", commit)
    with store.packs._append:  # a commit in progress: the puts queue up behind it
        puts = asyncio.gather(*(store.put(c, d) for c, d in chunks[:3]))
        for _ in range(500):
            if len(store.packs._queue) >= 3:
                break
            await asyncio.sleep(0.01)
        assert len(store.packs._queue) == 3
    assert await puts == [True, True, True]
    assert len(late) == 1
    assert await asyncio.wrap_future(late[0]) is True
    assert store.used_bytes == 4 * 500
