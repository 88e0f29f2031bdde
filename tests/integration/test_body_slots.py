"""Big-request slots are shared fairly: one tenant cannot hold them all, and nobody waits for
one without bound (``dfs.api.body_slots``)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from dfs import protocol
from dfs.api.body_slots import BODY_PER_TENANT, TOTAL, BigBodySlots
from dfs.api.context import BODIES
from dfs.client.library import Client
from dfs.client.local_files import LocalFile
from dfs.errors import Unavailable
from dfs.transport.api_client import ApiClient
from tests.clients import stall
from tests.integration.conftest import InProcessCluster
from tests.integration.test_route_bounds import _padded
from tests.integration.test_security import raw, tenant_tokens

pytestmark = pytest.mark.integration

MIB = 1 << 20
BOB_DEADLINE = 20.0
"""Seconds bob's request may take: under the ~46 s a declared 20 MiB body may send nothing
(``dfs.server``'s body deadline), which is how long it waited before."""


async def test_a_tenant_holds_at_most_its_share_and_waits_are_bounded() -> None:
    slots = BigBodySlots(total=4, per_tenant=2, wait=0.2)
    async with contextlib.AsyncExitStack() as held:
        for tenant in ("alice", "alice", "bob"):
            await held.enter_async_context(slots.slot(tenant))
        with pytest.raises(Unavailable):  # alice's third waits for one of her own
            await held.enter_async_context(slots.slot("alice"))
        await held.enter_async_context(slots.slot("carol"))  # the fourth slot
        with pytest.raises(Unavailable):  # all four taken: bounded, then 503
            await held.enter_async_context(slots.slot("dave"))
        assert slots.tenants_waiting_or_holding() == 3
    assert slots.tenants_waiting_or_holding() == 0  # released, and forgotten
    async with slots.slot("dave"):
        pass


async def _stalled_big_body(url: str, token: str) -> asyncio.StreamWriter:
    """A connection that declares a 20 MiB /init-upload body and sends none of it."""
    head = (
        f"POST {protocol.INIT_UPLOAD} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {20 * MIB}\r\n\r\n"
    )
    writer = await stall(url, head.encode())
    await writer.drain()
    return writer


async def test_stalled_big_bodies_of_one_tenant_do_not_block_another(
    inproc: InProcessCluster,
) -> None:
    """alice opens TOTAL connections that each declare a big body and send nothing (each
    took a slot before its body was read, for the body deadline: minutes); bob's big
    upload plan is answered meanwhile. Before, it waited until alice let go."""
    alice, bob = await tenant_tokens(inproc.api.url, "alice", "bob")
    stalled = [await _stalled_big_body(inproc.api.url, alice) for _ in range(TOTAL)]
    try:
        data = b"bob's data"
        digest = hashlib.sha256(data).hexdigest()
        chunk = {"offset": 0, "size": len(data), "sha256": digest}
        req = {"name": "b", "size": len(data), "sha256": digest, "chunker": "fixed:4096"}
        text = json.dumps({**req, "chunks": [chunk]})
        body = text[:-1] + " " * (MIB + 100 - len(text)) + "}"  # big: it takes a slot
        headers = {"Authorization": f"Bearer {bob}", "Content-Type": "application/json"}
        url = f"{inproc.api.url}{protocol.INIT_UPLOAD}"
        # alice's connections hold their slots until closed: minutes, far past this
        async with (
            aiohttp.ClientSession() as s,
            asyncio.timeout(BOB_DEADLINE),
            s.post(url, data=io.BytesIO(body.encode()), headers=headers) as r,
        ):
            assert r.status == 201, await r.text()
    finally:
        for w in stalled:
            w.close()


async def _pending_upload(url: str, token: str, data: bytes) -> str:
    """The file id of a pending upload of ``data``, one chunk."""
    digest = hashlib.sha256(data).hexdigest()
    plan = {
        "name": "p",
        "size": len(data),
        "sha256": digest,
        "chunker": f"fixed:{max(len(data), 4096)}",
    }
    plan["chunks"] = [{"offset": 0, "size": len(data), "sha256": digest}]
    headers = {"Authorization": f"Bearer {token}"}
    st, body = await raw("POST", f"{url}{protocol.INIT_UPLOAD}", headers, json=plan)
    assert st == 201, body
    return str(body["file_id"])


async def _proxy_put(url: str, token: str, file_id: str, data: bytes) -> tuple[int, Any]:
    query = f"?chunk_id={hashlib.sha256(data).hexdigest()}&file_id={file_id}"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"}
    return await raw("PUT", f"{url}{protocol.PROXY_CHUNK_UPLOAD}{query}", headers, data=data)


async def test_proxied_chunks_are_read_in_the_tenants_body_slots(
    inproc: InProcessCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``PUT /proxy-chunk-upload`` read its body (up to 16 MiB) with no slot: a tenant's
    connections each held that much, as many at once as it opened. Now its body is read in
    one of the tenant's body slots: when the tenant holds all of its own, 503."""
    url = inproc.api.url
    alice, bob = await tenant_tokens(url, "alice", "bob")
    data = b"proxied chunk " * (MIB // 8)  # far above what is read without a slot
    files = {t: await _pending_upload(url, t, data) for t in (alice, bob)}
    slots = inproc.api.runner.app[BODIES]
    monkeypatch.setattr(slots, "_wait", 0.2)
    async with contextlib.AsyncExitStack() as held:
        for _ in range(BODY_PER_TENANT):  # alice's other proxied chunks, all in flight
            await held.enter_async_context(slots.slot("alice"))
        st, body = await _proxy_put(url, alice, files[alice], data)
        assert (st, body["error"]["code"]) == (503, "busy"), body
        st, body = await _proxy_put(url, bob, files[bob], data)  # bob's own slots
        assert st == 201, body
    st, body = await _proxy_put(url, alice, files[alice], data)
    assert st == 201, body
    assert slots.tenants_waiting_or_holding() == 0


async def test_a_proxied_chunk_of_no_pending_upload_is_refused_before_its_body(
    inproc: InProcessCluster,
) -> None:
    """A chunk for a file that is not one of the caller's pending uploads (bob's) is answered
    404 at once, its declared 16 MiB unread: before, the API waited for the whole body (the
    body deadline: minutes) and held it before looking at the file."""
    url = inproc.api.url
    alice, bob = await tenant_tokens(url, "alice", "bob")
    bobs = await _pending_upload(url, bob, b"bob's chunk")
    parts = urlsplit(url)
    assert parts.hostname is not None
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        head = (
            f"PUT {protocol.PROXY_CHUNK_UPLOAD}?chunk_id={'a' * 64}&file_id={bobs} HTTP/1.1\r\n"
            f"Host: x\r\nAuthorization: Bearer {alice}\r\n"
            f"Content-Type: application/octet-stream\r\n"
            f"Content-Length: {protocol.MAX_CHUNK_SIZE}\r\n\r\n"
        )
        writer.write(head.encode() + b"abc")
        await writer.drain()
        async with asyncio.timeout(BOB_DEADLINE):  # far under the body deadline
            status = int((await reader.readline()).split()[1])
        assert status == 404
    finally:
        writer.close()


_EMPTY = {
    "name": "e",
    "size": 0,
    "sha256": hashlib.sha256(b"").hexdigest(),
    "chunks": [],
    "chunker": "fixed:4096",
}


def _json_routes(
    bucket: str, file_id: str, big: bool
) -> list[tuple[str, str, dict[str, Any], int]]:
    """A route of each kind that reads a JSON body of up to 1 MiB, a body it accepts and a
    size for it: above what is read without a slot (``big``), or 1 KiB."""
    routes = [
        ("POST", protocol.BUCKETS, {"name": f"{bucket}-{big:d}"}, 200 * 1024),
        ("PATCH", f"{protocol.BUCKETS}/{bucket}", {"access": "private"}, 200 * 1024),
        ("PATCH", f"/object-info/{bucket}/k", {"tags": {}}, 200 * 1024),
        ("POST", protocol.DOWNLOAD_PLANS, {"file_ids": [file_id]}, 200 * 1024),
        ("POST", protocol.INIT_UPLOADS, {"files": [_EMPTY]}, 900 * 1024),
    ]
    return [(m, p, body, size if big else 1024) for m, p, body, size in routes]


async def test_json_bodies_of_up_to_a_mib_are_read_in_the_tenants_body_slots(
    inproc: InProcessCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """JSON bodies of up to 1 MiB (up to ~35 MiB each once parsed) were read with no slot:
    a tenant's connections each pinned that much, as many at once as it opened. Now any
    JSON body above ``SMALL_BODY`` is read in one of the tenant's body slots (503 when the
    tenant holds all of its own); small ones still need none, other tenants have theirs."""
    url = inproc.api.url
    alice, bob = await tenant_tokens(url, "alice", "bob")
    files = {}
    for token, bucket in ((alice, "abox"), (bob, "bbox")):
        auth = {"Authorization": f"Bearer {token}"}
        st, body = await raw("POST", f"{url}{protocol.BUCKETS}", auth, json={"name": bucket})
        assert st == 201, body
        up = f"{url}{protocol.UPLOAD_FILE}?filename=f&bucket={bucket}&key=k"
        st, body = await raw("POST", up, auth, data=b"some bytes")
        assert st == 201, body
        files[token] = body["file_id"]
    slots = inproc.api.runner.app[BODIES]
    monkeypatch.setattr(slots, "_wait", 0.2)
    async with contextlib.AsyncExitStack() as held:
        for _ in range(BODY_PER_TENANT):  # alice's other bodies, all being read
            await held.enter_async_context(slots.slot("alice"))
        for token, bucket in ((alice, "abox"), (bob, "bbox")):
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            for big in (True, False):
                for method, path, body, size in _json_routes(bucket, files[token], big):
                    data = _padded(body, size)
                    st, answer = await raw(method, f"{url}{path}", headers, data=data)
                    # big: alice has no slot left, bob has his; small: needs none
                    refused = big and token == alice
                    assert st == 503 if refused else st < 300, (path, big, st, answer)
    assert slots.tenants_waiting_or_holding() == 0


async def _until(condition: Callable[[], bool], failed: asyncio.Task[Any]) -> None:
    """Wait (on this loop, which serves the API too) until ``condition()``; fail at once if
    ``failed`` ended first, and after ``BOB_DEADLINE`` seconds."""
    async with asyncio.timeout(BOB_DEADLINE):
        while not condition():
            assert not failed.done(), failed.exception()
            await asyncio.sleep(0.005)


async def test_a_proxied_upload_sends_a_chunk_again_after_a_503(
    inproc: InProcessCluster, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The API answers 503 to a proxied chunk while the tenant's body slots are all held
    (and asks for it again in a moment): ``dfs-client --proxy`` failed the upload. It now
    sends the chunk again: here its second try gets a slot alice's other requests let go."""
    url = inproc.api.url
    (alice,) = await tenant_tokens(url, "alice")
    path = tmp_path / "f"
    path.write_bytes(b"one chunk through the proxy " * 12_000)  # above SMALL_BODY
    slots = inproc.api.runner.app[BODIES]
    monkeypatch.setattr(slots, "_wait", 0.2)
    async with contextlib.AsyncExitStack() as held, Client(url, token=alice, proxy=True) as c:
        for _ in range(BODY_PER_TENANT):
            await held.enter_async_context(slots.slot("alice"))
        upload = asyncio.create_task(c.upload(path))
        await _until(lambda: slots.users("alice") > BODY_PER_TENANT, upload)  # it waits...
        await _until(lambda: slots.users("alice") == BODY_PER_TENANT, upload)  # ...503
        await _until(lambda: slots.users("alice") > BODY_PER_TENANT, upload)  # again
        await held.aclose()
        done = await upload
    assert done.size == path.stat().st_size


async def test_a_proxied_upload_sends_no_more_chunks_at_once_than_its_concurrency(
    inproc: InProcessCluster, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A tenant has as many body slots as ``dfs-client`` sends chunks at once by default,
    so that one client through the proxy never waits for its own. But a folder's big files
    are sent alone while its small ones go in batches, each with its own ``concurrency``
    sends: up to twice that many proxied chunks at once, the rest waiting (then 503) for
    the client's own slots. Found by review: the proxied sends of a client share one bound."""
    url = inproc.api.url
    (alice,) = await tenant_tokens(url, "alice")
    files = [tmp_path / "big"] + [tmp_path / f"small{i}" for i in range(6)]
    files[0].write_bytes(os.urandom(24 * MIB))  # above SMALL_FILE: sent alone
    for f in files[1:]:
        f.write_bytes(os.urandom(3 * MIB))  # in a batch
    slots, inner = inproc.api.runner.app[BODIES], inproc.api.runner.app[BODIES].slot
    counts, over = [0, 0], asyncio.Event()  # (in flight, most at once)

    @contextlib.asynccontextmanager
    async def counted(tenant: str) -> AsyncIterator[None]:
        counts[0] += 1
        counts[1] = max(counts)
        if counts[0] > BODY_PER_TENANT:
            over.set()
        try:
            async with inner(tenant):
                # the first ones are held until more come, or for a while
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(5.0):
                        await over.wait()
                over.set()
                yield
        finally:
            counts[0] -= 1

    monkeypatch.setattr(slots, "slot", counted)
    listed = [LocalFile(f, f.name, f.stat().st_size) for f in files]
    async with Client(url, token=alice, proxy=True) as c:
        done = await c.upload_many(listed)
    assert [d.size for d in done] == [f.stat().st_size for f in files]
    assert counts[1] <= BODY_PER_TENANT, counts


async def test_a_proxied_upload_rides_out_a_full_queue_of_body_slots(
    inproc: InProcessCluster, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Past ``QUEUED_PER_SLOT`` requests per slot the API answers 503 at once (no slot
    wait any more), so the client's pause is all the time a full queue has to drain: four
    tries within ~1 s failed the upload while the tenant's other requests held and queued
    for its slots for 2 s (before, each try waited up to 30 s in the queue)."""
    url = inproc.api.url
    (alice,) = await tenant_tokens(url, "alice")
    path = tmp_path / "f"
    path.write_bytes(b"one chunk through the proxy " * 12_000)  # above SMALL_BODY
    slots = inproc.api.runner.app[BODIES]
    monkeypatch.setattr(slots, "_queue_per_tenant", BODY_PER_TENANT)  # held = full
    async with contextlib.AsyncExitStack() as held, Client(url, token=alice, proxy=True) as c:
        for _ in range(BODY_PER_TENANT):
            await held.enter_async_context(slots.slot("alice"))
        upload = asyncio.create_task(c.upload(path))
        await asyncio.sleep(2.0)  # alice's other requests' time: part of the scenario
        assert not upload.done(), upload.exception()
        await held.aclose()
        done = await asyncio.wait_for(upload, BOB_DEADLINE)
    assert done.size == path.stat().st_size


async def test_a_request_refused_busy_is_sent_again_whatever_it_is(
    inproc: InProcessCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the queue of a tenant's body slots the API refuses a request at once, 503
    ``busy``: nothing of it was done. The client sends any request again on it (a bucket's
    creation here, which it sends again on no other failure), and the request goes
    through once alice's other requests let their slots go."""
    url = inproc.api.url
    (alice,) = await tenant_tokens(url, "alice")
    slots = inproc.api.runner.app[BODIES]
    monkeypatch.setattr(slots, "_queue_per_tenant", BODY_PER_TENANT)  # no room to wait
    refused: list[str] = []
    async with aiohttp.ClientSession() as session, contextlib.AsyncExitStack() as held:
        for _ in range(BODY_PER_TENANT):
            await held.enter_async_context(slots.slot("alice"))
        slot = slots.slot

        def counted(tenant: str) -> Any:
            if slots.users(tenant) >= BODY_PER_TENANT:
                refused.append(tenant)
            return slot(tenant)

        monkeypatch.setattr(slots, "slot", counted)
        api = ApiClient(session, url, token=alice)
        json_body = {"Content-Type": "application/json"}
        data = _padded({"name": "abox"}, 200 * 1024)  # above SMALL_BODY: read in a slot
        sent = asyncio.create_task(
            api._json("POST", protocol.BUCKETS, json_body, retry=False, data=data)
        )
        await _until(lambda: len(refused) >= 2, sent)  # refused, and sent again
        await held.aclose()
        answer = await asyncio.wait_for(sent, BOB_DEADLINE)
    assert answer["name"] == "abox"
    assert slots.tenants_waiting_or_holding() == 0
