"""``FsChunkStore``'s two fan-out layouts (``dfs.chunkstore.fan_out``): a new store gets one
level of 256 folders and records it; a store made with two levels keeps them, is read,
written, listed, scrubbed and deleted from as before, and keeps them after a restart; a record
the store does not know stops the open instead of a guess that would hide every chunk.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from dfs.chunkstore.fan_out import read_fan_out
from dfs.chunkstore.fs import FsChunkStore
from dfs.chunkstore.pack import PackChunkStore
from dfs.errors import DfsError
from dfs.ids import ChunkId
from tests.contract.test_chunk_store import chunk, ids_of


def _legacy_store(root: Path, chunks: list[tuple[ChunkId, bytes]]) -> None:
    """A data folder as a node of layout 2 left it: ``chunks/ab/cd/<id>``, no record."""
    for cid, data in chunks:
        leaf = root / "chunks" / cid[:2] / cid[2:4]
        leaf.mkdir(parents=True, exist_ok=True)
        (leaf / cid).write_bytes(data)


async def test_a_store_of_two_levels_keeps_them(tmp_path: Path) -> None:
    old = [chunk(i, 500 + i) for i in range(6)]
    _legacy_store(tmp_path, old)
    store = await FsChunkStore.open(tmp_path)
    assert (tmp_path / "chunks" / ".layout").read_text() == "2\n"
    assert (store.chunk_count, store.used_bytes) == (6, sum(len(d) for _, d in old))
    for cid, data in old:
        assert await store.get(cid) == data
    new_id, new_data = chunk(99)
    await store.put(new_id, new_data)
    assert store.path_of(new_id) == tmp_path / "chunks" / new_id[:2] / new_id[2:4] / new_id
    assert store.path_of(new_id).read_bytes() == new_data
    # a restart keeps the layout, even once every two-level folder is gone
    for cid, _ in [*old, (new_id, new_data)]:
        await store.delete(cid)
    await store.put(new_id, new_data)
    reopened = await FsChunkStore.open(tmp_path)
    assert reopened.path_of(new_id) == store.path_of(new_id)
    assert await reopened.get(new_id) == new_data
    assert await ids_of(reopened) == {new_id}


@pytest.mark.parametrize("depth", [1, 2])
async def test_listing_pages_in_id_order_in_either_layout(tmp_path: Path, depth: int) -> None:
    chunks = [chunk(i, 100 + i) for i in range(40)]
    if depth == 2:
        _legacy_store(tmp_path, chunks)
        store = await FsChunkStore.open(tmp_path)
    else:
        store = await FsChunkStore.open(tmp_path)
        for cid, data in chunks:
            await store.put(cid, data)
    (tmp_path / "chunks" / "README").write_text("not a chunk")
    pages: list[list[ChunkId]] = []
    after = ""
    for _ in range(len(chunks)):  # bounded: at least one id a page
        page = [c for c, _ in await store.list_chunks(after, 7)]
        if not page:
            break
        pages.append(page)
        after = page[-1]
    listed = [c for page in pages for c in page]
    assert listed == sorted(c for c, _ in chunks)
    assert [len(p) for p in pages] == [7, 7, 7, 7, 7, 5]
    # a page starting inside a folder skips what comes before it
    middle = listed[17]
    assert [c for c, _ in await store.list_chunks(middle, 100)] == listed[18:]


async def test_a_store_with_packs_and_no_large_chunks_gets_one_level(tmp_path: Path) -> None:
    """A store that has only packs and its disk identity (no two-level folder) has nothing
    to keep: it gets layout 1 on its next open."""
    (tmp_path / "chunks" / "packs").mkdir(parents=True)
    (tmp_path / "chunks" / ".disk-id").write_text("disk-0\n")
    store = await PackChunkStore.open(tmp_path, threshold=1)
    cid, data = chunk(3, 4000)
    await store.put(cid, data)
    assert store.files.path_of(cid) == tmp_path / "chunks" / cid[:2] / cid
    assert (tmp_path / "chunks" / ".layout").read_text() == "1\n"


@pytest.mark.parametrize("record", ["3\n", "\xff", ""])
async def test_an_unknown_layout_record_stops_the_open(tmp_path: Path, record: str) -> None:
    (tmp_path / "chunks").mkdir()
    (tmp_path / "chunks" / ".layout").write_bytes(record.encode("latin-1"))
    with pytest.raises(DfsError, match="unknown chunk layout"):
        await FsChunkStore.open(tmp_path)


async def test_a_fan_out_folder_removed_is_made_again(tmp_path: Path) -> None:
    store = await FsChunkStore.open(tmp_path)
    cid, data = chunk(5)
    os.rmdir(tmp_path / "chunks" / cid[:2])
    await store.put(cid, data)
    assert await store.get(cid) == data
    reopened = await FsChunkStore.open(tmp_path)
    assert await ids_of(reopened) == {cid}


async def test_a_folder_wiped_while_the_store_runs_keeps_its_new_chunks_after_a_restart(
    tmp_path: Path,
) -> None:
    """A chunk folder wiped under a running node (a disk replaced, ``rm -r chunks``: the
    disk identity goes with it, and repair copies chunks back) takes ``.layout`` along; the
    store writes on in its layout, making the folders it needs. The next open must find
    those chunks: one-level folders holding chunk files are layout 1, not a store of two."""
    store = await PackChunkStore.open(tmp_path, threshold=1)
    cid, data = chunk(7, 4000)
    shutil.rmtree(tmp_path / "chunks")
    await store.put(cid, data)
    reopened = await PackChunkStore.open(tmp_path, threshold=1)
    assert (tmp_path / "chunks" / ".layout").read_text() == "1\n"
    assert await reopened.get(cid) == data
    assert await reopened.has([cid]) == {cid}
    assert [c for c, _ in await reopened.list_chunks("", 10)] == [cid]
    assert Path(read_fan_out(os.fspath(tmp_path / "chunks")).path(cid)) == reopened.files.path_of(
        cid
    )


@pytest.mark.parametrize("made", ["none", "empty", "packs", "two levels", "one level"])
async def test_a_folder_without_a_record_is_read_as_it_is_opened(tmp_path: Path, made: str) -> None:
    """``read_fan_out`` (tools, tests) reads a folder with no record as ``open_fan_out``
    records it: two levels only where two-level folders are, else one (a new store, one of
    packs only, or one-level chunk files whose record was lost: a copy made with ``cp
    chunks/*``, which leaves dot files behind)."""
    chunks = tmp_path / "chunks"
    cid, data = chunk(8, 3000)
    if made != "none":
        chunks.mkdir()
    if made == "packs":
        (chunks / "packs").mkdir()
        (chunks / ".disk-id").write_text("disk-0\n")
    elif made == "two levels":
        _legacy_store(tmp_path, [(cid, data)])
    elif made == "one level":
        (chunks / cid[:2]).mkdir()
        (chunks / cid[:2] / cid).write_bytes(data)
    read = read_fan_out(os.fspath(chunks))
    store = await FsChunkStore.open(tmp_path)
    assert Path(read.path(cid)) == store.path_of(cid)
    assert read.depth == (2 if made == "two levels" else 1)
    if made in ("two levels", "one level"):
        assert await store.get(cid) == data
