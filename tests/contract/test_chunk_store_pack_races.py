"""``PackSet`` compaction racing the store's other changes on worker threads: each race is
forced into its worst order with events at the system-call boundary (a pack append, a pack
read), everything above it real.
"""

from __future__ import annotations

import asyncio
import errno
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from dfs.chunkstore import packs as packs_module
from dfs.errors import InsufficientStorage
from dfs.fsutil import Buffer
from tests.contract.test_chunk_store import chunk, open_pack


async def test_compaction_keeps_a_record_whose_delete_failed_while_it_read_the_pack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A delete takes a record out of the index, then its tombstone's write fails (a full
    disk) and the record is put back. A compaction that read which records were live while
    the tombstone was being written never verified that one: it must not drop it with the
    pack (a good, held copy lost without a trace), but keep it, moved or left in place."""
    store = await open_pack(tmp_path)
    chunks = [chunk(i, 1500) for i in range(40)]
    for i in range(0, 40, 5):
        await store.put_many(chunks[i : i + 5])
    first = min(loc.pack for c, _ in chunks if (loc := store.packs.lookup(c)))
    in_first = [(c, d) for c, d in chunks if (loc := store.packs.lookup(c)) and loc.pack == first]
    for cid, _ in in_first[3:]:
        await store.delete(cid)
    victim, data = in_first[0]
    pack_path = store.packs.path(first)
    writing, read = threading.Event(), threading.Event()
    real_write_all, real_read_bytes = packs_module.write_all, Path.read_bytes

    def write_all(fd: int, parts: Sequence[Buffer]) -> int:
        if threading.current_thread().name == "deleting":
            writing.set()
            assert read.wait(30)  # the compaction read the pack meanwhile
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write_all(fd, parts)

    def read_bytes(self: Path) -> bytes:
        got = real_read_bytes(self)
        if self == pack_path:
            read.set()
        return got

    monkeypatch.setattr(packs_module, "write_all", write_all)
    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    failed: list[BaseException] = []

    def delete() -> None:
        try:
            store.packs.remove(victim)
        except BaseException as exc:
            failed.append(exc)

    deleting = threading.Thread(target=delete, name="deleting")
    deleting.start()
    assert await asyncio.to_thread(writing.wait, 30)
    await store.compact()
    await asyncio.to_thread(deleting.join, 30)
    assert len(failed) == 1
    assert isinstance(failed[0], InsufficientStorage)
    monkeypatch.undo()
    assert store.packs.lookup(victim) is not None  # the delete failed: still held
    assert await store.get(victim) == data
    await store.compact()  # the next run rewrites the pack, the record along
    assert not pack_path.exists()
    await store.close()
    store = await open_pack(tmp_path)
    assert await store.get(victim) == data
    for cid, d in in_first[1:3]:
        assert await store.get(cid) == d
    await store.close()


async def test_chunks_of_a_pack_lost_from_disk_are_neither_held_nor_listed(
    tmp_path: Path,
) -> None:
    """A pack file gone while the node runs (deleted by hand, a file system that lost it):
    its chunks are not there, so ``/has-chunks`` and ``/list-chunks`` (what repair's
    inventory, its short-chunk checks and its trims count on) must not answer them as held,
    not only once the next scrub pass (an hour later by default) forgets them: a trim that
    counted such a copy deleted a real one instead."""
    store = await open_pack(tmp_path)
    chunks = [chunk(i, 1500) for i in range(30)]
    for i in range(0, 30, 5):
        await store.put_many(chunks[i : i + 5])
    first = min(loc.pack for c, _ in chunks if (loc := store.packs.lookup(c)))
    lost = {c for c, _ in chunks if (loc := store.packs.lookup(c)) and loc.pack == first}
    kept = {c for c, _ in chunks} - lost
    assert lost
    assert kept
    store.packs.path(first).unlink()
    assert await store.has([c for c, _ in chunks]) == kept
    assert [c for c, _age in await store.list_chunks("", 1000)] == sorted(kept)
    assert store.chunk_count == len(kept)
    await store.close()
