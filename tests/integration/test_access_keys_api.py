"""The /access-keys routes in process: a tenant manages its own keys only, an admin any
tenant's; secrets are shown once and stored sealed (never in the metadata store's clear)."""

from __future__ import annotations

import pytest

from dfs import access_keys
from dfs.client import Client
from dfs.errors import DfsError, Forbidden
from tests.integration.conftest import ADMIN_TOKEN, InProcessCluster

pytestmark = pytest.mark.integration


async def _tokens(api_url: str, *names: str) -> list[str]:
    async with Client(api_url, token=ADMIN_TOKEN) as admin:
        out = []
        for name in names:
            await admin.api.create_tenant(name)
            out.append((await admin.api.create_token(name, "user", name))["token"])
        return out


async def test_keys_belong_to_their_tenant(inproc: InProcessCluster) -> None:
    url = inproc.api.url
    alice, bob = await _tokens(url, "alice", "bob")
    async with Client(url, token=alice) as a, Client(url, token=bob) as b:
        made = await a.api.create_access_key("laptop")
        assert made["tenant"] == "alice"
        assert access_keys.is_key_id(made["access_key_id"])
        listed = (await a.api.list_access_keys())["access_keys"]
        assert [k["access_key_id"] for k in listed] == [made["access_key_id"]]
        assert "secret_access_key" not in listed[0]
        assert (await b.api.list_access_keys())["access_keys"] == []
        with pytest.raises(Forbidden):
            await b.api.list_access_keys("alice")
        with pytest.raises(Forbidden):
            await b.api.create_access_key("", tenant="alice")
        with pytest.raises(DfsError) as exc:
            await b.api.revoke_access_key(made["access_key_id"])
        assert exc.value.http_status == 404
    rec = await inproc.api.meta.get_access_key(made["access_key_id"])
    assert rec is not None
    assert made["secret_access_key"] not in rec.sealed_secret
    async with Client(url, token=ADMIN_TOKEN) as admin:
        for_bob = await admin.api.create_access_key("", tenant="bob")
        assert for_bob["tenant"] == "bob"
        every = (await admin.api.list_access_keys())["access_keys"]
        assert {k["tenant"] for k in every} == {"alice", "bob"}
        await admin.api.revoke_access_key(made["access_key_id"])
    assert await inproc.api.meta.get_access_key(made["access_key_id"]) is None
