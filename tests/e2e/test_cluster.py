"""The core data path with real processes: API + 3 nodes + the dfs-client CLI on loopback."""

from __future__ import annotations

import hashlib
import json
import random
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from dfs import auth
from dfs.localcluster import LocalCluster, http_json
from tests.e2e.conftest import cli_json, run_cli
from tests.e2e.node_disk import chunk_file, chunk_files, node_dir

pytestmark = pytest.mark.e2e

MIB = 1 << 20


def write_random(path: Path, size: int, seed: int) -> bytes:
    data = random.Random(seed).randbytes(size)
    path.write_bytes(data)
    return data


def chunk_ids(cluster: LocalCluster, file_id: str) -> list[str]:
    plan = http_json(f"{cluster.api_url}/download-plan?file_id={file_id}", cluster.admin_token)
    return [c["sha256"] for c in plan["chunks"]]


def holders(cluster: LocalCluster, chunk_id: str) -> list[int]:
    """Which nodes (1-based) have the chunk file on disk."""
    return [
        i for i in range(1, cluster.nodes + 1) if chunk_file(cluster.base, i, chunk_id).exists()
    ]


def disk_bytes(cluster: LocalCluster) -> int:
    nodes = range(1, cluster.nodes + 1)
    return sum(
        f.stat().st_size for i in nodes for f in chunk_files(node_dir(cluster.base, i) / "chunks")
    )


def test_64mib_round_trip_dedup_and_node_loss(cluster: LocalCluster, tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    data = write_random(src, 64 * MIB, seed=7)
    [up] = cli_json("upload", cluster.api_url, str(src))
    assert up["size"] == len(data)
    assert up["sha256"] == hashlib.sha256(data).hexdigest()
    assert up["bytes_sent"] == len(data)
    assert up["new_chunks"] == up["chunks"] > 16  # FastCDC at ~1 MiB average

    out = tmp_path / "out.bin"
    [down] = cli_json("download", cluster.api_url, up["file_id"], str(out))
    assert out.read_bytes() == data
    assert down["failovers"] == 0

    # every chunk exists on exactly REPLICATION_FACTOR=2 nodes
    ids = chunk_ids(cluster, up["file_id"])
    assert {len(holders(cluster, c)) for c in ids} == {2}
    used = disk_bytes(cluster)
    assert used == 2 * len(data)

    # the same bytes under another name: nothing sent, nothing stored
    again = tmp_path / "again.bin"
    again.write_bytes(data)
    [up2] = cli_json("upload", cluster.api_url, str(again))
    assert (up2["bytes_sent"], up2["new_chunks"]) == (0, 0)
    assert up2["file_id"] != up["file_id"]
    assert disk_bytes(cluster) == used

    # 100 bytes inserted in the middle: well under 10% is sent
    edited = tmp_path / "edited.bin"
    mid = len(data) // 2
    edited.write_bytes(data[:mid] + b"x" * 100 + data[mid:])
    [up3] = cli_json("upload", cluster.api_url, str(edited))
    assert 0 < up3["bytes_sent"] < 0.10 * (len(data) + 100)

    stats = http_json(f"{cluster.api_url}/admin/stats", cluster.admin_token)
    assert stats["total_files"] == 3
    assert stats["logical_bytes"] == 3 * len(data) + 100
    assert stats["stored_bytes"] == len(data) + up3["bytes_sent"]
    assert stats["total_bytes_saved"] == stats["logical_bytes"] - stats["stored_bytes"]
    assert stats["duplicates_avoided"] == up2["chunks"] + (up3["chunks"] - up3["new_chunks"])

    # kill -9 each node in turn: the file still downloads intact
    for i in range(1, cluster.nodes + 1):
        cluster.node(i).kill()
        got = tmp_path / f"after-kill-{i}.bin"
        run_cli("download", cluster.api_url, up["file_id"], str(got))
        assert got.read_bytes() == data
        cluster.restart_node(i)
        cluster.wait_live(cluster.nodes)


def test_corrupt_chunk_is_never_served(cluster: LocalCluster, tmp_path: Path) -> None:
    src = tmp_path / "f.bin"
    data = write_random(src, 12 * MIB, seed=11)
    [up] = cli_json("upload", "--chunk-size", str(MIB), cluster.api_url, str(src))
    ids = chunk_ids(cluster, up["file_id"])
    assert len(ids) == 12
    # flip one byte in every copy that node 1 holds
    corrupted = 0
    for c in ids:
        if 1 in holders(cluster, c):
            path = chunk_file(cluster.base, 1, c)
            raw = bytearray(path.read_bytes())
            raw[len(raw) // 2] ^= 0xFF
            path.write_bytes(bytes(raw))
            corrupted += 1
    assert corrupted > 0
    out = tmp_path / "out.bin"
    [down] = cli_json("download", cluster.api_url, up["file_id"], str(out))
    assert out.read_bytes() == data
    # the node refused its bad copies; whichever were asked are now in quarantine
    quarantined = list((cluster.base / "node1" / "quarantine").iterdir())
    assert len(quarantined) == down["failovers"]
    for q in quarantined:
        assert q.name.split(".")[0] in ids
    # a direct GET of a still-corrupt copy is refused too, never answered with bad bytes
    still_corrupt = [c for c in ids if 1 in holders(cluster, c)]
    node1 = cluster.node(1).url
    secret = cluster.secrets["DFS_CLUSTER_SECRET"].encode()
    for c in still_corrupt:
        cap = auth.mint(secret, auth.OP_GET, c, "node1")
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"{node1}/get-chunk?chunk_id={c}&cap={cap}", timeout=10)
        assert info.value.code == 404
        assert json.loads(info.value.read())["error"]["code"] == "chunk_not_found"
        assert 1 not in holders(cluster, c)
    assert len(list((cluster.base / "node1" / "quarantine").iterdir())) == corrupted


@pytest.mark.cluster(nodes=3, replication_factor=3)
def test_too_few_live_nodes_fails_cleanly(cluster: LocalCluster, tmp_path: Path) -> None:
    src = tmp_path / "f.bin"
    write_random(src, 3 * MIB, seed=3)
    cluster.node(3).kill()
    cluster.wait_live(2)
    proc = run_cli("upload", cluster.api_url, str(src), check=False)
    assert proc.returncode == 7
    assert "only 2 live storage node(s), REPLICATION_FACTOR=3" in proc.stderr
    assert proc.stdout == ""
    files = http_json(f"{cluster.api_url}/files", cluster.admin_token)
    assert files["files"] == []
    assert http_json(f"{cluster.api_url}/admin/stats", cluster.admin_token)["total_files"] == 0


@pytest.mark.cluster(nodes=3, replication_factor=2, nodes_via_api=True)
def test_nodes_registering_through_api_and_proxy_mode(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    assert sorted(cluster.live_nodes()) == ["node1", "node2", "node3"]
    src = tmp_path / "p.bin"
    data = write_random(src, 5 * MIB + 123, seed=5)
    [up] = cli_json("upload", "--proxy", cluster.api_url, str(src))
    assert up["bytes_sent"] == len(data)
    out = tmp_path / "p.out"
    cli_json("download", "--proxy", cluster.api_url, up["file_id"], str(out))
    assert out.read_bytes() == data
    assert {len(holders(cluster, c)) for c in chunk_ids(cluster, up["file_id"])} == {2}
    # a clean stop deregisters: the node is down at once, not after the timeout; its entry
    # stays as a tombstone, so repair's grace runs from the deregistration
    cluster.node(2).stop()
    assert sorted(cluster.live_nodes()) == ["node1", "node3"]
    nodes = http_json(f"{cluster.api_url}/nodes", cluster.admin_token)["nodes"]
    assert {n["node_id"]: n["status"] for n in nodes}["node2"] == "down"


def test_cli_errors_and_test_files(cluster: LocalCluster, tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2] / "test-files"
    files = sorted(p for p in root.iterdir() if p.is_file() and p.name != "README.md")
    assert files, "test-files/ is empty"
    results = cli_json("upload", cluster.api_url, *map(str, files))
    assert [r["name"] for r in results] == [p.name for p in files]
    for src, r in zip(files, results, strict=True):
        out = tmp_path / src.name
        run_cli("download", cluster.api_url, r["file_id"], str(tmp_path))
        assert out.read_bytes() == src.read_bytes()
    # unknown file id: 404 -> exit 4 with one clear line
    proc = run_cli(
        "download",
        cluster.api_url,
        "00000000-0000-4000-8000-000000000000",
        str(tmp_path / "x"),
        check=False,
    )
    assert proc.returncode == 4
    assert proc.stderr.startswith("Error: no file")
    assert not (tmp_path / "x").exists()
    # malformed id: 400 -> exit 2
    proc = run_cli(
        "download", cluster.api_url, "../../etc/passwd", str(tmp_path / "y"), check=False
    )
    assert proc.returncode == 2
    assert "file_id must be a UUID" in proc.stderr
    # API unreachable: exit 7
    proc = run_cli("stats", "http://127.0.0.1:9", check=False)
    assert proc.returncode == 7
    assert proc.stderr.startswith("Error: ")
    # --json output is JSON only
    stats = json.loads(run_cli("stats", "--json", cluster.api_url).stdout)
    assert stats["total_files"] == len(files)
