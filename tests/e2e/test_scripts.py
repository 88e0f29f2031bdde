"""The dev scripts as a new user runs them (issue 16).

setup.sh, cluster.sh and demo.sh run in a copy of the repository whose .venv/bin/python is a
stand-in that only records its arguments: that shows exactly when pip runs and what the
scripts hand to Python, with no network and no install. cluster.sh then runs for real: a
cluster on loopback under tmp_path, its eval-able output, the user tenant, status exit codes
and restarting a dead node."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import stat
import subprocess
from pathlib import Path

import boto3
import pytest

from dfs.localcluster import free_port, read_env_file, wait_for
from tests.e2e.conftest import ports_outside_ephemeral_range, quiet_ports, run_cli

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = ("setup.sh", "cluster.sh", "demo.sh", "test.sh")


def _bash(
    cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        check=False,
    )


@pytest.fixture
def fake_repo(tmp_path: Path) -> tuple[Path, Path]:
    """(a copy of the scripts and pyproject.toml, the log of the stand-in python's calls)"""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    for name in SCRIPTS:
        shutil.copy(REPO / "scripts" / name, repo / "scripts" / name)
    shutil.copy(REPO / "pyproject.toml", repo / "pyproject.toml")
    bin_dir = repo / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    log = tmp_path / "python-calls.log"
    python = bin_dir / "python"
    python.write_text(f'#!/usr/bin/env bash\necho "$*" >> "{log}"\n')
    python.chmod(0o755)
    (bin_dir / "activate").write_text(f'export PATH="{bin_dir}:$PATH"\n')
    return repo, log


def _calls(log: Path) -> list[str]:
    calls = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return calls


def _pip_calls(calls: list[str]) -> list[str]:
    return [c for c in calls if c.startswith("-m pip ")]


def _compile_call(repo: Path) -> str:
    """setup.sh's bytecode compile of dfs, on every run (after pip when pip runs)."""
    return f"-m compileall -q -j0 {repo}/dfs"


def test_setup_installs_once_per_pyproject_and_extra(fake_repo: tuple[Path, Path]) -> None:
    repo, log = fake_repo
    assert _bash(repo, "scripts/setup.sh", "test").returncode == 0
    calls = _calls(log)
    pips = _pip_calls(calls)
    assert len(pips) == 2  # pip itself, then dfs with the extra
    assert pips[-1].endswith(f"-e {repo}[test]")
    assert calls[-1] == _compile_call(repo)  # after the install
    for args in (["test"], []):  # current: no pip, with or without the extra installed
        assert _bash(repo, "scripts/setup.sh", *args).returncode == 0
        assert _calls(log) == [_compile_call(repo)]
    with open(repo / "pyproject.toml", "a") as f:
        f.write("\n# changed\n")
    assert _bash(repo, "scripts/setup.sh").returncode == 0
    calls = _calls(log)
    assert _pip_calls(calls)[-1].endswith(f"-e {repo}")
    assert calls[-1] == _compile_call(repo)
    # a word that is no extra of pyproject.toml, and sourcing, are refused before pip runs
    bad = _bash(repo, "scripts/setup.sh", "start")
    assert bad.returncode == 2
    assert "no extra 'start'" in bad.stderr
    sourced = _bash(repo, "-c", "set -- --keep; . scripts/setup.sh")
    assert sourced.returncode == 2
    assert "do not source it" in sourced.stderr
    assert _calls(log) == []


def test_cluster_and_demo_never_pass_their_arguments_to_pip(
    fake_repo: tuple[Path, Path],
) -> None:
    repo, log = fake_repo
    first = _bash(repo, "scripts/cluster.sh", "start", "--dir", "d")
    assert first.returncode == 0, first.stderr
    calls = _calls(log)
    assert calls[-1] == "-m dfs.localcluster start --dir d"
    assert _pip_calls(calls)[-1].endswith(f"-e {repo}")  # no extra
    assert "extra" not in first.stderr
    again = _bash(repo, "scripts/cluster.sh", "status")
    # the venv is current: no pip
    assert _calls(log) == [_compile_call(repo), "-m dfs.localcluster status"]
    assert again.returncode == 0
    # demo.sh --keep: the stand-in starts no cluster, so the demo stops at cluster.env
    _bash(repo, "scripts/demo.sh", "--keep")
    calls = _calls(log)
    assert _pip_calls(calls) == []
    assert "-m dfs.localcluster start --dir dfs-data/demo" in calls
    assert _bash(repo, "scripts/demo.sh", "--bogus").returncode == 2


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _cluster_sh(base: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return _bash(REPO, "scripts/cluster.sh", *args, "--dir", str(base), timeout=timeout)


def _two_free_ports() -> int:
    """A port p with p + 1 free too (bounded tries)."""
    for _ in range(50):
        p = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p + 1))
            except OSError:
                continue
        return p
    raise AssertionError("no two consecutive free ports on loopback")


def test_cluster_sh_user_tenant_status_and_restart(tmp_path: Path) -> None:
    base = tmp_path / "local"
    # the gateway binds its port seconds after it is chosen: below the ephemeral range no
    # outgoing connection of another test can take it meanwhile (as CI once saw)
    quiet = ports_outside_ephemeral_range(5)
    if quiet is not None:  # api, node 1, node 2 (cluster.sh: node_port + 1), s3, api again
        api_port, node_port, s3_port, moved = quiet, quiet + 1, quiet + 3, quiet + 4
    else:
        api_port, s3_port, moved = quiet_ports(3)
        node_port = _two_free_ports()  # cluster.sh gives node 2 node_port + 1
    ports = ["--api-port", str(api_port), "--first-node-port", str(node_port), "--nodes", "2"]
    ports += ["--s3-port", str(s3_port)]
    never = _cluster_sh(base, "status")
    assert never.returncode == 1
    assert not base.exists()  # status creates nothing
    try:
        start = _cluster_sh(base, "start", *ports)
        assert start.returncode == 0, start.stderr
        # stdout is only shell: eval it and use the cluster as tenant "demo"
        env = read_env_file(base / "cluster.env")
        assert stat.S_IMODE((base / "cluster.env").stat().st_mode) == 0o600
        assert {"DFS_CLUSTER_SECRET", "DFS_ADMIN_TOKEN", "DFS_TOKEN", "DFS_API_URL"} <= set(env)
        assert env["DFS_TOKEN"] != env["DFS_ADMIN_TOKEN"]
        src = tmp_path / "hello.txt"
        src.write_text("hello\n")
        dfs_client = Path(REPO / ".venv" / "bin" / "dfs-client")
        url = f"http://127.0.0.1:{api_port}"
        script = f'eval "$1"; test "$DFS_API_URL" = {url} && {dfs_client} upload "$2"'
        used = _bash(
            tmp_path, "-c", script, "sh", start.stdout, str(src), env={"DFS_CONFIG": "/nonexistent"}
        )
        assert used.returncode == 0, used.stderr
        user = {"DFS_TOKEN": env["DFS_TOKEN"], "DFS_CONFIG": str(tmp_path / "none.toml")}
        assert used.stdout.strip() in run_cli("ls", env["DFS_API_URL"], env=user).stdout
        # the user token is not an admin token
        assert (
            run_cli("admin", "tenants", env["DFS_API_URL"], check=False, env=user).returncode == 3
        )
        assert _cluster_sh(base, "env").stdout == start.stdout  # the same lines again
        # the S3 gateway runs beside the API, with an access key of "demo" in the env lines
        assert f"AWS_ENDPOINT_URL_S3=http://127.0.0.1:{s3_port}" in start.stdout
        s3 = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{s3_port}",
            aws_access_key_id=env["DFS_S3_ACCESS_KEY_ID"],
            aws_secret_access_key=env["DFS_S3_SECRET_ACCESS_KEY"],
            region_name="us-east-1",
        )
        s3.create_bucket(Bucket="from-cluster-sh")
        assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["from-cluster-sh"]
        assert _cluster_sh(base, "status").returncode == 0
        # a dead node: status fails; start brings back only that node
        node2 = int((base / "pids" / "node2.pid").read_text())
        os.kill(node2, signal.SIGKILL)
        wait_for(lambda: not _alive(node2), 30.0, "node2 to die")
        down = _cluster_sh(base, "status")
        assert down.returncode == 1
        assert re.search(r"^node2\tpid \d+\tdead$", down.stdout, re.M), down.stdout
        again = _cluster_sh(base, "start")
        assert again.returncode == 0, again.stderr
        assert "started: node2" in again.stderr
        assert _cluster_sh(base, "status").returncode == 0
        # restart one process by name
        node1 = int((base / "pids" / "node1.pid").read_text())
        assert _cluster_sh(base, "restart", "node1").returncode == 0
        assert int((base / "pids" / "node1.pid").read_text()) != node1
        assert _cluster_sh(base, "status").returncode == 0
        # the API restarted on another port: the nodes, which register through it, are
        # started again and told the new one (left running, they posted to the old one)
        nodes = {n: int((base / "pids" / f"{n}.pid").read_text()) for n in ("node1", "node2")}
        moved_api = _cluster_sh(base, "restart", "api", "--api-port", str(moved))
        assert moved_api.returncode == 0, moved_api.stderr
        for name, pid in nodes.items():
            now = int((base / "pids" / f"{name}.pid").read_text())
            assert now != pid
            environ = Path(f"/proc/{now}/environ").read_bytes().split(b"\0")
            assert f"DFS_API_URL=http://127.0.0.1:{moved}".encode() in environ
        assert _cluster_sh(base, "status").returncode == 0
    finally:
        _cluster_sh(base, "stop", timeout=120)
    assert not list((base / "pids").glob("*.pid"))
