"""Repair trusts the disks, not the ledger (issue 12 item 1): copies gone from disk are found
by the inventory or by the node's disk identity, and repaired back to REPLICATION_FACTOR
good copies, which are counted by hashing the files under each node's chunks/ tree.

Real processes on loopback, on both metadata backends (the folder wiped while its node runs:
SQLite only), DFS_REPAIR_INTERVAL=2, conditions with deadlines of 60 s.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dfs.localcluster import LocalCluster, http_json, wait_for
from tests.e2e.conftest import run_cli, started_cluster
from tests.e2e.test_durability import (
    MIB,
    chunk_ids,
    chunk_path,
    downloads_intact,
    good_copies,
    upload,
    write_random,
)

pytestmark = pytest.mark.e2e

ENV = {"DFS_REPAIR_INTERVAL": "2", "DFS_MIN_FREE_BYTES": "0"}
DEADLINE = 60.0


@pytest.fixture(params=["meta", "api"])
def icluster(
    tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, meta_url: str
) -> Iterator[LocalCluster]:
    """3 nodes at REPLICATION_FACTOR=2 registering through the metadata store or the API
    (on SQLite both are through the API: nodes never write a SQLite file that the API does)."""
    via_api = request.param == "api"
    with started_cluster(tmp_path, meta_url, monkeypatch, request, ENV, nodes_via_api=via_api) as c:
        yield c


def stats_repair(c: LocalCluster) -> dict[str, Any]:
    return http_json(f"{c.api_url}/admin/stats", c.admin_token)["repair"] or {}


def verify(c: LocalCluster, file_id: str) -> dict[str, Any]:
    """``dfs-client verify``: reads every replica the metadata lists."""
    proc = run_cli("verify", c.api_url, file_id, "--json", check=False)
    report: dict[str, Any] = json.loads(proc.stdout)
    assert report["healthy"] == (proc.returncode == 0)
    return report


def all_good(c: LocalCluster, ids: set[str]) -> bool:
    return all(good_copies(c, x) == c.replication_factor for x in ids)


def test_deleted_chunk_file_is_found_and_repaired(icluster: LocalCluster, tmp_path: Path) -> None:
    c = icluster
    data = write_random(tmp_path / "a.bin", 6 * MIB, seed=11)
    up = upload(c, tmp_path / "a.bin")
    uploaded = time.time()
    ids = chunk_ids(c, up["file_id"])
    assert all_good(c, ids)
    # a repair pass begun after the upload has seen the cluster (and its disks) before the
    # fault, and the copies are still as many as wanted after it: a copy the upload gave up
    # on under load can land late, and stays one too many until the inventory records it
    # and a trim removes it
    wait_for(
        lambda: (
            quiet_pass_since(c, uploaded).get("disks", {}).keys() >= {"node1"} and all_good(c, ids)
        ),
        DEADLINE,
        "a finished pass since the upload, and 2 copies of each chunk",
    )
    victim = sorted(ids)[0]
    node = next(i for i in range(1, 4) if chunk_path(c, i, victim).exists())
    chunk_path(c, node, victim).unlink()
    assert good_copies(c, victim) == 1
    # /admin/stats agrees with the disk: a pass finds the missing copy and counts the chunk
    # under-replicated (then repairs it in the same pass)
    rep = wait_for(
        lambda: (r := stats_repair(c)).get("inventory_missing") and r,
        DEADLINE,
        "a pass that finds the missing copy",
    )
    assert rep["inventory_missing"] == 1
    assert rep["under_replicated"] >= 1
    wait_for(lambda: all_good(c, ids), DEADLINE, "2 good copies of every chunk on disk")
    # verify reads every replica metadata lists (the new location lands just after the copy)
    wait_for(lambda: verify(c, up["file_id"])["healthy"], DEADLINE, "verify: healthy")
    downloads_intact(c, up["file_id"], data, tmp_path / "out")
    rep = wait_for(
        lambda: (r := stats_repair(c)) and not r["running"] and not r["inventory_missing"] and r,
        DEADLINE,
        "a quiet pass",
    )
    assert (rep["under_replicated"], rep["no_live_copy"], rep["failed"]) == (0, 0, 0)


def test_wiped_node_is_known_by_its_disk_and_repaired(
    icluster: LocalCluster, tmp_path: Path
) -> None:
    c = icluster
    data = write_random(tmp_path / "a.bin", 8 * MIB, seed=12)
    up = upload(c, tmp_path / "a.bin")
    ids = chunk_ids(c, up["file_id"])
    held = {i: {x for x in ids if chunk_path(c, i, x).exists()} for i in range(1, 4)}
    node = max(held, key=lambda i: len(held[i]))
    assert held[node]
    name = f"node{node}"
    before = wait_for(lambda: stats_repair(c).get("disks", {}).get(name), DEADLINE, "a pass")
    c.node(node).stop()
    shutil.rmtree(c.base / name / "chunks")  # its chunks and its disk identity
    c.restart_node(node)
    c.wait_live(3, DEADLINE)
    # the pass that sees the new disk forgets every location recorded for the node at once
    rep = wait_for(
        lambda: (r := stats_repair(c)).get("disks_replaced") and r,
        DEADLINE,
        "a pass that notices the new disk",
    )
    assert rep["disks_replaced"] == [name]
    assert rep["disk_locations_forgotten"] >= len(held[node])
    assert rep["disks"][name] != before
    wait_for(lambda: all_good(c, ids), DEADLINE, "2 good copies of every chunk on disk")
    # verify reads every replica metadata lists (the new location lands just after the copy)
    wait_for(lambda: verify(c, up["file_id"])["healthy"], DEADLINE, "verify: healthy")
    downloads_intact(c, up["file_id"], data, tmp_path / "out")


def quiet_pass_since(c: LocalCluster, since: float) -> dict[str, Any]:
    """The first finished repair pass that started after ``since`` (passes are 2 s apart)."""
    rep: dict[str, Any] = wait_for(
        lambda: (r := stats_repair(c)) and r["started_at"] > since and not r["running"] and r,
        DEADLINE,
        "a pass since",
    )
    return rep


def test_copies_repaired_into_a_chunk_folder_wiped_while_the_node_ran_outlive_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """The chunk folder of a running node is wiped (its ``.layout`` with it); repair copies
    every chunk back into it, and the node writes them in its layout. After a restart the
    node must still list and serve them: read as a store of two levels, it hid them all and
    the first inventory pass found every copy missing."""
    meta = f"sqlite:///{tmp_path / 'cluster' / 'meta.db'}"
    env = {**ENV, "DFS_PACK_THRESHOLD": "1"}  # every chunk a file of the fan-out layout
    with started_cluster(
        tmp_path, meta, monkeypatch, request, env, nodes=2, replication_factor=2
    ) as c:
        data = write_random(tmp_path / "a.bin", 4 * MIB, seed=13)
        up = upload(c, tmp_path / "a.bin")
        ids = chunk_ids(c, up["file_id"])
        wait_for(lambda: stats_repair(c).get("disks", {}).keys() >= {"node2"}, DEADLINE, "pass")
        gone = c.base / "node2" / "wiped"  # moved aside whole, while node2 runs and writes
        (c.base / "node2" / "chunks").rename(gone)
        shutil.rmtree(gone)
        rep = wait_for(
            lambda: (r := stats_repair(c)).get("disks_replaced") and r, DEADLINE, "new disk"
        )
        assert rep["disks_replaced"] == ["node2"]
        wait_for(lambda: all_good(c, ids), DEADLINE, "2 good copies of every chunk on disk")
        wait_for(
            lambda: (r := stats_repair(c)) and not r["running"] and not r["under_replicated"],
            DEADLINE,
            "a pass with nothing to copy",
        )
        c.restart_node(2)
        c.wait_live(2, DEADLINE)
        rep = quiet_pass_since(c, time.time())
        assert (rep["inventory_missing"], rep["under_replicated"], rep["failed"]) == (0, 0, 0)
        assert verify(c, up["file_id"])["healthy"]
        downloads_intact(c, up["file_id"], data, tmp_path / "out")
