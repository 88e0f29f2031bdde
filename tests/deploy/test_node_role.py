"""The node's IAM role grants exactly the DynamoDB calls a node really makes, on exactly the
tables it really touches: a real node (the code ``dfs-node`` runs, configured as
bootstrap_node.sh configures it) registers, heartbeats and shuts down cleanly against moto's
DynamoDB server while every request it sends is recorded (tests/deploy/dynamo_calls.py).
A call the role lacks fails on AWS with AccessDenied: the clean shutdown's tombstone
(UpdateItem) once did, silently, because shutdown only logs a failed deregistration."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from dfs.config import load_node_config
from dfs.meta import open_metadata_store
from dfs.node.app import start_node
from tests.conftest import DYNAMODB_ENV
from tests.deploy.dynamo_calls import NO_TABLE, Access, recording

pytestmark = pytest.mark.deploy

HEARTBEAT_INTERVAL = 0.2
LOOP_TIMEOUT = 30.0


def resource_of(access: Access, prefix: str, terraform: dict[str, Any]) -> str:
    """The Terraform expression of the ARN IAM checks for ``access``."""
    by_name = {prefix + t["name"]: key for key, t in terraform["locals"]["tables"].items()}
    assert access.table != NO_TABLE, f"{access.action} is not scoped to a table"
    assert access.table in by_name, f"{access.table} is not a table Terraform declares"
    arn = f'${{aws_dynamodb_table.main["{by_name[access.table]}"].arn}}'
    return f"{arn}/index/*" if access.index else arn


def granted(terraform: dict[str, Any], doc: str) -> set[tuple[str, str]]:
    """(dynamodb action, resource) pairs one aws_iam_policy_document allows."""
    statements = terraform["data"]["aws_iam_policy_document"][doc]["statement"]
    pairs = set()
    for s in statements:
        resources = s["resources"]
        assert isinstance(resources, list), f"{doc}: list the node's resources one by one"
        for action in s["actions"]:
            if action.startswith("dynamodb:"):
                pairs |= {(action, r) for r in resources}
    return pairs


async def _wait_for_heartbeats(recorder: Any, count: int) -> None:
    deadline = time.monotonic() + LOOP_TIMEOUT
    while recorder.requests < count:
        assert time.monotonic() < deadline, "the heartbeat loop sent nothing"
        await asyncio.sleep(HEARTBEAT_INTERVAL / 2)


async def test_the_node_role_grants_exactly_what_a_node_calls(
    terraform: dict[str, Any],
    moto_endpoint: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prefix = f"role{uuid.uuid4().hex[:8]}-"
    meta_url = f"dynamodb://?table_prefix={prefix}"  # as bootstrap_node.sh writes it
    for key, value in {**DYNAMODB_ENV, "AWS_ENDPOINT_URL": moto_endpoint}.items():
        monkeypatch.setenv(key, value)  # on EC2: the instance role and the regional endpoint
    admin = await open_metadata_store(f"{meta_url}&create_tables=1")  # Terraform's job on AWS
    env = {
        **os.environ,
        "DFS_DATA_DIR": str(tmp_path / "node"),
        "DFS_NODE_HOST": "127.0.0.1",
        "NODE_PORT": "0",
        "DFS_META_URL": meta_url,
        "DFS_CLUSTER_SECRET": "node-role-test-cluster-secret-0123456789abcdef",
        "NODE_HEARTBEAT_INTERVAL": str(HEARTBEAT_INTERVAL),
    }
    cfg = load_node_config(env, lambda _: "node-role-1")
    try:
        with recording(monkeypatch) as recorder:
            node = await start_node(cfg)  # registers once before returning
            registered = recorder.take()
            live = [n.node_id for n in await admin.list_live_nodes(time.time())]
            assert live == ["node-role-1"]
            recorder.take()  # the check above is the test's own call
            sent = recorder.requests
            await _wait_for_heartbeats(recorder, sent + 2)
            heartbeats = recorder.take()
            await node.stop()  # what SIGTERM does: stop heartbeating, leave the registry
            stopped = recorder.take()
        # every phase really reached DynamoDB, and the tombstone landed
        assert registered, "registration sent nothing"
        assert heartbeats, "the heartbeat loop sent nothing"
        assert stopped, "the clean shutdown sent nothing"
        assert await admin.list_live_nodes(time.time()) == []
    finally:
        await admin.close()

    calls = registered | heartbeats | stopped
    needed = {(a.action, resource_of(a, prefix, terraform)) for a in calls}
    assert granted(terraform, "node") == needed
