"""A node's listing that came back short mid-way must not end an inventory window.

A pack node lists its packed ids from a cached snapshot; a record dropped after the snapshot
was taken (a delete, compaction) made the page one short, ``/list-chunks`` answered
``next: null`` for any short page, and the inventory took that for the end of the node's
ids: it forgot every recorded copy after it, and repair copied them all again. Now the pack
listing skips the dropped record for the next id, and ``next`` is null only when no id
follows. Real nodes (pack stores) over HTTP; the snapshot is the one taken just before the
record went, the exact interleaving.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dfs import auth
from dfs.api import inventory as inventory_mod
from dfs.api.inventory import take_inventory
from dfs.chunkstore.pack import PackChunkStore
from dfs.ids import ChunkId
from tests.integration.conftest import running_cluster
from tests.integration.test_phantom_locations import PATIENT_NODES, live, store

pytestmark = pytest.mark.integration


async def test_a_record_dropped_during_a_listing_forgets_only_its_own_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = {"maintenance": False}
    async with running_cluster(tmp_path, n=2, rf=2, api_cfg=cfg, node_cfg=PATIENT_NODES) as c:
        coord = c.api.coordinator
        ids = sorted([await store(coord, f"f{i}", 3000, 300 + i) for i in range(6)])
        node = c.nodes[0]
        packs = node.store
        assert isinstance(packs, PackChunkStore)
        snapshot: list[ChunkId] = list(packs.packs.sorted_ids())
        assert snapshot == ids  # small chunks: all packed, all recorded on both nodes
        await packs.delete(ChunkId(ids[1]))  # dropped after the listing took its snapshot
        monkeypatch.setattr(packs.packs, "sorted_ids", lambda: snapshot)

        record = (await live(coord))[node.cfg.node_id]
        cap = coord.cap(auth.OP_LIST, auth.ANY_CHUNK, record.node_id)
        page, nxt = await coord.nodes.list_chunks(record.url, cap=cap, after="", limit=3)
        assert [cid for cid, _ in page] == [ids[0], ids[2], ids[3]]
        assert nxt == ids[3]
        page, nxt = await coord.nodes.list_chunks(record.url, cap=cap, after=ids[3], limit=2)
        assert ([cid for cid, _ in page], nxt) == ([ids[4], ids[5]], None)  # the end, said

        monkeypatch.setattr(inventory_mod, "PAGE", 3)  # pages smaller than the node's ids
        done = await take_inventory(coord, [record], {}, 10)
        assert (done.checked, done.missing) == (len(ids), 1)
        assert done.suspects == {ids[1]}
        where = await coord.meta.get_locations(ids)
        assert [cid for cid in ids if record.node_id not in where[cid]] == [ids[1]]
