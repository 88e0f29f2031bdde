"""One file of many small chunks downloaded on real processes (issue 19 item 2).

Its chunks come in runs through ``POST /get-chunks`` (no ``/get-chunk`` round trip per
chunk), each chunk still verified: a chunk missing on its first replica and one whose bytes
are altered on the way are fetched from the other replica; a stopped node is hedged around;
an interrupted download resumes with only the chunks it had not written. A healthy cluster
is read once per chunk, with no hedge.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from dfs import auth, protocol
from dfs.chunking import ChunkerProfile
from dfs.client import Client
from dfs.client.download import _pieces
from dfs.localcluster import LocalCluster
from dfs.transport.node_client import NodeClient
from tests.e2e.test_batched_reads import corrupting_proxy
from tests.e2e.test_hung_node import stopped

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.parametrize("meta_url", ["sqlite"], indirect=True),
    # a stopped node stays "live" to the API for the whole test
    pytest.mark.cluster(heartbeat_timeout=600.0),
]

TINY = ChunkerProfile.parse("fastcdc:64:256:1024")


def _source(path: Path, seed: int, repeat: bool = False) -> bytes:
    """200 KiB in ~650 tiny chunks; with ``repeat`` an 8 KiB block over and over (the
    chunk ids repeat within a run), else nothing repeats."""
    rng = random.Random(seed)
    data = rng.randbytes(8 * 1024) * 25 if repeat else rng.randbytes(200 * 1024)
    path.write_bytes(data)
    return data


def _glob(d: Path, pattern: str) -> list[Path]:
    return list(d.glob(pattern))


class Reads:
    """Counts the node reads of every client: ``/get-chunk`` calls, ``/get-chunks`` calls
    and the chunks these asked for."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.single = 0
        self.batches = 0
        self.batched_chunks = 0
        get_chunk, get_chunks = NodeClient.get_chunk, NodeClient.get_chunks

        async def one(nodes: NodeClient, url: str, chunk_id: str, **kw: Any) -> bytes:
            self.single += 1
            return await get_chunk(nodes, url, chunk_id, **kw)

        async def many(
            nodes: NodeClient,
            url: str,
            entries: Sequence[tuple[str, str, int]],
            on_record: Callable[[int, int, bytes], Awaitable[None]],
        ) -> None:
            self.batches += 1
            self.batched_chunks += len(entries)
            await get_chunks(nodes, url, entries, on_record)

        monkeypatch.setattr(NodeClient, "get_chunk", one)
        monkeypatch.setattr(NodeClient, "get_chunks", many)


async def test_small_chunks_come_in_batches_and_each_chunk_is_read_once(
    cluster: LocalCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _source(tmp_path / "tiny.bin", 1, repeat=True)
    big = random.Random(2).randbytes(3 << 20)
    (tmp_path / "big.bin").write_bytes(big)
    async with Client(cluster.api_url, token=cluster.admin_token, resume=False) as cl:
        up = await cl.upload(tmp_path / "tiny.bin", profile=TINY)
        up_big = await cl.upload(tmp_path / "big.bin")
        plan = await cl.api.download_plan(up.file_id)
        distinct = len({c["sha256"] for c in plan["chunks"]})
        assert up.chunks > 500
        assert distinct < up.chunks // 5
        reads = Reads(monkeypatch)
        r = await cl.download(up.file_id, tmp_path / "tiny.out")
        assert (tmp_path / "tiny.out").read_bytes() == data
        assert reads.single == 0
        assert reads.batches <= up.chunks // 50
        # each chunk once, but for ids a run (one request) already asked for
        runs = [chunks for chunks, run in _pieces(plan["chunks"], batched=True) if run]
        assert reads.batched_chunks == sum(len({c["sha256"] for c in r}) for r in runs)
        assert reads.batched_chunks < up.chunks
        assert (r.hedges, r.failovers) == (0, 0)
        # big chunks stream one by one: one read each, no hedge on a healthy cluster
        r = await cl.download(up_big.file_id, tmp_path / "big.out")
        assert (tmp_path / "big.out").read_bytes() == big
        assert reads.single == up_big.chunks > 1
        assert (r.hedges, r.failovers, cl.transfer_stats.hedges) == (0, 0, 0)


async def test_a_missing_and_an_altered_chunk_come_from_the_other_replica(
    cluster: LocalCluster, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = _source(tmp_path / "tiny.bin", 3)
    async with Client(cluster.api_url, token=cluster.admin_token, resume=False) as cl:
        up = await cl.upload(tmp_path / "tiny.bin", profile=TINY)
        plan = await cl.api.download_plan(up.file_id)
        chunks = plan["chunks"]
        gone, bad = chunks[5], chunks[len(chunks) // 3]
        holder = gone["replicas"][0]
        secret = cluster.secrets["DFS_CLUSTER_SECRET"].encode()
        cap = auth.mint(
            secret,
            auth.OP_DELETE,
            gone["sha256"],
            holder["node_id"],
            extra=protocol.delete_cap_extra(0.0),
        )
        assert await cl.nodes.delete_chunk(holder["url"], gone["sha256"], cap=cap)
        bad_node, bad_url = bad["replicas"][0]["node_id"], bad["replicas"][0]["url"]
        async with corrupting_proxy(bad_url, bad["sha256"]) as mitm:
            for c in chunks:
                for replica in c["replicas"]:
                    if replica["node_id"] == bad_node:
                        replica["url"] = mitm
            r = await asyncio.wait_for(cl.download(up.file_id, tmp_path / "out", plan=plan), 60)
    assert (tmp_path / "out").read_bytes() == data
    assert r.failovers >= 2
    assert f"node {bad_node} returned bad bytes" in caplog.text


async def test_a_stopped_node_is_hedged_around(cluster: LocalCluster, tmp_path: Path) -> None:
    data = _source(tmp_path / "tiny.bin", 4)
    async with Client(cluster.api_url, token=cluster.admin_token, resume=False) as cl:
        up = await cl.upload(tmp_path / "tiny.bin", profile=TINY)
        plan = await cl.api.download_plan(up.file_id)
    firsts = [str(c["replicas"][0]["node_id"]) for c in plan["chunks"]]
    hung = max(set(firsts), key=firsts.count)
    with stopped(cluster, hung):
        async with Client(cluster.api_url, token=cluster.admin_token, resume=False) as cl:
            started = time.monotonic()
            r = await asyncio.wait_for(cl.download(up.file_id, tmp_path / "out"), 30.0)
            took = time.monotonic() - started
            assert r.hedges >= 1
            assert hung in cl.avoid.avoided()
    assert (tmp_path / "out").read_bytes() == data
    print(f"{up.chunks} chunks with {hung} stopped: {took:.2f} s")


async def test_an_interrupted_download_resumes_with_the_chunks_not_written(
    cluster: LocalCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _source(tmp_path / "tiny.bin", 5)
    out = tmp_path / "out"

    class Stop(Exception):
        pass

    async with Client(cluster.api_url, token=cluster.admin_token, concurrency=1) as cl:
        up = await cl.upload(tmp_path / "tiny.bin", profile=TINY)
        written = 0

        def stop_halfway(n: int) -> None:
            nonlocal written
            written += n
            if written >= len(data) // 2:
                raise Stop

        with pytest.raises(Stop):
            await cl.download(up.file_id, out, progress=stop_halfway)
        assert not out.exists()
        [sidecar] = _glob(tmp_path, ".out.*.dfs-part.done")  # kept for the next run
        done = {int(line) for line in sidecar.read_text().split()}
        reads = Reads(monkeypatch)
        await cl.download(up.file_id, out)
    assert out.read_bytes() == data
    assert reads.single == 0
    # the chunks written before are not asked again, the others once
    assert 0 < len(done) < up.chunks
    assert reads.batched_chunks == up.chunks - len(done)
    assert not _glob(tmp_path, ".out.*")
