"""The units' exact ExecStart command lines, run as local processes with the environment their
EnvironmentFile would hold (the keys the bootstrap scripts write, with loopback values and temp
data dirs, metadata on moto's DynamoDB server like DynamoDB on AWS): `dfs-api init-tables`
as bootstrap_api.sh runs it, the API and two nodes, a file round trip through dfs-client,
/readyz and /metrics, JSON logs, then SIGTERM: the node leaves the registry and every process
exits 0."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from dfs.localcluster import console_script
from tests.conftest import DYNAMODB_ENV, random_bytes
from tests.deploy.conftest import SCRIPTS, SYSTEMD, unit_file
from tests.e2e.conftest import quiet_ports

pytestmark = [pytest.mark.deploy, pytest.mark.e2e]

INSTALL_BIN = "/opt/dfs/venv/bin/"
START_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0
SECRET = "units-test-cluster-secret-0123456789abcdef"
API_SECRET = "units-test-api-only-secret-0123456789abcdef"
ADMIN = "dfs_units-test-admin-token-0123456789abcdef"
METRICS = "units-test-metrics-token-0123456789abcdef"


def exec_start(unit: str) -> list[str]:
    """ExecStart of an installed unit, pointed at this venv's console scripts."""
    (line,) = unit_file(SYSTEMD / unit)["Service"]["ExecStart"]
    argv = shlex.split(line)
    assert argv[0].startswith(INSTALL_BIN), argv
    bindir = Path(console_script("dfs-api")).parent
    return [str(bindir / argv[0].removeprefix(INSTALL_BIN)), *argv[1:]]


def env_keys(script: str) -> set[str]:
    """The variables a bootstrap script writes into its /etc/dfs/*.env file."""
    return set(re.findall(r"^\s*env_line (\w+) ", (SCRIPTS / script).read_text(), re.MULTILINE))


def unit_env(values: dict[str, str], script: str) -> dict[str, str]:
    """Exactly the env file's keys (so a key the script adds must be given a value here), plus
    what the instance role and AWS provide on EC2 (test credentials, moto's endpoint)."""
    assert set(values) == env_keys(script), set(values) ^ env_keys(script)
    return {"PATH": "/usr/bin:/bin", **DYNAMODB_ENV, **values}


def http(url: str, token: str | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5.0) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:  # its socket closed, not left to the collector
            return exc.code, exc.read().decode()


def wait_until(what: str, predicate: Any, procs: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        for p in procs:
            assert p.poll() is None, f"{p.args} exited {p.returncode} while waiting for {what}"
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out after {START_TIMEOUT}s waiting for {what}")


def metric(text: str, name: str) -> float:
    m = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert m, name
    return float(m.group(1))


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    started: dict[str, subprocess.Popen[bytes]] = {}
    try:
        yield started
    finally:
        for p in started.values():
            if p.poll() is None:
                p.kill()
            p.wait(timeout=STOP_TIMEOUT)
        for log in sorted(tmp_path.glob("*.log")):
            print(f"===== {log.name}\n{log.read_text(errors='replace')[-3000:]}")


def start(
    procs: dict[str, subprocess.Popen[bytes]], name: str, argv: list[str], env: dict[str, str]
) -> subprocess.Popen[bytes]:
    data_dir = Path(env["DFS_DATA_DIR"])
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir.parent / f"{name}.log").open("wb") as log:
        # WorkingDirectory= of the units is the data directory
        p = subprocess.Popen(argv, env=env, cwd=data_dir, stdout=log, stderr=subprocess.STDOUT)
    procs[name] = p
    return p


def gateway_round_trip(
    procs: dict[str, subprocess.Popen[bytes]],
    tmp_path: Path,
    meta_url: str,
    api_url: str,
    moto_endpoint: str,
    port: int,
) -> None:
    """dfs-s3 from its unit's command line and bootstrap_s3.sh's env file (on ``port``):
    /readyz, then an object in and out with boto3 under an access key the API made."""
    env = unit_env(
        {
            "DFS_DATA_DIR": str(tmp_path / "s3"),
            "DFS_S3_HOST": "127.0.0.1",
            "DFS_S3_PORT": str(port),
            "DFS_S3_DOMAIN": "s3.example.com",
            "AWS_REGION": DYNAMODB_ENV["AWS_REGION"],
            "DFS_META_URL": meta_url,
            "REPLICATION_FACTOR": "2",
            "DFS_CLUSTER_SECRET": SECRET,
            "DFS_API_SECRET": API_SECRET,  # the API's: it sealed the access key
            "DFS_METRICS_TOKEN": METRICS,
            "DFS_LOG_FORMAT": "json",
        },
        "bootstrap_s3.sh",
    )
    assert "DFS_ADMIN_TOKEN" not in env_keys("bootstrap_s3.sh")
    env["AWS_ENDPOINT_URL"] = moto_endpoint
    start(procs, "s3", exec_start("dfs-s3.service"), env)
    url = f"http://127.0.0.1:{port}"
    wait_until("dfs-s3 /readyz", lambda: http(f"{url}/readyz")[0] == 200, list(procs.values()))
    key = post_json(f"{api_url}/access-keys", ADMIN, {"tenant": "gw"}, tenant_first=api_url)
    s3 = boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=key["access_key_id"],
        aws_secret_access_key=key["secret_access_key"],
        region_name="us-east-1",
    )
    body = random_bytes(78, 1 << 20)
    s3.create_bucket(Bucket="units")
    s3.put_object(Bucket="units", Key="k", Body=body)
    assert s3.get_object(Bucket="units", Key="k")["Body"].read() == body
    # what the CloudWatch agent scrapes on the instance (bootstrap_s3.sh's token file)
    status, text = http(f"{url}/metrics", METRICS)
    assert status == 200
    assert 'dfs_s3_requests_total{operation="PutObject",status="200"} 1.0' in text


def post_json(url: str, token: str, body: dict[str, Any], tenant_first: str) -> Any:
    """POST ``body`` (after creating its tenant through ``tenant_first``'s admin route)."""
    for target, data in (
        (f"{tenant_first}/admin/tenants", {"tenant": body["tenant"]}),
        (url, body),
    ):
        req = urllib.request.Request(target, data=json.dumps(data).encode(), method="POST")
        req.add_header("Authorization", f"Bearer {token}")
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=10.0) as resp:
            answer = json.loads(resp.read())
    return answer


def test_unit_command_lines_round_trip_a_file(
    tmp_path: Path, moto_endpoint: str, procs: dict[str, subprocess.Popen[bytes]]
) -> None:
    prefix = f"units{uuid.uuid4().hex[:8]}-"
    meta_url = f"dynamodb://?table_prefix={prefix}"  # as the bootstrap scripts write it
    # told their ports before they bind them: below the ephemeral range, where no outgoing
    # connection of another test can take one meanwhile
    api_port, *node_ports, s3_port = quiet_ports(4)
    api_env = unit_env(
        {
            "DFS_DATA_DIR": str(tmp_path / "api"),
            "DFS_API_HOST": "127.0.0.1",
            "DFS_API_PORT": str(api_port),
            "AWS_REGION": DYNAMODB_ENV["AWS_REGION"],
            "DFS_META_URL": meta_url,
            "REPLICATION_FACTOR": "2",
            "DFS_REPAIR_GRACE": "900",
            "DFS_API_WORKERS": "2",  # as a host of two cores would run it
            "DFS_PUBLIC_URL": "",  # no load balancer in front: links name the request's host
            "DFS_CLUSTER_SECRET": SECRET,
            "DFS_API_SECRET": API_SECRET,
            "DFS_ADMIN_TOKEN": ADMIN,
            "DFS_METRICS_TOKEN": METRICS,
            "DFS_LOG_FORMAT": "json",
        },
        "bootstrap_api.sh",
    )
    # separate keys for separate powers: the node's env file never carries the API's secret
    assert "DFS_API_SECRET" in env_keys("bootstrap_api.sh")
    assert "DFS_API_SECRET" not in env_keys("bootstrap_node.sh")
    api_env["AWS_ENDPOINT_URL"] = moto_endpoint  # on EC2: DynamoDB's regional endpoint

    # bootstrap_api.sh: `dfs-api init-tables --url "$DFS_META_URL"` before starting the unit
    api_argv = exec_start("dfs-api.service")
    init = subprocess.run(
        [*api_argv, "init-tables", "--url", meta_url],
        env=api_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert init.returncode == 0, init.stderr
    assert f"nodes\t{prefix}dfs-node-registry" in init.stdout

    api = start(procs, "api", api_argv, api_env)
    api_url = f"http://127.0.0.1:{api_port}"
    node_urls = []
    for i in (1, 2):
        port = node_ports[i - 1]
        node_env = unit_env(
            {
                "DFS_DATA_DIR": str(tmp_path / f"node{i}"),
                "DFS_NODE_HOST": "127.0.0.1",
                "NODE_PORT": str(port),
                "DFS_NODE_ADVERTISE_HOST": "127.0.0.1",
                "DFS_NODE_ZONE": f"zone-{i}",
                "AWS_REGION": DYNAMODB_ENV["AWS_REGION"],
                "DFS_META_URL": meta_url,
                "DFS_CLUSTER_SECRET": SECRET,
                "DFS_METRICS_TOKEN": METRICS,
                "DFS_LOG_FORMAT": "json",
            },
            "bootstrap_node.sh",
        )
        node_env["AWS_ENDPOINT_URL"] = moto_endpoint
        start(procs, f"node{i}", exec_start("dfs-node.service"), node_env)
        node_urls.append(f"http://127.0.0.1:{port}")

    everyone = list(procs.values())
    wait_until("API /readyz", lambda: http(f"{api_url}/readyz")[0] == 200, everyone)
    for url in node_urls:
        assert http(f"{url}/readyz")[0] == 200

    # round trip through the real CLI (--proxy: the way clients outside the VPC go)
    src = tmp_path / "in.bin"
    src.write_bytes(random_bytes(77, 3 << 20))
    cli_env = {**os.environ, "DFS_TOKEN": ADMIN, "DFS_CONFIG": str(tmp_path / "none.toml")}
    for flags in ([], ["--proxy"]):
        up = subprocess.run(
            [console_script("dfs-client"), "upload", "--json", *flags, api_url, str(src)],
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert up.returncode == 0, up.stderr
        file_id = json.loads(up.stdout)["file_id"]
        out = tmp_path / f"out{len(flags)}.bin"
        down = subprocess.run(
            [console_script("dfs-client"), "download", *flags, api_url, file_id, str(out)],
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert down.returncode == 0, down.stderr
        assert out.read_bytes() == src.read_bytes()

    status, text = http(f"{api_url}/metrics", METRICS)
    assert status == 200
    assert metric(text, "dfs_files") == 2
    assert metric(text, "dfs_dedup_ratio") == 2.0
    assert metric(text, "dfs_live_nodes") == 2
    status, text = http(f"{node_urls[0]}/metrics", METRICS)
    assert status == 200
    assert metric(text, "dfs_node_bytes_stored") == 3 << 20  # RF 2 over 2 nodes: every chunk

    gateway_round_trip(procs, tmp_path, meta_url, api_url, moto_endpoint, s3_port)

    # SIGTERM (the units' KillSignal): node 2 deregisters and exits cleanly
    node2 = procs["node2"]
    node2.send_signal(signal.SIGTERM)
    assert node2.wait(timeout=STOP_TIMEOUT) == 0
    status, body = http(f"{api_url}/nodes", ADMIN)
    assert status == 200
    # its registry entry is a tombstone at once (down, not merely stale), kept so that repair
    # measures its grace from the shutdown
    nodes = json.loads(body)
    assert nodes["live"] == 1
    assert [n["status"] for n in nodes["nodes"] if not n["live"]] == ["down"]
    assert http(f"{api_url}/readyz")[0] == 503  # one live node < REPLICATION_FACTOR
    log = (tmp_path / "node2.log").read_text()
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert any("deregistering" in r["message"] for r in records), log[-2000:]
    for name in ("s3", "node1", "api"):
        procs[name].send_signal(signal.SIGTERM)
        assert procs[name].wait(timeout=STOP_TIMEOUT) == 0, name
    assert api.returncode == 0
