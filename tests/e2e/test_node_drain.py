"""Draining a node before its removal, on real processes (3 nodes, REPLICATION_FACTOR=2):
`dfs-client admin drain NODE` stops new placements on it and repair copies its chunks
elsewhere; the drain reports done within a deadline, no chunk ever has fewer than RF live
copies meanwhile, and once the drained node is killed every file still downloads
byte-identical."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dfs.localcluster import LocalCluster, http_json
from tests.e2e.conftest import cli_json, run_cli, started_cluster

pytestmark = pytest.mark.e2e

MIB = 1 << 20
RF = 2
DRAINED = "node1"
DEADLINE = 120.0
FAST = {
    "DFS_REPAIR_INTERVAL": "0.5",
    "DFS_REPAIR_FULL_SCAN": "3",
    "DFS_MIN_FREE_BYTES": "0",
    "DFS_DRAIN_SETTLE": "2",
}


@pytest.fixture
def dcluster(
    tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, meta_url: str
) -> Iterator[LocalCluster]:
    with started_cluster(tmp_path, meta_url, monkeypatch, request, FAST) as c:
        yield c


def replicas(c: LocalCluster, file_id: str) -> dict[str, set[str]]:
    """chunk id -> the live nodes the download plan offers for it."""
    plan = http_json(f"{c.api_url}/download-plan?file_id={file_id}", c.admin_token)
    return {ch["sha256"]: {r["node_id"] for r in ch["replicas"]} for ch in plan["chunks"]}


def drain(c: LocalCluster, *args: str) -> dict[str, Any]:
    out = run_cli("admin", "drain", "--json", c.api_url, DRAINED, *args).stdout
    body: dict[str, Any] = json.loads(out)
    return body


def test_a_drained_node_can_go_without_any_chunk_below_rf(
    dcluster: LocalCluster, tmp_path: Path
) -> None:
    c = dcluster
    files: dict[str, bytes] = {}
    for i in range(4):
        data = random.Random(i).randbytes(3 * MIB + 1000 * i)
        path = tmp_path / f"f{i}.bin"
        path.write_bytes(data)
        [up] = cli_json("upload", "--chunk-size", str(MIB), c.api_url, str(path))
        files[up["file_id"]] = data
    held = {n for fid in files for nodes in replicas(c, fid).values() for n in nodes}
    assert DRAINED in held  # there is something to drain

    started = drain(c)
    assert started["draining"] is True
    assert started["chunks"] > 0
    deadline = time.monotonic() + DEADLINE
    while True:
        for fid in files:  # never below RF while the drain runs (the drained node counts)
            for chunk_id, nodes in replicas(c, fid).items():
                assert len(nodes) >= RF, (chunk_id, nodes)
        status = drain(c, "--status")
        if status["done"]:
            break
        assert time.monotonic() < deadline, status
        time.sleep(0.5)
    assert status["short"] == 0
    assert started["settles_at"] == pytest.approx(status["settles_at"])
    assert time.time() >= status["settles_at"]  # not done before the drain settled

    # no new placements on it: a file uploaded now avoids it
    late = tmp_path / "late.bin"
    late.write_bytes(random.Random(99).randbytes(2 * MIB))
    [up] = cli_json("upload", "--chunk-size", str(MIB), c.api_url, str(late))
    files[up["file_id"]] = late.read_bytes()
    assert all(DRAINED not in nodes for nodes in replicas(c, up["file_id"]).values())

    c.node(1).kill()
    for fid, data in files.items():
        for chunk_id, nodes in replicas(c, fid).items():
            assert len(nodes - {DRAINED}) >= RF, (chunk_id, nodes)
        out = tmp_path / f"{fid}.out"
        run_cli("download", c.api_url, fid, str(out))
        assert out.read_bytes() == data
