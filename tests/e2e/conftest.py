"""End-to-end fixtures: a real cluster of processes (dfs.localcluster) and the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dfs.localcluster import LocalCluster, console_script

CLI_TIMEOUT = 180.0


def run_cli(
    *args: str, check: bool = True, env: dict[str, str | None] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run dfs-client; ``env`` entries are added to ours (a None value removes the variable)."""
    full_env = dict(os.environ)
    for k, v in (env or {}).items():
        if v is None:
            full_env.pop(k, None)
        else:
            full_env[k] = v
    proc = subprocess.run(
        [console_script("dfs-client"), *args],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        stdin=subprocess.DEVNULL,
        env=full_env,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"dfs-client {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


def cli_json(*args: str) -> list[dict[str, Any]]:
    out = run_cli(*args, "--json").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def dump_logs(base: Path) -> None:
    for log in sorted((base / "logs").glob("*.log")):
        print(f"===== {log.name}\n{log.read_text(errors='replace')[-4000:]}")


@pytest.fixture
def cluster(
    tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LocalCluster]:
    """API + 3 nodes at REPLICATION_FACTOR=2; logs printed if the test failed.

    The CLI subprocesses get the cluster's admin token through DFS_TOKEN."""
    marker = request.node.get_closest_marker("cluster")
    kwargs: dict[str, Any] = dict(marker.kwargs) if marker else {}
    c = LocalCluster(tmp_path / "cluster", **kwargs)
    monkeypatch.setenv("DFS_TOKEN", c.admin_token)
    monkeypatch.setenv("DFS_CONFIG", str(tmp_path / "no-config.toml"))
    c.start()
    try:
        yield c
    finally:
        c.stop()
        if getattr(request.node, "rep_call", None) is None or request.node.rep_call.failed:
            dump_logs(c.base)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    rep = yield
    if rep.when == "call":
        item.rep_call = rep  # type: ignore[attr-defined]
    return rep
