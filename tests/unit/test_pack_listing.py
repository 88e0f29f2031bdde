"""A pack store's ``list_chunks`` gives ``limit`` ids unless there are no more. Its packed half
lists from a cached snapshot of the ids; a record dropped after the snapshot was taken (a
delete, compaction) used to leave the page one short, which ``/list-chunks`` answered with
``next: null``, and an inventory forgot every recorded copy after it. Real pack files."""

from __future__ import annotations

from pathlib import Path

import pytest

from dfs.ids import ChunkId
from tests.contract.test_chunk_store import chunk, open_pack


async def test_a_record_dropped_after_the_snapshot_leaves_no_gap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await open_pack(tmp_path)
    try:
        items = [chunk(i, 1000) for i in range(6)]
        assert all(await store.put_many(items))
        ids = sorted(c for c, _ in items)
        snapshot: list[ChunkId] = list(store.packs.sorted_ids())
        assert snapshot == ids  # every chunk packed
        # the listing's snapshot was taken, then a concurrent delete dropped a record
        await store.delete(ids[1])
        monkeypatch.setattr(store.packs, "sorted_ids", lambda: snapshot)
        page = [c for c, _age in await store.list_chunks("", 3)]
        assert page == [ids[0], ids[2], ids[3]]
        rest = [c for c, _age in await store.list_chunks(page[-1], 3)]
        assert rest == [ids[4], ids[5]]
    finally:
        await store.close()
