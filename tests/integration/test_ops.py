"""Operations endpoints in process: /readyz, /metrics (auth, series, values that move)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import random
import re
from pathlib import Path

import aiohttp
import pytest

from dfs import protocol
from dfs.api.context import METRICS as API_METRICS
from dfs.auth import hash_token
from dfs.client import Client
from dfs.node.context import METRICS as NODE_METRICS
from dfs.node.context import MONITORING
from tests.integration.conftest import ADMIN_TOKEN, InProcessCluster

pytestmark = pytest.mark.integration

METRICS_TOKEN = "dfs_metrics-token-for-the-integration-tests-0123"


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one series in Prometheus text, or KeyError."""
    for line in text.splitlines():
        m = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if not m or m.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            return float(m.group(3))
    raise KeyError(f"{name}{labels}")


async def get(url: str, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as s, s.get(url, headers=headers) as r:
        return r.status, await r.text()


def enable_metrics_token(c: InProcessCluster) -> None:
    """The in-process cluster's configs are frozen dataclasses; swap in ones with the token."""
    digest = hash_token(METRICS_TOKEN)
    coord = c.api.coordinator
    coord.cfg = dataclasses.replace(coord.cfg, metrics_token_hash=digest)
    for node in c.nodes:
        state = node.runner.app[MONITORING]
        state.cfg = dataclasses.replace(state.cfg, metrics_token_hash=digest)


async def test_readyz(inproc: InProcessCluster) -> None:
    status, body = await get(f"{inproc.api.url}{protocol.READYZ}")
    assert status == 200, body
    assert json.loads(body)["checks"]["live_nodes"] == 3
    for node in inproc.nodes:
        status, body = await get(f"{node.url}{protocol.READYZ}")
        assert status == 200, body
        assert json.loads(body)["checks"]["registered"] is True


async def test_a_flood_of_node_readyz_costs_one_store_probe(
    inproc: InProcessCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/readyz needs no credentials, so a flood of it must not cost a durable write each (a
    file created, fsync'd and removed per request took the disk and worker threads from chunk
    writes): concurrent requests share one store probe, and its result answers for a second."""
    node = inproc.nodes[0]
    probes = 0
    check_writable = node.store.check_writable

    async def counted() -> None:
        nonlocal probes
        probes += 1
        await check_writable()

    monkeypatch.setattr(node.store, "check_writable", counted)
    async with aiohttp.ClientSession() as s:

        async def ready() -> int:
            async with s.get(f"{node.url}{protocol.READYZ}") as r:
                return r.status

        statuses = await asyncio.gather(*(ready() for _ in range(40)))
    assert statuses == [200] * 40
    assert probes <= 2  # one, or two if the flood outlasted the first result's second


async def test_readyz_fails_without_enough_nodes(inproc: InProcessCluster) -> None:
    for node in inproc.nodes[:2]:
        await node.stop()  # deregisters at once
    stopped, inproc.nodes = inproc.nodes[:2], inproc.nodes[2:]
    assert stopped
    status, body = await get(f"{inproc.api.url}{protocol.READYZ}")
    assert status == 503, body
    doc = json.loads(body)
    assert doc["error"]["code"] == "unavailable"
    assert doc["error"]["details"]["checks"]["live_nodes"] == 1


async def test_metrics_need_a_token(inproc: InProcessCluster) -> None:
    api_metrics = f"{inproc.api.url}{protocol.METRICS}"
    node_metrics = f"{inproc.nodes[0].url}{protocol.METRICS}"
    assert (await get(api_metrics))[0] == 401
    assert (await get(node_metrics))[0] == 401  # no DFS_METRICS_TOKEN: closed
    assert (await get(node_metrics, ADMIN_TOKEN))[0] == 401
    assert (await get(api_metrics, ADMIN_TOKEN))[0] == 200  # the admin token works on the API
    async with Client(inproc.api.url, token=ADMIN_TOKEN) as admin:
        await admin.api.create_tenant("carol")
        user = (await admin.api.create_token("carol", "user"))["token"]
    assert (await get(api_metrics, user))[0] == 403
    enable_metrics_token(inproc)
    assert (await get(api_metrics, METRICS_TOKEN))[0] == 200
    assert (await get(node_metrics, METRICS_TOKEN))[0] == 200
    assert (await get(node_metrics, METRICS_TOKEN + "x"))[0] == 401


async def test_metrics_move_when_a_file_is_uploaded(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    enable_metrics_token(inproc)
    api_url = f"{inproc.api.url}{protocol.METRICS}"
    status, before = await get(api_url, METRICS_TOKEN)
    assert status == 200
    assert sample(before, "dfs_files") == 0
    assert sample(before, "dfs_live_nodes") == 3
    assert sample(before, "dfs_replication_factor") == 2
    data = random.Random(5).randbytes(3 << 20)
    src = tmp_path / "m.bin"
    src.write_bytes(data)
    async with Client(inproc.api.url, token=ADMIN_TOKEN) as client:
        await client.upload(src)
        src2 = tmp_path / "m2.bin"
        src2.write_bytes(data)  # the same bytes again: pure dedup
        await client.upload(src2)
    _, after = await get(api_url, METRICS_TOKEN)
    assert sample(after, "dfs_files") == 2
    assert sample(after, "dfs_logical_bytes") == 2 * len(data)
    assert sample(after, "dfs_stored_bytes") == len(data)
    assert sample(after, "dfs_dedup_ratio") == 2.0
    assert sample(after, "dfs_metadata_up") == 1
    route = {"route": protocol.INIT_UPLOAD, "method": "POST", "status": "201"}
    assert sample(after, "dfs_http_requests_total", **route) == 2
    assert sample(after, "dfs_http_request_duration_seconds_count", **route) == 2
    assert sample(after, "dfs_http_request_bytes_total", route=protocol.INIT_UPLOAD) > 0
    assert sample(after, "dfs_http_response_bytes_total", route=protocol.INIT_UPLOAD) > 0
    # the repairer reports through the hook: a pass over a healthy cluster finds nothing
    await inproc.api.repair.repair_once()
    _, repaired = await get(api_url, METRICS_TOKEN)
    assert sample(repaired, "dfs_under_replicated_chunks") == 0
    assert sample(repaired, "dfs_repair_queue_size") == 0
    inproc.api.runner.app[API_METRICS].set_repair_status(under_replicated=4, repair_queue=3)
    _, hooked = await get(api_url, METRICS_TOKEN)
    assert sample(hooked, "dfs_under_replicated_chunks") == 4
    assert sample(hooked, "dfs_repair_queue_size") == 3

    stored = 0.0
    bytes_in = 0.0
    for node in inproc.nodes:
        status, text = await get(f"{node.url}{protocol.METRICS}", METRICS_TOKEN)
        assert status == 200
        stored += sample(text, "dfs_node_bytes_stored")
        assert sample(text, "dfs_node_registered") == 1
        assert sample(text, "dfs_node_replication_queue_size") == 0
        assert sample(text, "dfs_node_capacity_bytes") > 0
        with contextlib.suppress(KeyError):  # KeyError: this node was never a target
            bytes_in += sample(text, "dfs_http_request_bytes_total", route=protocol.STORE_CHUNK)
        # a raw URL with a query string is still one series under its route
        assert 'route="/store-chunk?' not in text
    assert stored == 2 * len(data)  # replication factor 2, the second upload sent nothing
    assert bytes_in == 2 * len(data)  # client -> primary, primary -> replica
    assert inproc.nodes[0].runner.app[NODE_METRICS] is not None


async def test_unknown_urls_share_one_series(inproc: InProcessCluster) -> None:
    for i in range(3):
        assert (await get(f"{inproc.nodes[0].url}/no-such-{i}"))[0] == 404
    enable_metrics_token(inproc)
    _, text = await get(f"{inproc.nodes[0].url}{protocol.METRICS}", METRICS_TOKEN)
    assert sample(text, "dfs_http_requests_total", route="<unmatched>", status="404") == 3
