"""Re-sending chunks a node already holds (issue 12 item 5): no dedup timing oracle, no rotten
copy kept.

A node rewrites a chunk it holds exactly as it writes a new one (the chunk-store contract,
``tests/contract/test_chunk_store.py``). Here, through real nodes: a re-upload of good bytes
over silently corrupted copies leaves only good copies on disk, and a full node refuses a
re-sent chunk with the same 507 as a new one.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from dfs import auth, protocol
from dfs.chunking import ChunkerProfile
from dfs.chunkstore.pack import PackChunkStore
from dfs.chunkstore.record import HEADER_SIZE
from dfs.client import Client
from dfs.config import NodeConfig
from dfs.ids import ChunkId, sha256_hex
from dfs.node.app import start_node
from dfs.transport.http import ChunkPayload
from tests.contract.test_chunk_store import corrupt_packed
from tests.e2e.node_disk import chunk_files
from tests.integration.conftest import ADMIN_TOKEN, SECRET, InProcessCluster

pytestmark = pytest.mark.integration

MIB = 1 << 20
FILE_ID = "00000000-0000-4000-8000-000000000005"


Copy = tuple[str, str]
"""A chunk copy on disk: (node, chunk id)."""


def copies_on_disk(c: InProcessCluster) -> dict[Copy, bool]:
    """Every chunk copy on every node, a file under ``chunks/`` or a record in a pack file
    (read from the file, as the disk holds it): does it hash to its id?"""
    out: dict[Copy, bool] = {}
    for node in c.nodes:
        store = node.store
        assert isinstance(store, PackChunkStore)
        for path in chunk_files(c.base / node.cfg.node_id / "chunks"):
            out[node.cfg.node_id, path.name] = sha256_hex(path.read_bytes()) == path.name
        for cid in store.packs.ids():
            loc = store.packs.lookup(cid)
            assert loc is not None
            with store.packs.path(loc.pack).open("rb") as f:
                f.seek(loc.offset + HEADER_SIZE)
                out[node.cfg.node_id, cid] = sha256_hex(f.read(loc.length)) == cid
    return out


def flip_a_byte(c: InProcessCluster, copy: Copy) -> None:
    """Damage a copy in place (same file, same size), as a bad disk would."""
    node_id, cid = copy
    store = next(n.store for n in c.nodes if n.cfg.node_id == node_id)
    assert isinstance(store, PackChunkStore)
    if store.packs.lookup(ChunkId(cid)) is not None:
        corrupt_packed(store, ChunkId(cid))
        return
    path = store.files.path_of(ChunkId(cid))
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x40
    path.write_bytes(raw)


async def tenant_token(api_url: str, name: str) -> str:
    async with Client(api_url, token=ADMIN_TOKEN) as admin:
        await admin.api.create_tenant(name)
        return str((await admin.api.create_token(name, "user", f"{name} test"))["token"])


@pytest.mark.parametrize(
    ("size", "chunk_size"),
    [
        pytest.param(9 * MIB + 5, 2 * MIB, id="store-chunk"),  # a big file: one chunk a request
        pytest.param(MIB + 5, 256 * 1024, id="store-chunks"),  # a small file: /store-chunks packs
    ],
)
async def test_re_upload_over_rotten_copies_leaves_only_good_copies(
    inproc: InProcessCluster, tmp_path: Path, size: int, chunk_size: int
) -> None:
    """Every copy of a committed file rots on disk without any read noticing; another tenant
    uploads the same bytes. Each node is sent each chunk again and rewrites it, so afterwards
    every copy on disk verifies (before, the nodes kept the rotten copies, issued receipts
    for them, and the second file committed with 0 good copies), nothing was quarantined,
    and both files read back."""
    data = random.Random(size).randbytes(size)
    src = tmp_path / "same.bin"
    src.write_bytes(data)
    profile = ChunkerProfile.fixed(chunk_size)
    token_a = await tenant_token(inproc.api.url, "alice")
    token_b = await tenant_token(inproc.api.url, "bob")
    async with Client(inproc.api.url, token=token_a) as alice:
        first = await alice.upload(src, profile=profile)
    copies = copies_on_disk(inproc)
    chunks = -(-size // chunk_size)
    assert len(copies) == 2 * chunks
    assert all(copies.values())
    for copy in copies:
        flip_a_byte(inproc, copy)
    assert not any(copies_on_disk(inproc).values())

    async with Client(inproc.api.url, token=token_b) as bob:
        second = await bob.upload(src, profile=profile, name="again.bin")
        assert second.sha256 == first.sha256

        after = copies_on_disk(inproc)
        assert sorted(after) == sorted(copies)  # the same copies, rewritten
        assert all(after.values()), [p.name[:12] for p, good in after.items() if not good]
        assert list(inproc.base.glob("node*/quarantine/*")) == []
        assert list(inproc.base.glob("node*/chunks/**/*.tmp")) == []
        assert sum(n.store.used_bytes for n in inproc.nodes) == 2 * size
        await bob.download(second.file_id, tmp_path / "b.out")
        assert (tmp_path / "b.out").read_bytes() == data
    async with Client(inproc.api.url, token=token_a) as alice:
        await alice.download(first.file_id, tmp_path / "a.out")
        assert (tmp_path / "a.out").read_bytes() == data


async def _request(method: str, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, url, data=ChunkPayload(body), headers=headers) as r,
    ):
        return r.status, await r.json()


async def test_a_full_node_refuses_a_re_sent_chunk_as_a_new_one(tmp_path: Path) -> None:
    """507 for a chunk the node holds as for one it lacks, on both write routes: the answer
    does not tell whether some tenant stores the bytes, and the held copy stays good."""
    node = await start_node(
        NodeConfig(
            node_id="node1",
            port=0,
            data_dir=tmp_path / "node1",
            meta_url=f"sqlite://{tmp_path / 'meta.db'}",
            cluster_secret=SECRET,
            capacity_bytes=1500,
        )
    )
    try:
        rng = random.Random(7)
        held, new = rng.randbytes(1000), rng.randbytes(1000)

        async def put_one(data: bytes) -> tuple[int, Any]:
            cid = hashlib.sha256(data).hexdigest()
            cap = auth.mint(
                SECRET, auth.OP_PUT, cid, "node1", extra=protocol.put_cap_extra(FILE_ID, "")
            )
            headers = {protocol.CAPABILITY: cap, protocol.UPLOAD: FILE_ID}
            url = f"{node.url}{protocol.STORE_CHUNK}?chunk_id={cid}"
            return await _request("PUT", url, data, headers)

        async def put_batch(data: bytes) -> tuple[int, Any]:
            cid = hashlib.sha256(data).hexdigest()
            extra = protocol.put_cap_extra(protocol.list_sha256([FILE_ID]), "")
            digest = protocol.list_sha256([cid])
            cap = auth.mint(SECRET, auth.OP_PUT_BATCH, digest, "node1", extra=extra)
            body = protocol.pack_chunks([{"chunk_id": cid, "file_id": FILE_ID}], [data])
            headers = protocol.batch_headers(cap, [cid], [FILE_ID])
            return await _request("POST", f"{node.url}{protocol.STORE_CHUNKS}", body, headers)

        status, answer = await put_one(held)
        assert status == 201, answer
        for put in (put_one, put_batch):
            refused = [await put(held), await put(new)]
            assert [s for s, _ in refused] == [507, 507], refused
            assert {a["error"]["code"] for _, a in refused} == {"insufficient_storage"}
        assert await node.store.get(ChunkId(hashlib.sha256(held).hexdigest())) == held
        assert (node.store.used_bytes, node.store.chunk_count) == (1000, 1)
    finally:
        await node.stop()
