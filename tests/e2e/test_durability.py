"""Fault injection on real processes: killed nodes, rotten chunks, deletes and GC, a killed API,
and a randomized loop of them that ends with every committed file downloading intact.

DFS_FAULT_ROUNDS sets the randomized loop's rounds (at least one per fault kind: CI runs
that default, each kind once); DFS_FAULT_SEED the seed of the draws after those.
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dfs.localcluster import LocalCluster, console_script, http_json, wait_for
from tests.e2e import node_disk
from tests.e2e.conftest import cli_json, run_cli, started_cluster

pytestmark = pytest.mark.e2e

MIB = 1 << 20
FAST = {
    "DFS_REPAIR_GRACE": "1",
    "DFS_REPAIR_INTERVAL": "0.5",
    "DFS_GC_GRACE": "3",
    "DFS_GC_INTERVAL": "0.5",
    # a GC pass leaves copies written within 0.9 x the grace (+2 s) to the orphan sweep:
    # here every copy is seconds old when its chunk is collected
    "DFS_ORPHAN_INTERVAL": "1",
    "DFS_SCRUB_INTERVAL": "0.5",
    "DFS_MIN_FREE_BYTES": "0",
}
DEADLINE = 90.0


@pytest.fixture
def fcluster(
    tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, meta_url: str
) -> Iterator[LocalCluster]:
    """3 nodes, REPLICATION_FACTOR=2, fast repair/GC/scrub timers, on each metadata backend."""
    with started_cluster(tmp_path, meta_url, monkeypatch, request, FAST) as c:
        yield c


def write_random(path: Path, size: int, seed: int) -> bytes:
    data = random.Random(seed).randbytes(size)
    path.write_bytes(data)
    return data


def upload(c: LocalCluster, path: Path) -> dict[str, Any]:
    [up] = cli_json("upload", "--chunk-size", str(MIB), c.api_url, str(path))
    return up


def chunk_ids(c: LocalCluster, file_id: str) -> set[str]:
    plan = http_json(f"{c.api_url}/download-plan?file_id={file_id}", c.admin_token)
    return {ch["sha256"] for ch in plan["chunks"]}


def chunk_path(c: LocalCluster, node: int, chunk_id: str) -> Path:
    """Where a node keeps a large chunk (a file of its own); small ones are in its packs."""
    return node_disk.chunk_file(c.base, node, chunk_id)


def good_copies(c: LocalCluster, chunk_id: str) -> int:
    """Copies on live nodes whose bytes hash to the chunk id (files or pack records)."""
    n = 0
    for i in range(1, c.nodes + 1):
        if not c.node(i).alive:
            continue
        data = node_disk.held(c.base, i).get(chunk_id)
        n += data is not None and hashlib.sha256(data).hexdigest() == chunk_id
    return n


def has_copy(c: LocalCluster, node: int, chunk_id: str) -> bool:
    return chunk_id in node_disk.held(c.base, node)


def copies(c: LocalCluster, chunk_id: str) -> int:
    return sum(has_copy(c, i, chunk_id) for i in range(1, c.nodes + 1))


def downloads_intact(c: LocalCluster, file_id: str, data: bytes, out: Path) -> None:
    run_cli("download", c.api_url, file_id, str(out))
    assert out.read_bytes() == data
    out.unlink()


def disk_bytes(c: LocalCluster) -> int:
    """Bytes of the chunk copies the nodes hold (files and live pack records)."""
    return sum(len(d) for i in range(1, c.nodes + 1) for d in node_disk.held(c.base, i).values())


def repair_report(c: LocalCluster) -> dict[str, Any]:
    return http_json(f"{c.api_url}/admin/repair", c.admin_token)["repair"] or {}


def finished_pass_after(c: LocalCluster, t: float) -> dict[str, Any] | None:
    rep = repair_report(c)
    if rep and not rep["running"] and rep["started_at"] > t:
        return rep
    return None


def restart_api(c: LocalCluster) -> None:
    assert c.api is not None
    c.api.kill()
    c.api.start()
    c.api.wait_listening(60.0)


def test_killed_node_is_repaired_around_and_trimmed_on_return(
    fcluster: LocalCluster, tmp_path: Path
) -> None:
    c = fcluster
    data = write_random(tmp_path / "a.bin", 8 * MIB, seed=1)
    up = upload(c, tmp_path / "a.bin")
    ids = chunk_ids(c, up["file_id"])
    on_node1 = [x for x in ids if has_copy(c, 1, x)]
    assert on_node1
    c.node(1).kill()
    downloads_intact(c, up["file_id"], data, tmp_path / "out")  # throughout, too
    wait_for(
        lambda: all(good_copies(c, x) == 2 for x in ids), DEADLINE, "2 live copies of each chunk"
    )
    downloads_intact(c, up["file_id"], data, tmp_path / "out")
    # the repair status agrees with the disk: a pass that started once the copies were back
    # saw node1 down, found every chunk with its copies and none without a live one, and
    # counts node1 settled (each of its chunks copied elsewhere)
    t_copied = time.time()
    rep = wait_for(lambda: finished_pass_after(c, t_copied), DEADLINE, "a repair pass")
    assert rep["down_nodes"] == ["node1"]
    assert (rep["under_replicated"], rep["no_live_copy"], rep["failed"]) == (0, 0, 0)
    assert rep["settled_nodes"] == ["node1"]
    # the node returns: its chunks count again, and the surplus copies are trimmed
    c.restart_node(1)
    wait_for(lambda: all(copies(c, x) == 2 for x in ids), DEADLINE, "surplus copies trimmed")
    downloads_intact(c, up["file_id"], data, tmp_path / "out")


def test_flipped_byte_is_never_served_and_is_repaired(
    fcluster: LocalCluster, tmp_path: Path
) -> None:
    c = fcluster
    data = write_random(tmp_path / "a.bin", 4 * MIB, seed=2)
    up = upload(c, tmp_path / "a.bin")
    victim = sorted(chunk_ids(c, up["file_id"]))[0]
    node = next(i for i in range(1, 4) if has_copy(c, i, victim))
    node_disk.flip_byte(c.base, node, victim)
    downloads_intact(c, up["file_id"], data, tmp_path / "out")
    # scrub quarantines the bad copy; repair makes a good one elsewhere (or here again)
    wait_for(
        lambda: list((c.base / f"node{node}" / "quarantine").iterdir()),
        DEADLINE,
        "the bad copy quarantined",
    )
    wait_for(lambda: good_copies(c, victim) == 2, DEADLINE, "2 good copies again")
    downloads_intact(c, up["file_id"], data, tmp_path / "out")


def test_delete_returns_space_and_a_concurrent_identical_upload_survives(
    fcluster: LocalCluster, tmp_path: Path
) -> None:
    c = fcluster
    a = write_random(tmp_path / "a.bin", 4 * MIB, seed=3)
    write_random(tmp_path / "b.bin", 3 * MIB, seed=4)
    up_a = upload(c, tmp_path / "a.bin")
    up_b = upload(c, tmp_path / "b.bin")
    (tmp_path / "a2.bin").write_bytes(a)
    # upload identical content while deleting the first copy of it
    upload_proc = subprocess.Popen(
        [
            console_script("dfs-client"),
            "upload",
            "--chunk-size",
            str(MIB),
            c.api_url,
            str(tmp_path / "a2.bin"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        run_cli("rm", c.api_url, up_a["file_id"])
        out, err = upload_proc.communicate(timeout=120)
    finally:
        if upload_proc.poll() is None:
            upload_proc.kill()
            upload_proc.wait(10)
    assert upload_proc.returncode == 0, err
    a2_id = out.strip()
    gone = run_cli("download", c.api_url, up_a["file_id"], str(tmp_path / "x"), check=False)
    assert gone.returncode == 4
    # a file deleted after that one is collected: GC has run past the grace since, and the
    # survivor of the race still downloads
    write_random(tmp_path / "d.bin", 2 * MIB, seed=5)
    up_d = upload(c, tmp_path / "d.bin")
    d_ids = chunk_ids(c, up_d["file_id"])
    run_cli("rm", c.api_url, up_d["file_id"])
    wait_for(lambda: not any(copies(c, x) for x in d_ids), DEADLINE, "the deleted file collected")
    downloads_intact(c, a2_id, a, tmp_path / "out")
    stats = http_json(f"{c.api_url}/admin/stats", c.admin_token)
    assert stats["total_files"] == 2
    run_cli("rm", c.api_url, a2_id)
    run_cli("rm", c.api_url, up_b["file_id"])
    assert run_cli("rm", c.api_url, up_b["file_id"], check=False).returncode == 4
    wait_for(lambda: disk_bytes(c) == 0, DEADLINE, "every chunk collected")
    stats = http_json(f"{c.api_url}/admin/stats", c.admin_token)
    assert (stats["total_files"], stats["logical_bytes"], stats["stored_bytes"]) == (0, 0, 0)
    assert (stats["unique_chunks"], stats["duplicates_avoided"]) == (0, 0)


def _upload_with_fault(
    c: LocalCluster, rng: random.Random, path: Path, fault: str
) -> tuple[int, str]:
    """Upload ``path`` with the CLI while ``fault`` strikes once the upload is under way
    (kill -9 a node, or the API, then started again); returns (exit code, stdout)."""
    proc = subprocess.Popen(
        [console_script("dfs-client"), "upload", "--chunk-size", str(MIB), c.api_url, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        before = disk_bytes(c)
        # strike once bytes are arriving, or once the upload is over (then it still tests
        # recovery): a condition, not a guess at timing
        wait_for(lambda: disk_bytes(c) != before or proc.poll() is not None, 60, "upload start")
        if fault == "node":
            c.node(rng.randint(1, c.nodes)).kill()
        elif fault == "api":
            # killed and started again: the upload rides it out (dfs.transport.api_client)
            # unless it was still waiting for its first answer, and then it is re-run below
            restart_api(c)
        out, _err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    return proc.returncode, out.strip()


FAULTS = ("node", "api", "flip", "delete")


def fault_schedule(rounds: int, rng: random.Random) -> list[str]:
    """Every fault kind once, in an order that gives ``delete`` files to choose from, then
    random draws: a seed alone would leave kinds out of a short CI run."""
    return [*FAULTS, *(rng.choice(FAULTS) for _ in range(rounds - len(FAULTS)))]


def test_randomized_faults_lose_nothing(fcluster: LocalCluster, tmp_path: Path) -> None:
    """Rounds of uploads under faults (node kill -9, API kill, flipped byte, delete); after
    each, failed uploads are re-run, dead processes restarted; at the end every committed
    file downloads byte-identical and has REPLICATION_FACTOR good copies, and deleted files
    are gone. Every kind strikes at least once, whatever the seed."""
    c = fcluster
    rounds = max(len(FAULTS), int(os.environ.get("DFS_FAULT_ROUNDS", str(len(FAULTS)))))
    rng = random.Random(int(os.environ.get("DFS_FAULT_SEED", "4")))
    committed: dict[str, bytes] = {}
    retried: dict[str, bytes] = {}  # a round's file name -> its bytes, when its upload failed
    deleted: list[str] = []
    struck: list[str] = []
    for r, fault in enumerate(fault_schedule(rounds, rng)):
        path = tmp_path / f"r{r}.bin"
        data = write_random(path, rng.randint(1, 6) * MIB + rng.randint(0, MIB), seed=1000 + r)
        code, out = _upload_with_fault(c, rng, path, fault)
        if c.api is not None and not c.api.alive:
            c.api.start()
            c.api.wait_listening(60.0)
        for i in range(1, c.nodes + 1):
            if not c.node(i).alive:
                c.restart_node(i)
        c.wait_live(c.nodes, 60.0)
        if code != 0:  # failed cleanly: re-running the upload finishes it
            retried[path.name] = data
            out = upload(c, path)["file_id"]
        committed[out] = data
        if fault in ("node", "api"):
            struck.append(fault)  # _upload_with_fault killed it mid-upload
        elif fault == "flip":
            victim = sorted(chunk_ids(c, out))[0]
            node = next(i for i in range(1, 4) if has_copy(c, i, victim))
            node_disk.flip_byte(c.base, node, victim, at=0, mask=0xFF)
            assert good_copies(c, victim) == 1
            struck.append(fault)
        elif fault == "delete":
            gone = rng.choice(sorted(committed))
            run_cli("rm", c.api_url, gone)
            del committed[gone]
            deleted.append(gone)
            struck.append(fault)
    assert sorted(set(struck)) == sorted(FAULTS)
    assert len(struck) == rounds
    every = {x for f in committed for x in chunk_ids(c, f)}
    wait_for(
        lambda: all(good_copies(c, x) == 2 for x in every), DEADLINE, "2 good copies of each chunk"
    )
    for file_id, data in committed.items():
        downloads_intact(c, file_id, data, tmp_path / "out")
    for file_id in deleted:
        gone = run_cli("download", c.api_url, file_id, str(tmp_path / "gone"), check=False)
        assert gone.returncode == 4, gone.stderr
    files = http_json(f"{c.api_url}/files?limit=1000", c.admin_token)["files"]
    listed = {str(f["file_id"]): str(f["name"]) for f in files}
    assert set(committed) <= set(listed)
    assert not set(deleted) & set(listed)
    # Nothing half-committed. A failed attempt may still have committed whole: the API killed
    # between its commit and its answer, so the client failed and its retry stored the same
    # bytes as a second file (a native upload makes a new file each time). Such a file must
    # be a failed round's, under its name, and download its bytes.
    for file_id in set(listed) - set(committed):
        assert listed[file_id] in retried, f"{file_id} ({listed[file_id]}) was never committed"
        downloads_intact(c, file_id, retried[listed[file_id]], tmp_path / "out")
    print(f"randomized faults: {rounds} rounds {struck}, {len(committed)} files intact")
