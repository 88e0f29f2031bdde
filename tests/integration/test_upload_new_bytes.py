"""``POST /upload`` reports how many of its bytes were new to the caller's tenant
(``new_bytes``, the web console's "N% new"): relative to the tenant's own chunks only, so
another tenant's copy of the same bytes never shows (issue 15)."""

from __future__ import annotations

import random

import pytest

from tests.integration.conftest import InProcessCluster
from tests.integration.test_security import tenant_tokens
from tests.integration.test_seed_api import req

pytestmark = pytest.mark.integration

MIB = 1 << 20


async def test_new_bytes_count_only_the_tenants_own_chunks(inproc: InProcessCluster) -> None:
    api = inproc.api.url
    alice, bob = await tenant_tokens(api, "alice", "bob")
    data = random.Random(15).randbytes(6 * MIB)
    status, body, _ = await req("POST", f"{api}/upload?filename=a", alice, data=data)
    assert status == 201, body
    assert body["new_bytes"] == len(data)
    # one byte changed in the middle: only the chunk(s) around it are new
    edited = bytearray(data)
    edited[3 * MIB] ^= 0xFF
    status, body, _ = await req("POST", f"{api}/upload?filename=b", alice, data=bytes(edited))
    assert status == 201, body
    assert 0 < body["new_bytes"] < len(data) // 2
    # bob's first copy of alice's bytes: all new to bob (alice's chunks never count)
    status, body, _ = await req("POST", f"{api}/upload?filename=a", bob, data=data)
    assert status == 201, body
    assert body["new_bytes"] == len(data)
    # into a key: the object gets a file of its own, but none of its bytes is new
    await req("POST", f"{api}/buckets", alice, json={"name": "new-bytes"})
    q = "bucket=new-bytes&key=k/a&filename=a"
    status, body, _ = await req("POST", f"{api}/upload?{q}", alice, data=data)
    assert status == 201, body
    assert body["new_bytes"] == 0
    assert body["object"]["key"] == "k/a"
