"""API + nodes in one event loop: the client library and the HTTP contract of each route."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from dfs import auth, protocol
from dfs.chunking import ChunkerProfile
from dfs.client import Client
from dfs.errors import FileNotFound, IncompleteUpload, IntegrityError, InvalidRequest, Unavailable
from dfs.transport.http import ChunkPayload
from tests.integration.conftest import ADMIN_TOKEN, SECRET, InProcessCluster

pytestmark = pytest.mark.integration

MIB = 1 << 20


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def call(
    method: str, url: str, token: str | None = ADMIN_TOKEN, **kw: Any
) -> tuple[int, Any]:
    if token and "/store-chunk" not in url and "/has-chunks" not in url and "/get-chunk" not in url:
        kw.setdefault("headers", {})[protocol.AUTHORIZATION] = f"Bearer {token}"
    if isinstance(kw.get("data"), bytes):
        kw["data"] = ChunkPayload(kw["data"])
    async with aiohttp.ClientSession() as s, s.request(method, url, **kw) as r:
        body = await r.json(content_type=None) if r.content_type == "application/json" else None
        return r.status, body


async def test_client_round_trip_fixed_and_cdc(inproc: InProcessCluster, tmp_path: Path) -> None:
    data = random.Random(1).randbytes(3 * MIB + 5)
    src = tmp_path / "in.bin"
    src.write_bytes(data)
    async with Client(inproc.api.url, token=ADMIN_TOKEN, concurrency=4) as client:
        for profile in (ChunkerProfile.fixed(256 * 1024), None):
            up = await client.upload(src, profile=profile)
            assert up.sha256 == sha(data)
            out = tmp_path / f"out-{up.file_id}"
            down = await client.download(up.file_id, out)
            assert out.read_bytes() == data
            assert down.size == len(data)
        # into a directory: keeps the stored name
        outdir = tmp_path / "dir"
        outdir.mkdir()
        down = await client.download(up.file_id, outdir)
        assert Path(down.path) == outdir / "in.bin"
        assert not list(outdir.glob(".*dfs-part"))


def put_headers(node_id: str, chunk_id: str, file_id: str, forward: str = "") -> dict[str, str]:
    cap = auth.mint(
        SECRET, auth.OP_PUT, chunk_id, node_id, extra=protocol.put_cap_extra(file_id, forward)
    )
    headers = {protocol.CAPABILITY: cap, protocol.UPLOAD: file_id}
    if forward:
        headers[protocol.FORWARD_TO] = forward
    return headers


FILE_ID = "11111111-2222-4333-8444-555555555555"


async def test_store_chunk_verifies_and_is_idempotent(inproc: InProcessCluster) -> None:
    node = inproc.nodes[0]
    data = b"chunk bytes" * 1000
    url = f"{node.url}{protocol.STORE_CHUNK}?chunk_id={sha(data)}"
    headers = put_headers("node1", sha(data), FILE_ID)
    status, body = await call("PUT", url, data=data, headers=headers)
    assert status == 201
    assert auth.receipt_ok(SECRET, body["receipt"], FILE_ID, sha(data))
    # the second write stores nothing new and answers the same: no existence oracle
    status, body2 = await call("PUT", url, data=data, headers=headers)
    assert status == 201
    assert set(body2) == set(body)
    assert "stored" not in body2
    assert node.store.chunk_count == 1
    # wrong bytes for the id: 422, nothing stored
    x = sha(b"x")
    status, body = await call(
        "PUT",
        f"{node.url}{protocol.STORE_CHUNK}?chunk_id={x}",
        data=b"y",
        headers=put_headers("node1", x, FILE_ID),
    )
    assert status == 422
    assert body["error"]["code"] == "integrity_error"
    assert node.store.chunk_count == 1
    # a bad id never reaches the disk
    status, body = await call(
        "PUT", f"{node.url}{protocol.STORE_CHUNK}?chunk_id=../../x", data=b"y", headers=headers
    )
    assert (status, body["error"]["code"]) == (400, "invalid_request")
    # body above the bound: 413
    big = b"\0" * (protocol.MAX_CHUNK_SIZE + 1)
    status, body = await call(
        "PUT",
        f"{node.url}{protocol.STORE_CHUNK}?chunk_id={sha(big)}",
        data=big,
        headers=put_headers("node1", sha(big), FILE_ID),
    )
    assert (status, body["error"]["code"]) == (413, "payload_too_large")
    # unknown route and wrong method are JSON errors too
    status, body = await call("GET", f"{node.url}/nope")
    assert (status, body["error"]["code"]) == (404, "not_found")
    status, body = await call("POST", f"{node.url}{protocol.GET_CHUNK}")
    assert (status, body["error"]["code"]) == (405, "method_not_allowed")
    # has-chunks answers the subset present
    has_cap = auth.mint(SECRET, auth.OP_HAS, auth.ANY_CHUNK, "node1")
    status, body = await call(
        "POST",
        f"{node.url}{protocol.HAS_CHUNKS}",
        json={"chunk_ids": [sha(data), sha(b"no")]},
        headers={protocol.CAPABILITY: has_cap},
    )
    assert (status, body["present"]) == (200, [sha(data)])


async def test_forwarding_replicates_before_ack(inproc: InProcessCluster) -> None:
    a, b, c = inproc.nodes
    data = random.Random(2).randbytes(MIB)
    url = f"{a.url}{protocol.STORE_CHUNK}?chunk_id={sha(data)}"
    forward = protocol.forward_header([("node2", b.url), ("node3", c.url)])
    status, body = await call(
        "PUT", url, data=data, headers=put_headers("node1", sha(data), FILE_ID, forward)
    )
    assert status == 201
    assert sorted(body["replicas"]) == ["node1", "node2", "node3"]
    for node in (a, b, c):
        assert await node.store.has([sha(data)]) == {sha(data)}  # type: ignore[list-item]
    # a dead forward target fails the write: sync replication promises every copy
    other = random.Random(3).randbytes(1000)
    dead = protocol.forward_header([("node9", "http://127.0.0.1:9")])
    status, body = await call(
        "PUT",
        f"{a.url}{protocol.STORE_CHUNK}?chunk_id={sha(other)}",
        data=other,
        headers=put_headers("node1", sha(other), FILE_ID, dead),
    )
    assert (status, body["error"]["code"]) == (502, "replication_failed")


async def test_finalize_refuses_missing_chunks(inproc: InProcessCluster) -> None:
    data = random.Random(4).randbytes(1000)
    async with Client(inproc.api.url, token=ADMIN_TOKEN) as client:
        plan = await client.api.init_upload(
            name="x",
            size=len(data),
            sha256=sha(data),
            chunker="fixed:4096",
            chunks=[{"sha256": sha(data), "size": len(data)}],
        )
        assert [u["sha256"] for u in plan["upload"]] == [sha(data)]
        assert len(plan["upload"][0]["targets"]) == 2
        with pytest.raises(IncompleteUpload) as info:
            await client.api.finalize_upload(plan["file_id"])
        assert info.value.details["missing"] == [sha(data)]
        item = plan["upload"][0]
        forward = protocol.forward_header([(t["node_id"], t["url"]) for t in item["targets"][1:]])
        # pending files do not exist for readers
        with pytest.raises(FileNotFound):
            await client.api.download_plan(plan["file_id"])
        # only one copy (a replica write to the primary alone): still incomplete
        first = item["targets"][0]
        rcap = auth.mint(SECRET, auth.OP_REPLICATE, sha(data), first["node_id"])
        await client.nodes.replicate_chunk(first["url"], sha(data), data, cap=rcap)
        fake = {
            sha(data): auth.mint_receipt(
                b"not-the-secret-0123456789abcdef0", plan["file_id"], sha(data)
            )
        }
        with pytest.raises(IncompleteUpload):
            await client.api.finalize_upload(plan["file_id"], fake)
        answer = await client.nodes.put_chunk(
            first["url"],
            sha(data),
            data,
            cap=item["caps"][0],
            file_id=plan["file_id"],
            forward=forward,
        )
        receipts = {sha(data): answer["receipt"]}
        done = await client.api.finalize_upload(plan["file_id"], receipts)
        assert done["state"] == "complete"
        # finalize is idempotent and counts once
        await client.api.finalize_upload(plan["file_id"], receipts)
        assert (await client.stats())["total_files"] == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"name": "", "size": 0, "sha256": "0" * 64, "chunker": "fixed:4096", "chunks": []},
            "name",
        ),
        (
            {"name": "a", "size": -1, "sha256": "0" * 64, "chunker": "fixed:4096", "chunks": []},
            "size",
        ),
        ({"name": "a", "size": 0, "sha256": "zz", "chunker": "fixed:4096", "chunks": []}, "sha256"),
        ({"name": "a", "size": 0, "sha256": "0" * 64, "chunker": "fixed:1", "chunks": []}, "fixed"),
        (
            {"name": "a", "size": 5, "sha256": "0" * 64, "chunker": "fixed:4096", "chunks": []},
            "add up",
        ),
        (
            {
                "name": "a",
                "size": 1,
                "sha256": "0" * 64,
                "chunker": "fixed:4096",
                "chunks": [{"sha256": "A" * 64, "size": 1}],
            },
            "chunks[0].sha256",
        ),
    ],
)
async def test_init_upload_validates(
    inproc: InProcessCluster, body: dict[str, Any], message: str
) -> None:
    status, answer = await call("POST", f"{inproc.api.url}{protocol.INIT_UPLOAD}", json=body)
    assert status == 400
    assert message in answer["error"]["message"]


async def test_errors_map_back_to_classes(inproc: InProcessCluster, tmp_path: Path) -> None:
    async with Client(inproc.api.url, token=ADMIN_TOKEN) as client:
        with pytest.raises(InvalidRequest):
            await client.api.download_plan("not-a-uuid")
        plan = await client.api.init_upload(
            name="a",
            size=1,
            sha256=sha(b"a"),
            chunker="fixed:4096",
            chunks=[{"sha256": sha(b"a"), "size": 1}],
        )
        with pytest.raises(IntegrityError):
            await client.api.proxy_put_chunk(sha(b"a"), b"b", file_id=plan["file_id"])
        for node in inproc.nodes[1:]:
            await node.stop()
        src = tmp_path / "f"
        src.write_bytes(b"abc")
        with pytest.raises(Unavailable, match="only 1 live storage node"):
            await client.upload(src)
        inproc.nodes = inproc.nodes[:1]


def _edit_after_scan(monkeypatch: pytest.MonkeyPatch, edit: Any) -> None:
    """Run ``edit(path)`` on the file right after the client's scan of it, before any send."""
    from dfs.client import upload

    real = upload.scan_file_threaded

    def scan_then_edit(path: Path, profile: ChunkerProfile) -> Any:
        scan = real(path, profile)
        edit(Path(path))
        return scan

    monkeypatch.setattr(upload, "scan_file_threaded", scan_then_edit)


def _flip_byte(path: Path) -> None:
    with path.open("r+b") as f:
        f.seek(MIB + 5)
        byte = f.read(1)
        f.seek(MIB + 5)
        f.write(bytes([byte[0] ^ 0xFF]))  # as if the file had been edited since the scan


@pytest.mark.parametrize(
    "edit",
    [_flip_byte, lambda p: os.truncate(p, MIB + MIB // 2)],
    ids=["edited", "truncated"],
)
async def test_upload_fails_if_file_changes_after_the_scan(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edit: Any
) -> None:
    """The client does not re-hash before sending (it sends the file's pages with sendfile):
    the node's check must catch an edit, the client's a file that got shorter."""
    src = tmp_path / "in.bin"
    src.write_bytes(random.Random(7).randbytes(2 * MIB))
    _edit_after_scan(monkeypatch, edit)
    async with Client(inproc.api.url, token=ADMIN_TOKEN, concurrency=2) as client:
        with pytest.raises(IntegrityError, match="changed while it was being uploaded"):
            await client.upload(src, profile=ChunkerProfile.fixed(MIB))
