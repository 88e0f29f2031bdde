"""POST /store-chunks: many small chunks per request, with the security of /store-chunk.

A directory upload sends its small chunks in the packs the API planned (dfs.api.upload_packs);
each request carries one capability in its headers, bound to its node, its ordered chunk ids
and file ids and its forward list, and each chunk gets its own receipt; a capability that does
not check, a body that is not the list it binds, or one tampered chunk refuses the whole batch
before anything is stored."""

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


def _entries(chunk_ids: list[str], file_ids: list[str] | None = None) -> list[dict[str, str]]:
    files = file_ids or [FILE_ID] * len(chunk_ids)
    return [{"chunk_id": c, "file_id": f} for c, f in zip(chunk_ids, files, strict=True)]


def _headers(
    chunk_ids: list[str],
    node_id: str,
    forward: str = "",
    file_ids: list[str] | None = None,
    op: str = auth.OP_PUT_BATCH,
) -> dict[str, str]:
    """The headers of an upload batch whose put-batch capability the API minted for
    ``node_id``, binding the ordered chunk ids and file ids and the forward list."""
    files = file_ids or [FILE_ID] * len(chunk_ids)
    extra = protocol.put_cap_extra(protocol.list_sha256(files), forward)
    cap = auth.mint(SECRET, op, protocol.list_sha256(chunk_ids), node_id, extra=extra)
    headers = protocol.batch_headers(cap, chunk_ids, files)
    if forward:
        headers[protocol.FORWARD_TO] = forward
    return headers


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
    ids = [c for c, _ in chunks]
    other = "00000000-0000-4000-8000-000000000005"
    files = [FILE_ID if n % 2 else other for n in range(len(ids))]  # a pack of two files
    body = protocol.pack_chunks(_entries(ids, files), [d for _, d in chunks])
    headers = _headers(ids, primary.cfg.node_id, forward, files)
    status, answer = await _post(primary.url, body, headers)
    assert status == 201, answer
    for (chunk_id, data), file_id, got in zip(chunks, files, answer["chunks"], strict=True):
        assert (got["chunk_id"], got["size"]) == (chunk_id, len(data))
        assert got["replicas"] == [primary.cfg.node_id, replica.cfg.node_id]
        assert auth.receipt_ok(SECRET, got["receipt"], file_id, chunk_id)
        assert await primary.store.get(ChunkId(chunk_id)) == data
        assert await replica.store.get(ChunkId(chunk_id)) == data


async def test_a_tampered_batch_stores_nothing(inproc: InProcessCluster) -> None:
    node = inproc.nodes[0]
    nid = node.cfg.node_id
    chunks = _chunks(2, 5)
    ids = [c for c, _ in chunks]
    datas = [d for _, d in chunks]
    body = protocol.pack_chunks(_entries(ids), datas)
    # one chunk's bytes changed: 422, and none of the batch is stored
    bad = [*datas[:-1], datas[-1] + b"!"]
    status, answer = await _post(
        node.url, protocol.pack_chunks(_entries(ids), bad), _headers(ids, nid)
    )
    assert status == 422, answer
    # a capability for another node, other file ids, another forward list, or a chunk's
    # put capability: 403
    other_files = ["00000000-0000-4000-8000-000000000003"] * len(ids)
    single = auth.mint(SECRET, auth.OP_PUT, ids[0], nid, extra=protocol.put_cap_extra(FILE_ID, ""))
    forged = [
        _headers(ids, "node2"),
        {
            **_headers(ids, nid, file_ids=other_files),
            protocol.BATCH_FILES: protocol.list_sha256([FILE_ID] * len(ids)),
        },
        {**_headers(ids, nid, "node2=http://127.0.0.1:1"), protocol.FORWARD_TO: ""},
        {**_headers(ids, nid), protocol.CAPABILITY: single},
        _headers(ids, nid, op=auth.OP_REPLICATE_BATCH),
    ]
    for h in forged:
        status, answer = await _post(node.url, body, h)
        assert status == 403, answer
    # a body that is not the list the capability binds: reordered, one chunk left out or
    # added, a chunk under another file id: 403
    swapped = [ids[1], ids[0], *ids[2:]]
    wrong_bodies = [
        protocol.pack_chunks(_entries(swapped), [datas[1], datas[0], *datas[2:]]),
        protocol.pack_chunks(_entries(ids[:-1]), datas[:-1]),
        protocol.pack_chunks(_entries([*ids, ids[0]]), [*datas, datas[0]]),
        protocol.pack_chunks(_entries(ids, [*other_files[:1], *[FILE_ID] * 4]), datas),
    ]
    for wrong in wrong_bodies:
        status, answer = await _post(node.url, wrong, _headers(ids, nid))
        assert status == 403, answer
    # no capability, no digest header, or a replica write without its capability: 401
    no_digest = {k: v for k, v in _headers(ids, nid).items() if k != protocol.BATCH}
    for h in ({}, no_digest, {protocol.FORWARDED: "1", protocol.BATCH: protocol.list_sha256(ids)}):
        status, answer = await _post(node.url, body, h)
        assert status == 401, answer
    assert await node.store.has(ids) == set()
    # sizes that do not add up to the body
    status, _ = await _post(node.url, body + b"x", _headers(ids, nid))
    assert status == 400


async def test_a_replica_batch_needs_its_primarys_capability_for_that_list(
    inproc: InProcessCluster,
) -> None:
    node = inproc.nodes[0]
    nid = node.cfg.node_id
    chunks = _chunks(5, 3)
    ids = [c for c, _ in chunks]
    body = protocol.pack_chunks([{"chunk_id": c} for c in ids], [d for _, d in chunks])

    def replica_headers(listed: list[str], node_id: str = nid) -> dict[str, str]:
        cap = auth.mint(SECRET, auth.OP_REPLICATE_BATCH, protocol.list_sha256(listed), node_id)
        return {**protocol.batch_headers(cap, listed), protocol.FORWARDED: "1"}

    for h in (
        replica_headers(ids[:2]) | {protocol.BATCH: protocol.list_sha256(ids)},
        replica_headers(ids, "node2"),
    ):
        status, answer = await _post(node.url, body, h)
        assert status == 403, answer
    status, answer = await _post(node.url, body, replica_headers(ids[::-1]))
    assert status == 403, answer  # a capability for the same chunks in another order
    assert await node.store.has(ids) == set()
    status, answer = await _post(node.url, body, replica_headers(ids))
    assert status == 201, answer
    assert "receipt" not in answer["chunks"][0]
    assert await node.store.has(ids) == set(ids)


async def test_init_uploads_plans_packs_with_one_capability_each(
    inproc: InProcessCluster,
) -> None:
    """The API groups a batch's small chunks by their targets into packs, and each pack's
    capability stores exactly that pack on its primary."""
    files = [rnd for rnd in (random.Random(6 + i).randbytes(3000) for i in range(10))]
    bodies = [
        {
            "name": f"f{i}",
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "chunker": "fixed:65536",
            "chunks": [{"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}],
        }
        for i, data in enumerate(files)
    ]
    by_id = {hashlib.sha256(d).hexdigest(): d for d in files}
    async with aiohttp.ClientSession() as session:
        api = ApiClient(session, inproc.api.url, token=ADMIN_TOKEN)
        plans, packs = await api.plan_uploads(bodies)
    planned = {(p["file_id"], it["sha256"]) for p in plans for it in p["upload"]}
    packed = [(c["file_id"], c["sha256"]) for pk in packs for c in pk["chunks"]]
    assert sorted(packed) == sorted(planned)  # every small chunk in exactly one pack
    urls = {n.cfg.node_id: n.url for n in inproc.nodes}
    for pk in packs:
        ids = [c["sha256"] for c in pk["chunks"]]
        fids = [c["file_id"] for c in pk["chunks"]]
        targets = pk["targets"]
        headers = protocol.batch_headers(pk["cap"], ids, fids)
        headers[protocol.FORWARD_TO] = protocol.forward_header(
            [(t["node_id"], t["url"]) for t in targets[1:]]
        )
        body = protocol.pack_chunks(_entries(ids, fids), [by_id[c] for c in ids])
        status, answer = await _post(urls[targets[0]["node_id"]], body, headers)
        assert status == 201, answer
        assert [a["chunk_id"] for a in answer["chunks"]] == ids
        assert len(answer["chunks"][0]["replicas"]) == len(targets)


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

        async def counting(
            api: ApiClient, file_ids: list[str], *, batched: bool = False
        ) -> list[dict[str, object]]:
            asked.append(len(file_ids))
            return await real(api, file_ids, batched=batched)

        monkeypatch.setattr(ApiClient, "download_plans", counting)
        out = tmp_path / "out"
        await c.download_many([(r.file_id, out / r.name) for r in results])
    assert asked == [6, 5, 4, 3, 2, 1]  # one file of 3 chunks fits each answer of 5
    for it in items:
        assert (out / it.name).read_bytes() == it.path.read_bytes()
