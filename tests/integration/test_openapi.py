"""The OpenAPI descriptions in dfs/openapi/ against the running apps: every route is described
(and nothing else), and real answers, good and bad, validate against the documented schemas."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from dfs import auth, protocol
from dfs.client import Client
from dfs.client.http import ChunkPayload
from dfs.openapi import API_SPEC, NODE_SPEC
from tests.integration.conftest import ADMIN_TOKEN, SECRET, InProcessCluster
from tests.openapi_check import SpecChecker, router_diff

pytestmark = pytest.mark.integration

API = SpecChecker(API_SPEC)
NODE = SpecChecker(NODE_SPEC)
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def test_every_route_is_described_and_nothing_else(inproc: InProcessCluster) -> None:
    problems = [
        router_diff(inproc.api.runner.app, API),
        router_diff(inproc.nodes[0].runner.app, NODE),
    ]
    assert not any(problems), "\n".join(p for p in problems if p)


async def test_the_specs_are_valid_openapi() -> None:
    import schemathesis

    for path in (API_SPEC, NODE_SPEC):
        schema = schemathesis.openapi.from_path(str(path))
        assert len(list(schema.get_all_operations())) == len(SpecChecker(path).operations())


class Caller:
    """Sends requests and checks every answer against a spec; counts what it checked."""

    def __init__(self, session: aiohttp.ClientSession, base: str, checker: SpecChecker) -> None:
        self.session, self.base, self.checker = session, base, checker
        self.seen: set[tuple[str, str, int]] = set()

    async def __call__(
        self, method: str, route: str, expect: int, headers: dict[str, str] | None = None, **kw: Any
    ) -> Any:
        if isinstance(kw.get("data"), bytes | bytearray):
            kw["data"] = ChunkPayload(kw["data"])
        async with self.session.request(
            method, f"{self.base}{route}", headers=headers or {}, **kw
        ) as r:
            raw = await r.read()
            self.checker.validate(method, route, r.status, raw)
            assert r.status == expect, (method, route, r.status, raw[:300])
            self.seen.add((method, route, r.status))
            if r.content_type == "application/json":
                return await r.json()
            return raw


async def test_answers_match_the_api_spec(inproc: InProcessCluster, tmp_path: Path) -> None:
    data = random.Random(3).randbytes(300_000)
    src = tmp_path / "f.bin"
    src.write_bytes(data)
    async with aiohttp.ClientSession() as session, Client(inproc.api.url, token=ADMIN_TOKEN) as c:
        call = Caller(session, inproc.api.url, API)
        await call("GET", protocol.HEALTHZ, 200)
        await call("POST", protocol.ADMIN_TENANTS, 201, ADMIN, json={"tenant": "acme"})
        await call("POST", protocol.ADMIN_TENANTS, 409, ADMIN, json={"tenant": "acme"})
        await call("POST", protocol.ADMIN_TENANTS, 400, ADMIN, json={"tenant": "../x"})
        await call("POST", protocol.ADMIN_TENANTS, 415, ADMIN, data=b"{}")
        tok = await call(
            "POST", protocol.ADMIN_TOKENS, 201, ADMIN, json={"tenant": "acme", "label": "t"}
        )
        user = {"Authorization": f"Bearer {tok['token']}"}
        await call("POST", protocol.ADMIN_TOKENS, 404, ADMIN, json={"tenant": "nobody"})
        await call("POST", protocol.ADMIN_TOKENS, 403, user, json={"tenant": "acme"})
        await call("GET", protocol.ADMIN_TENANTS, 200, ADMIN)
        await call("GET", protocol.ADMIN_TENANTS, 401)
        await call("GET", protocol.ADMIN_STATS, 200, ADMIN)
        await call("GET", protocol.ADMIN_STATS, 403, user)
        await call("GET", protocol.NODES, 200, ADMIN)

        up = await c.upload(src)
        await call("GET", protocol.FILES, 200, ADMIN, params={"limit": 1})
        await call("GET", protocol.FILES, 400, ADMIN, params={"limit": 0})
        plan = await call("GET", protocol.DOWNLOAD_PLAN, 200, ADMIN, params={"file_id": up.file_id})
        await call("GET", protocol.DOWNLOAD_PLAN, 404, user, params={"file_id": up.file_id})
        await call("GET", protocol.DOWNLOAD_PLAN, 400, ADMIN, params={"file_id": "x"})
        first = plan["chunks"][0]["sha256"]
        await call("GET", protocol.PROXY_CHUNK_DOWNLOAD, 200, ADMIN, params={"chunk_id": first})
        await call("GET", protocol.PROXY_CHUNK_DOWNLOAD, 404, user, params={"chunk_id": first})

        # an upload by hand, through the proxy
        piece = random.Random(4).randbytes(5000)
        digest = hashlib.sha256(piece).hexdigest()
        body = {
            "name": "p",
            "size": len(piece),
            "sha256": digest,
            "chunker": "fixed:65536",
            "chunks": [{"sha256": digest, "size": len(piece)}],
        }
        init = await call("POST", protocol.INIT_UPLOAD, 201, user, json=body)
        await call("POST", protocol.INIT_UPLOAD, 400, user, json={**body, "size": 1})
        await call("POST", protocol.FINALIZE_UPLOAD, 409, user, json={"file_id": init["file_id"]})
        q = {"chunk_id": digest, "file_id": init["file_id"]}
        await call("PUT", protocol.PROXY_CHUNK_UPLOAD, 422, user, params=q, data=piece[:-1])
        put = await call("PUT", protocol.PROXY_CHUNK_UPLOAD, 201, user, params=q, data=piece)
        done = await call(
            "POST",
            protocol.FINALIZE_UPLOAD,
            200,
            user,
            json={"file_id": init["file_id"], "receipts": {digest: put["receipt"]}},
        )
        assert done["state"] == "complete"

        # node registration: a capability, not a token
        node_id = "extra-node"
        hb = {"node_id": node_id, "host": "127.0.0.1", "port": 1}
        cap = {protocol.CAPABILITY: auth.mint(SECRET, auth.OP_HEARTBEAT, auth.ANY_CHUNK, node_id)}
        await call("POST", protocol.NODE_HEARTBEAT, 401, json=hb)
        await call("POST", protocol.NODE_HEARTBEAT, 200, cap, json=hb)
        await call("POST", protocol.NODE_DEREGISTER, 403, cap, json={"node_id": "other"})
        await call("POST", protocol.NODE_DEREGISTER, 200, cap, json={"node_id": node_id})
    assert {route for _, route, _ in call.seen} == {p for _, p in API.operations()}


async def test_answers_match_the_node_spec(inproc: InProcessCluster) -> None:
    node = inproc.nodes[0]
    nid = node.cfg.node_id
    data = random.Random(5).randbytes(10_000)
    digest = hashlib.sha256(data).hexdigest()
    file_id = "00000000-0000-4000-8000-000000000001"
    put_cap = auth.mint(SECRET, auth.OP_PUT, digest, nid, extra=protocol.put_cap_extra(file_id, ""))
    async with aiohttp.ClientSession() as session:
        call = Caller(session, node.url, NODE)
        await call("GET", protocol.HEALTHZ, 200)
        q = {"chunk_id": digest}
        await call("PUT", protocol.STORE_CHUNK, 400, params=q, data=data)
        await call(
            "PUT", protocol.STORE_CHUNK, 401, {protocol.UPLOAD: file_id}, params=q, data=data
        )
        upload = {protocol.CAPABILITY: put_cap, protocol.UPLOAD: file_id}
        await call("PUT", protocol.STORE_CHUNK, 422, upload, params=q, data=data[:-1])
        await call("PUT", protocol.STORE_CHUNK, 201, upload, params=q, data=data)
        # /store-chunks: a batch of two, each chunk with its own put capability
        other = random.Random(6).randbytes(3_000)
        other_id = hashlib.sha256(other).hexdigest()
        index = [
            {"chunk_id": digest, "file_id": file_id, "cap": put_cap},
            {
                "chunk_id": other_id,
                "file_id": file_id,
                "cap": auth.mint(
                    SECRET, auth.OP_PUT, other_id, nid, extra=protocol.put_cap_extra(file_id, "")
                ),
            },
        ]
        batch = protocol.pack_chunks(index, [data, other])
        answer = await call("POST", protocol.STORE_CHUNKS, 201, data=batch)
        assert [c["chunk_id"] for c in answer["chunks"]] == [digest, other_id]
        assert all(
            auth.receipt_ok(SECRET, c["receipt"], file_id, c["chunk_id"]) for c in answer["chunks"]
        )
        tampered = protocol.pack_chunks(index, [data, other[:-1] + b"x"])
        await call("POST", protocol.STORE_CHUNKS, 422, data=tampered)
        await call("POST", protocol.STORE_CHUNKS, 400, data=b"\x00\x00")
        get = {"chunk_id": digest, "cap": auth.mint(SECRET, auth.OP_GET, digest, nid)}
        await call("GET", protocol.GET_CHUNK, 200, params=get)
        await call("GET", protocol.GET_CHUNK, 403, params={**get, "chunk_id": "0" * 64})
        await call("GET", protocol.GET_CHUNK, 400, params={**get, "chunk_id": "../x"})
        has = {protocol.CAPABILITY: auth.mint(SECRET, auth.OP_HAS, auth.ANY_CHUNK, nid)}
        answer = await call("POST", protocol.HAS_CHUNKS, 200, has, json={"chunk_ids": [digest]})
        assert answer == {"present": [digest]}
        await call("POST", protocol.HAS_CHUNKS, 400, has, json={"chunk_ids": ["nope"]})
        status_cap = {protocol.CAPABILITY: auth.mint(SECRET, auth.OP_STATUS, auth.ANY_CHUNK, nid)}
        await call("GET", protocol.NODE_STATUS, 200, status_cap)
        await call("GET", protocol.NODE_STATUS, 401)
    assert {route for _, route, _ in call.seen} == {p for _, p in NODE.operations()}
