"""POST /store-chunks: many small chunks per request, with the security of /store-chunk.

A directory upload sends its small chunks in batches (dfs.client.upload); each chunk carries its
own capability and gets its own receipt; one bad capability or one tampered chunk refuses the
whole batch before anything is stored."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import aiohttp
import pytest

from dfs import auth, protocol
from dfs.api import download_plans
from dfs.chunking import ChunkerProfile
from dfs.client import Client
from dfs.client.local_files import walk
from dfs.ids import ChunkId
from dfs.transport.api_client import ApiClient
from dfs.transport.http import ChunkPayload
from tests.integration.conftest import ADMIN_TOKEN, SECRET, InProcessCluster

pytestmark = pytest.mark.integration

FILE_ID = "00000000-0000-4000-8000-000000000002"


def _chunks(seed: int, n: int) -> list[tuple[str, bytes]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        data = rng.randbytes(rng.randint(1, 5000))
        out.append((hashlib.sha256(data).hexdigest(), data))
    return out


def _entry(chunk_id: str, node_id: str, forward: str = "") -> dict[str, str]:
    extra = protocol.put_cap_extra(FILE_ID, forward)
    cap = auth.mint(SECRET, auth.OP_PUT, chunk_id, node_id, extra=extra)
    return {"chunk_id": chunk_id, "file_id": FILE_ID, "cap": cap}


async def _post(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            f"{url}{protocol.STORE_CHUNKS}", data=ChunkPayload(body), headers=headers or {}
        ) as r,
    ):
        return r.status, await r.json()


async def test_a_batch_is_stored_and_forwarded_with_a_receipt_per_chunk(
    inproc: InProcessCluster,
) -> None:
    primary, replica = inproc.nodes[0], inproc.nodes[1]
    forward = protocol.forward_header([(replica.cfg.node_id, replica.url)])
    chunks = _chunks(1, 20)
    body = protocol.pack_chunks(
        [_entry(c, primary.cfg.node_id, forward) for c, _ in chunks], [d for _, d in chunks]
    )
    status, answer = await _post(primary.url, body, {protocol.FORWARD_TO: forward})
    assert status == 201, answer
    for (chunk_id, data), got in zip(chunks, answer["chunks"], strict=True):
        assert (got["chunk_id"], got["size"]) == (chunk_id, len(data))
        assert got["replicas"] == [primary.cfg.node_id, replica.cfg.node_id]
        assert auth.receipt_ok(SECRET, got["receipt"], FILE_ID, chunk_id)
        assert await primary.store.get(ChunkId(chunk_id)) == data
        assert await replica.store.get(ChunkId(chunk_id)) == data


async def test_a_tampered_batch_stores_nothing(inproc: InProcessCluster) -> None:
    node = inproc.nodes[0]
    nid = node.cfg.node_id
    chunks = _chunks(2, 5)
    entries = [_entry(c, nid) for c, _ in chunks]
    datas = [d for _, d in chunks]
    # one chunk's bytes changed: 422, and none of the batch is stored
    bad = [*datas[:-1], datas[-1] + b"!"]
    status, answer = await _post(node.url, protocol.pack_chunks(entries, bad))
    assert status == 422, answer
    # one capability for another node, another file, or another forward list: 403
    forged = [
        {**entries[0], "cap": _entry(chunks[0][0], "node2")["cap"]},
        {**entries[0], "file_id": "00000000-0000-4000-8000-000000000003"},
        {**entries[0], "cap": _entry(chunks[0][0], nid, "node2=http://127.0.0.1:1")["cap"]},
    ]
    for f in forged:
        status, answer = await _post(node.url, protocol.pack_chunks([f, *entries[1:]], datas))
        assert status == 403, answer
    # no capability at all, or a replica write whose replicate capability is missing: 401
    status, _ = await _post(
        node.url, protocol.pack_chunks([{"chunk_id": chunks[0][0], "file_id": FILE_ID}], datas[:1])
    )
    assert status == 401
    status, _ = await _post(
        node.url,
        protocol.pack_chunks([{"chunk_id": c} for c, _ in chunks], datas),
        {protocol.FORWARDED: "1"},
    )
    assert status == 401
    assert await node.store.has([c for c, _ in chunks]) == set()
    # sizes that do not add up to the body
    body = protocol.pack_chunks(entries, datas) + b"x"
    status, _ = await _post(node.url, body)
    assert status == 400


async def test_directory_upload_and_download_through_batches(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    src = tmp_path / "tree"
    rng = random.Random(3)
    for i in range(150):
        d = src / f"d{i % 7}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}.bin").write_bytes(rng.randbytes(rng.randint(1, 40_000)))
    (src / "same1.bin").write_bytes(b"dup" * 1000)
    (src / "same2.bin").write_bytes(b"dup" * 1000)
    items = list(walk([src], "t/"))
    async with Client(inproc.api.url, token=ADMIN_TOKEN) as c:
        results = await c.upload_many(items, profile=ChunkerProfile.fastcdc())
        assert [r.name for r in results] == [it.name for it in items]
        out = tmp_path / "out"
        await c.download_many([(r.file_id, out / r.name) for r in results])
    for it in items:
        assert (out / it.name).read_bytes() == it.path.read_bytes()


async def test_download_many_asks_again_for_plans_that_did_not_fit_one_answer(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API plans at most MAX_PLANNED_CHUNKS chunks per answer and marks the files that did
    not fit ``payload_too_large``; the client asks for those again instead of failing."""
    monkeypatch.setattr(download_plans, "MAX_PLANNED_CHUNKS", 5)
    src = tmp_path / "tree"
    src.mkdir()
    rng = random.Random(4)
    for i in range(6):  # 3 chunks each at the fixed 64 KiB profile: two files per answer
        (src / f"f{i}.bin").write_bytes(rng.randbytes(3 * 65536 - 10))
    items = list(walk([src], "p/"))
    asked: list[int] = []
    async with Client(inproc.api.url, token=ADMIN_TOKEN) as c:
        results = await c.upload_many(items, profile=ChunkerProfile.fixed(65536))
        real = ApiClient.download_plans

        async def counting(api: ApiClient, file_ids: list[str]) -> list[dict[str, object]]:
            asked.append(len(file_ids))
            return await real(api, file_ids)

        monkeypatch.setattr(ApiClient, "download_plans", counting)
        out = tmp_path / "out"
        await c.download_many([(r.file_id, out / r.name) for r in results])
    assert asked == [6, 5, 4, 3, 2, 1]  # one file of 3 chunks fits each answer of 5
    for it in items:
        assert (out / it.name).read_bytes() == it.path.read_bytes()
