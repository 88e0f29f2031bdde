"""Batched reads (``POST /get-chunks``) and the small-file restore on real processes.

The node answers per entry (a missing chunk is a record, not a failed batch) and refuses a
batch with one bad capability; a directory restore fails over a chunk missing on its first
replica, detects a chunk whose bytes were altered on the way (a man in the middle between
client and node) and fetches it from the other replica, and hedges around a stopped node.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from dfs import auth, protocol
from dfs.client import Client
from dfs.client.local_files import LocalFile
from dfs.localcluster import LocalCluster
from tests.e2e.test_hung_node import stopped
from tests.local_app import serving

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.parametrize("meta_url", ["sqlite"], indirect=True),
    # a stopped node stays "live" to the API for the whole test
    pytest.mark.cluster(heartbeat_timeout=600.0),
]


def _files(root: Path, n: int) -> list[LocalFile]:
    root.mkdir()
    out = []
    for i in range(n):
        path = root / f"f{i:03d}.bin"
        path.write_bytes(os.urandom(3000 + 97 * i))
        out.append(LocalFile(path, f"t/{path.name}", path.stat().st_size))
    return out


def _secret(c: LocalCluster) -> bytes:
    return c.secrets["DFS_CLUSTER_SECRET"].encode()


async def _records(resp: aiohttp.ClientResponse, n: int) -> list[tuple[str, int, bytes]]:
    out = []
    for _ in range(n):
        chunk_id, status, size = protocol.read_record_header(
            await resp.content.readexactly(protocol.RECORD_HEADER.size)
        )
        out.append((chunk_id, status, await resp.content.readexactly(size) if size else b""))
    assert await resp.content.read() == b""
    return out


async def test_get_chunks_answers_per_entry_and_checks_every_capability(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    files = _files(tmp_path / "src", 6)
    async with Client(cluster.api_url, token=cluster.admin_token, resume=False) as cl:
        ups = await cl.upload_many(files)
        [plan] = await cl.api.download_plans([ups[0].file_id])
    chunk = plan["chunks"][0]
    replica = chunk["replicas"][0]
    node_id, url, held = str(replica["node_id"]), str(replica["url"]), str(chunk["sha256"])
    missing = hashlib.sha256(b"never stored anywhere").hexdigest()
    secret = _secret(cluster)
    entries = [
        {"chunk_id": c, "cap": auth.mint(secret, auth.OP_GET, c, node_id)}
        for c in (held, missing, held)
    ]
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{url}{protocol.GET_CHUNKS}", json={"chunks": entries}) as resp:
            assert resp.status == 200
            records = await _records(resp, 3)
        assert [(c, st) for c, st, _d in records] == [
            (held, protocol.RECORD_OK),
            (missing, protocol.RECORD_NOT_FOUND),
            (held, protocol.RECORD_OK),
        ]
        assert records[0][2] == files[0].path.read_bytes()
        # one capability for another node (or none) refuses the whole batch
        entries[1]["cap"] = auth.mint(secret, auth.OP_GET, missing, "node-elsewhere")
        async with s.post(f"{url}{protocol.GET_CHUNKS}", json={"chunks": entries}) as resp:
            assert resp.status == 403
        del entries[1]["cap"]
        async with s.post(f"{url}{protocol.GET_CHUNKS}", json={"chunks": entries}) as resp:
            assert resp.status == 401
        too_many = [entries[0]] * (protocol.MAX_GET_BATCH + 1)
        async with s.post(f"{url}{protocol.GET_CHUNKS}", json={"chunks": too_many}) as resp:
            assert resp.status in (400, 413)  # too many entries, or bytes


@contextlib.asynccontextmanager
async def corrupting_proxy(upstream: str, bad_chunk: str) -> AsyncIterator[str]:
    """A man in the middle in front of a node's /get-chunks: flips one byte of ``bad_chunk``."""

    async def handle(request: web.Request) -> web.Response:
        body = await request.json()
        url = f"{upstream}{protocol.GET_CHUNKS}"
        async with aiohttp.ClientSession() as s, s.post(url, json=body) as resp:
            assert resp.status == 200
            records = await _records(resp, len(body["chunks"]))
        out = bytearray()
        for chunk_id, status, data in records:
            if chunk_id == bad_chunk and data:
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            out += protocol.record_header(chunk_id, status, len(data)) + data
        return web.Response(body=bytes(out), content_type="application/octet-stream")

    app = web.Application()
    app.router.add_post(protocol.GET_CHUNKS, handle)
    async with serving(app) as port:
        yield f"http://127.0.0.1:{port}"


def _first_holder(plan: dict[str, Any]) -> tuple[str, str, str]:
    """(chunk id, node id, url) of a one-chunk plan's first replica."""
    [chunk] = plan["chunks"]
    replica = chunk["replicas"][0]
    return str(chunk["sha256"]), str(replica["node_id"]), str(replica["url"])


async def test_restore_fails_over_a_missing_chunk_and_refuses_altered_bytes(
    cluster: LocalCluster, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = _files(tmp_path / "src", 40)
    out = tmp_path / "out"
    async with Client(cluster.api_url, token=cluster.admin_token, resume=False) as cl:
        ups = await cl.upload_many(files)
        plans = {p["file_id"]: p for p in await cl.api.download_plans([u.file_id for u in ups])}
        gone, gone_node, gone_url = _first_holder(plans[ups[0].file_id])
        cap = auth.mint(
            _secret(cluster), auth.OP_DELETE, gone, gone_node, extra=protocol.delete_cap_extra(0)
        )
        assert await cl.nodes.delete_chunk(gone_url, gone, cap=cap)
        # every read planned from the node that holds file 1's first copy goes through a
        # proxy that alters file 1's bytes
        bad, bad_node, bad_url = _first_holder(plans[ups[1].file_id])
        async with corrupting_proxy(bad_url, bad) as mitm:
            for plan in plans.values():
                for replica in plan["chunks"][0]["replicas"]:
                    if replica["node_id"] == bad_node:
                        replica["url"] = mitm
            pairs = [(u.file_id, out / u.name) for u in ups]
            results = await asyncio.wait_for(cl.download_many(pairs, plans=plans), 60.0)
    # the client found the altered bytes (a later good answer from that node may have
    # cleared it from the avoid list already)
    assert f"node {bad_node} returned bad bytes" in caplog.text
    for f, r in zip(files, results, strict=True):
        assert (out / f.name).read_bytes() == f.path.read_bytes()
        assert r.path == str(out / f.name)
    assert results[0].failovers >= 1
    assert results[1].failovers >= 1
    assert not list(out.rglob("*.dfs-part*"))


async def test_restore_hedges_around_a_stopped_node(cluster: LocalCluster, tmp_path: Path) -> None:
    files = _files(tmp_path / "src", 30)
    out = tmp_path / "out"
    async with Client(cluster.api_url, token=cluster.admin_token, resume=False) as cl:
        ups = await cl.upload_many(files)
        plans = await cl.api.download_plans([u.file_id for u in ups])
    firsts = [_first_holder(p)[1] for p in plans]
    hung = max(set(firsts), key=firsts.count)
    with stopped(cluster, hung):
        async with Client(cluster.api_url, token=cluster.admin_token, resume=False) as cl:
            started = time.monotonic()
            pairs = [(u.file_id, out / u.name) for u in ups]
            await asyncio.wait_for(cl.download_many(pairs), 30.0)
            took = time.monotonic() - started
            assert cl.transfer_stats.hedges >= 1
            assert hung in cl.avoid.avoided()
    for f in files:
        assert (out / f.name).read_bytes() == f.path.read_bytes()
    print(f"30 small files with {hung} stopped: {took:.2f} s")
