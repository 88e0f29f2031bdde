"""The bootstrap scripts run end to end, as cloud-init runs them on EC2, against loopback
stand-ins (tests/deploy/standins.py): a fake IMDSv2, moto's S3 (the artifacts bucket holding a
release) and SSM (the secrets), recording stand-ins for the commands that would change the
machine, and a throwaway root directory (DFS_ROOT) for everything the scripts write. The
release is really installed: a virtualenv is created and pip installs the release's wheel,
only by hash and only from the release's own files; anything else is refused."""

from __future__ import annotations

import hashlib
import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
import yaml

from tests.deploy.conftest import SCRIPTS, SYSTEMD
from tests.deploy.standins import (
    Imds,
    Machine,
    fake_imds,
    lock_for,
    make_machine,
    mode,
    script_env,
    standin_calls,
    standin_wheel,
)

pytestmark = pytest.mark.deploy

REGION = "eu-west-1"
ZONE = "eu-west-1b"
PRIVATE_IP = "10.40.101.7"
VERSION = "1.2.3"
RUN_TIMEOUT = 180
AGENT_ETC = "opt/aws/amazon-cloudwatch-agent/etc"
SECRETS = {
    "cluster-secret": "bootstrap-test-cluster-secret-0123456789",
    "api-secret": "bootstrap-test-api-secret-0123456789",
    "admin-token": "dfs_bootstrap-test-admin-token-0123456789",
    "metrics-token": "bootstrap-test-metrics-token-0123456789",
}


@dataclass
class Cloud:
    moto: str
    bucket: str
    ssm_prefix: str
    s3: object

    def publish(self, version: str, files: dict[str, bytes]) -> None:
        for name, data in files.items():
            self.s3.put_object(  # type: ignore[attr-defined]
                Bucket=self.bucket, Key=f"releases/{version}/{name}", Body=data
            )


@pytest.fixture
def cloud(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Cloud:
    """The artifacts bucket and the SSM parameters Terraform creates, on moto."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL": moto_endpoint,
    }.items():
        monkeypatch.setenv(key, value)
    tag = uuid.uuid4().hex[:10]
    s3 = boto3.client("s3", region_name=REGION)
    bucket = f"dfs-artifacts-{tag}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    ssm = boto3.client("ssm", region_name=REGION)
    prefix = f"/bt{tag}"
    for name, value in SECRETS.items():
        ssm.put_parameter(Name=f"{prefix}/{name}", Value=value, Type="SecureString")
    return Cloud(moto=moto_endpoint, bucket=bucket, ssm_prefix=prefix, s3=s3)


@pytest.fixture
def imds() -> Iterator[Imds]:
    with fake_imds(
        {
            "placement/region": REGION,
            "placement/availability-zone": ZONE,
            "local-ipv4": PRIVATE_IP,
        }
    ) as server:
        yield server


def release(cloud: Cloud, version: str = VERSION) -> str:
    """Publish a release as scripts/release.sh lays it out; returns its lock's sha256."""
    name, wheel = standin_wheel(version)
    lock = lock_for(version, wheel)
    cloud.publish(version, {name: wheel, "requirements.lock": lock})
    return hashlib.sha256(lock).hexdigest()


def run(
    script: str, machine: Machine, imds: Imds, cloud: Cloud, settings: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    role = script.removeprefix("bootstrap_").removesuffix(".sh")
    env = script_env(
        machine,
        imds,
        cloud.moto,
        {
            "DFS_RELEASE_BUCKET": cloud.bucket,
            "DFS_RELEASE_VERSION": VERSION,
            "DFS_SSM_PREFIX": cloud.ssm_prefix,
            "DFS_TABLE_PREFIX": "prod-",
            "DFS_METRICS_GROUP": "/dfs/metrics",
            "DFS_METRICS_NAMESPACE": "dfs",
            "DFS_UNIT_FILE": str(SYSTEMD / f"dfs-{role}.service"),
            **settings,
        },
    )
    return subprocess.run(
        ["bash", str(SCRIPTS / script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )


def env_file(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition("=")
        assert value.startswith('"'), line
        assert value.endswith('"'), line
        out[key] = value[1:-1]
    return out


def test_node_bootstrap_runs_end_to_end_and_again(tmp_path: Path, imds: Imds, cloud: Cloud) -> None:
    machine = make_machine(tmp_path)
    settings = {"DFS_RELEASE_SHA256": release(cloud), "DFS_DATA_VOLUME_ID": machine.volume_id}
    proc = run("bootstrap_node.sh", machine, imds, cloud, settings)
    assert proc.returncode == 0, proc.stderr
    root = machine.root
    assert imds.untokened == []  # IMDSv2 only
    calls = machine.calls()
    device = str(root / "dev" / "nvme1n1")
    assert f"mkfs.xfs -q -L dfs-data {device}" in calls
    assert f"mount {root}/var/lib/dfs" in calls
    assert f"chown dfs:dfs {root}/var/lib/dfs" in calls
    assert any(c.startswith("useradd --system --user-group") for c in calls)
    assert calls[-3:] == [
        "systemctl daemon-reload",
        "systemctl enable dfs-node.service",
        "systemctl restart dfs-node.service",
    ]
    assert (root / "etc/systemd/system/dfs-node.service").read_text() == (
        SYSTEMD / "dfs-node.service"
    ).read_text()
    fstab = (root / "etc/fstab").read_text()
    assert fstab == f"UUID={machine.uuid} /var/lib/dfs xfs defaults,noatime,nofail 0 2\n"
    env_path = root / "etc/dfs/node.env"
    assert mode(env_path) == 0o600
    env = env_file(env_path)
    assert env["DFS_DATA_DIR"] == "/var/lib/dfs"  # the service's path, not the test root's
    assert env["DFS_NODE_ADVERTISE_HOST"] == PRIVATE_IP
    assert env["DFS_NODE_ZONE"] == ZONE
    assert env["AWS_REGION"] == REGION
    assert env["DFS_META_URL"] == "dynamodb://?table_prefix=prod-"
    assert env["DFS_CLUSTER_SECRET"] == SECRETS["cluster-secret"]
    assert env["DFS_METRICS_TOKEN"] == SECRETS["metrics-token"]
    assert "DFS_API_SECRET" not in env
    assert "DFS_ADMIN_TOKEN" not in env
    assert (root / "opt/dfs/venv/bin/dfs-node").is_file()  # the release really installed
    agent = json.loads((root / AGENT_ETC / "dfs.json").read_text())
    disk = agent["metrics"]["metrics_collected"]["disk"]
    assert disk["resources"] == ["/var/lib/dfs"]  # the node disk alarm's path dimension
    assert agent["metrics"]["append_dimensions"] == {"InstanceId": "${aws:InstanceId}"}
    assert (
        f"amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s -c file:/{AGENT_ETC}/dfs.json"
        in (calls)
    )

    # again (an upgrade re-runs it): no second format, no second fstab line
    proc = run("bootstrap_node.sh", machine, imds, cloud, settings)
    assert proc.returncode == 0, proc.stderr
    assert machine.calls().count(f"mkfs.xfs -q -L dfs-data {device}") == 1
    assert (root / "etc/fstab").read_text() == fstab


def test_api_bootstrap_checks_the_tables_as_dfs_then_starts(
    tmp_path: Path, imds: Imds, cloud: Cloud
) -> None:
    machine = make_machine(tmp_path)
    settings = {
        "DFS_RELEASE_SHA256": release(cloud),
        "DFS_API_PORT": "8081",
        "DFS_PUBLIC_URL": "https://api.example.com",
    }
    proc = run("bootstrap_api.sh", machine, imds, cloud, settings)
    assert proc.returncode == 0, proc.stderr
    root = machine.root
    calls = machine.calls()
    assert not any(c.startswith(("mkfs", "mount")) for c in calls)
    assert (
        f"runuser -u dfs -- {root}/opt/dfs/venv/bin/dfs-api init-tables --url "
        + ("dynamodb://?table_prefix=prod-")
        in calls
    )
    assert standin_calls(machine) == [
        {
            "argv": ["dfs-api", "init-tables", "--url", "dynamodb://?table_prefix=prod-"],
            "meta_url": "dynamodb://?table_prefix=prod-",
        }
    ]
    assert calls[-1] == "systemctl restart dfs-api.service"
    env = env_file(root / "etc/dfs/api.env")
    assert mode(root / "etc/dfs/api.env") == 0o600
    assert env["DFS_API_PORT"] == "8081"
    # signed links name the load balancer's https address, not the plain HTTP the API sees
    assert env["DFS_PUBLIC_URL"] == "https://api.example.com"
    assert env["DFS_API_SECRET"] == SECRETS["api-secret"]
    assert env["DFS_ADMIN_TOKEN"] == SECRETS["admin-token"]
    assert imds.untokened == []
    # the agent scrapes this API's /metrics with the metrics token (root-only)
    assert (root / "etc/dfs/metrics-token").read_text() == SECRETS["metrics-token"]
    assert mode(root / "etc/dfs/metrics-token") == 0o600
    scrape = yaml.safe_load((root / AGENT_ETC / "dfs-prometheus.yaml").read_text())
    [job] = scrape["scrape_configs"]
    assert job["static_configs"] == [{"targets": ["127.0.0.1:8081"]}]
    assert job["bearer_token_file"] == "/etc/dfs/metrics-token"
    agent = json.loads((root / AGENT_ETC / "dfs.json").read_text())
    prometheus = agent["logs"]["metrics_collected"]["prometheus"]
    assert prometheus["log_group_name"] == "/dfs/metrics"
    assert prometheus["emf_processor"]["metric_namespace"] == "dfs"


def test_s3_gateway_bootstrap_writes_its_env_and_starts(
    tmp_path: Path, imds: Imds, cloud: Cloud
) -> None:
    machine = make_machine(tmp_path)
    settings = {
        "DFS_RELEASE_SHA256": release(cloud),
        "DFS_S3_PORT": "9101",
        "DFS_S3_DOMAIN": "s3.example.com",
    }
    proc = run("bootstrap_s3.sh", machine, imds, cloud, settings)
    assert proc.returncode == 0, proc.stderr
    root = machine.root
    calls = machine.calls()
    assert calls[-1] == "systemctl restart dfs-s3.service"
    assert standin_calls(machine) == []  # no init-tables: the API's bootstrap checks them
    assert (root / "etc/systemd/system/dfs-s3.service").read_text() == (
        SYSTEMD / "dfs-s3.service"
    ).read_text()
    env = env_file(root / "etc/dfs/s3.env")
    assert mode(root / "etc/dfs/s3.env") == 0o600
    assert env["DFS_S3_HOST"] == "0.0.0.0"
    assert env["DFS_S3_PORT"] == "9101"
    assert env["DFS_S3_DOMAIN"] == "s3.example.com"
    assert env["DFS_META_URL"] == "dynamodb://?table_prefix=prod-"
    assert env["AWS_REGION"] == REGION
    assert env["DFS_CLUSTER_SECRET"] == SECRETS["cluster-secret"]
    assert env["DFS_API_SECRET"] == SECRETS["api-secret"]  # access keys are sealed under it
    assert "DFS_ADMIN_TOKEN" not in env  # the gateway holds no admin power
    assert env["DFS_METRICS_TOKEN"] == SECRETS["metrics-token"]
    assert imds.untokened == []
    # the agent scrapes this gateway's /metrics with the metrics token (root-only)
    assert (root / "etc/dfs/metrics-token").read_text() == SECRETS["metrics-token"]
    assert mode(root / "etc/dfs/metrics-token") == 0o600
    scrape = yaml.safe_load((root / AGENT_ETC / "dfs-prometheus.yaml").read_text())
    [job] = scrape["scrape_configs"]
    assert job["job_name"] == "dfs-s3"
    assert job["static_configs"] == [{"targets": ["127.0.0.1:9101"]}]
    assert job["bearer_token_file"] == "/etc/dfs/metrics-token"
    agent = json.loads((root / AGENT_ETC / "dfs.json").read_text())
    prometheus = agent["logs"]["metrics_collected"]["prometheus"]
    assert prometheus["log_group_name"] == "/dfs/metrics"
    emf = prometheus["emf_processor"]
    assert emf["metric_namespace"] == "dfs"
    sent = {sel for d in emf["metric_declaration"] for sel in d["metric_selectors"]}
    assert sent == {
        "^dfs_s3_requests_total$",
        "^dfs_s3_auth_failures_total$",
        "^dfs_s3_requests_in_flight$",
    }
    assert (
        f"amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s -c file:/{AGENT_ETC}/dfs.json"
        in calls
    )


def refused(proc: subprocess.CompletedProcess[str], machine: Machine) -> None:
    assert proc.returncode != 0
    assert not (machine.root / "opt/dfs/venv/bin/dfs-node").exists()
    assert not any(c.startswith("systemctl") for c in machine.calls())


def test_a_lock_other_than_the_pinned_one_is_refused(
    tmp_path: Path, imds: Imds, cloud: Cloud
) -> None:
    machine = make_machine(tmp_path)
    pinned = release(cloud)
    cloud.publish(VERSION, {"requirements.lock": b"dfs==1.2.3\n"})  # replaced in the bucket
    settings = {"DFS_RELEASE_SHA256": pinned, "DFS_DATA_VOLUME_ID": machine.volume_id}
    proc = run("bootstrap_node.sh", machine, imds, cloud, settings)
    refused(proc, machine)
    assert "not the pinned" in proc.stderr


def test_a_wheel_other_than_the_locked_one_is_refused(
    tmp_path: Path, imds: Imds, cloud: Cloud
) -> None:
    """The lock matches its pin, but the wheel beside it is another build: pip refuses it
    (--require-hashes), and there is no index to fall back to."""
    machine = make_machine(tmp_path)
    pinned = release(cloud)
    name, other = standin_wheel(VERSION, flavour="rebuilt")
    cloud.publish(VERSION, {name: other})
    settings = {"DFS_RELEASE_SHA256": pinned, "DFS_DATA_VOLUME_ID": machine.volume_id}
    proc = run("bootstrap_node.sh", machine, imds, cloud, settings)
    refused(proc, machine)
    assert "hash" in proc.stderr.lower()


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("DFS_RELEASE_VERSION", "main", "must be a release version"),
        ("DFS_RELEASE_SHA256", "abc", "64 hex digits"),
    ],
)
def test_unpinned_settings_are_refused(
    tmp_path: Path, imds: Imds, cloud: Cloud, setting: str, value: str, message: str
) -> None:
    machine = make_machine(tmp_path)
    settings = {"DFS_RELEASE_SHA256": release(cloud), "DFS_DATA_VOLUME_ID": machine.volume_id}
    proc = run("bootstrap_node.sh", machine, imds, cloud, {**settings, setting: value})
    refused(proc, machine)
    assert message in proc.stderr
