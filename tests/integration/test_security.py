"""Security: bearer tokens, tenant isolation, node capabilities, and the Dropship replay."""

from __future__ import annotations

import hashlib
import random
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from dfs import auth, protocol
from dfs.api.context import ANONYMOUS_READS
from dfs.client import Client
from dfs.errors import AuthError, FileNotFound, Forbidden, IncompleteUpload, NotFound
from dfs.transport.http import ChunkPayload
from tests.integration.conftest import ADMIN_TOKEN, SECRET, InProcessCluster

pytestmark = pytest.mark.integration

MIB = 1 << 20


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def raw(
    method: str, url: str, headers: dict[str, str] | None = None, **kw: Any
) -> tuple[int, Any]:
    if isinstance(kw.get("data"), bytes):
        kw["data"] = ChunkPayload(kw["data"])
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, url, headers=headers or {}, **kw) as r,
    ):
        body = (
            await r.json(content_type=None)
            if r.content_type == "application/json"
            else await r.read()
        )
        return r.status, body


async def tenant_tokens(api_url: str, *names: str) -> list[str]:
    async with Client(api_url, token=ADMIN_TOKEN) as admin:
        tokens = []
        for name in names:
            await admin.api.create_tenant(name)
            tokens.append((await admin.api.create_token(name, "user", f"{name} test"))["token"])
        return tokens


async def test_every_route_but_health_needs_a_token(inproc: InProcessCluster) -> None:
    app = inproc.api.runner.app
    routes = {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource}
    assert len(routes) >= 12
    for method, path in sorted(routes):
        for headers in (
            {},
            {"Authorization": "Bearer dfs_not-a-real-token"},
            {"Authorization": "Basic x"},
        ):
            status, body = await raw(method, f"{inproc.api.url}{path}", headers)
            if path in (protocol.HEALTHZ, protocol.READYZ):
                assert status == 200
            elif path in (protocol.NODE_HEARTBEAT, protocol.NODE_DEREGISTER):
                assert status in (400, 401), (method, path, status)  # a node capability instead
            elif path == protocol.CONSOLE or path.startswith(protocol.CONSOLE + "/"):
                # the web console's static files hold no data: open, like a sign-in page
                assert method in ("GET", "HEAD"), (method, path)
                assert status in (200, 302, 404), (method, path, status)
            elif path.startswith(protocol.SIGNED_DOWNLOAD):
                assert status in (400, 401, 404), (method, path, status)  # signed instead
            elif not headers and method in ("GET", "HEAD") and path.startswith(ANONYMOUS_READS):
                # no token at all: an anonymous read of public buckets and objects only (the
                # literal "{bucket}" is no bucket name: 400; or no such bucket: 404)
                assert status in (400, 401, 404), (method, path, status)
            else:
                assert status == 401, (method, path, status)
                if method != "HEAD":  # HEAD answers carry no body
                    assert body["error"]["code"] == "unauthorized"


async def test_tenants_are_isolated(inproc: InProcessCluster, tmp_path: Path) -> None:
    token_a, token_b = await tenant_tokens(inproc.api.url, "alice", "bob")
    data = random.Random(9).randbytes(2 * MIB)
    src = tmp_path / "a.bin"
    src.write_bytes(data)
    async with (
        Client(inproc.api.url, token=token_a) as a,
        Client(inproc.api.url, token=token_b) as b,
    ):
        up = await a.upload(src)
        plan = await a.api.download_plan(up.file_id)
        # B: A's file is exactly as absent as a file that does not exist
        with pytest.raises(FileNotFound) as mine:
            await b.api.download_plan(up.file_id)
        with pytest.raises(FileNotFound) as nobody:
            await b.api.download_plan("00000000-0000-4000-8000-000000000000")
        assert mine.value.message.replace(up.file_id, "X") == nobody.value.message.replace(
            "00000000-0000-4000-8000-000000000000", "X"
        )
        with pytest.raises(FileNotFound):
            await b.api.finalize_upload(up.file_id)
        with pytest.raises(NotFound):
            await b.api.proxy_get_chunk(plan["chunks"][0]["sha256"])
        assert (await b.api.list_files())["files"] == []
        assert [f["file_id"] for f in (await a.api.list_files())["files"]] == [up.file_id]
        # admin-only endpoints
        for call in (b.api.stats, b.api.nodes, b.api.list_tenants):
            with pytest.raises(Forbidden):
                await call()
        with pytest.raises(Forbidden):
            await b.api.create_token("bob", "admin")
        # A's own proxy read works
        assert (
            await a.api.proxy_get_chunk(plan["chunks"][0]["sha256"])
            == data[: plan["chunks"][0]["size"]]
        )


async def test_dropship_replay_fails(inproc: InProcessCluster, tmp_path: Path) -> None:
    """Tenant B knows the chunk hashes of A's file and builds a manifest from them without the
    bytes: committing it fails, and no byte of A's file reaches B."""
    token_a, token_b = await tenant_tokens(inproc.api.url, "alice", "mallory")
    secret_data = random.Random(10).randbytes(3 * MIB + 77)
    src = tmp_path / "secret.bin"
    src.write_bytes(secret_data)
    async with (
        Client(inproc.api.url, token=token_a) as a,
        Client(inproc.api.url, token=token_b) as b,
    ):
        up = await a.upload(src)
        plan_a = await a.api.download_plan(up.file_id)
        chunks = [{"sha256": c["sha256"], "size": c["size"]} for c in plan_a["chunks"]]
        # B asks to "upload" A's file by hashes alone
        plan_b = await b.api.init_upload(
            name="loot", size=up.size, sha256=up.sha256, chunker=plan_a["chunker"], chunks=chunks
        )
        # no leak: B is told to send every chunk, as if nobody had them
        assert sorted(u["sha256"] for u in plan_b["upload"]) == sorted(
            {c["sha256"] for c in chunks}
        )
        # finalize without sending: refused, the file stays invisible
        with pytest.raises(IncompleteUpload) as info:
            await b.api.finalize_upload(plan_b["file_id"])
        assert set(info.value.details["missing"]) == {c["sha256"] for c in chunks}
        # forged receipts (wrong key, or A's receipts are bound to A's file id) fail too
        forged = {
            c["sha256"]: auth.mint_receipt(b"x" * 32, plan_b["file_id"], c["sha256"])
            for c in chunks
        }
        with pytest.raises(IncompleteUpload):
            await b.api.finalize_upload(plan_b["file_id"], forged)
        with pytest.raises(FileNotFound):
            await b.api.download_plan(plan_b["file_id"])
        # B's capabilities are bound to B's upload and to put: they do not read anything
        item = plan_b["upload"][0]
        status, _ = await raw(
            "GET",
            f"{item['targets'][0]['url']}{protocol.GET_CHUNK}",
            {protocol.CAPABILITY: item["caps"][0]},
            params={"chunk_id": item["sha256"]},
        )
        assert status == 403
        with pytest.raises(NotFound):
            await b.api.proxy_get_chunk(item["sha256"])
        # sending the real bytes would be the only way: B sends garbage under the id -> 422
        status, body = await raw(
            "PUT",
            f"{item['targets'][0]['url']}{protocol.STORE_CHUNK}?chunk_id={item['sha256']}",
            {
                protocol.CAPABILITY: item["caps"][0],
                protocol.UPLOAD: plan_b["file_id"],
                protocol.FORWARD_TO: protocol.forward_header(
                    [(t["node_id"], t["url"]) for t in item["targets"][1:]]
                ),
            },
            data=b"\0" * item["size"],
        )
        assert (status, body["error"]["code"]) == (422, "integrity_error")
        assert (await b.api.list_files())["files"] == []


async def test_a_paged_finish_cannot_commit_a_dropship_manifest(
    inproc: InProcessCluster,
) -> None:
    """Mallory's /init-upload names alice's chunk by its sha256, with the size and sha256
    of alice's file. /finalize-upload asks for a receipt; /paged-upload/finalize with that
    same size and sha256 committed the file without one (no seal, so no page checked), and
    mallory then read alice's bytes through /proxy-chunk-download."""
    alice, mallory = await tenant_tokens(inproc.api.url, "alice", "mallory")
    secret = b"alice's secret " * 20
    url = inproc.api.url
    status, body = await raw(
        "POST",
        f"{url}{protocol.UPLOAD_FILE}?filename=s",
        {"Authorization": f"Bearer {alice}"},
        data=secret,
    )
    assert status == 201, body
    x, auth_m = sha(secret), {"Authorization": f"Bearer {mallory}"}
    req = {"name": "loot", "size": len(secret), "sha256": x, "chunker": "fixed:4096"}
    status, plan = await raw(
        "POST",
        f"{url}{protocol.INIT_UPLOAD}",
        auth_m,
        json={**req, "chunks": [{"sha256": x, "size": len(secret)}]},
    )
    assert status == 201, plan
    for size, digest in ((len(secret), x), (0, sha(b""))):  # as declared; sealed empty
        finish = {"file_id": plan["file_id"], "size": size, "sha256": digest}
        path = f"{url}{protocol.PAGED_UPLOAD_FINALIZE}"
        status, body = await raw("POST", path, auth_m, json=finish)
        assert (status, body["error"]["code"]) == (409, "conflict"), body
    status, body = await raw(
        "GET", f"{url}{protocol.PROXY_CHUNK_DOWNLOAD}", auth_m, params={"chunk_id": x}
    )
    assert status == 404, body
    status, body = await raw("GET", f"{url}{protocol.FILES}", auth_m)
    assert body["files"] == []


async def test_node_requires_valid_capability(inproc: InProcessCluster) -> None:
    node = inproc.nodes[0]
    data = b"payload" * 100
    cid = sha(data)
    file_id = "11111111-2222-4333-8444-555555555555"
    put_url = f"{node.url}{protocol.STORE_CHUNK}?chunk_id={cid}"

    def put_cap(**kw: Any) -> str:
        args: dict[str, Any] = {"extra": protocol.put_cap_extra(file_id, "")}
        args.update(kw)
        return auth.mint(
            args.pop("secret", SECRET),
            args.pop("op", auth.OP_PUT),
            args.pop("chunk", cid),
            args.pop("node", "node1"),
            **args,
        )

    bad_caps = {
        "none": None,
        "garbage": "123.abc",
        "wrong secret": put_cap(secret=b"another-secret-0123456789abcdef0"),
        "other node": put_cap(node="node2"),
        "other chunk": put_cap(chunk=sha(b"other")),
        "get cap": put_cap(op=auth.OP_GET, extra=""),
        "expired": put_cap(now=time.time() - 3600),
        "too long": put_cap(ttl=24 * 3600),
        "other file": put_cap(
            extra=protocol.put_cap_extra("21111111-2222-4333-8444-555555555555", "")
        ),
    }
    for name, cap in bad_caps.items():
        headers = {protocol.UPLOAD: file_id}
        if cap:
            headers[protocol.CAPABILITY] = cap
        status, body = await raw("PUT", put_url, headers, data=data)
        assert status in (401, 403), name
        assert body["error"]["code"] in ("unauthorized", "forbidden"), name
    assert node.store.chunk_count == 0  # nothing stored by any of them
    # tampering with the signed forward list is refused
    cap = put_cap()
    status, _ = await raw(
        "PUT",
        put_url,
        {
            protocol.CAPABILITY: cap,
            protocol.UPLOAD: file_id,
            protocol.FORWARD_TO: "evil=http://127.0.0.1:9",
        },
        data=data,
    )
    assert status == 403
    assert node.store.chunk_count == 0
    # a valid one stores it; reads need their own capability
    status, _ = await raw(
        "PUT", put_url, {protocol.CAPABILITY: cap, protocol.UPLOAD: file_id}, data=data
    )
    assert status == 201
    get_url = f"{node.url}{protocol.GET_CHUNK}?chunk_id={cid}"
    for headers in (
        {},
        {protocol.CAPABILITY: cap},
        {protocol.CAPABILITY: auth.mint(SECRET, auth.OP_GET, cid, "node2")},
    ):
        status, body = await raw("GET", get_url, headers)
        assert status in (401, 403)
        assert isinstance(body, dict)  # an error body, never chunk bytes
    status, body = await raw(
        "GET", get_url, {protocol.CAPABILITY: auth.mint(SECRET, auth.OP_GET, cid, "node1")}
    )
    assert (status, body) == (200, data)
    for path in (protocol.HAS_CHUNKS, protocol.NODE_STATUS):
        method = "POST" if path == protocol.HAS_CHUNKS else "GET"
        status, _ = await raw(method, f"{node.url}{path}", json={"chunk_ids": [cid]})
        assert status == 401


async def test_node_registration_needs_the_cluster_secret(inproc: InProcessCluster) -> None:
    boot = 1_700_000_000_000
    body = {
        "node_id": "rogue",
        "host": "127.0.0.1",
        "port": 1,
        "capacity_bytes": 1 << 40,
        "used_bytes": 0,
        "boot": boot,
        "seq": 1,
    }
    url = f"{inproc.api.url}{protocol.NODE_HEARTBEAT}"
    status, _ = await raw("POST", url, json=body)
    assert status == 401
    wrong_secret = b"wrong-secret-0123456789abcdef0123"
    wrong = auth.mint_heartbeat(
        wrong_secret, "rogue", boot, 1, "127.0.0.1", 1, 1 << 40, "", used=0, zone=""
    )
    status, _ = await raw("POST", url, {protocol.CAPABILITY: wrong}, json=body)
    assert status == 403
    async with Client(inproc.api.url, token=ADMIN_TOKEN) as admin:
        assert "rogue" not in {n["node_id"] for n in (await admin.list_nodes())["nodes"]}
        good = auth.mint_heartbeat(
            SECRET, "rogue", boot, 1, "127.0.0.1", 1, 1 << 40, "", used=0, zone=""
        )
        await admin.api.heartbeat(body, cap=good)
        assert "rogue" in {n["node_id"] for n in (await admin.list_nodes())["nodes"]}


async def test_a_heartbeat_changed_on_the_way_is_refused(inproc: InProcessCluster) -> None:
    """Everything placement acts on is under the heartbeat's MAC: a capability minted for one
    zone, use, capacity, address or disk does not carry another (a heartbeat caught on the
    way, its zone or use changed to steer writes, is refused and changes nothing)."""
    boot = 1_700_000_000_000
    sent = {
        "node_id": "n-hb",
        "host": "127.0.0.1",
        "port": 1,
        "capacity_bytes": 1 << 40,
        "used_bytes": 5,
        "zone": "zone a",
        "disk_id": "d1",
        "boot": boot,
    }
    url = f"{inproc.api.url}{protocol.NODE_HEARTBEAT}"

    def cap(seq: int) -> str:
        return auth.mint_heartbeat(
            SECRET, "n-hb", boot, seq, "127.0.0.1", 1, 1 << 40, "d1", used=5, zone="zone a"
        )

    changes = [
        {"zone": "zone b"},
        {"zone": "zone"},
        {"used_bytes": 1 << 40},
        {"capacity_bytes": 1 << 41},
        {"disk_id": "d2"},
        {"port": 2},
    ]
    for seq, change in enumerate(changes, start=1):
        status, _ = await raw(
            "POST", url, {protocol.CAPABILITY: cap(seq)}, json={**sent, **change, "seq": seq}
        )
        assert status == 403, change
    async with Client(inproc.api.url, token=ADMIN_TOKEN) as admin:
        assert "n-hb" not in {n["node_id"] for n in (await admin.list_nodes())["nodes"]}
        seq = len(changes) + 1
        status, _ = await raw(
            "POST", url, {protocol.CAPABILITY: cap(seq)}, json={**sent, "seq": seq}
        )
        assert status == 200
        (node,) = [n for n in (await admin.list_nodes())["nodes"] if n["node_id"] == "n-hb"]
        assert (node["zone"], node["used_bytes"]) == ("zone a", 5)
    too_long = {**sent, "zone": "z" * (protocol.MAX_ZONE + 1), "seq": seq + 1}
    status, _ = await raw("POST", url, {protocol.CAPABILITY: cap(seq + 1)}, json=too_long)
    assert status == 400


async def test_client_errors_map_to_auth_classes(inproc: InProcessCluster) -> None:
    async with Client(inproc.api.url, token="dfs_wrong") as c:
        with pytest.raises(AuthError) as info:
            await c.api.list_files()
        assert not isinstance(info.value, Forbidden)


async def test_a_download_url_minted_with_the_cluster_secret_is_refused(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    # every node holds the cluster secret; the download URLs' key is the API's alone
    (token,) = await tenant_tokens(inproc.api.url, "carol")
    src = tmp_path / "c.bin"
    src.write_bytes(random.Random(4).randbytes(100_000))
    async with Client(inproc.api.url, token=token) as c:
        up = await c.upload(src)
    url = f"{inproc.api.url}{protocol.SIGNED_DOWNLOAD}{up.file_id}"
    forged = auth.mint(SECRET, auth.OP_DOWNLOAD, up.file_id, "carol", ttl=300)
    status, _ = await raw("GET", url, params={"tenant": "carol", "sig": forged})
    assert status == 403
    good = auth.mint(inproc.api.coordinator.cfg.api_secret, auth.OP_DOWNLOAD, up.file_id, "carol")
    status, body = await raw("GET", url, params={"tenant": "carol", "sig": good})
    assert status == 200
    assert body == src.read_bytes()
    assert inproc.api.coordinator.cfg.api_secret not in (SECRET, b"")
