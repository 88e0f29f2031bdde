"""The IAM roles against the DynamoDB calls the code really makes, recorded while it runs on
moto's DynamoDB server (tests/deploy/dynamo_calls.py). A call a role lacks fails on AWS with
AccessDenied: the node's clean-shutdown tombstone (UpdateItem) once did, silently, because
shutdown only logs a failed deregistration.

- node: a real node (the code ``dfs-node`` runs, configured as bootstrap_node.sh configures
  it) registers, heartbeats and shuts down; its role must grant exactly those calls, on
  exactly those tables.
- api: the store's calls are derived from its source in test_terraform.py (every call, also
  of paths no workload reaches); here a running API (uploads, downloads, listing, deletes,
  repair and GC passes, node heartbeats and deregistration, ``init-tables``) must need
  nothing its role lacks, on no table Terraform does not declare.
- s3 (the gateway): the store's calls but table creation's, derived in test_terraform.py;
  here a running gateway (buckets, PutObject, GetObject, HeadObject, listings, CopyObject,
  versioning, tagging, ACLs, CORS, deletes) needs nothing its role lacks."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import boto3
import pytest

from dfs import access_keys
from dfs.api.app import start_api
from dfs.auth import hash_token
from dfs.client import Client
from dfs.config import ApiConfig, NodeConfig, load_node_config
from dfs.meta import open_metadata_store
from dfs.meta.base import AccessKeyRecord
from dfs.meta.init_tables import init_tables_main
from dfs.node.app import start_node
from dfs.s3.app import start_s3
from tests.conftest import DYNAMODB_ENV, random_bytes
from tests.deploy.dynamo_calls import NO_TABLE, Access, recording

pytestmark = pytest.mark.deploy

HEARTBEAT_INTERVAL = 0.2
LOOP_TIMEOUT = 30.0
SECRET = "role-calls-test-cluster-secret-0123456789abcdef"
ADMIN = "dfs_role-calls-test-admin-token-0123456789abcdef"
MIB = 1 << 20


@dataclass
class Tables:
    prefix: str
    meta_url: str  # as the bootstrap scripts write it; the endpoint comes from the env


@pytest.fixture
async def tables(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Tables:
    """Fresh tables on moto (Terraform's job on AWS), and the environment the instance role
    and the regional endpoint give on EC2."""
    for key, value in {**DYNAMODB_ENV, "AWS_ENDPOINT_URL": moto_endpoint}.items():
        monkeypatch.setenv(key, value)
    prefix = f"role{uuid.uuid4().hex[:8]}-"
    meta_url = f"dynamodb://?table_prefix={prefix}"
    store = await open_metadata_store(f"{meta_url}&create_tables=1")
    await store.close()
    return Tables(prefix, meta_url)


def resource_of(access: Access, prefix: str, terraform: dict[str, Any]) -> str:
    """The Terraform expression of the ARN IAM checks for ``access``."""
    by_name = {prefix + t["name"]: key for key, t in terraform["locals"]["tables"].items()}
    assert access.table != NO_TABLE, f"{access.action} is not scoped to a table"
    assert access.table in by_name, f"{access.table} is not a table Terraform declares"
    arn = f'${{aws_dynamodb_table.main["{by_name[access.table]}"].arn}}'
    return f"{arn}/index/*" if access.index else arn


def statements(terraform: dict[str, Any], doc: str) -> list[dict[str, Any]]:
    return list(terraform["data"]["aws_iam_policy_document"][doc]["statement"])


def granted(terraform: dict[str, Any], doc: str) -> set[tuple[str, str]]:
    """(dynamodb action, resource) pairs one aws_iam_policy_document allows."""
    pairs = set()
    for s in statements(terraform, doc):
        resources = s["resources"]
        assert isinstance(resources, list), f"{doc}: list the resources one by one"
        for action in s["actions"]:
            if action.startswith("dynamodb:"):
                pairs |= {(action, r) for r in resources}
    return pairs


async def wait_until(what: str, predicate: Any) -> None:
    deadline = time.monotonic() + LOOP_TIMEOUT
    while not await predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(HEARTBEAT_INTERVAL / 2)


async def test_the_node_role_grants_exactly_what_a_node_calls(
    terraform: dict[str, Any], tables: Tables, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        **os.environ,
        "DFS_DATA_DIR": str(tmp_path / "node"),
        "DFS_NODE_HOST": "127.0.0.1",
        "NODE_PORT": "0",
        "DFS_META_URL": tables.meta_url,
        "DFS_CLUSTER_SECRET": SECRET,
        "NODE_HEARTBEAT_INTERVAL": str(HEARTBEAT_INTERVAL),
    }
    cfg = load_node_config(env, lambda _: "node-role-1")
    admin = await open_metadata_store(tables.meta_url)

    async def live() -> list[str]:
        return [n.node_id for n in await admin.list_live_nodes(time.time())]

    try:
        with recording(monkeypatch) as recorder:
            node = await start_node(cfg)  # registers once before returning
            registered = recorder.take()
            assert await live() == ["node-role-1"]
            recorder.take()  # that check is the test's own call
            sent = recorder.requests

            async def two_more() -> bool:
                return recorder.requests >= sent + 2

            await wait_until("the heartbeat loop", two_more)
            heartbeats = recorder.take()
            await node.stop()  # what SIGTERM does: stop heartbeating, leave the registry
            stopped = recorder.take()
        # every phase really reached DynamoDB, and the tombstone landed
        assert registered, "registration sent nothing"
        assert heartbeats, "the heartbeat loop sent nothing"
        assert stopped, "the clean shutdown sent nothing"
        assert await live() == []
    finally:
        await admin.close()

    calls = registered | heartbeats | stopped
    needed = {(a.action, resource_of(a, tables.prefix, terraform)) for a in calls}
    assert granted(terraform, "node") == needed


def chunk_sizes(base: Path) -> list[int]:
    return [p.stat().st_size for p in base.glob("node*/chunks/**/*") if p.is_file()]


async def _api_workload(url: str, tmp_path: Path) -> None:
    """What a cluster does in a day, in a few seconds: uploads (one a duplicate), reads,
    listings, a delete that GC then collects, and /admin/repair passes."""
    files = []
    for i, size in enumerate((3 * MIB + 7, 100, 3 * MIB + 7)):
        path = tmp_path / f"f{i}.bin"
        path.write_bytes(random_bytes(i % 2, size))
        files.append(path)
    async with Client(url, token=ADMIN, concurrency=4) as client:
        ups = [await client.upload(p) for p in files]
        await client.download(ups[0].file_id, tmp_path / "out.bin")
        await client.stat(ups[1].file_id)
        await client.ls()
        await client.check(files[0])
        await client.download_url(ups[1].file_id)
        await client.hashes()
        await client.list_nodes()
        await client.delete(ups[1].file_id)
        t_deleted = time.time()
        await client.stats()

    async def passes_since_delete() -> bool:
        headers = {"Authorization": f"Bearer {ADMIN}"}
        async with (
            aiohttp.ClientSession() as s,
            s.get(f"{url}/admin/repair", headers=headers) as r,
        ):
            rep = (await r.json())["repair"]
        return bool(rep) and not rep["running"] and rep["started_at"] > t_deleted + 1.0

    async def collected() -> bool:  # the deleted file's only chunk is 100 bytes
        return 100 not in await asyncio.to_thread(chunk_sizes, tmp_path)

    await wait_until("repair passes after the delete", passes_since_delete)
    await wait_until("GC collecting the deleted file", collected)


async def test_the_api_role_grants_what_a_running_api_calls(
    terraform: dict[str, Any], tables: Tables, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with recording(monkeypatch) as recorder:
        argv = ["--url", tables.meta_url, "--wait", "30"]
        assert await asyncio.to_thread(init_tables_main, argv) == 0  # as bootstrap_api.sh runs it
        api = await start_api(
            ApiConfig(
                host="127.0.0.1",
                port=0,
                data_dir=tmp_path / "api",
                meta_url=tables.meta_url,
                replication_factor=2,
                cluster_secret=SECRET.encode(),
                admin_token_hash=hash_token(ADMIN),
                repair_grace=0.5,
                repair_interval=0.2,
                repair_full_scan=0.0,
                gc_grace=5.0,  # finalize refuses uploads older than 0.9 x grace: room under load
                gc_interval=0.2,
                orphan_interval=0.5,
            )
        )
        nodes = []
        try:
            for i in (1, 2):  # nodes on DFS_API_URL: every registry call is the API's
                cfg = NodeConfig(
                    node_id=f"node{i}",
                    host="127.0.0.1",
                    port=0,
                    advertise_host="127.0.0.1",
                    data_dir=tmp_path / f"node{i}",
                    api_url=api.url,
                    heartbeat_interval=HEARTBEAT_INTERVAL,
                    heartbeat_timeout=3.0,
                    cluster_secret=SECRET.encode(),
                )
                nodes.append(await start_node(cfg))
            await _api_workload(api.url, tmp_path)
        finally:
            for node in nodes:
                await node.stop()  # deregistration through the API
            await api.stop()
    calls = recorder.take()
    used = {a.action for a in calls}
    [tables_stmt] = [s for s in statements(terraform, "api") if s.get("sid") == "DfsTables"]
    assert used <= set(tables_stmt["actions"]), used - set(tables_stmt["actions"])
    for a in calls:
        resource_of(a, tables.prefix, terraform)  # a declared table (or index): table_resources
    # the workload is broad: it reached every table
    declared = {tables.prefix + t["name"] for t in terraform["locals"]["tables"].values()}
    assert {a.table for a in calls} == declared
    assert "dynamodb:CreateTable" not in used  # Terraform creates them; init-tables describes


GATEWAY_SECRET = b"role-calls-test-api-secret-0123456789abcdef"


def _gateway_workload(url: str, key_id: str, secret: str) -> None:
    """What S3 clients do: buckets, objects in and out, listings, a copy, deletes."""
    s3 = boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket="roles")
    s3.head_bucket(Bucket="roles")
    body = random_bytes(3, 3 * MIB + 7)
    s3.put_object(Bucket="roles", Key="a/big.bin", Body=body)
    s3.put_object(Bucket="roles", Key="a/big-again.bin", Body=body)  # a duplicate
    s3.put_object(Bucket="roles", Key="empty", Body=b"")
    assert s3.get_object(Bucket="roles", Key="a/big.bin")["Body"].read() == body
    s3.get_object(Bucket="roles", Key="a/big.bin", Range="bytes=10-20")["Body"].read()
    s3.head_object(Bucket="roles", Key="empty")
    s3.copy_object(
        Bucket="roles", Key="copy.bin", CopySource={"Bucket": "roles", "Key": "a/big.bin"}
    )
    s3.list_objects_v2(Bucket="roles", Delimiter="/")
    s3.list_objects_v2(Bucket="roles", Prefix="a/", MaxKeys=1)
    s3.list_buckets()
    s3.get_bucket_location(Bucket="roles")
    # the operations of dfs.s3.subresources: versions, tags, ACLs, CORS, DeleteObjects
    s3.put_bucket_versioning(Bucket="roles", VersioningConfiguration={"Status": "Suspended"})
    s3.get_bucket_versioning(Bucket="roles")
    s3.list_object_versions(Bucket="roles", MaxKeys=1)
    s3.list_objects(Bucket="roles", Marker="a/")
    s3.put_object_tagging(
        Bucket="roles", Key="empty", Tagging={"TagSet": [{"Key": "k", "Value": "v"}]}
    )
    s3.get_object_tagging(Bucket="roles", Key="empty")
    s3.put_object_acl(Bucket="roles", Key="empty", ACL="public-read")
    s3.get_bucket_acl(Bucket="roles")
    cors = {"CORSRules": [{"AllowedMethods": ["GET"], "AllowedOrigins": ["*"]}]}
    s3.put_bucket_cors(Bucket="roles", CORSConfiguration=cors)
    s3.get_bucket_cors(Bucket="roles")
    s3.delete_bucket_cors(Bucket="roles")
    s3.delete_objects(Bucket="roles", Delete={"Objects": [{"Key": "a/big.bin"}]})
    for key in ("a/big-again.bin", "empty", "copy.bin"):
        s3.delete_object(Bucket="roles", Key=key)
    for v in s3.list_object_versions(Bucket="roles").get("DeleteMarkers", []):
        s3.delete_object(Bucket="roles", Key=v["Key"], VersionId=v["VersionId"])
    s3.delete_bucket(Bucket="roles")


async def test_the_gateway_role_grants_what_a_running_gateway_calls(
    terraform: dict[str, Any], tables: Tables, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await open_metadata_store(tables.meta_url)
    key_id, secret = access_keys.new_key_id(), access_keys.new_secret()
    try:  # the tenant and its key, as dfs-api makes them (not the gateway's calls)
        await store.create_tenant("t", time.time())
        sealed = access_keys.seal_secret(GATEWAY_SECRET, key_id, "t", secret)
        await store.put_access_key(AccessKeyRecord(key_id, "t", sealed, "", time.time()))
    finally:
        await store.close()
    nodes = []
    for i in (1, 2):  # registered once at start; no heartbeat within the workload
        cfg = NodeConfig(
            node_id=f"node{i}",
            host="127.0.0.1",
            port=0,
            advertise_host="127.0.0.1",
            data_dir=tmp_path / f"node{i}",
            meta_url=tables.meta_url,
            heartbeat_interval=120.0,
            heartbeat_timeout=300.0,
            cluster_secret=SECRET.encode(),
        )
        nodes.append(await start_node(cfg))
    try:
        with recording(monkeypatch) as recorder:
            gateway = await start_s3(
                ApiConfig(
                    host="127.0.0.1",
                    port=0,
                    data_dir=tmp_path / "s3",
                    meta_url=tables.meta_url,
                    replication_factor=2,
                    cluster_secret=SECRET.encode(),
                    api_secret=GATEWAY_SECRET,
                    heartbeat_timeout=300.0,
                    maintenance=False,
                )
            )
            try:
                await asyncio.to_thread(_gateway_workload, gateway.url, key_id, secret)
            finally:
                await gateway.stop()
        calls = recorder.take()
    finally:
        for node in nodes:
            await node.stop()
    used = {a.action for a in calls}
    assert {"dynamodb:PutItem", "dynamodb:Query"} <= used  # it really ran on DynamoDB
    [tables_stmt] = [s for s in statements(terraform, "s3") if s.get("sid") == "DfsTables"]
    assert used <= set(tables_stmt["actions"]), used - set(tables_stmt["actions"])
    for a in calls:
        resource_of(a, tables.prefix, terraform)  # a declared table (or index): table_resources
