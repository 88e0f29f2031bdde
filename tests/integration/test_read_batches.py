"""Read batches: one ``get-batch`` capability per ``POST /get-chunks`` request (issue 19).

A batched ``/download-plans`` answer groups the small files' chunks into read batches, one
capability each, bound to the node, the ordered chunk-id list and the tenant. The node checks
it from the headers before reading the body, serves only chunks of that list (``want`` picks
some of them), and a tenant gets batches only over chunks its own files reference.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from dfs import auth, protocol
from dfs.client import Client
from dfs.client.local_files import LocalFile
from dfs.ids import new_file_id
from tests.integration.conftest import ADMIN_TOKEN, SECRET, InProcessCluster
from tests.integration.test_security import tenant_tokens

pytestmark = pytest.mark.integration


def _files(root: Path, n: int, seed: int) -> list[LocalFile]:
    root.mkdir(parents=True)
    rng = random.Random(seed)
    out = []
    for i in range(n):
        path = root / f"f{i:03d}.bin"
        path.write_bytes(rng.randbytes(1000 + 37 * i))
        out.append(LocalFile(path, f"{root.name}/{path.name}", path.stat().st_size))
    return out


async def _batched(api_url: str, token: str, file_ids: list[str], **flags: bool) -> dict[str, Any]:
    async with aiohttp.ClientSession() as s:
        body = {"file_ids": file_ids, "batched": True, **flags}
        headers = {"Authorization": f"Bearer {token}"}
        async with s.post(f"{api_url}{protocol.DOWNLOAD_PLANS}", json=body, headers=headers) as r:
            assert r.status == 200
            answer: dict[str, Any] = await r.json()
            return answer


async def _get(
    url: str, headers: dict[str, str], body: dict[str, Any]
) -> tuple[int, list[tuple[str, int, bytes]]]:
    """Status and records of a /get-chunks request."""
    async with (
        aiohttp.ClientSession() as s,
        s.post(f"{url}{protocol.GET_CHUNKS}", json=body, headers=headers) as r,
    ):
        if r.status != 200:
            return r.status, []
        out = []
        raw = await r.read()
        at = 0
        while at < len(raw):
            chunk_id, status, size = protocol.read_record_header(
                raw[at : at + protocol.RECORD_HEADER.size]
            )
            at += protocol.RECORD_HEADER.size
            out.append((chunk_id, status, raw[at : at + size]))
            at += size
        return r.status, out


async def test_one_capability_per_batch_grants_exactly_its_list(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    files = _files(tmp_path / "a", 12, 1)
    async with Client(inproc.api.url, token=ADMIN_TOKEN, resume=False) as cl:
        ups = await cl.upload_many(files)
    answer = await _batched(inproc.api.url, ADMIN_TOKEN, [u.file_id for u in ups])
    batches = answer["batches"]
    by_id = {hashlib.sha256(f.path.read_bytes()).hexdigest(): f for f in files}
    # every small file's replica names a batch and position holding its chunk on that node,
    # with no per-chunk capability; every chunk is in one batch per holder (RF 2)
    for plan in answer["plans"]:
        [chunk] = plan["chunks"]
        assert len(chunk["replicas"]) == 2
        for replica in chunk["replicas"]:
            assert "cap" not in replica
            batch = batches[replica["batch"]]
            assert batch["node_id"] == replica["node_id"]
            assert batch["chunk_ids"][replica["at"]] == chunk["sha256"]
    assert sum(len(b["chunk_ids"]) for b in batches) == 2 * len(files)
    batch = max(batches, key=lambda b: len(b["chunk_ids"]))
    ids, url, node_id = batch["chunk_ids"], batch["url"], batch["node_id"]
    assert len(ids) >= 2
    headers = protocol.read_batch_headers(batch["cap"], ids, batch["tenant"])
    status, records = await _get(url, headers, {"chunk_ids": ids})
    assert status == 200
    assert [(c, st) for c, st, _d in records] == [(c, protocol.RECORD_OK) for c in ids]
    assert all(d == by_id[c].path.read_bytes() for c, _st, d in records)
    status, records = await _get(url, headers, {"chunk_ids": ids, "want": [1, 0]})
    assert [c for c, _st, _d in records] == [ids[1], ids[0]]

    # the capability reads no other chunk: another list in the body (one more chunk this
    # node holds, one left out, reordered), or another list's digest in the headers
    other = next(c for b in batches if b["node_id"] == node_id for c in b["chunk_ids"])
    elsewhere = [c for b in batches if b["node_id"] == node_id for c in b["chunk_ids"]]
    extra = next((c for c in elsewhere if c not in ids), other)
    for body in (
        {"chunk_ids": [*ids, extra]},
        {"chunk_ids": ids[:-1]},
        {"chunk_ids": ids[::-1]},
        {"chunk_ids": [extra, *ids[1:]]},
    ):
        status, _ = await _get(url, headers, body)
        assert status == 403, body
    swapped = [extra, *ids[1:]]
    forged_digest = {**headers, protocol.BATCH: protocol.list_sha256(swapped)}
    status, _ = await _get(url, forged_digest, {"chunk_ids": swapped})
    assert status == 403
    # another tenant, another node, another operation, expired: 403; none: 401
    digest = protocol.list_sha256(ids)
    for h in (
        {**headers, protocol.TENANT: "someone-else"},
        {**headers, protocol.CAPABILITY: auth.mint(SECRET, auth.OP_GET_BATCH, digest, "node9")},
        {**headers, protocol.CAPABILITY: auth.mint(SECRET, auth.OP_GET, digest, node_id)},
        {
            **headers,
            protocol.CAPABILITY: auth.mint(
                SECRET, auth.OP_GET_BATCH, digest, node_id, extra=batch["tenant"], ttl=-1
            ),
        },
    ):
        status, _ = await _get(url, h, {"chunk_ids": ids})
        assert status == 403
    # without the capability the body is read as per-entry capabilities: none there, 401
    no_cap = {k: v for k, v in headers.items() if k != protocol.CAPABILITY}
    status, _ = await _get(url, no_cap, {"chunks": [{"chunk_id": c} for c in ids]})
    assert status == 401
    no_digest = {k: v for k, v in headers.items() if k != protocol.BATCH}
    status, _ = await _get(url, no_digest, {"chunk_ids": ids})
    assert status == 401
    # positions outside the list, or repeated: 400
    for want in ([len(ids)], [0, 0], [-1], ["0"]):
        status, _ = await _get(url, headers, {"chunk_ids": ids, "want": want})
        assert status == 400, want


async def test_a_batch_is_refused_before_its_body_is_read(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    """A forged batch declares a large body and never sends it: the node answers 403 from
    the headers at once (reading the body first would wait for its deadline)."""
    node = inproc.nodes[0]
    ids = [hashlib.sha256(b"x").hexdigest()]
    cap = auth.mint(SECRET, auth.OP_GET_BATCH, protocol.list_sha256(ids), "node9", extra="t")
    headers = protocol.read_batch_headers(cap, ids, "t")
    parts = urlsplit(node.url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        head = [
            f"POST {protocol.GET_CHUNKS} HTTP/1.1",
            f"Host: {parts.netloc}",
            "Content-Type: application/json",
            "Content-Length: 150000",
            *(f"{k}: {v}" for k, v in headers.items()),
        ]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
        writer.write(json.dumps({"chunk_ids": ids})[:10].encode())
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 5.0)
        assert status_line.split()[1] == b"403"
    finally:
        writer.close()


async def test_a_tenant_gets_batches_only_over_chunks_its_files_reference(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    alice_token, bob_token = await tenant_tokens(inproc.api.url, "alice", "bob")
    alice_files = _files(tmp_path / "alice", 8, 2)
    bob_files = _files(tmp_path / "bob", 5, 3)
    async with Client(inproc.api.url, token=alice_token, resume=False) as cl:
        alice = [u.file_id for u in await cl.upload_many(alice_files)]
    async with Client(inproc.api.url, token=bob_token, resume=False) as cl:
        bob = [u.file_id for u in await cl.upload_many(bob_files)]
    alice_chunks = {hashlib.sha256(f.path.read_bytes()).hexdigest() for f in alice_files}
    bob_chunks = {hashlib.sha256(f.path.read_bytes()).hexdigest() for f in bob_files}
    # bob asking for alice's files (and his own) gets errors for hers, batches of his only
    answer = await _batched(inproc.api.url, bob_token, [*alice, *bob])
    assert all(p.get("error", {}).get("code") == "file_not_found" for p in answer["plans"][:8])
    listed = {c for b in answer["batches"] for c in b["chunk_ids"]}
    assert listed == bob_chunks
    assert all(b["tenant"] == "bob" for b in answer["batches"])
    # a batch of bob's cannot be turned into one over alice's chunks: the list is bound
    batch = answer["batches"][0]
    theirs = sorted(alice_chunks)[: len(batch["chunk_ids"])]
    headers = protocol.read_batch_headers(batch["cap"], batch["chunk_ids"], "bob")
    status, _ = await _get(batch["url"], headers, {"chunk_ids": theirs})
    assert status == 403
    # and bob's batches still restore his files, through the client
    out = tmp_path / "out"
    async with Client(inproc.api.url, token=bob_token, resume=False) as cl:
        await cl.download_many([(f, out / f"{n}.bin") for n, f in enumerate(bob)])
    for n, f in enumerate(bob_files):
        assert (out / f"{n}.bin").read_bytes() == f.path.read_bytes()


async def test_a_compact_answer_holds_what_a_download_uses_and_restores(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    """``"compact": true``: each plan only says what a client writes and checks, and a small
    file's replicas only their batch and position (the batch names the holder); a client
    (which asks for compact batched plans) restores the same bytes from such answers."""
    files = _files(tmp_path / "c", 6, 3)
    async with Client(inproc.api.url, token=ADMIN_TOKEN, resume=False) as cl:
        ups = await cl.upload_many(files)
        ids = [u.file_id for u in ups]
        answer = await _batched(inproc.api.url, ADMIN_TOKEN, ids, compact=True)
        full = await _batched(inproc.api.url, ADMIN_TOKEN, ids)
        for plan, whole in zip(answer["plans"], full["plans"], strict=True):
            assert set(plan) <= {"file_id", "name", "size", "sha256", "mode", "mtime", "chunks"}
            assert {k: plan[k] for k in ("file_id", "name", "size", "sha256")} == {
                k: whole[k] for k in ("file_id", "name", "size", "sha256")
            }
            assert plan.get("mode") == whole.get("mode")
            [chunk] = plan["chunks"]
            assert set(chunk) == {"offset", "size", "sha256", "replicas"}
            assert len(chunk["replicas"]) == 2
            for replica in chunk["replicas"]:
                assert set(replica) == {"batch", "at"}
                assert (
                    answer["batches"][replica["batch"]]["chunk_ids"][replica["at"]]
                    == (chunk["sha256"])
                )
        assert len(json.dumps(answer)) < len(json.dumps(full))
        [plan] = await cl.api.download_plans(ids[:1], batched=True)
        replica = plan["chunks"][0]["replicas"][0]
        assert replica["node_id"] == replica["batch"]["node_id"]
        assert replica["url"] == replica["batch"]["url"]
        out = tmp_path / "out"
        out.mkdir()
        results = await cl.download_many([(u.file_id, out / f"{n}.bin") for n, u in enumerate(ups)])
    assert [r.sha256 for r in results] == [u.sha256 for u in ups]
    for n, f in enumerate(files):
        assert (out / f"{n}.bin").read_bytes() == f.path.read_bytes()


async def test_flags_of_download_plans_must_be_booleans(inproc: InProcessCluster) -> None:
    async with aiohttp.ClientSession() as s:
        known = [new_file_id()]  # the flags are read whether or not the file exists
        for body in ({"file_ids": known, "compact": "yes"}, {"file_ids": known, "batched": 1}):
            url = f"{inproc.api.url}{protocol.DOWNLOAD_PLANS}"
            headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            async with s.post(url, json=body, headers=headers) as r:
                assert r.status == 400


async def test_a_full_batch_of_per_chunk_capabilities_is_taken(inproc: InProcessCluster) -> None:
    """The per-entry form of ``/get-chunks`` takes MAX_GET_BATCH entries, as documented: the
    body bound fits that many ``{"chunk_id", "cap"}`` entries (it was 160 bytes an entry, and
    an entry of compact JSON is 164: a full batch answered 413)."""
    node = inproc.nodes[0]
    ids = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(protocol.MAX_GET_BATCH)]
    entries = [
        {"chunk_id": c, "cap": auth.mint(SECRET, auth.OP_GET, c, node.cfg.node_id)} for c in ids
    ]
    status, records = await _get(node.url, {}, {"chunks": entries})
    assert status == 200
    assert [(c, s) for c, s, _ in records] == [(c, protocol.RECORD_NOT_FOUND) for c in ids]
