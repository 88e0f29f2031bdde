"""On SQLite, nodes register through the API and never write the metadata file.

A SQLite file has one write lock. When nodes wrote their heartbeats into it themselves, a node
process stopped inside that write (SIGSTOP, a debugger, a swapped-out page) held the lock, and
every other writer, the API with every upload, delete and token among them, waited out the
30 s busy timeout and failed "database is locked" (seen in CI). A node that knows the API now
registers through it (``dfs.config.registers_through_api``), so it holds nothing the API's
writers wait for. Real processes on loopback.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dfs import protocol
from dfs.localcluster import LocalCluster, http_json
from tests.e2e.conftest import run_cli, started_cluster

pytestmark = pytest.mark.e2e

STOPS = 100
"""Times the nodes are stopped at a random moment (heartbeats every 50 ms: a stop lands in
a write a few times in a hundred where nodes wrote the file themselves)."""
STRESS_CAP = 30.0
"""Seconds the stops may take at most, on a slow machine."""
WRITE_DEADLINE = 5.0
"""Seconds one metadata write may take while nodes stop and go on (the busy timeout a
stopped lock holder made writers wait out is 30 s)."""


def files_held(pid: int) -> set[str]:
    """The paths process ``pid`` holds open or mapped (``/proc/PID/fd``, ``/proc/PID/maps``):
    a SQLite connection holds the database, its WAL and maps its shared-memory index."""
    held: set[str] = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # closed meanwhile
            held.add(os.readlink(fd))
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6:
            held.add(fields[5])
    return held


def sqlite_files(held: set[str], db: Path) -> set[str]:
    return {p for p in held if p.startswith(str(db))}


def two_nodes_on_sqlite(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    rf: int,
    **kwargs: float,
) -> contextlib.AbstractContextManager[LocalCluster]:
    """A started cluster of two nodes at ``rf`` on SQLite (``kwargs``: its heartbeats)."""
    meta = f"sqlite:///{tmp_path / 'cluster' / 'meta.db'}"
    return started_cluster(
        tmp_path, meta, monkeypatch, request, nodes=2, replication_factor=rf, **kwargs
    )


@pytest.fixture
def stopping_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[LocalCluster]:
    """Two nodes heartbeating every 50 ms (so a stop often lands inside one), kept live for
    the whole test however long they are stopped."""
    with two_nodes_on_sqlite(
        tmp_path, monkeypatch, request, 1, heartbeat_interval=0.05, heartbeat_timeout=600.0
    ) as c:
        yield c


def test_nodes_hold_no_handle_on_the_sqlite_file(stopping_cluster: LocalCluster) -> None:
    c = stopping_cluster
    db = c.base / "meta.db"
    assert c.api is not None
    assert c.api.popen is not None
    # the check sees a connection where there is one
    assert str(db) in files_held(c.api.popen.pid)
    for proc in c.node_procs:
        assert proc.popen is not None
        assert sqlite_files(files_held(proc.popen.pid), db) == set(), proc.name
    assert sorted(c.live_nodes()) == ["node1", "node2"]  # registered, through the API


def locks_held(pids: set[int], inodes: set[int]) -> list[str]:
    """The lines of ``/proc/locks`` where one of ``pids`` holds a lock on one of ``inodes``
    (SQLite locks its database and its shared-memory index with POSIX advisory locks).
    A line reads ``1: POSIX  ADVISORY  WRITE 4242 fd:01:123456 128 128``; waiters (``->``)
    hold nothing yet."""
    held = []
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "->" in fields or len(fields) < 6:
            continue
        if int(fields[4]) in pids and int(fields[5].rsplit(":", 1)[1]) in inodes:
            held.append(line)
    return held


def test_api_writes_never_wait_for_a_stopped_node(stopping_cluster: LocalCluster) -> None:
    """Nodes stopped at random moments, a hundred times (heartbeats every 50 ms): none is
    ever caught holding a lock on the metadata files, and a write of the API made while
    they are stopped never waits. Where nodes wrote the file themselves, a stop landing in
    their write (a few in a hundred here) left the lock held, and that write failed after
    the 30 s busy timeout."""
    c = stopping_cluster
    db = c.base / "meta.db"
    inodes = {os.stat(f"{db}{suffix}").st_ino for suffix in ("", "-wal", "-shm")}
    pids = {proc.popen.pid for proc in c.node_procs if proc.popen is not None}
    rng = random.Random(7)
    caught: list[str] = []
    stops = slowest = 0.0
    end = time.monotonic() + STRESS_CAP
    while stops < STOPS and time.monotonic() < end:
        time.sleep(rng.uniform(0, 0.02))  # a random moment of the nodes' heartbeats
        for proc in c.node_procs:
            proc.signal(signal.SIGSTOP)
        try:
            stops += 1
            caught += locks_held(pids, inodes)
            started = time.monotonic()
            http_json(  # a tenant: a write of the metadata store that involves no node
                f"{c.api_url}{protocol.ADMIN_TENANTS}",
                c.admin_token,
                timeout=WRITE_DEADLINE,
                body={"tenant": f"t{int(stops)}"},
            )
            slowest = max(slowest, time.monotonic() - started)
        finally:
            for proc in c.node_procs:
                proc.signal(signal.SIGCONT)
    assert stops >= STOPS / 2, "the nodes were hardly stopped: the test proved nothing"
    assert caught == []
    assert slowest < WRITE_DEADLINE  # (a write past it raised above already)
    tenants = http_json(f"{c.api_url}{protocol.ADMIN_TENANTS}", c.admin_token)["tenants"]
    assert {f"t{n}" for n in range(1, int(stops) + 1)} <= set(tenants)
    # and the nodes are still there, registered through the API
    assert sorted(c.live_nodes()) == ["node1", "node2"]


def test_an_api_back_from_a_long_outage_plans_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """The API down for longer than NODE_HEARTBEAT_TIMEOUT: every node's entry, which only
    the API writes now, has expired when it starts again. A client started right then must
    still be served: the nodes retry their heartbeats within a second, and the API's plans
    wait for known nodes in its first seconds (``dfs.api.writable_nodes``)."""
    # heartbeats seconds apart, as deployed: a node's next one may be that far away
    with two_nodes_on_sqlite(
        tmp_path, monkeypatch, request, 2, heartbeat_interval=3.0, heartbeat_timeout=6.0
    ) as c:
        assert c.api is not None
        src = tmp_path / "f.txt"
        src.write_bytes(b"after the outage\n")
        c.api.kill()
        time.sleep(c.heartbeat_timeout + 1.0)  # the outage: longer than the entries live
        c.api.start()
        c.api.wait_listening(60.0)
        up = run_cli("upload", "--json", c.api_url, str(src), check=False)
        assert up.returncode == 0, up.stderr
        out = tmp_path / "f.out"
        file_id = json.loads(up.stdout.splitlines()[-1])["file_id"]
        run_cli("download", c.api_url, file_id, str(out))
        assert out.read_bytes() == src.read_bytes()
        assert sorted(c.live_nodes()) == ["node1", "node2"]
