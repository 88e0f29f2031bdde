"""The seed endpoints, batch and resume routes, and CORS, over real HTTP in one event loop."""

from __future__ import annotations

import hashlib
import io
import random
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from dfs import protocol
from dfs.api.app import start_api
from dfs.auth import hash_token
from dfs.client import Client
from dfs.client.download import ChunkFetcher
from dfs.config import ApiConfig
from dfs.transport.http import ChunkPayload
from tests.integration.conftest import ADMIN_TOKEN, SECRET, InProcessCluster
from tests.integration.test_security import tenant_tokens

pytestmark = pytest.mark.integration

MIB = 1 << 20


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def req(
    method: str, url: str, token: str | None = ADMIN_TOKEN, **kw: Any
) -> tuple[int, Any, aiohttp.typedefs.LooseHeaders]:
    headers = dict(kw.pop("headers", {}))
    if isinstance(kw.get("data"), bytes):
        kw["data"] = ChunkPayload(kw["data"])
    if token:
        headers[protocol.AUTHORIZATION] = f"Bearer {token}"
    async with aiohttp.ClientSession() as s, s.request(method, url, headers=headers, **kw) as r:
        body = (
            await r.json(content_type=None)
            if r.content_type == "application/json"
            else await r.read()
        )
        return r.status, body, r.headers


async def test_upload_raw_and_multipart_then_409_and_signed_download(
    inproc: InProcessCluster,
) -> None:
    api = inproc.api.url
    data = random.Random(7).randbytes(5 * MIB + 123)
    status, body, _ = await req("POST", f"{api}/upload?filename=a.bin", data=data)
    assert status == 201, body
    assert body["sha256"] == sha(data)
    assert body["size"] == len(data)
    assert body["state"] == "complete"
    first = body["file_id"]
    # the same bytes again, as a multipart form: 409 with the first file's id
    form = aiohttp.FormData()
    form.add_field("file", io.BytesIO(data), filename="again.bin")
    status, body, _ = await req("POST", f"{api}/upload", data=form)
    assert status == 409, body
    assert body["file_id"] == first
    assert body["file"]["name"] == "a.bin"
    # new bytes by multipart: stored under the part's file name
    other = random.Random(8).randbytes(300_000)
    form = aiohttp.FormData()
    form.add_field("file", other, filename="b.bin")
    status, body, _ = await req("POST", f"{api}/upload", data=form)
    assert status == 201, body
    assert body["name"] == "b.bin"
    # metadata under both seed names
    for path in (f"/file/{first}", f"/metadata/{first}"):
        status, body, _ = await req("GET", api + path)
        assert status == 200
        assert body["file_id"] == first
    # a signed URL that needs no token, returns the exact bytes, and binds the file id
    status, body, _ = await req("GET", f"{api}/download/{first}")
    assert status == 200
    assert body["filename"] == "a.bin"
    assert body["size"] == len(data)
    url = body["download_url"]
    status, got, headers = await req("GET", url, token=None)
    assert status == 200
    assert got == data
    assert "a.bin" in headers["Content-Disposition"]
    parts = urlsplit(url)
    forged = url.replace(first, "00000000-0000-4000-8000-000000000000")
    status, _, _ = await req("GET", forged, token=None)
    assert status == 403
    tampered = f"{api}{parts.path}?{parts.query.replace('tenant=admin', 'tenant=other')}"
    status, _, _ = await req("GET", tampered, token=None)
    assert status == 403
    status, _, _ = await req("GET", f"{api}{parts.path}", token=None)
    assert status == 400  # no tenant


async def test_check_and_409_are_per_tenant(inproc: InProcessCluster) -> None:
    api = inproc.api.url
    alice, bob = await tenant_tokens(api, "alice", "bob")
    data = b"same bytes for two tenants" * 1000
    status, body, _ = await req("POST", f"{api}/upload?filename=x", alice, data=data)
    assert status == 201
    status, check, _ = await req("GET", f"{api}/check?sha256={sha(data)}", alice)
    assert check["exists"] is True
    assert check["file"]["file_id"] == body["file_id"]
    status, check, _ = await req("GET", f"{api}/check?sha256={sha(data)}", bob)
    assert check == {"exists": False, "file": None}
    status, body2, _ = await req("POST", f"{api}/upload?filename=x", bob, data=data)
    assert status == 201  # bob's first copy: never a 409 from alice's file
    assert body2["file_id"] != body["file_id"]
    status, _, _ = await req("GET", f"{api}/file/{body['file_id']}", bob)
    assert status == 404
    status, _, _ = await req("GET", f"{api}/download/{body['file_id']}", bob)
    assert status == 404


async def test_admin_hashes_pages_with_sealed_keys(inproc: InProcessCluster) -> None:
    api = inproc.api.url
    (user,) = await tenant_tokens(api, "carol")
    stored = set()
    for i in range(5):
        data = random.Random(i).randbytes(1000 + i)
        await req("POST", f"{api}/upload?filename=f{i}", data=data)
        stored.add(sha(data))  # one chunk each
    seen: list[str] = []
    key = None
    for _ in range(20):
        q = f"?limit=2&last_evaluated_key={key}" if key else "?limit=2"
        status, body, _ = await req("GET", f"{api}/admin/hashes{q}")
        assert status == 200
        assert len(body["hashes"]) <= 2
        seen += body["hashes"]
        key = body["next_page"]
        if key is None:
            break
    assert sorted(seen) == sorted(stored)
    status, body, _ = await req("GET", f"{api}/admin/hashes?limit=2")
    key = body["next_page"]
    tampered = key[:-1] + ("1" if key[-1] == "0" else "0")  # always a different MAC
    status, body, _ = await req("GET", f"{api}/admin/hashes?last_evaluated_key={tampered}")
    assert status == 400
    status, _, _ = await req("GET", f"{api}/admin/hashes", user)
    assert status == 403
    status, stats, _ = await req("GET", f"{api}/admin/stats")
    assert stats["total_s3_size_saved"] == stats["total_bytes_saved"]
    assert stats["live_nodes"] == 3
    assert "dedup_ratio" in stats


async def test_resume_plans_only_unproven_chunks_of_the_callers_own_upload(
    inproc: InProcessCluster,
) -> None:
    api = inproc.api.url
    alice, mallory = await tenant_tokens(api, "alice2", "mallory")
    chunks = [random.Random(i).randbytes(8192) for i in range(4)]
    async with Client(api, token=alice) as c:
        plan = await c.api.init_upload(
            name="r",
            size=4 * 8192,
            sha256=sha(b"".join(chunks)),
            chunker="fixed:8192",
            chunks=[{"sha256": sha(d), "size": len(d)} for d in chunks],
        )
        file_id = plan["file_id"]
        receipts = {}
        for item in plan["upload"][:2]:  # "interrupted" after two chunks
            data = next(d for d in chunks if sha(d) == item["sha256"])
            receipts[item["sha256"]] = await c.send_chunk(file_id, item["sha256"], data, item)
        again = await c.api.resume_upload(file_id, receipts)
        assert {u["sha256"] for u in again["upload"]} == {sha(d) for d in chunks} - set(receipts)
        # another tenant can neither resume nor finalize alice's pending upload
        async with Client(api, token=mallory) as m:
            status, _, _ = await req(
                "POST", f"{api}/resume-upload", mallory, json={"file_id": file_id}
            )
            assert status == 404
            del m
        for item in again["upload"]:
            data = next(d for d in chunks if sha(d) == item["sha256"])
            receipts[item["sha256"]] = await c.send_chunk(file_id, item["sha256"], data, item)
        done = await c.api.finalize_upload(file_id, receipts)
        assert done["state"] == "complete"


async def test_batch_init_and_finalize(inproc: InProcessCluster) -> None:
    api = inproc.api.url
    files = [random.Random(100 + i).randbytes(5000 + i) for i in range(30)]
    async with Client(api, token=ADMIN_TOKEN) as c:
        plans = await c.api.init_uploads(
            [
                {
                    "name": f"s/{i}",
                    "size": len(d),
                    "sha256": sha(d),
                    "chunker": "fixed:65536",
                    "chunks": [{"sha256": sha(d), "size": len(d)}],
                }
                for i, d in enumerate(files)
            ]
        )
        # small chunks come without per-chunk capabilities (their packs carry them)
        assert all("caps" not in item for plan in plans for item in plan["upload"])
        uploads = []
        for d, plan in zip(files, plans, strict=True):
            receipts = {}
            # sent one by one instead: a plan with capabilities, as the client asks for
            single = await c.api.resume_upload(plan["file_id"], {})
            for item in single["upload"]:
                receipts[item["sha256"]] = await c.send_chunk(
                    plan["file_id"], item["sha256"], d, item
                )
            uploads.append({"file_id": plan["file_id"], "receipts": receipts})
        uploads.append({"file_id": "00000000-0000-4000-8000-000000000000", "receipts": {}})
        done = await c.api.finalize_uploads(uploads)
        assert [f.get("state") for f in done[:-1]] == ["complete"] * 30
        assert done[-1]["error"]["code"] == "file_not_found"
        plans = await c.api.download_plans([f["file_id"] for f in done[:-1]])
        assert [p["sha256"] for p in plans] == [sha(d) for d in files]


async def test_cors_only_for_configured_origins(inproc: InProcessCluster, tmp_path: Any) -> None:
    api = await start_api(
        ApiConfig(
            port=0,
            data_dir=tmp_path / "api2",
            meta_url=f"sqlite://{inproc.base / 'meta.db'}",
            cluster_secret=SECRET,
            admin_token_hash=hash_token(ADMIN_TOKEN),
            cors_origins=("https://app.example",),
        )
    )
    try:
        pre = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
        status, _, headers = await req("OPTIONS", f"{api.url}/upload", None, headers=pre)
        assert status == 204
        assert headers["Access-Control-Allow-Origin"] == "https://app.example"
        assert "Authorization" in headers["Access-Control-Allow-Headers"]
        status, _, headers = await req(
            "GET", f"{api.url}/files", headers={"Origin": "https://app.example"}
        )
        assert status == 200
        assert headers["Access-Control-Allow-Origin"] == "https://app.example"
        status, _, headers = await req(
            "GET", f"{api.url}/files", None, headers={"Origin": "https://app.example"}
        )
        assert status == 401  # errors carry the header too, so the page can read them
        assert headers["Access-Control-Allow-Origin"] == "https://app.example"
        status, _, headers = await req(
            "GET", f"{api.url}/files", headers={"Origin": "https://evil.example"}
        )
        assert "Access-Control-Allow-Origin" not in headers
    finally:
        await api.stop()
    # the default cluster has CORS off
    status, _, headers = await req(
        "GET", f"{inproc.api.url}/files", headers={"Origin": "https://app.example"}
    )
    assert "Access-Control-Allow-Origin" not in headers


async def test_interrupted_download_fetches_only_missing_chunks(
    inproc: InProcessCluster, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dfs.chunking import ChunkerProfile

    data = random.Random(21).randbytes(16 * 64 * 1024)
    src = tmp_path / "d.bin"
    src.write_bytes(data)
    out = tmp_path / "d.out"

    class Stop(Exception):
        pass

    async with Client(inproc.api.url, token=ADMIN_TOKEN, concurrency=1) as c:
        up = await c.upload(src, profile=ChunkerProfile.fixed(64 * 1024))
        written = 0

        def stop_halfway(n: int) -> None:
            nonlocal written
            written += n
            if written >= len(data) // 2:
                raise Stop

        with pytest.raises(Stop):
            await c.download(up.file_id, out, progress=stop_halfway)
        assert not out.exists()
        assert list(tmp_path.glob(".d.out.*.dfs-part"))  # kept for the next run
        fetched = 0
        real_fetch = ChunkFetcher.fetch

        async def counting(self: ChunkFetcher, chunk: dict[str, Any]) -> bytes:
            nonlocal fetched
            fetched += 1
            return await real_fetch(self, chunk)

        monkeypatch.setattr(ChunkFetcher, "fetch", counting)
        await c.download(up.file_id, out)
        assert out.read_bytes() == data
        assert fetched <= 16 - 8
        assert not list(tmp_path.glob(".d.out.*"))
