"""The OpenAPI descriptions in dfs/openapi/ against the running apps: every route is described
(and nothing else), and real answers, good and bad, validate against the documented schemas."""

from __future__ import annotations

import dataclasses
import hashlib
import random
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yarl

from dfs import auth, protocol
from dfs.client import Client
from dfs.node.context import MONITORING
from dfs.openapi import API_SPEC, NODE_SPEC
from dfs.transport.http import ChunkPayload
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
        self,
        method: str,
        route: str,
        expect: int,
        headers: dict[str, str] | None = None,
        *,
        path: dict[str, str] | None = None,
        **kw: Any,
    ) -> Any:
        """``route`` is the spec's path template; ``path`` fills its parameters."""
        if isinstance(kw.get("data"), bytes | bytearray):
            kw["data"] = ChunkPayload(kw["data"])
        url = f"{self.base}{route.format(**path) if path else route}"
        async with self.session.request(method, url, headers=headers or {}, **kw) as r:
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
        await call("GET", protocol.CONSOLE, 302, allow_redirects=False)
        await call("GET", protocol.CONSOLE + "/", 200)
        await call("GET", protocol.CONSOLE_FILE, 200, path={"name": "app.js"})
        await call("GET", protocol.CONSOLE_FILE, 404, path={"name": "nope.exe"})
        vendored = {"package": "js-sha256", "name": "sha256.min.mjs"}
        await call("GET", protocol.CONSOLE_VENDOR_FILE, 200, path=vendored)
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
        listed = await call("GET", protocol.ADMIN_TOKENS, 200, ADMIN, params={"tenant": "acme"})
        assert [t["token_id"] for t in listed["tokens"]] == [tok["token_id"]]
        await call("GET", protocol.ADMIN_TOKENS, 403, user)
        me = await call("GET", protocol.WHOAMI, 200, user)
        assert (me["tenant"], me["token_id"], me["label"]) == ("acme", tok["token_id"], "t")
        await call("GET", protocol.WHOAMI, 401)
        key = await call("POST", protocol.ACCESS_KEYS, 201, user, json={"label": "s3"})
        await call("POST", protocol.ACCESS_KEYS, 403, user, json={"tenant": "other"})
        await call("POST", protocol.ACCESS_KEYS, 400, user, json={"label": "x" * 201})
        await call("GET", protocol.ACCESS_KEYS, 200, user)
        await call("GET", protocol.ACCESS_KEYS, 401)
        key_path = {"access_key_id": key["access_key_id"]}
        await call("DELETE", protocol.ACCESS_KEY, 200, user, path=key_path)
        await call("DELETE", protocol.ACCESS_KEY, 404, user, path=key_path)
        spare = await call("POST", protocol.ADMIN_TOKENS, 201, ADMIN, json={"tenant": "acme"})
        gone = {"token_id": spare["token_id"]}
        await call("DELETE", protocol.ADMIN_TOKEN, 403, user, path=gone)
        await call("DELETE", protocol.ADMIN_TOKEN, 200, ADMIN, path=gone)
        await call("DELETE", protocol.ADMIN_TOKEN, 404, ADMIN, path=gone)
        await call("DELETE", protocol.ADMIN_TOKEN, 400, ADMIN, path={"token_id": "ZZ"})
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
        boot = 1_700_000_000_000
        hb = {"node_id": node_id, "host": "127.0.0.1", "port": 1, "boot": boot, "seq": 1}
        beat = auth.mint_heartbeat(SECRET, node_id, boot, 1, "127.0.0.1", 1, 0, "", used=0, zone="")
        await call("POST", protocol.NODE_HEARTBEAT, 401, json=hb)
        await call("POST", protocol.NODE_HEARTBEAT, 200, {protocol.CAPABILITY: beat}, json=hb)
        bye = {protocol.CAPABILITY: auth.mint_deregister(SECRET, node_id, boot, 2)}
        other = {"node_id": "other", "boot": boot, "seq": 2}
        await call("POST", protocol.NODE_DEREGISTER, 403, bye, json=other)
        mine = {"node_id": node_id, "boot": boot, "seq": 2}
        await call("POST", protocol.NODE_DEREGISTER, 200, bye, json=mine)

        await _namespace_routes(call, user)
        await _seed_and_batch_routes(call, user, up.file_id, body)
        await _paged_routes(call, user)
        await call("GET", protocol.READYZ, 200)
        text = await call("GET", protocol.METRICS, 200, ADMIN)
        assert b"dfs_http_requests_total" in text
        await call("GET", protocol.METRICS, 403, user)
        await call("GET", protocol.METRICS, 401)
        await call("GET", protocol.ADMIN_REPAIR, 200, ADMIN)
        await call("GET", protocol.ADMIN_REPAIR, 403, user)
        await call("GET", protocol.ADMIN_USAGE, 200, ADMIN)
        await call("GET", protocol.USAGE_HISTORY, 200, user)
        node = {"node_id": node_id}
        await call("POST", protocol.ADMIN_NODE_DRAIN, 200, ADMIN, path=node)
        await call("GET", protocol.ADMIN_NODE_DRAIN, 200, ADMIN, path=node)
        await call("GET", protocol.ADMIN_NODE_DRAIN, 403, user, path=node)
        await call("DELETE", protocol.ADMIN_NODE_DRAIN, 200, ADMIN, path=node)
        await call("POST", protocol.ADMIN_NODE_DRAIN, 400, ADMIN, path={"node_id": "a b"})
        stats = await call("GET", protocol.ADMIN_STATS, 200, ADMIN)
        assert stats["total_s3_size_saved"] == stats["total_bytes_saved"]
    assert {route for _, route, _ in call.seen} == {p for _, p in API.operations()}
    assert {(m, r) for m, r, _ in call.seen} == API.operations()


async def _paged_routes(call: Caller, user: dict[str, str]) -> None:
    """A paged upload of one page of one chunk (sent through the proxy), and its errors."""
    piece = random.Random(11).randbytes(5000)
    digest = hashlib.sha256(piece).hexdigest()
    start = {"name": "paged.bin", "chunker": "fixed:65536"}
    await call("POST", protocol.PAGED_UPLOAD, 400, user, json={"chunker": "fixed:65536"})
    file_id = (await call("POST", protocol.PAGED_UPLOAD, 201, user, json=start))["file_id"]
    page = {
        "file_id": file_id,
        "page": 0,
        "offset": 0,
        "chunks": [{"sha256": digest, "size": 5000}],
    }
    await call("POST", protocol.PAGED_UPLOAD_PAGE, 400, user, json={**page, "page": -1})
    plan = await call("POST", protocol.PAGED_UPLOAD_PAGE, 201, user, json=page)
    assert [u["sha256"] for u in plan["upload"]] == [digest]
    other = [{"sha256": digest, "size": 4999}]
    await call("POST", protocol.PAGED_UPLOAD_PAGE, 409, user, json={**page, "chunks": other})
    await call("POST", protocol.FINALIZE_UPLOAD, 409, user, json={"file_id": file_id})
    proof = {"file_id": file_id, "page": 0}
    await call("POST", protocol.PAGED_UPLOAD_PROVE, 409, user, json=proof)
    await call("POST", protocol.PAGED_UPLOAD_PROVE, 404, user, json={**proof, "page": 1})
    q = {"chunk_id": digest, "file_id": file_id}
    put = await call("PUT", protocol.PROXY_CHUNK_UPLOAD, 201, user, params=q, data=piece)
    receipts = {digest: put["receipt"]}
    await call("POST", protocol.PAGED_UPLOAD_PROVE, 200, user, json={**proof, "receipts": receipts})
    end = {"file_id": file_id, "size": 5000, "sha256": digest}
    await call("POST", protocol.PAGED_UPLOAD_FINALIZE, 409, user, json={**end, "size": 1})
    await call("POST", protocol.PAGED_UPLOAD_FINALIZE, 400, user, json={**end, "size": -1})
    done = await call("POST", protocol.PAGED_UPLOAD_FINALIZE, 200, user, json=end)
    assert (done["state"], done["chunks"], done["sha256"]) == ("complete", 1, digest)


async def _seed_and_batch_routes(
    call: Caller, user: dict[str, str], admin_file: str, upload_body: dict[str, Any]
) -> None:
    """The seed's routes, the content check, batches and resume: good and bad requests."""
    fid = {"file_id": admin_file}
    unknown = {"file_id": "00000000-0000-4000-8000-00000000abcd"}
    for route in (protocol.FILE, protocol.METADATA, protocol.DOWNLOAD):
        await call("GET", route, 200, ADMIN, path=fid)
        await call("GET", route, 404, user, path=fid)  # another tenant's file
        await call("GET", route, 400, ADMIN, path={"file_id": "nope"})
        await call("GET", route, 401, path=fid)

    # POST /upload: raw, then the same bytes again (409 names the stored file), multipart
    data = random.Random(6).randbytes(70_000)
    raw = {"Content-Type": "application/octet-stream", **user}
    q = {"filename": "seed.bin"}
    made = await call("POST", protocol.UPLOAD_FILE, 201, raw, params=q, data=data)
    again = await call("POST", protocol.UPLOAD_FILE, 409, raw, params=q, data=data)
    assert again["file_id"] == made["file_id"]
    form = aiohttp.FormData()
    form.add_field("file", data[:1000], filename="part.bin")
    await call("POST", protocol.UPLOAD_FILE, 201, user, data=form)
    await call("POST", protocol.UPLOAD_FILE, 400, raw, data=data)  # no filename
    form = aiohttp.FormData()
    form.add_field("other", b"x", filename="x.bin")
    await call("POST", protocol.UPLOAD_FILE, 400, user, data=form)
    await call("POST", protocol.UPLOAD_FILE, 401, params=q, data=data)

    # GET /check
    seen = await call("GET", protocol.CHECK, 200, user, params={"sha256": made["sha256"]})
    assert seen["exists"]
    assert seen["file"]["file_id"] == made["file_id"]
    seen = await call("GET", protocol.CHECK, 200, ADMIN, params={"sha256": made["sha256"]})
    assert seen == {"exists": False, "file": None}  # another tenant's bytes stay hidden
    await call("GET", protocol.CHECK, 400, user, params={"sha256": "ab"})

    # the signed download URL: good, altered, missing, and once the file is gone
    mine = {"file_id": made["file_id"]}
    link = await call("GET", protocol.DOWNLOAD, 200, user, path=mine)
    signed = yarl.URL(link["download_url"])
    route = protocol.SIGNED_DOWNLOAD + "{file_id}"
    query = dict(signed.query)
    assert await call("GET", route, 200, path=mine, params=query) == data
    forged = query["sig"][:-1] + ("0" if query["sig"][-1] != "0" else "1")
    await call("GET", route, 403, path=mine, params={**query, "sig": forged})
    await call("GET", route, 401, path=mine, params={**query, "sig": "x"})
    await call("GET", route, 403, path=unknown, params=query)
    await call("GET", route, 401, path=mine, params={"tenant": query["tenant"]})
    await call("GET", route, 400, path=mine, params={**query, "tenant": "../x"})

    # /admin/hashes: paged with a sealed key (admin)
    page = await call("GET", protocol.ADMIN_HASHES, 200, ADMIN, params={"limit": 1})
    assert len(page["hashes"]) == 1
    assert page["next_page"]
    key = {"limit": 1, "last_evaluated_key": page["next_page"]}
    await call("GET", protocol.ADMIN_HASHES, 200, ADMIN, params=key)
    bad = {**key, "last_evaluated_key": page["next_page"][:-2] + "xx"}
    await call("GET", protocol.ADMIN_HASHES, 400, ADMIN, params=bad)
    await call("GET", protocol.ADMIN_HASHES, 400, ADMIN, params={"limit": 0})
    await call("GET", protocol.ADMIN_HASHES, 403, user)

    # batches and resume: a file of the tenant's own chunk (nothing to send) comes committed;
    # one with a new chunk stays pending
    fresh = hashlib.sha256(b"fresh").hexdigest()
    new_body = {**upload_body, "name": "fresh.bin", "size": 5, "sha256": fresh}
    new_body["chunks"] = [{"sha256": fresh, "size": 5}]
    files = {"files": [upload_body, new_body]}
    plans = await call("POST", protocol.INIT_UPLOADS, 201, user, json=files)
    held, pending = plans["uploads"][0], plans["uploads"][1]["file_id"]
    # committed in the same request: its id and state alone, not the file's metadata
    assert held == {"file_id": held["file_id"], "state": "complete", "upload": []}
    assert "state" not in plans["uploads"][1]
    seen_held = await call("GET", protocol.METADATA, 200, user, path={"file_id": held["file_id"]})
    assert seen_held["state"] == "complete"
    await call("POST", protocol.INIT_UPLOADS, 400, user, json={"files": []})
    await call("POST", protocol.INIT_UPLOADS, 415, user, data=b"{}")
    resumed = await call("POST", protocol.RESUME_UPLOAD, 200, user, json={"file_id": pending})
    assert resumed["resumed"]
    assert resumed["file_id"] == pending
    await call("POST", protocol.RESUME_UPLOAD, 409, user, json={"file_id": made["file_id"]})
    await call("POST", protocol.RESUME_UPLOAD, 404, user, json=unknown)
    await call("POST", protocol.RESUME_UPLOAD, 400, user, json={"file_id": "x"})
    items = [{"file_id": held["file_id"]}, {"file_id": made["file_id"]}, unknown]
    items.append({"file_id": pending})
    done = await call("POST", protocol.FINALIZE_UPLOADS, 200, user, json={"uploads": items})
    codes = [f.get("error", {}).get("code") for f in done["files"]]
    # held's chunk is the tenant's own; pending's chunk was never sent
    assert codes == [None, None, "file_not_found", "incomplete_upload"]
    await call("POST", protocol.FINALIZE_UPLOADS, 400, user, json={"uploads": [{}]})
    ids = [made["file_id"], unknown["file_id"]]
    got = await call("POST", protocol.DOWNLOAD_PLANS, 200, user, json={"file_ids": ids})
    assert [p.get("error", {}).get("code") for p in got["plans"]] == [None, "file_not_found"]
    await call("POST", protocol.DOWNLOAD_PLANS, 400, user, json={"file_ids": ["x"]})

    # DELETE /file/{file_id}; the signed URL of a deleted file finds nothing
    await call("DELETE", protocol.FILE, 404, ADMIN, path=mine)  # another tenant's
    gone = await call("DELETE", protocol.FILE, 200, user, path=mine)
    assert gone["state"] == "deleted"
    await call("DELETE", protocol.FILE, 404, user, path=mine)
    await call("DELETE", protocol.FILE, 400, user, path={"file_id": "nope"})
    await call("DELETE", protocol.FILE, 401, path=mine)
    await call("GET", route, 404, path=mine, params=query)
    seen = await call("GET", protocol.CHECK, 200, user, params={"sha256": made["sha256"]})
    assert seen == {"exists": False, "file": None}


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
        # /store-chunks: a batch of two under one put-batch capability in the headers
        other = random.Random(6).randbytes(3_000)
        other_id = hashlib.sha256(other).hexdigest()
        ids, fids = [digest, other_id], [file_id, file_id]
        index = [{"chunk_id": c, "file_id": f} for c, f in zip(ids, fids, strict=True)]
        batch_extra = protocol.put_cap_extra(protocol.list_sha256(fids), "")
        batch_cap = auth.mint(
            SECRET, auth.OP_PUT_BATCH, protocol.list_sha256(ids), nid, extra=batch_extra
        )
        batch_headers = protocol.batch_headers(batch_cap, ids, fids)
        batch = protocol.pack_chunks(index, [data, other])
        answer = await call("POST", protocol.STORE_CHUNKS, 201, batch_headers, data=batch)
        assert [c["chunk_id"] for c in answer["chunks"]] == [digest, other_id]
        assert all(
            auth.receipt_ok(SECRET, c["receipt"], file_id, c["chunk_id"]) for c in answer["chunks"]
        )
        tampered = protocol.pack_chunks(index, [data, other[:-1] + b"x"])
        await call("POST", protocol.STORE_CHUNKS, 422, batch_headers, data=tampered)
        await call("POST", protocol.STORE_CHUNKS, 400, batch_headers, data=b"\x00\x00")
        await call("POST", protocol.STORE_CHUNKS, 401, data=batch)
        reordered = protocol.pack_chunks(index[::-1], [other, data])
        await call("POST", protocol.STORE_CHUNKS, 403, batch_headers, data=reordered)
        get = {"chunk_id": digest, "cap": auth.mint(SECRET, auth.OP_GET, digest, nid)}
        await call("GET", protocol.GET_CHUNK, 200, params=get)
        await call("GET", protocol.GET_CHUNK, 403, params={**get, "chunk_id": "0" * 64})
        await call("GET", protocol.GET_CHUNK, 400, params={**get, "chunk_id": "../x"})
        many = {"chunks": [{"chunk_id": digest, "cap": get["cap"]}]}
        records = await call("POST", protocol.GET_CHUNKS, 200, json=many)
        assert protocol.read_record_header(records[: protocol.RECORD_HEADER.size])[0] == digest
        await call("POST", protocol.GET_CHUNKS, 401, json={"chunks": [{"chunk_id": digest}]})
        await call(
            "POST",
            protocol.GET_CHUNKS,
            403,
            json={"chunks": [{**many["chunks"][0], "chunk_id": "0" * 64}]},
        )
        await call("POST", protocol.GET_CHUNKS, 400, json={"chunks": []})
        has = {protocol.CAPABILITY: auth.mint(SECRET, auth.OP_HAS, auth.ANY_CHUNK, nid)}
        answer = await call("POST", protocol.HAS_CHUNKS, 200, has, json={"chunk_ids": [digest]})
        assert answer == {"present": [digest]}
        await call("POST", protocol.HAS_CHUNKS, 400, has, json={"chunk_ids": ["nope"]})
        read_back = {"chunk_ids": [digest, "0" * 64], "verify": True}
        answer = await call("POST", protocol.HAS_CHUNKS, 200, has, json=read_back)
        assert answer == {"present": [digest]}
        await call("POST", protocol.HAS_CHUNKS, 400, has, json={**read_back, "verify": "yes"})
        too_many = {"chunk_ids": [digest] * (protocol.MAX_VERIFY_CHUNKS + 1), "verify": True}
        await call("POST", protocol.HAS_CHUNKS, 400, has, json=too_many)
        status_cap = {protocol.CAPABILITY: auth.mint(SECRET, auth.OP_STATUS, auth.ANY_CHUNK, nid)}
        await call("GET", protocol.NODE_STATUS, 200, status_cap, params={"after": 0})
        await call("GET", protocol.NODE_STATUS, 400, status_cap, params={"after": "x"})
        await call("GET", protocol.NODE_STATUS, 401)
        await call("GET", protocol.QUARANTINED, 200, status_cap)
        await call("GET", protocol.QUARANTINED, 401)
        await call("GET", protocol.QUARANTINED, 403, has)

        listing = {protocol.CAPABILITY: auth.mint(SECRET, auth.OP_LIST, auth.ANY_CHUNK, nid)}
        page = await call("GET", protocol.LIST_CHUNKS, 200, listing, params={"limit": 1})
        assert page["chunks"][0][0] == digest
        await call("GET", protocol.LIST_CHUNKS, 400, listing, params={"limit": 0})
        await call("GET", protocol.LIST_CHUNKS, 400, listing, params={"after": "zz"})
        await call("GET", protocol.LIST_CHUNKS, 403, status_cap)

        # a repair copy to another node: the capability names the target
        other = inproc.nodes[1]
        target = {"target_id": other.cfg.node_id, "target_url": other.url}
        extra = protocol.copy_cap_extra(other.cfg.node_id, other.url)
        copy = {protocol.CAPABILITY: auth.mint(SECRET, auth.OP_COPY, digest, nid, extra=extra)}
        await call("POST", protocol.COPY_CHUNK, 201, copy, params=q, json=target)
        await call("POST", protocol.COPY_CHUNK, 401, params=q, json=target)
        elsewhere = {**target, "target_id": "node3"}
        await call("POST", protocol.COPY_CHUNK, 403, copy, params=q, json=elsewhere)
        await call("POST", protocol.COPY_CHUNK, 400, copy, params=q, json={"target_id": "x"})
        missing = "1" * 64
        copy_missing = {
            protocol.CAPABILITY: auth.mint(SECRET, auth.OP_COPY, missing, nid, extra=extra)
        }
        await call(
            "POST",
            protocol.COPY_CHUNK,
            404,
            copy_missing,
            params={"chunk_id": missing},
            json=target,
        )

        def delete(min_age: str) -> dict[str, str]:  # a delete capability binds min_age's text
            cap = auth.mint(SECRET, auth.OP_DELETE, digest, nid, extra=min_age)
            return {protocol.CAPABILITY: cap}

        hour = {**q, "min_age": "3600.000"}
        kept = await call("POST", protocol.DELETE_CHUNK, 200, delete("3600.000"), params=hour)
        assert kept == {"deleted": False}  # written just now
        # that capability, replayed with a smaller min_age, deletes nothing
        await call("POST", protocol.DELETE_CHUNK, 403, delete("3600.000"), params=q)
        await call(
            "POST", protocol.DELETE_CHUNK, 403, delete("3600.000"), params={**q, "min_age": "0"}
        )
        soon = {**q, "min_age": "soon"}
        await call("POST", protocol.DELETE_CHUNK, 400, delete("soon"), params=soon)
        await call("POST", protocol.DELETE_CHUNK, 400, delete("-1"), params={**q, "min_age": "-1"})
        gone = await call("POST", protocol.DELETE_CHUNK, 200, delete("0.000"), params=q)
        assert gone == {"deleted": True}
        await call("POST", protocol.DELETE_CHUNK, 403, status_cap, params=q)

        await call("GET", protocol.READYZ, 200)
        await call("GET", protocol.METRICS, 401)  # no DFS_METRICS_TOKEN: closed
        token = "metrics-token-for-the-openapi-test-0123456789"
        state = node.runner.app[MONITORING]
        state.cfg = dataclasses.replace(state.cfg, metrics_token_hash=auth.hash_token(token))
        text = await call("GET", protocol.METRICS, 200, {"Authorization": f"Bearer {token}"})
        assert b"dfs_node_chunks_stored" in text
        await call("GET", protocol.METRICS, 401, {"Authorization": "Bearer wrong"})
    assert {(m, r) for m, r, _ in call.seen} == NODE.operations()


async def _namespace_routes(call: Caller, user: dict[str, str]) -> None:
    """Buckets, objects, listings, copies, access, URLs and usage: good and bad requests."""
    b = {"bucket": "spec-bucket"}
    await call("POST", protocol.BUCKETS, 201, user, json={"name": "spec-bucket"})
    await call("POST", protocol.BUCKETS, 409, user, json={"name": "spec-bucket"})
    await call("POST", protocol.BUCKETS, 400, user, json={"name": "No_Such"})
    await call("GET", protocol.BUCKETS, 200, user)
    await call("GET", protocol.BUCKET, 200, user, path=b)
    await call("GET", protocol.BUCKET, 404, path=b)  # anonymous: not public
    await call("PATCH", protocol.BUCKET, 200, user, path=b, json={"versioning": "enabled"})
    await call("PATCH", protocol.BUCKET, 404, ADMIN, path=b, json={"access": "public-read"})
    raw = {"Content-Type": "application/octet-stream", **user}
    q = {"filename": "k.txt", "bucket": "spec-bucket", "key": "dir/k.txt"}
    made = await call("POST", protocol.UPLOAD_FILE, 201, raw, params=q, data=b"hello")
    again = await call("POST", protocol.UPLOAD_FILE, 201, raw, params=q, data=b"hello")
    assert again["object"]["version_id"] != made["object"]["version_id"]
    obj = {**b, "key": "dir/k.txt"}
    other = {**b, "key": "dir/other.txt"}
    route = "/objects/{bucket}/{key}"
    put = {"file_id": made["file_id"], "tags": {"kind": "note"}}
    await call("PUT", route, 201, user, path=other, json=put)
    await call("PUT", route, 400, user, path=other, json={"file_id": "x"})
    again = {**put, "unless_current": True}
    await call("PUT", route, 201, user, path={**b, "key": "dir/again.txt"}, json=again)
    await call("PUT", route, 200, user, path={**b, "key": "dir/again.txt"}, json=again)
    links = {"bucket": "spec-bucket", "unless_current": True}
    links["objects"] = [
        {"key": "dir/again.txt", **put},
        {"key": "dir/x", "file_id": "00000000-0000-4000-8000-000000000000"},
    ]
    await call("POST", protocol.OBJECTS_LINK, 200, user, json=links)
    await call("POST", protocol.OBJECTS_LINK, 400, user, json={**links, "objects": []})
    assert await call("GET", route, 200, user, path=obj) == b"hello"
    await call("GET", route, 206, {**user, "Range": "bytes=1-2"}, path=obj)
    await call("GET", route, 404, path=obj)
    info = "/object-info/{bucket}/{key}"
    await call("GET", info, 200, user, path=obj)
    await call("GET", info, 404, ADMIN, path=obj)  # refused: as missing
    await call("PATCH", info, 200, user, path=obj, json={"access": "public-read"})
    await call("PATCH", info, 400, user, path=obj, json={"tags": {"aws:x": "y"}})
    await call("GET", "/object-url/{bucket}/{key}", 200, user, path=obj)
    await call("GET", "/object-url/{bucket}/{key}", 404, user, path={**b, "key": "none"})
    listing = {"prefix": "dir/", "delimiter": "/"}
    await call("GET", protocol.BUCKET_OBJECTS, 200, user, path=b, params=listing)
    await call("GET", protocol.BUCKET_OBJECTS, 400, user, path=b, params={"limit": 0})
    await call("GET", protocol.BUCKET_SEARCH, 200, user, path=b, params={"tag": "kind=note"})
    await call("GET", protocol.BUCKET_USAGE, 200, user, path=b, params={"by": "prefix"})
    await call("GET", protocol.BUCKET_USAGE, 400, user, path=b, params={"by": "size"})
    await call("GET", protocol.USAGE, 200, user, params={"by": "type"})
    await call("GET", protocol.USAGE, 401)
    copy = {"src_bucket": "spec-bucket", "src_key": "dir/", "dst_bucket": "spec-bucket"}
    copy |= {"dst_key": "copy/", "recursive": True}
    await call("POST", protocol.OBJECTS_COPY, 200, user, json=copy)
    await call("POST", protocol.OBJECTS_COPY, 400, user, json={**copy, "dst_key": "dir/x/"})
    versions = await call(
        "GET", protocol.BUCKET_OBJECTS, 200, user, path=b, params={"versions": "true"}
    )
    old = versions["objects"][-1]
    restore = {"bucket": "spec-bucket", "key": old["key"], "version": old["version_id"]}
    await call("POST", protocol.OBJECTS_RESTORE, 200, user, json=restore)
    await call("POST", protocol.OBJECTS_RESTORE, 400, user, json={"bucket": "spec-bucket"})
    await call("DELETE", route, 200, user, path=obj, params={"unless_deleted": "true"})
    await call("DELETE", route, 404, ADMIN, path=obj)  # another tenant's bucket
    params = {"version": "v", "if_latest": "null"}
    await call("DELETE", route, 400, user, path=obj, params=params)
    removals = {**b, "versions": [{"key": "gone", "version": "v"}, {"key": "x"}]}
    await call("POST", protocol.OBJECTS_REMOVE, 200, user, json=removals)
    await call("POST", protocol.OBJECTS_REMOVE, 400, user, json={**b, "versions": []})
    await call("POST", protocol.OBJECTS_REMOVE, 404, ADMIN, json=removals)
    await call("DELETE", protocol.BUCKET_OBJECTS, 200, user, path=b, params={"prefix": "copy/"})
    await call("DELETE", protocol.BUCKET, 409, user, path=b)
    await call("POST", protocol.BUCKETS, 201, user, json={"name": "spec-empty"})
    await call("DELETE", protocol.BUCKET, 204, user, path={"bucket": "spec-empty"})
