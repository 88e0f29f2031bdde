"""End-to-end fixtures: a real cluster of processes (dfs.localcluster) and the real CLI."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dfs.localcluster import LocalCluster, console_script
from tests.conftest import DYNAMODB_ENV

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


@pytest.fixture(params=["sqlite", "dynamodb"])
def meta_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The metadata store of an e2e cluster: a SQLite file, or fresh tables on moto's server
    (created by the processes themselves, ``create_tables=1``)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cluster' / 'meta.db'}"
    endpoint = request.getfixturevalue("moto_endpoint")
    prefix = f"e2e{uuid.uuid4().hex[:10]}-"
    return f"dynamodb://?endpoint_url={endpoint}&table_prefix={prefix}&create_tables=1"


@contextlib.contextmanager
def started_cluster(
    tmp_path: Path,
    meta_url: str,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    env: dict[str, str] | None = None,
    **kwargs: Any,
) -> Iterator[LocalCluster]:
    """A started cluster on ``meta_url`` with ``env``; stopped on exit, its logs printed if
    the test failed. The CLI subprocesses get its admin token through DFS_TOKEN."""
    full = {**(env or {}), **(DYNAMODB_ENV if meta_url.startswith("dynamodb:") else {})}
    c = LocalCluster(tmp_path / "cluster", meta_url=meta_url, env=full, **kwargs)
    monkeypatch.setenv("DFS_TOKEN", c.admin_token)
    monkeypatch.setenv("DFS_CONFIG", str(tmp_path / "no-config.toml"))
    c.start()
    try:
        yield c
    finally:
        c.stop()
        if getattr(request.node, "rep_call", None) is None or request.node.rep_call.failed:
            dump_logs(c.base)


@pytest.fixture
def cluster(
    tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, meta_url: str
) -> Iterator[LocalCluster]:
    """API + 3 nodes at REPLICATION_FACTOR=2 on each metadata backend (``@pytest.mark.cluster``
    passes other LocalCluster arguments)."""
    marker = request.node.get_closest_marker("cluster")
    kwargs: dict[str, Any] = dict(marker.kwargs) if marker else {}
    with started_cluster(tmp_path, meta_url, monkeypatch, request, **kwargs) as c:
        yield c


@pytest.fixture
def sqlite_cluster(
    tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LocalCluster]:
    """API + 3 nodes on SQLite: for tests about the CLI, not the metadata store."""
    meta = f"sqlite:///{tmp_path / 'cluster' / 'meta.db'}"
    with started_cluster(tmp_path, meta, monkeypatch, request) as c:
        yield c


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    rep = yield
    if rep.when == "call":
        item.rep_call = rep  # type: ignore[attr-defined]
    return rep
