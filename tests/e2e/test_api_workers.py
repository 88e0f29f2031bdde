"""``DFS_API_WORKERS``: several dfs-api processes on one listening socket (real processes).

The first worker starts the others; they all accept on the port, ``/metrics`` answers the
sum over all of them whichever answers the scrape, a worker that dies is started again, and
the workers end with the first one, however it ends.
"""

from __future__ import annotations

import filecmp
import os
import re
import signal
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from dfs.localcluster import LocalCluster, console_script, http_json, wait_for
from tests.conftest import random_bytes
from tests.e2e.conftest import run_cli, started_cluster

pytestmark = pytest.mark.e2e

DEADLINE = 30.0


def workers_of(pid: int) -> list[int]:
    """The processes ``pid`` started (the first worker's children)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []


def serving(log: Path, pid: int) -> int:
    """``pid`` once the first worker's log says that worker takes connections (a worker just
    started is still importing: a request while every other worker is stopped would wait)."""
    line = f"dfs-api worker {pid} serving on "
    wait_for(lambda: line in log.read_text(errors="replace"), DEADLINE, f"worker {pid} to serve")
    return pid


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def healthz(c: LocalCluster) -> None:
    with urllib.request.urlopen(f"{c.api_url}/healthz", timeout=10) as resp:
        assert resp.status == 200


def healthz_count(c: LocalCluster) -> float:
    """``/healthz`` requests answered, as ``/metrics`` reports them (a new connection)."""
    req = urllib.request.Request(
        f"{c.api_url}/metrics", headers={"Authorization": f"Bearer {c.admin_token}"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        text = resp.read().decode()
    found = re.search(r'^dfs_http_requests_total\{[^}]*route="/healthz"[^}]*\} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def answered_by(pid: int, c: LocalCluster, requests: int) -> float:
    """``requests`` health checks and then a scrape while every worker but ``pid`` is
    stopped (so ``pid`` accepts them all); the scrape's count."""
    others = [p for p in [c.api.popen.pid, *workers_of(c.api.popen.pid)] if p != pid]
    for other in others:
        os.kill(other, signal.SIGSTOP)
    try:
        for _ in range(requests):
            healthz(c)
        return healthz_count(c)
    finally:
        for other in others:
            os.kill(other, signal.SIGCONT)


@pytest.fixture
def workers_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[LocalCluster]:
    meta = f"sqlite:///{tmp_path / 'cluster' / 'meta.db'}"
    env = {"DFS_API_WORKERS": "2"}
    with started_cluster(
        tmp_path, meta, monkeypatch, request, env, nodes=1, replication_factor=1
    ) as c:
        yield c


def test_workers_share_the_port_and_metrics_sum_them(
    workers_cluster: LocalCluster, tmp_path: Path
) -> None:
    c = workers_cluster
    first = c.api.popen.pid
    [second] = wait_for(lambda: workers_of(first) or None, DEADLINE, "the second worker")
    serving(c.api.log, second)
    # a tree of small files round-trips (plans two at a time: both workers plan)
    src = tmp_path / "src"
    for i in range(60):
        (src / f"d{i % 4}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 4}" / f"f{i}").write_bytes(random_bytes(i, 100 + 97 * i))
    run_cli("upload", "--prefix", "t/", c.api_url, str(src))
    out = tmp_path / "out"
    run_cli("download", "--prefix", "t/", c.api_url, str(out))
    for i in range(60):
        name = Path(f"d{i % 4}") / f"f{i}"
        assert filecmp.cmp(src / name, out / "t" / name, shallow=False)
    # each worker answers alone in turn; either one's scrape counts the other's requests
    before = answered_by(first, c, 0)
    assert answered_by(second, c, 5) == before + 5
    assert answered_by(first, c, 3) == before + 8
    assert answered_by(second, c, 0) == before + 8
    # the metric files live in the API's data folder while it runs
    assert list((c.base / "api").glob("api-metrics-*/*.db"))


def test_a_killed_worker_is_replaced_and_workers_end_with_the_first(
    workers_cluster: LocalCluster,
) -> None:
    c = workers_cluster
    first = c.api.popen.pid
    [second] = wait_for(lambda: workers_of(first) or None, DEADLINE, "the second worker")
    os.kill(second, signal.SIGKILL)
    [third] = wait_for(
        lambda: [p for p in workers_of(first) if p != second] or None, DEADLINE, "a new worker"
    )
    serving(c.api.log, third)
    assert answered_by(third, c, 2) >= 2  # the new worker serves the port
    # SIGTERM to the first: every worker drains and exits, the metric files go
    c.api.signal(signal.SIGTERM)
    assert c.api.wait(DEADLINE) == 0
    wait_for(lambda: not alive(third), DEADLINE, "the worker to exit with the first")
    assert not list((c.base / "api").glob("api-metrics-*"))


def test_workers_stop_when_the_first_is_killed(workers_cluster: LocalCluster) -> None:
    c = workers_cluster
    first = c.api.popen.pid
    [second] = wait_for(lambda: workers_of(first) or None, DEADLINE, "the second worker")
    c.api.signal(signal.SIGKILL)
    c.api.wait(DEADLINE)
    wait_for(lambda: not alive(second), DEADLINE, "the worker to exit after the first's kill")


def test_workers_take_the_token_and_secret_the_first_generated(tmp_path: Path) -> None:
    """Without DFS_ADMIN_TOKEN and DFS_API_SECRET the first worker generates both into its
    data folder before it starts the others, which read them there: every worker takes the
    admin token (and signs with the same secret)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DFS_ADMIN_TOKEN", "DFS_API_SECRET")}
    env.update(
        {
            "DFS_API_WORKERS": "2",
            "DFS_API_PORT": "0",
            "DFS_DATA_DIR": str(tmp_path / "api"),
            "DFS_META_URL": f"sqlite:///{tmp_path / 'meta.db'}",
            "DFS_CLUSTER_SECRET": "s" * 32,
        }
    )
    log = tmp_path / "api.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([console_script("dfs-api")], env=env, stdout=out, stderr=out)
    try:
        url = wait_for(
            lambda: (m := re.search(r"listening on (\S+)", log.read_text())) and m.group(1),
            DEADLINE,
            "the API to listen",
        )
        token = re.search(r"admin token .*: (\S+)", log.read_text())
        assert token is not None
        [second] = wait_for(lambda: workers_of(proc.pid) or None, DEADLINE, "the second worker")
        serving(log, second)
        for answering, other in ((proc.pid, second), (second, proc.pid)):
            os.kill(other, signal.SIGSTOP)
            try:
                who = http_json(f"{url}/whoami", token.group(1), timeout=10)
            finally:
                os.kill(other, signal.SIGCONT)
            assert who["role"] == "admin", answering
        assert (tmp_path / "api" / "api_secret").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(DEADLINE)
