"""Fault injection on real processes, part two: async replication, full disks, the API killed
while a finalize is in flight, garbage the chunk rows cannot see, planned restarts.

Every test runs on SQLite and DynamoDB (moto server), with fast repair/GC timers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import signal
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dfs import auth, protocol
from dfs.localcluster import LocalCluster, http_json, wait_for
from tests.e2e.conftest import run_cli, started_cluster
from tests.e2e.test_durability import (
    DEADLINE,
    FAST,
    MIB,
    chunk_ids,
    chunk_path,
    copies,
    downloads_intact,
    finished_pass_after,
    good_copies,
    upload,
    write_random,
)

pytestmark = pytest.mark.e2e


@contextlib.contextmanager
def started(
    tmp_path: Path,
    meta_url: str,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    env: dict[str, str],
    **kwargs: Any,
) -> Iterator[LocalCluster]:
    """A started cluster on ``meta_url`` with FAST timers plus ``env``."""
    with started_cluster(tmp_path, meta_url, monkeypatch, request, {**FAST, **env}, **kwargs) as c:
        yield c


def post_json(url: str, body: dict[str, Any], token: str, timeout: float = 30.0) -> Any:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    req.add_header("Authorization", f"Bearer {token}")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


def status_of(fn: Any) -> int:
    """The HTTP status an urllib call fails with (0 if it succeeded)."""
    try:
        fn()
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code
    return 0


def node_url(c: LocalCluster, node_id: str) -> str:
    nodes = http_json(f"{c.api_url}/nodes", c.admin_token)["nodes"]
    return str(next(n["url"] for n in nodes if n["node_id"] == node_id))


def node_used(c: LocalCluster) -> dict[str, int]:
    nodes = http_json(f"{c.api_url}/nodes", c.admin_token)["nodes"]
    return {n["node_id"]: n["used_bytes"] for n in nodes}


def put_direct(
    c: LocalCluster, node_id: str, data: bytes, file_id: str | None = None
) -> tuple[int, Any]:
    """PUT a chunk straight to a node with a capability minted by hand; (status, body)."""
    chunk_id = hashlib.sha256(data).hexdigest()
    file_id = file_id or str(uuid.uuid4())
    secret = c.secrets["DFS_CLUSTER_SECRET"].encode()
    cap = auth.mint(
        secret, auth.OP_PUT, chunk_id, node_id, ttl=60, extra=protocol.put_cap_extra(file_id, "")
    )
    req = urllib.request.Request(
        f"{node_url(c, node_id)}{protocol.STORE_CHUNK}?chunk_id={chunk_id}", data=data, method="PUT"
    )
    req.add_header(protocol.CAPABILITY, cap)
    req.add_header(protocol.UPLOAD, file_id)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        with exc:  # its socket closed, not left to the collector
            return exc.code, json.loads(exc.read())


def start_upload(c: LocalCluster, data: bytes, name: str) -> tuple[str, dict[str, str]]:
    """init-upload and send every chunk (1 MiB fixed) like a client, but do not finalize;
    returns (file_id, receipts)."""
    pieces = [data[i : i + MIB] for i in range(0, len(data), MIB)]
    body = {
        "name": name,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "chunker": f"fixed:{MIB}",
        "chunks": [{"sha256": hashlib.sha256(p).hexdigest(), "size": len(p)} for p in pieces],
    }
    plan = post_json(f"{c.api_url}{protocol.INIT_UPLOAD}", body, c.admin_token)
    by_id = {hashlib.sha256(p).hexdigest(): p for p in pieces}
    receipts = {}
    for item in plan["upload"]:
        targets = item["targets"]
        forward = protocol.forward_header([(t["node_id"], t["url"]) for t in targets[1:]])
        req = urllib.request.Request(
            f"{targets[0]['url']}{protocol.STORE_CHUNK}?chunk_id={item['sha256']}",
            data=by_id[item["sha256"]],
            method="PUT",
        )
        req.add_header(protocol.CAPABILITY, item["caps"][0])
        req.add_header(protocol.UPLOAD, plan["file_id"])
        req.add_header(protocol.FORWARD_TO, forward)
        with urllib.request.urlopen(req, timeout=60) as resp:
            receipts[item["sha256"]] = json.loads(resp.read())["receipt"]
    return str(plan["file_id"]), receipts


def replicas_known(c: LocalCluster, file_id: str) -> list[int]:
    plan = http_json(f"{c.api_url}/download-plan?file_id={file_id}", c.admin_token)
    return [len(ch["replicas"]) for ch in plan["chunks"]]


# --- 1. REPLICATION_STRATEGY=async ------------------------------------------------------------


def test_async_replication_acks_first_copy_and_catches_up(
    tmp_path: Path, meta_url: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """2 nodes at factor 2: a dead node whose registry entry has not expired yet (30 s) still
    lets async uploads finish on the other; its copies come from the repairer once it is back."""
    env = {"REPLICATION_STRATEGY": "async"}
    with started(
        tmp_path, meta_url, monkeypatch, request, env, nodes=2, heartbeat_timeout=30.0
    ) as c:
        a = write_random(tmp_path / "a.bin", 4 * MIB, seed=21)
        up_a = upload(c, tmp_path / "a.bin")
        ids_a = chunk_ids(c, up_a["file_id"])
        # the second copies appear in the background, and metadata learns of them from the
        # primary's journal (in /status), so download plans list both
        wait_for(lambda: all(good_copies(c, x) == 2 for x in ids_a), DEADLINE, "async copies")
        wait_for(lambda: set(replicas_known(c, up_a["file_id"])) == {2}, DEADLINE, "2 known")
        # node2 dies: an async upload acknowledges after node1's durable copy all the same
        c.node(2).kill()
        b = write_random(tmp_path / "b.bin", 3 * MIB, seed=22)
        up_b = upload(c, tmp_path / "b.bin")
        ids_b = chunk_ids(c, up_b["file_id"])
        assert all(chunk_path(c, 1, x).exists() for x in ids_b)
        assert not any(chunk_path(c, 2, x).exists() for x in ids_b)
        # the lag is visible: forwards node1 gave up on, chunks short of their copies
        wait_for(
            lambda: (
                (r := http_json(f"{c.api_url}/admin/stats", c.admin_token)["repair"])
                and r["replication_failed"] >= 1
                and r["under_replicated"] >= 1
            ),
            DEADLINE,
            "replication lag in /admin/stats",
        )
        # node2 returns: the repairer gives it the copies its forwards missed
        c.restart_node(2)
        wait_for(lambda: all(chunk_path(c, 2, x).exists() for x in ids_b), DEADLINE, "repaired")
        wait_for(lambda: set(replicas_known(c, up_b["file_id"])) == {2}, DEADLINE, "2 known")
        # the first holder dies (kill -9): both files download from the other copies
        c.node(1).kill()
        downloads_intact(c, up_a["file_id"], a, tmp_path / "out")
        downloads_intact(c, up_b["file_id"], b, tmp_path / "out")


# --- 2. Full disks ---------------------------------------------------------------------------


def test_full_node_refuses_writes_and_placement_skips_it(
    tmp_path: Path, meta_url: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    env = {"DFS_NODE_CAPACITY": str(6 * MIB)}
    small = {3: {"DFS_NODE_CAPACITY": str(3 * MIB // 2)}}
    with started(tmp_path, meta_url, monkeypatch, request, env, node_env=small) as c:
        first = write_random(tmp_path / "x1", MIB, seed=31)
        second = write_random(tmp_path / "x2", MIB, seed=32)
        code, _body = put_direct(c, "node3", first)
        assert code == 201
        # beyond capacity: 507 with a clear JSON message, and nothing stored
        code, body = put_direct(c, "node3", second)
        assert code == 507
        assert body["error"]["code"] == "insufficient_storage"
        assert "full" in body["error"]["message"]
        # chunk copies only (64 hex characters): the folder also holds the disk identity
        stored = [
            p for p in (c.base / "node3" / "chunks").rglob("*") if p.is_file() and len(p.name) == 64
        ]
        assert [p.name for p in stored] == [hashlib.sha256(first).hexdigest()]
        # node3 reports its free bytes in heartbeats; placement stops choosing it
        wait_for(lambda: node_used(c)["node3"] == MIB, DEADLINE, "node3 reports 1 MiB used")
        write_random(tmp_path / "f.bin", 4 * MIB, seed=33)
        up = upload(c, tmp_path / "f.bin")
        ids = chunk_ids(c, up["file_id"])
        assert not any(chunk_path(c, 3, x).exists() for x in ids)
        assert all(copies(c, x) == 2 for x in ids)
        # every node too full for a 3 MiB chunk: one clear line, exit code 7
        wait_for(
            lambda: node_used(c)["node1"] == node_used(c)["node2"] == 4 * MIB,
            DEADLINE,
            "nodes 1 and 2 report 4 MiB used",
        )
        write_random(tmp_path / "big.bin", 3 * MIB, seed=34)
        proc = run_cli(
            "upload", "--chunk-size", str(3 * MIB), c.api_url, str(tmp_path / "big.bin"),
            check=False,
        )  # fmt: skip
        assert proc.returncode == 7, proc.stderr
        [line] = proc.stderr.strip().splitlines()
        assert line.startswith("Error: cluster is full"), line


# --- 3. The API killed while a finalize is in flight -----------------------------------------


def _connected(pid: int, port: int) -> bool:
    """Whether process ``pid`` has an established TCP connection to 127.0.0.1:``port``."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = fd.readlink().name
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                f = line.split()
                remote_port = int(f[2].rsplit(":", 1)[1], 16)
                if remote_port == port and f[3] == "01" and f[9] in inodes:
                    return True
    return False


def test_api_killed_during_finalize_leaves_no_half_committed_file(
    tmp_path: Path, meta_url: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """node3 is stopped (SIGSTOP), so the finalize's has-chunks call to it hangs; the API is
    killed (SIGKILL) right then. No maintenance loops: the finalize is the only API->node call."""
    with started(tmp_path, meta_url, monkeypatch, request, {"DFS_MAINTENANCE": "0"}) as c:
        data = write_random(tmp_path / "f.bin", 3 * MIB, seed=41)
        file_id, receipts = start_upload(c, data, "f.bin")
        before = http_json(f"{c.api_url}/admin/stats", c.admin_token)
        node3 = c.node(3)
        port3 = int(node_url(c, "node3").rsplit(":", 1)[1])
        assert c.api is not None
        assert c.api.popen is not None
        api_pid = c.api.popen.pid
        outcome: list[BaseException | None] = []

        def finalize() -> None:
            try:
                body = {"file_id": file_id, "receipts": receipts}
                post_json(f"{c.api_url}{protocol.FINALIZE_UPLOAD}", body, c.admin_token, 60.0)
                outcome.append(None)
            except (OSError, ValueError) as exc:
                outcome.append(exc)

        node3.signal(signal.SIGSTOP)
        try:
            thread = threading.Thread(target=finalize)
            thread.start()
            wait_for(lambda: _connected(api_pid, port3), 30, "finalize asking node3")
            c.api.kill()
            thread.join(30)
        finally:
            node3.signal(signal.SIGCONT)
        assert not thread.is_alive()
        assert outcome
        assert outcome[0] is not None
        c.api.start()
        c.api.wait_listening(60.0)
        c.wait_live(3, 60.0)
        files = http_json(f"{c.api_url}/files?limit=100", c.admin_token)["files"]
        assert file_id not in {f["file_id"] for f in files}
        plan = f"{c.api_url}/download-plan?file_id={file_id}"
        assert status_of(lambda: http_json(plan, c.admin_token)) == 404
        after = http_json(f"{c.api_url}/admin/stats", c.admin_token)
        keys = ("total_files", "logical_bytes", "stored_bytes", "unique_chunks")
        assert [after[k] for k in keys] == [before[k] for k in keys]
        # re-running the upload finishes it
        up = upload(c, tmp_path / "f.bin")
        downloads_intact(c, up["file_id"], data, tmp_path / "out")


# --- 4. Garbage the chunk rows cannot see ----------------------------------------------------


def test_orphans_and_stale_uploads_are_collected(
    tmp_path: Path, meta_url: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    env = {"DFS_ORPHAN_INTERVAL": "1"}
    with started(tmp_path, meta_url, monkeypatch, request, env) as c:
        # (b) an upload that is never finalized: its chunks have no row
        never = write_random(tmp_path / "n.bin", 2 * MIB, seed=51)
        stale_id, receipts = start_upload(c, never, "n.bin")
        never_ids = {hashlib.sha256(never[i : i + MIB]).hexdigest() for i in (0, MIB)}
        assert all(copies(c, x) == 2 for x in never_ids)
        # (a) a file deleted while a holder of its chunks is dead
        write_random(tmp_path / "d.bin", 2 * MIB, seed=52)
        up = upload(c, tmp_path / "d.bin")
        ids = chunk_ids(c, up["file_id"])
        victim = next(i for i in range(1, 4) if any(chunk_path(c, i, x).exists() for x in ids))
        c.node(victim).kill()
        run_cli("rm", c.api_url, up["file_id"])
        wait_for(
            lambda: (
                not any(
                    chunk_path(c, i, x).exists() for i in range(1, 4) if i != victim for x in ids
                )
            ),
            DEADLINE,
            "GC collected the live copies",
        )
        # the dead node's copies (it holds some by choice, and nothing could delete them) are
        # orphans now: GC removed the chunk rows, so only the orphan sweep finds them
        stats = http_json(f"{c.api_url}/admin/stats", c.admin_token)
        assert (stats["unique_chunks"], stats["stored_bytes"]) == (0, 0)
        c.restart_node(victim)
        wait_for(lambda: not any(copies(c, x) for x in ids), DEADLINE, "the returned orphans")
        wait_for(lambda: not any(copies(c, x) for x in never_ids), DEADLINE, "unfinalized")
        # (c) the pending file itself goes after 2 x DFS_GC_GRACE: finalize then answers 404
        fin = f"{c.api_url}{protocol.FINALIZE_UPLOAD}"
        body = {"file_id": stale_id, "receipts": receipts}
        wait_for(
            lambda: status_of(lambda: post_json(fin, body, c.admin_token)) == 404,
            DEADLINE,
            "the stale upload deleted",
        )


# --- 5. A planned restart within the grace -----------------------------------------------------


def test_clean_restart_within_the_grace_repairs_nothing(
    tmp_path: Path, meta_url: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    with started(tmp_path, meta_url, monkeypatch, request, {"DFS_REPAIR_GRACE": "60"}) as c:
        data = write_random(tmp_path / "a.bin", 4 * MIB, seed=61)
        up = upload(c, tmp_path / "a.bin")
        ids = chunk_ids(c, up["file_id"])
        where = {x: {i for i in range(1, 4) if chunk_path(c, i, x).exists()} for x in ids}
        on_node1 = [x for x in ids if 1 in where[x]]
        assert on_node1
        c.node(1).stop()  # SIGTERM: deregisters, leaving a tombstone
        nodes = http_json(f"{c.api_url}/nodes", c.admin_token)["nodes"]
        assert {n["node_id"]: n["status"] for n in nodes}["node1"] == "down"
        # a pass that started once node1 was down (one started while it deregistered could
        # still have seen it up: CI saw that)
        t_stop = time.time()
        rep = wait_for(lambda: finished_pass_after(c, t_stop), DEADLINE, "a repair pass")
        assert rep["down_nodes"] == ["node1"]
        assert (rep["under_replicated"], rep["repaired"]) == (0, 0)
        # targeted: the pass read what the by-node index lists for node1, not every chunk
        assert rep["scope"] == "targeted"
        assert rep["nodes_scanned"] == ["node1"]
        assert rep["chunks_scanned"] == len(on_node1)
        c.restart_node(1)
        c.wait_live(3, 60.0)
        t_back = time.time()
        rep = wait_for(lambda: finished_pass_after(c, t_back), DEADLINE, "a repair pass")
        assert (rep["repaired"], rep["trimmed"]) == (0, 0)
        assert {x: {i for i in range(1, 4) if chunk_path(c, i, x).exists()} for x in ids} == where
        downloads_intact(c, up["file_id"], data, tmp_path / "out")
