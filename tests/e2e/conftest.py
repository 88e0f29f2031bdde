"""End-to-end fixtures: a real cluster of processes (dfs.localcluster), the real CLI, and the
S3 gateway (``dfs-s3``) beside a cluster with an access key of its own tenant."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from dfs.localcluster import LocalCluster, Proc, console_script, free_port, http_json
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


def stop_cluster(c: LocalCluster) -> None:
    """``c.stop()``, with the gateway and the nodes told to stop (SIGTERM) all at once rather
    than one after the other, each waited for in turn (a graceful stop each: ~0.3 s apiece,
    times every e2e test); the API still goes last, so the nodes deregister while it
    answers, and ``c.stop()`` then kills whatever did not exit in time."""
    first = [*([c.s3_proc] if c.s3_proc else []), *c.node_procs]
    try:
        for proc in first:
            proc.signal(signal.SIGTERM)
        deadline = time.monotonic() + 15.0
        for proc in first:
            if proc.wait(max(0.0, deadline - time.monotonic())) is None:
                proc.signal(signal.SIGKILL)  # hung: c.stop() would wait for it again
    finally:  # a timeout or an interrupt above still stops (kills) every process
        c.stop()


def _worker_slice(first: int, last: int) -> tuple[int, int]:
    """This pytest-xdist worker's share of the ports first..last (all of them outside xdist):
    workers never pick the same port for APIs starting at the same time."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if not worker.startswith("gw") or not worker[2:].isdigit() or count < 2:
        return first, last
    span = (last - first + 1) // count
    start = first + int(worker[2:]) % count * span
    return start, start + span - 1


def _port_outside_ephemeral_range() -> int | None:
    """A free loopback port below the kernel's ephemeral range, or None if that range starts
    too low to leave one. The API is told its port before it binds it (about a second later,
    after its imports); below the range no outgoing connection can take the port meanwhile."""
    return ports_outside_ephemeral_range(1)


def ports_outside_ephemeral_range(count: int) -> int | None:
    """The first of ``count`` consecutive free loopback ports below the kernel's ephemeral
    range (in this worker's share of it), or None if that range starts too low to leave
    them: for processes told their ports seconds before they bind them."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if low < 12_000:
        return None
    first, last = _worker_slice(low - 10_000, low - count)
    for _ in range(50):
        port = random.randint(first, last)
        if all(_free(p) for p in range(port, port + count)):
            return port
    return None


def quiet_ports(count: int) -> list[int]:
    """``count`` distinct free ports for processes told them before they bind them: below
    the ephemeral range where there is room (``ports_outside_ephemeral_range``), else ones
    the kernel hands out."""
    first = ports_outside_ephemeral_range(count)
    if first is not None:
        return list(range(first, first + count))
    ports: set[int] = set()
    for _ in range(10 * count):  # bounded: the kernel rarely hands the same port twice
        ports.add(free_port())
        if len(ports) == count:
            return sorted(ports)
    raise AssertionError(f"no {count} distinct free ports on loopback")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def start_cluster(c: LocalCluster) -> None:
    """``c.start()``, with the API and the nodes starting at once rather than the nodes
    waiting for the API to listen: each spends most of a second importing, and every e2e test
    starts a cluster. The API's port is chosen first, so the nodes know where it will be:
    those that register through it retry their first registration until it answers (as in
    a deployment, where they start on their own). A cluster with a port of its own starts
    the usual way."""
    port = None if c.api_port else _port_outside_ephemeral_range()
    if port is None:
        c.start()
        return
    c.api_port = port
    api = c._api_proc()
    api.start()
    try:
        # the API counts as running: the nodes start now, and start() waits for them to be
        # live by asking the API, which answers once it listens
        c.start(running=frozenset({"api"}))
        api.wait_listening(60.0)
    except BaseException as exc:
        api.stop()
        exc.add_note(f"===== api.log\n{api.log.read_text(errors='replace')[-4000:]}")
        raise
    c.api = api  # the process itself (start() made a stand-in), so stop() stops it


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
    start_cluster(c)
    try:
        yield c
    finally:
        stop_cluster(c)
        if getattr(request.node, "rep_call", None) is None or request.node.rep_call.failed:
            dump_logs(c.base)


@pytest.fixture
def one_node(
    tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LocalCluster]:
    """One node, REPLICATION_FACTOR=1, SQLite."""
    meta_url = f"sqlite:///{tmp_path / 'cluster' / 'meta.db'}"
    with started_cluster(
        tmp_path, meta_url, monkeypatch, request, nodes=1, replication_factor=1
    ) as c:
        yield c


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


@dataclass
class Gateway:
    """A running dfs-s3: its URL, the API's, and a token and access key of the test's tenant."""

    url: str
    api_url: str
    token: str
    key_id: str
    secret: str
    log: Path = Path()

    def client(self, key_id: str | None = None, secret: str | None = None, **config: Any) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=key_id or self.key_id,
            aws_secret_access_key=secret or self.secret,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, **config),
        )


def gateway_proc(c: LocalCluster) -> Proc:
    """An unstarted dfs-s3 process configured like the cluster's API (any free port)."""
    env = {
        **os.environ,
        **c.secrets,
        "DFS_META_URL": c.meta_url,
        "REPLICATION_FACTOR": str(c.replication_factor),
        "DFS_S3_HOST": "127.0.0.1",
        "DFS_S3_PORT": "0",
        "DFS_DATA_DIR": str(c.base / "s3"),
        "PYTHONUNBUFFERED": "1",
        **(DYNAMODB_ENV if c.meta_url.startswith("dynamodb:") else {}),
    }
    return Proc(
        name="s3",
        argv=[console_script("dfs-s3")],
        env=env,
        log=c.base / "logs" / "s3.log",
        pidfile=c.base / "pids" / "s3.pid",
    )


def tenant_key(api: str, tenant: str) -> tuple[str, dict[str, str]]:
    """A new tenant's token and an access key made with it (``access_key_id``, ``secret_...``)."""
    run_cli("admin", "create-tenant", api, tenant)
    token = run_cli("admin", "create-token", api, tenant).stdout.strip()
    made = json.loads(run_cli("keys", "create", "--json", api, env={"DFS_TOKEN": token}).stdout)
    return token, made


def tenant_key_http(c: LocalCluster, tenant: str) -> tuple[str, dict[str, str]]:
    """``tenant_key`` by the API's routes (as the CLI calls them) rather than three CLI
    processes, each seconds of interpreter start-up in every S3 test's set-up;
    ``tenant_key`` keeps those CLI commands covered (test_s3_tls)."""
    http_json(f"{c.api_url}/admin/tenants", c.admin_token, 30.0, {"tenant": tenant})
    body = {"tenant": tenant, "role": "user", "label": ""}
    token = http_json(f"{c.api_url}/admin/tokens", c.admin_token, 30.0, body)["token"]
    made = http_json(f"{c.api_url}/access-keys", token, 30.0, {"label": ""})
    return str(token), made


@contextlib.contextmanager
def started_gateway(cluster: LocalCluster, tenant: str) -> Iterator[Gateway]:
    """dfs-s3 beside ``cluster`` (with the environment as it is now), for a new ``tenant``;
    stopped on exit, the end of its log printed."""
    proc = gateway_proc(cluster)
    proc.start()  # its start-up overlaps the tenant's and key's creation
    try:
        token, made = tenant_key_http(cluster, tenant)
        url = proc.wait_listening(30.0)
        key_id, secret = made["access_key_id"], made["secret_access_key"]
        yield Gateway(url, cluster.api_url, token, key_id, secret, proc.log)
    finally:
        proc.stop()
        print(f"===== s3.log\n{proc.log.read_text(errors='replace')[-4000:]}")


@pytest.fixture
def gateway(cluster: LocalCluster) -> Iterator[Gateway]:
    """dfs-s3 beside a cluster on each metadata backend (SQLite, DynamoDB on moto)."""
    with started_gateway(cluster, "s3t") as gw:
        yield gw


@pytest.fixture
def sqlite_gateway(sqlite_cluster: LocalCluster) -> Iterator[Gateway]:
    """dfs-s3 beside a cluster on SQLite only."""
    with started_gateway(sqlite_cluster, "s3o") as gw:
        yield gw


def s3_code(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    """The S3 error code and HTTP status of a refused boto3 call."""
    err = exc.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]


def aws_cli() -> str:
    """The AWS CLI pinned in requirements/awscli.txt, which scripts/ci-tools.sh installs in
    .venv-awscli (else one on PATH); a missing CLI fails the test rather than skipping it."""
    pinned = Path(__file__).resolve().parents[2] / ".venv-awscli" / "bin" / "aws"
    found = str(pinned) if pinned.exists() else shutil.which("aws")
    if found is None:
        pytest.fail("the AWS CLI is not installed: run bash scripts/ci-tools.sh")
    return found


def aws_env(gw: Gateway, tmp_path: Path) -> dict[str, str]:
    """The environment of an AWS CLI run with the gateway's key and no user configuration."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "DFS_TOKEN"},
        "AWS_ACCESS_KEY_ID": gw.key_id,
        "AWS_SECRET_ACCESS_KEY": gw.secret,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
    }


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    rep = yield
    if rep.when == "call":
        item.rep_call = rep  # type: ignore[attr-defined]
    return rep
