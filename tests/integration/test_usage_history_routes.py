"""The dashboards' routes (dfs.api.routes_usage): a tenant's usage over time, sampled by the
background loop into the metadata store, and every tenant's usage for admins (issue 15)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from dfs import protocol
from tests.integration.conftest import running_cluster
from tests.integration.test_openapi import ADMIN, API, Caller
from tests.integration.test_security import tenant_tokens
from tests.integration.test_seed_api import req

pytestmark = pytest.mark.integration


async def test_history_is_sampled_per_tenant_and_admins_see_every_tenant(
    tmp_path: Path,
) -> None:
    # a short interval: the API's own loop samples while the test runs
    async with running_cluster(tmp_path, api_cfg={"usage_sample_interval": 0.3}) as c:
        api = c.api.url
        alice, bob = await tenant_tokens(api, "alice", "bob")
        await req("POST", f"{api}/buckets", alice, json={"name": "alice-files"})
        q = "bucket=alice-files&key=a.bin&filename=a.bin"
        status, _, _ = await req("POST", f"{api}/upload?{q}", alice, data=b"x" * 5000)
        assert status == 201
        await req("POST", f"{api}/upload?{q.replace('a.bin', 'b.bin')}", alice, data=b"x" * 5000)
        for _ in range(100):
            status, body, _ = await req("GET", f"{api}/usage/history", alice)
            assert status == 200, body
            if body["samples"] and body["samples"][-1]["logical_bytes"] == 10000:
                break
            await asyncio.sleep(0.2)
        assert body["tenant"] == "alice"
        assert body["interval"] == 0.3
        last = body["samples"][-1]
        assert last["logical_bytes"] == 10000
        assert last["stored_bytes"] < 10000  # the second copy was deduplicated
        assert last["saved_bytes"] == last["logical_bytes"] - last["stored_bytes"]
        ats = [s["at"] for s in body["samples"]]
        assert ats == sorted(ats)
        # bob's history is his own: alice's bytes never show in it
        status, body, _ = await req("GET", f"{api}/usage/history", bob)
        assert all(s["logical_bytes"] == 0 for s in body["samples"])
        status, body, _ = await req("GET", f"{api}/usage/history?since=nope", bob)
        assert status == 400
        # admins only: every tenant's counters and the cluster's history
        status, _, _ = await req("GET", f"{api}/admin/usage", alice)
        assert status == 403
        status, body, _ = await req("GET", f"{api}/admin/usage")
        assert status == 200, body
        assert body["tenants"]["alice"]["logical_bytes"] == 10000
        assert body["tenants"]["bob"]["objects"] == 0
        assert body["cluster"]
        assert body["cluster"][-1]["logical_bytes"] >= 5000


async def test_history_answers_match_the_spec(tmp_path: Path) -> None:
    async with (
        running_cluster(tmp_path, api_cfg={"usage_sample_interval": 0.2}) as c,
        aiohttp.ClientSession() as session,
    ):
        [alice] = await tenant_tokens(c.api.url, "alice")
        user = {"Authorization": f"Bearer {alice}"}
        call = Caller(session, c.api.url, API)
        deadline = time.monotonic() + 30
        while len((await call("GET", protocol.USAGE_HISTORY, 200, user))["samples"]) < 2:
            assert time.monotonic() < deadline, "the sampler wrote fewer than 2 samples"
            await asyncio.sleep(0.1)
        await call("GET", protocol.USAGE_HISTORY, 200, user, params={"since": "12.5"})
        limited = await call("GET", protocol.USAGE_HISTORY, 200, user, params={"limit": "1"})
        [newest] = limited["samples"]
        everything = await call("GET", protocol.USAGE_HISTORY, 200, user)
        assert newest["at"] >= everything["samples"][-2]["at"]
        for bad in ({"since": "inf"}, {"limit": "0"}, {"limit": "2001"}, {"limit": "x"}):
            await call("GET", protocol.USAGE_HISTORY, 400, user, params=bad)
        await call("GET", protocol.USAGE_HISTORY, 401)
        body = await call("GET", protocol.ADMIN_USAGE, 200, ADMIN, params={"limit": "1"})
        assert "alice" in body["tenants"]
        assert len(body["cluster"]) == 1
        await call("GET", protocol.ADMIN_USAGE, 400, ADMIN, params={"limit": "-1"})
        await call("GET", protocol.ADMIN_USAGE, 403, user)


async def test_history_is_never_another_tenants(tmp_path: Path) -> None:
    """No parameter names another tenant's (or the cluster's) history: one that tries is
    refused, never quietly ignored or obeyed."""
    async with running_cluster(tmp_path, api_cfg={"usage_sample_interval": 0.2}) as c:
        api = c.api.url
        alice, bob = await tenant_tokens(api, "alice", "bob")
        await req("POST", f"{api}/buckets", alice, json={"name": "alice-only"})
        q = "bucket=alice-only&key=a.bin&filename=a.bin"
        assert (await req("POST", f"{api}/upload?{q}", alice, data=b"a" * 7000))[0] == 201
        deadline = time.monotonic() + 30
        while True:
            _, body, _ = await req("GET", f"{api}/usage/history", alice)
            if body["samples"] and body["samples"][-1]["logical_bytes"] == 7000:
                break
            assert time.monotonic() < deadline, body
            await asyncio.sleep(0.1)
        for q in ("tenant=alice", "tenant=*cluster", "since=0&since=1", "limit=1&limit=2"):
            status, body, _ = await req("GET", f"{api}/usage/history?{q}", bob)
            assert status == 400, (q, body)
        status, body, _ = await req("GET", f"{api}/usage/history", bob)
        assert status == 200
        assert body["tenant"] == "bob"
        assert body["samples"]
        assert all(s["logical_bytes"] == 0 for s in body["samples"])
        status, _, _ = await req("GET", f"{api}/admin/usage?since=0", bob)
        assert status == 403
