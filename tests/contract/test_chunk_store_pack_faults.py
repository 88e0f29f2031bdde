"""``PackChunkStore`` (and its file half) on a disk that misbehaves: a damaged header of a
live record under compaction, a read error (EIO) under one copy, a pack compaction cannot
rewrite, a quarantine copy the disk cannot take, a record in an encoding this version lacks,
a disk that chunks filled. The faults are the disk's: injected at the system-call boundary
(``os.pread``/``os.read``/``os.writev``, a pack's bytes), everything above it real.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import struct
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from dfs.chunkstore import pack as pack_module
from dfs.chunkstore import packs as packs_module
from dfs.chunkstore import record
from dfs.chunkstore.fs import FsChunkStore
from dfs.chunkstore.pack import PackChunkStore
from dfs.chunkstore.record import HEADER_SIZE
from dfs.errors import ChunkNotFound, InsufficientStorage, Unavailable
from dfs.fsutil import Buffer
from dfs.ids import ChunkId
from tests.contract.test_chunk_store import PACK_MAX, PACK_THRESHOLD, chunk, ids_of, open_pack


def _path_of(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


async def _readable(store: PackChunkStore, chunks: list[tuple[ChunkId, bytes]]) -> int:
    ok = 0
    for cid, data in chunks:
        with contextlib.suppress(ChunkNotFound):
            ok += await store.get(cid) == data
    return ok


async def _half_dead_first_pack(
    store: PackChunkStore, n: int, keep: int
) -> tuple[int, list[tuple[ChunkId, bytes]]]:
    """Fill several packs, then delete all but ``keep`` chunks of the first (a compaction
    candidate). Returns the first pack and the chunks still held."""
    chunks = [chunk(i, 1500) for i in range(n)]
    for i in range(0, n, 5):
        await store.put_many(chunks[i : i + 5])
    first = min(loc.pack for c, _ in chunks if (loc := store.packs.lookup(c)))
    in_first = [c for c, _ in chunks if (loc := store.packs.lookup(c)) and loc.pack == first]
    for cid in in_first[keep:]:
        await store.delete(cid)
    return first, [(c, d) for c, d in chunks if store.packs.lookup(c) is not None]


# --- 1: a live record's header damaged under compaction -------------------------------------


@pytest.mark.parametrize("where", ["length", "magic"])
async def test_compaction_gives_a_moved_record_a_fresh_header(tmp_path: Path, where: str) -> None:
    """One flipped bit in a live record's header (its payload intact) of a pack being
    compacted: the record moves under a header encoded afresh, so the target pack's index
    places it and every record after it right, and the active pack's size stays true."""
    store = await open_pack(tmp_path)
    first, live = await _half_dead_first_pack(store, 40, 3)
    victim = next(c for c, _ in live if (loc := store.packs.lookup(c)) and loc.pack == first)
    loc = store.packs.lookup(victim)
    assert loc is not None
    path = store.packs.path(loc.pack)
    raw = bytearray(path.read_bytes())
    raw[loc.offset + (10 if where == "length" else 1)] ^= 0x01
    path.write_bytes(raw)
    assert await store.compact() >= 1
    assert not path.exists()
    later = [chunk(100 + i, 1500) for i in range(5)]
    await store.put_many(later)
    assert await _readable(store, later) == 5  # placed where the index says
    await store.close()
    store = await open_pack(tmp_path)  # sealed packs are indexed from their .idx files
    assert await _readable(store, live + later) == len(live) + 5
    assert await store.quarantined() == []
    assert await store.scrub(rate_bytes=1e9) == (len(live) + 5, 0)
    await store.close()


async def test_records_whose_index_entries_cannot_be_encoded_are_not_written(
    tmp_path: Path,
) -> None:
    """A batch with bytes that are not a record header fails before anything reaches the
    pack: no bytes appended, and the next write lands where the index says."""
    store = await open_pack(tmp_path)
    await store.put_many([chunk(1, 1000)])
    loc = store.packs.lookup(chunk(1, 1000)[0])
    assert loc is not None
    path = store.packs.path(loc.pack)
    size = path.stat().st_size
    with pytest.raises(ValueError, match="record"), store.packs._append:
        store.packs._write([b"\0" * HEADER_SIZE, b"x" * 10])
    assert path.stat().st_size == size
    later = chunk(2, 1000)
    await store.put_many([later])
    assert await _readable(store, [later]) == 1
    await store.close()


# --- 2: a read error (EIO) under one copy ----------------------------------------------------


def _eio_under(monkeypatch: pytest.MonkeyPatch, path: Path, offset: int) -> None:
    """Every pread of ``path`` that covers byte ``offset`` fails as a bad sector does."""
    real, bad = os.pread, os.fspath(path)

    def pread(fd: int, n: int, at: int) -> bytes:
        if at <= offset < at + n and _path_of(fd) == bad:
            raise OSError(errno.EIO, "Input/output error")
        return real(fd, n, at)

    monkeypatch.setattr(os, "pread", pread)


async def test_a_packed_record_the_disk_cannot_read_is_a_lost_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scrub verifies every other copy and quarantines the unreadable one (so repair is
    told); a batch read serves its neighbours and answers ChunkNotFound for it; get too."""
    store = await open_pack(tmp_path)
    chunks = [chunk(i, 800) for i in range(12)]
    await store.put_many(chunks)
    bad = chunks[3][0]
    loc = store.packs.lookup(bad)
    assert loc is not None
    _eio_under(monkeypatch, store.packs.path(loc.pack), loc.offset + HEADER_SIZE)
    got = await store.get_many([c for c, _ in chunks], 1 << 20)
    assert isinstance(got[3], ChunkNotFound)
    assert [bytes(g) for i, g in enumerate(got) if i != 3] == [d for c, d in chunks if c != bad]
    assert await store.quarantined() == [bad]
    assert await store.scrub(rate_bytes=1e9) == (11, 0)
    with pytest.raises(ChunkNotFound):
        await store.get(bad)
    await store.close()


async def test_scrub_quarantines_an_unreadable_record_and_verifies_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await open_pack(tmp_path)
    chunks = [chunk(i, 800) for i in range(12)]
    await store.put_many(chunks)
    bad = store.packs.ids()[3]  # scrub's order: the ones after it must be verified too
    loc = store.packs.lookup(bad)
    assert loc is not None
    _eio_under(monkeypatch, store.packs.path(loc.pack), loc.offset + HEADER_SIZE)
    assert await store.scrub(rate_bytes=1e9) == (11, 1)
    assert await store.quarantined() == [bad]
    assert await ids_of(store) == {c for c, _ in chunks} - {bad}
    await store.close()


async def test_a_chunk_file_the_disk_cannot_read_is_a_lost_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await FsChunkStore.open(tmp_path)
    chunks = [chunk(i, 5000) for i in range(4)]
    await store.put_many(chunks)
    bad = chunks[1][0]
    real, bad_path = os.read, os.fspath(store.path_of(bad))

    def read(fd: int, n: int) -> bytes:
        if _path_of(fd) == bad_path:
            raise OSError(errno.EIO, "Input/output error")
        return real(fd, n)

    monkeypatch.setattr(os, "read", read)
    got = await store.get_many([c for c, _ in chunks], 1 << 20)
    assert isinstance(got[1], ChunkNotFound)
    assert [g for i, g in enumerate(got) if i != 1] == [d for c, d in chunks if c != bad]
    assert await store.quarantined() == [bad]
    assert await store.scrub(rate_bytes=1e9) == (3, 0)


async def test_a_read_error_that_is_not_the_disk_s_keeps_the_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Out of descriptors (EMFILE) says nothing about a copy: the read is Unavailable, the
    copy stays held and nothing is quarantined, in either half."""
    store = await open_pack(tmp_path)
    small, large = chunk(1, 800), chunk(2, PACK_THRESHOLD)
    await store.put_many([small, large])
    real_read = os.read

    def pread(fd: int, n: int, at: int) -> bytes:
        raise OSError(errno.EMFILE, "Too many open files")

    def read(fd: int, n: int) -> bytes:
        if _path_of(fd) == os.fspath(store.files.path_of(large[0])):
            raise OSError(errno.EMFILE, "Too many open files")
        return real_read(fd, n)

    monkeypatch.setattr(os, "pread", pread)
    monkeypatch.setattr(os, "read", read)
    for cid, _ in (small, large):
        with pytest.raises(Unavailable):
            await store.get(cid)
    got = await store.get_many([small[0], large[0]], 1 << 20)
    assert [type(g) for g in got] == [Unavailable, Unavailable]
    assert await store.scrub(rate_bytes=1e9) == (0, 0)
    monkeypatch.undo()
    assert await store.quarantined() == []
    assert await _readable(store, [small, large]) == 2
    await store.close()


# --- 3: compaction goes on past a pack it cannot rewrite -------------------------------------


def _pack_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in (root / "chunks" / "packs").glob("pack-*.pack"))


@pytest.mark.parametrize("fault", ["ENOSPC", "EIO", "full"])
async def test_compaction_goes_on_past_a_pack_it_cannot_rewrite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    """ENOSPC: the live part of the half-dead first pack never fits, but the wholly dead
    packs need no write and are removed. EIO: reading one dead pack fails; the others are
    compacted all the same. full: the disk is full until the dead packs are gone, which are
    removed first, so the half-dead one is rewritten in the same run."""
    store = await open_pack(tmp_path)
    chunks = [chunk(i, 1500) for i in range(60)]
    for i in range(0, 60, 5):
        await store.put_many(chunks[i : i + 5])
    first = min(loc.pack for c, _ in chunks if (loc := store.packs.lookup(c)))
    keep = [c for c, _ in chunks if (loc := store.packs.lookup(c)) and loc.pack == first][:2]
    for cid, _ in chunks:
        if cid not in keep:
            await store.delete(cid)
    candidates = store.packs.candidates()
    assert len(candidates) >= 3
    assert candidates[-1] == first  # the one with live records comes last
    stuck: list[int] = []
    if fault in ("ENOSPC", "full"):
        real_write_all, disk = packs_module.write_all, _pack_bytes(tmp_path)

        def write_all(fd: int, parts: Sequence[Buffer]) -> int:
            if fault == "ENOSPC" or _pack_bytes(tmp_path) + sum(map(len, parts)) > disk:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_write_all(fd, parts)

        monkeypatch.setattr(packs_module, "write_all", write_all)
        stuck = [first] if fault == "ENOSPC" else []
    else:
        stuck = [candidates[0]]
        real, bad = Path.read_bytes, store.packs.path(stuck[0])

        def read_bytes(self: Path) -> bytes:
            if self == bad:
                raise OSError(errno.EIO, "Input/output error")
            return real(self)

        monkeypatch.setattr(Path, "read_bytes", read_bytes)
    assert await store.compact() == len(candidates) - len(stuck)
    assert store.packs.candidates() == stuck
    assert {c for c, _ in chunks if store.packs.lookup(c)} == set(keep)
    monkeypatch.undo()
    assert await store.compact() == len(stuck)  # the disk is fine again
    data = dict(chunks)
    assert await _readable(store, [(c, data[c]) for c in keep]) == 2
    await store.close()


# --- 5: a quarantine copy the disk cannot take -----------------------------------------------


def _quarantine_writes_fail(
    monkeypatch: pytest.MonkeyPatch, quarantine: Path, fails: Callable[[int], bool]
) -> None:
    """Writes into ``quarantine/`` fail with ENOSPC when ``fails(bytes)``; with ``fails(0)``
    no file can be created there at all."""
    where = os.fspath(quarantine)
    real_writev, real_open, real_write_bytes = os.writev, os.open, Path.write_bytes

    def writev(fd: int, buffers: Any) -> int:
        if fails(sum(len(b) for b in buffers)) and _path_of(fd).startswith(where):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_writev(fd, buffers)

    def open_(path: Any, flags: int, *a: Any, **k: Any) -> int:
        if fails(0) and os.fspath(path).startswith(where) and flags & os.O_CREAT:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(path, flags, *a, **k)

    def write_bytes(self: Path, data: Any) -> int:
        if fails(len(data)) and os.fspath(self).startswith(where):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write_bytes(self, data)

    monkeypatch.setattr(os, "writev", writev)
    monkeypatch.setattr(os, "open", open_)
    monkeypatch.setattr(Path, "write_bytes", write_bytes)


async def _rotten(tmp_path: Path) -> tuple[PackChunkStore, ChunkId]:
    store = await open_pack(tmp_path)
    cid, data = chunk(1, 2000)
    await store.put(cid, data)
    loc = store.packs.lookup(cid)
    assert loc is not None
    path = store.packs.path(loc.pack)
    raw = bytearray(path.read_bytes())
    raw[loc.offset + HEADER_SIZE + 7] ^= 1
    path.write_bytes(raw)
    return store, cid


async def test_a_rotten_record_whose_bytes_do_not_fit_in_quarantine_is_still_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, cid = await _rotten(tmp_path)
    _quarantine_writes_fail(monkeypatch, tmp_path / "quarantine", lambda n: n > 0)
    assert await store.scrub(rate_bytes=1e9) == (0, 1)
    monkeypatch.undo()
    assert await store.quarantined() == [cid]  # repair is told
    [marker] = (tmp_path / "quarantine").iterdir()
    assert marker.name.startswith(cid)
    assert marker.stat().st_size == 0
    await store.close()


async def test_a_rotten_record_that_cannot_be_quarantined_is_kept_for_a_later_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, cid = await _rotten(tmp_path)
    _quarantine_writes_fail(monkeypatch, tmp_path / "quarantine", lambda n: True)
    with pytest.raises(ChunkNotFound, match="could not be quarantined"):
        await store.get(cid)  # never served, never forgotten without a trace
    assert await store.has([cid]) == {cid}
    assert list((tmp_path / "quarantine").iterdir()) == []
    monkeypatch.undo()
    assert await store.scrub(rate_bytes=1e9) == (0, 1)  # the disk has room again
    assert await store.quarantined() == [cid]
    assert await store.has([cid]) == set()
    await store.close()


# --- 7: a record in an encoding this version lacks survives compaction -----------------------


async def test_compaction_keeps_a_record_in_an_unknown_encoding(tmp_path: Path) -> None:
    store = await open_pack(tmp_path)
    first, live = await _half_dead_first_pack(store, 30, 1)
    enc = next(c for c, _ in live if (loc := store.packs.lookup(c)) and loc.pack == first)
    loc = store.packs.lookup(enc)
    assert loc is not None
    path = store.packs.path(loc.pack)
    raw = bytearray(path.read_bytes())
    start = loc.offset + HEADER_SIZE
    payload = bytes(b ^ 0x5A for b in raw[start : start + loc.length])  # "encoded"
    head = bytearray(raw[loc.offset : start - 4])
    struct.pack_into("<H", head, 6, record.FLAG_ZSTD)
    struct.pack_into("<I", head, HEADER_SIZE - 8, zlib.crc32(payload))
    encoded = bytes(head + struct.pack("<I", zlib.crc32(head)) + payload)
    raw[loc.offset : start + loc.length] = encoded
    path.write_bytes(raw)
    assert await store.compact() >= 1
    assert not path.exists()
    moved = store.packs.lookup(enc)
    assert moved is not None
    assert moved.pack != first
    on_disk = store.packs.path(moved.pack).read_bytes()
    assert on_disk[moved.offset : moved.offset + len(encoded)] == encoded  # as it was
    with pytest.raises(ChunkNotFound, match="encoding"):
        await store.get(enc)
    assert await store.quarantined() == []
    await store.close()
    store = await open_pack(tmp_path)
    assert await store.has([enc]) == {enc}
    await store.close()


# --- 4: a disk that chunks filled still takes tombstones -------------------------------------


async def test_a_headroom_stays_free_for_deletes_and_compaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a configured capacity the disk's free space bounds new chunks, less a pack's
    size (at least 1% of the disk): on a disk that chunks filled, a delete (a tombstone) and
    a compaction (live records copied) still have room."""
    store = await open_pack(tmp_path)
    size = PACK_MAX + 3000  # a 1 MiB disk with this much room when empty: what the files take

    def disk_usage(path: object) -> Any:
        used = sum(p.stat().st_size for p in tmp_path.rglob("*") if p.is_file())
        total = 1 << 20
        return shutil._ntuple_diskusage(total, total - size + used, size - used)  # type: ignore[attr-defined]

    monkeypatch.setattr(pack_module.shutil, "disk_usage", disk_usage)
    assert 2900 < store.capacity_bytes <= 3000
    kept = chunk(1, 2000)
    assert await store.put(*kept) is True
    with pytest.raises(InsufficientStorage):
        await store.put(*chunk(2, 2000))
    with pytest.raises(InsufficientStorage):
        await store.put(*chunk(3, PACK_THRESHOLD))  # a file: the same bound
    await store.delete(kept[0])
    assert await store.has([kept[0]]) == set()
    await store.close()


# --- 9: a full disk at the open after a crash -------------------------------------------------


def _disk_full_under(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    """Every write into a file under ``root`` fails with ENOSPC (what a full disk does)."""
    where = os.fspath(root)
    real_write, real_writev = os.write, os.writev

    def write(fd: int, data: Any) -> int:
        if _path_of(fd).startswith(where):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    def writev(fd: int, buffers: Any) -> int:
        if _path_of(fd).startswith(where):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_writev(fd, buffers)

    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(os, "writev", writev)


async def test_a_full_disk_after_a_crash_still_opens_and_serves_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash leaves packs to read whole at the next open (the active one has no index;
    here every index is gone), and the open writes their indexes. On a disk that filled
    meanwhile those writes fail: the store must open anyway and serve every chunk (the
    indexes are written at a later open), refusing only new writes, as full."""
    store = await open_pack(tmp_path)
    chunks = [chunk(i, 1500) for i in range(12)]
    for i in range(0, len(chunks), 3):
        await store.put_many(chunks[i : i + 3])
    # the crash: no close (no seal), and the indexes lost
    for idx in (tmp_path / "chunks" / "packs").glob("*.idx"):
        idx.unlink()
    _disk_full_under(monkeypatch, tmp_path)
    reopened = await open_pack(tmp_path)
    assert await _readable(reopened, chunks) == len(chunks)
    with pytest.raises(InsufficientStorage):
        await reopened.put(*chunk(99, 1500))
    monkeypatch.undo()
    await reopened.close()
    again = await open_pack(tmp_path)  # room again: the indexes are written, nothing lost
    assert await _readable(again, chunks) == len(chunks)
    assert list((tmp_path / "chunks" / "packs").glob("*.tmp")) == []
    await again.close()
