"""``FsChunkStore`` only: what the ChunkStore contract (``test_chunk_store.py``) leaves to the
implementation and is about files on disk: the fan-out layout, temp files, the quarantine
directory, the restart scan, the recount after a copy shrank on disk, and the steps of a
write (a rewrite takes those of a new write, and frees the replaced copy after it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from dfs.chunkstore import fan_out
from dfs.chunkstore.fs import FsChunkStore
from dfs.errors import ChunkNotFound, InsufficientStorage, IntegrityError
from tests.contract.test_chunk_store import _fs_backend, chunk, ids_of
from tests.fsync_trace import record_fsyncs


def _tmp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


async def test_fs_layout(tmp_path: Path) -> None:
    store = await FsChunkStore.open(tmp_path)
    cid, data = chunk(1)
    await store.put(cid, data)
    path = tmp_path / "chunks" / cid[:2] / cid  # layout 1 (dfs.chunkstore.fan_out)
    assert store.path_of(cid) == path
    assert (tmp_path / "chunks" / ".layout").read_text() == "1\n"
    assert len([p for p in (tmp_path / "chunks").iterdir() if p.is_dir()]) == 256
    assert path.read_bytes() == data
    assert (tmp_path / "quarantine").is_dir()
    assert _tmp_files(tmp_path) == []


def _real(path: Path) -> Path:
    """``path`` as ``/proc/self/fd`` names it (symlinks resolved)."""
    return path.resolve()


async def test_new_fan_out_directories_are_made_durable_in_their_parents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write into a fan-out directory that is missing (the store made all 256, but one
    was removed) creates it: the parent of the directory is fsync'd once (else a crash could
    lose the directory, and the acknowledged chunk in it); a write into existing directories
    creates none."""
    store = await FsChunkStore.open(tmp_path)
    cid, data = chunk(1)
    root = _real(tmp_path) / "chunks"
    leaf = root / cid[:2]
    leaf.rmdir()
    synced = record_fsyncs(monkeypatch)
    await store.put(cid, data)
    first = list(synced)
    synced.clear()
    await store.put(cid, data)  # a rewrite: the same directories, all there now
    monkeypatch.undo()
    assert first.count(str(root)) == 1  # holds the new chunks/ab
    assert first.count(str(leaf)) == 1  # holds the chunk's name (the rename)
    assert [p for p in first if p.startswith(f"{leaf}/.{cid}.")]  # its bytes, as a temp file
    assert len(first) == 3
    assert synced.count(str(leaf)) == 1
    assert len(synced) == 2  # the temp file and the leaf: no parent again


async def test_fs_store_directories_made_at_open_are_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced = record_fsyncs(monkeypatch)
    await FsChunkStore.open(tmp_path / "data")
    monkeypatch.undo()
    base = _real(tmp_path)
    assert synced.count(str(base)) == 1  # holds the new data folder
    assert synced.count(str(base / "data")) == 2  # holds chunks/ and quarantine/
    # holds chunks/.layout, then the 256 fan-out folders (one fsync for them all)
    assert synced.count(str(base / "data" / "chunks")) == 2


async def test_fs_rewrite_does_the_same_durable_work_as_a_new_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file-system steps of a put, traced: a chunk already held goes through exactly the
    steps of a new one (temp file, write, fsync, a look for a copy to replace, replace,
    directory fsync), two fsyncs each; no utime fast path. The one difference comes after
    the write: the replaced copy's descriptor is closed in the background (freeing its
    blocks there, off the write's clock). The inode changes: the copy on disk is the one
    just written."""
    store = await FsChunkStore.open(tmp_path)
    cid, data = chunk(1, 64 * 1024)
    assert store.path_of(cid).parent.is_dir()  # so the new write creates no directory
    trace: list[str] = []

    def traced(name: str) -> Callable[..., object]:
        real = getattr(os, name)

        def call(*args: object, **kwargs: object) -> object:
            trace.append(name)
            return real(*args, **kwargs)

        return call

    async def settled() -> list[str]:  # the trace, once background closes are done
        seen = -1
        while seen != len(trace):
            seen = len(trace)
            await asyncio.sleep(0.05)
        steps, trace[:] = list(trace), []
        return steps

    for name in ("open", "write", "writev", "fsync", "close", "replace", "link", "utime", "rename"):
        monkeypatch.setattr(os, name, traced(name))
    assert await store.put(cid, data) is True
    new_write = await settled()
    inode = store.path_of(cid).stat().st_ino
    assert await store.put(cid, data) is False
    rewrite = await settled()
    assert store.path_of(cid).stat().st_ino != inode
    assert await store.put_many([(cid, data)]) == [False]
    batch_rewrite = await settled()
    monkeypatch.undo()

    steps = ["open", "writev", "fsync", "close", "open", "replace", "open", "fsync", "close"]
    assert new_write == steps
    assert rewrite == [*steps, "close"]
    assert batch_rewrite == [*steps, "close"]
    assert new_write.count("fsync") == rewrite.count("fsync") == 2
    assert store.path_of(cid).read_bytes() == data
    assert _tmp_files(tmp_path) == []


async def test_fs_rewrites_leave_no_replaced_copy_open(tmp_path: Path) -> None:
    """The descriptors that defer freeing replaced copies are all closed soon after."""

    def open_replaced() -> list[str]:
        fds = Path("/proc/self/fd")
        targets = []
        for fd in fds.iterdir():
            with contextlib.suppress(OSError):
                targets.append(os.readlink(fd))
        return [t for t in targets if t.startswith(str(tmp_path)) and t.endswith("(deleted)")]

    store = await FsChunkStore.open(tmp_path)
    chunks = [chunk(i, 2000) for i in range(20)]
    await store.put_many(chunks)
    for _ in range(3):
        await store.put_many(chunks)
        await asyncio.gather(*(store.put(c, d) for c, d in chunks))
    for _ in range(100):
        if not open_replaced():
            break
        await asyncio.sleep(0.02)
    assert open_replaced() == []
    assert (store.used_bytes, store.chunk_count) == (20 * 2000, 20)


async def test_fs_rewrite_does_not_quarantine_the_new_copy(tmp_path: Path) -> None:
    """A reader that read a rotten copy before a rewrite replaced it quarantines nothing:
    the verified copy now in place stays."""
    store = await FsChunkStore.open(tmp_path)
    cid, data = chunk(1)
    await store.put(cid, data)
    rotten_inode = store.path_of(cid).stat().st_ino
    await store.put(cid, data)  # the rewrite lands between the read and the quarantine
    store._quarantine_copy(cid, rotten_inode, len(data))
    assert await store.get(cid) == data
    assert list((tmp_path / "quarantine").iterdir()) == []
    assert (store.used_bytes, store.chunk_count) == (len(data), 1)


async def test_fs_wrong_hash_leaves_no_file(tmp_path: Path) -> None:
    store = await FsChunkStore.open(tmp_path)
    cid, _ = chunk(1)
    with pytest.raises(IntegrityError):
        await store.put(cid, b"other bytes")
    assert not store.path_of(cid).exists()
    assert _tmp_files(tmp_path) == []
    assert [p for p in (tmp_path / "chunks").rglob("*") if p.is_file()] == [
        tmp_path / "chunks" / ".layout"
    ]


async def test_fs_full_leaves_no_file(tmp_path: Path) -> None:
    store = await FsChunkStore.open(tmp_path, capacity_bytes=500)
    cid, data = chunk(1)
    with pytest.raises(InsufficientStorage):
        await store.put(cid, data)
    assert not store.path_of(cid).exists()
    assert _tmp_files(tmp_path) == []


async def test_fs_corrupted_copy_is_quarantined(tmp_path: Path) -> None:
    store = await FsChunkStore.open(tmp_path)
    cid, data = chunk(1)
    await store.put(cid, data)
    _fs_backend(tmp_path).corrupt(store, cid)
    with pytest.raises(ChunkNotFound, match="quarantined"):
        await store.get(cid)
    assert not store.path_of(cid).exists()
    quarantined = list((tmp_path / "quarantine").iterdir())
    assert len(quarantined) == 1
    assert quarantined[0].name.startswith(f"{cid}.")
    assert len(quarantined[0].read_bytes()) == len(data)  # kept for inspection
    assert store.used_bytes == 0
    # the quarantined copy is not counted after a restart either
    reopened = await FsChunkStore.open(tmp_path)
    assert (reopened.used_bytes, reopened.chunk_count) == (0, 0)


async def test_fs_quarantine_is_durable_before_the_copy_is_reported_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The move of a bad copy into ``quarantine/`` is what ``/quarantined`` reports (repair
    then forgets the copy and copies the chunk elsewhere): both directories are fsync'd
    before the read answers, else a crash could bring the rotten copy back under its name
    (listed and counted again by the inventory) while the copy was already given up."""
    store = await FsChunkStore.open(tmp_path)
    cid, data = chunk(1)
    await store.put(cid, data)
    _fs_backend(tmp_path).corrupt(store, cid)
    synced = record_fsyncs(monkeypatch)
    with pytest.raises(ChunkNotFound, match="quarantined"):
        await store.get(cid)
    monkeypatch.undo()
    assert str(_real(tmp_path) / "quarantine") in synced
    assert str(_real(store.path_of(cid).parent)) in synced
    assert await store.quarantined() == [cid]


async def test_fs_open_removes_leftover_tmp_files(tmp_path: Path) -> None:
    store = await FsChunkStore.open(tmp_path)
    cid, data = chunk(1)
    await store.put(cid, data)
    leftover = store.path_of(cid).parent / f".{cid}.deadbeef.tmp"
    leftover.write_bytes(b"x" * 5000)
    other_dir = tmp_path / "chunks" / "00"
    (other_dir / f".{'0' * 64}.cafe.tmp").write_bytes(b"partial")

    reopened = await FsChunkStore.open(tmp_path)
    assert _tmp_files(tmp_path) == []
    assert reopened.used_bytes == len(data)
    assert reopened.chunk_count == 1
    assert await ids_of(reopened) == {cid}


async def test_fs_reopen_counts_existing_chunks(tmp_path: Path) -> None:
    store = await FsChunkStore.open(tmp_path)
    chunks = [chunk(i, 100 * (i + 1)) for i in range(5)]
    for cid, data in chunks:
        await store.put(cid, data)
    (tmp_path / "chunks" / "README").write_text("not a chunk")  # ignored

    reopened = await FsChunkStore.open(tmp_path)
    assert reopened.chunk_count == 5
    assert reopened.used_bytes == sum(len(d) for _, d in chunks)
    assert await ids_of(reopened) == {c for c, _ in chunks}
    assert await reopened.put(*chunks[0]) is False
    for cid, data in chunks:
        assert await reopened.get(cid) == data


async def test_fs_capacity_counts_existing_chunks_after_reopen(tmp_path: Path) -> None:
    store = await FsChunkStore.open(tmp_path)
    await store.put(*chunk(1))
    reopened = await FsChunkStore.open(tmp_path, capacity_bytes=1500)
    with pytest.raises(InsufficientStorage):
        await reopened.put(*chunk(2))


async def test_fs_list_chunks_ignores_files_that_are_not_chunks(tmp_path: Path) -> None:
    store = await FsChunkStore.open(tmp_path)
    cid, data = chunk(1, 50)
    await store.put(cid, data)
    (tmp_path / "chunks" / "README").write_text("not a chunk")
    assert [c for c, _ in await store.list_chunks("", 10)] == [cid]


async def test_fs_check_writable_leaves_no_file(tmp_path: Path) -> None:
    store = await FsChunkStore.open(tmp_path)
    await store.check_writable()
    assert sorted(os.listdir(tmp_path)) == ["chunks", "quarantine"]


async def test_fs_scrub_quarantines_bad_copies_and_recounts(tmp_path: Path) -> None:
    store = await FsChunkStore.open(tmp_path)
    chunks = [chunk(i, 300) for i in range(6)]
    for cid, data in chunks:
        await store.put(cid, data)
    bad = chunks[2][0]
    path = store.path_of(bad)
    path.write_bytes(path.read_bytes()[:100])  # truncated on disk behind the store's back
    checked, quarantined = await store.scrub(rate_bytes=1e9)
    assert (checked, quarantined) == (5, 1)
    assert await store.quarantined() == [bad]
    assert not path.exists()
    # the recount re-baselines the bytes the short copy made drift
    assert (store.used_bytes, store.chunk_count) == (5 * 300, 5)
    assert await store.scrub(rate_bytes=1e9) == (5, 0)


async def test_fan_out_folders_a_crash_left_undurable_are_made_durable_at_the_next_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first open makes the 256 folders of layout 1, then fsyncs ``chunks/`` once. A
    process that died between the two leaves them all there but not durable: the next open
    finds every one made and must still fsync ``chunks/`` before a chunk is acknowledged in
    one (else a power cut later takes the folder and the chunks in it)."""

    def crash(path: object) -> None:
        raise OSError("the process dies here")

    monkeypatch.setattr(fan_out, "fsync_dir", crash)
    with pytest.raises(OSError, match="dies here"):
        await FsChunkStore.open(tmp_path)
    monkeypatch.undo()
    assert len([p for p in (tmp_path / "chunks").iterdir() if p.is_dir()]) == 256
    synced = record_fsyncs(monkeypatch)
    await FsChunkStore.open(tmp_path)
    monkeypatch.undo()
    assert str(_real(tmp_path) / "chunks") in synced
