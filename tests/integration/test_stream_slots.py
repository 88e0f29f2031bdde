"""Streamed uploads (the API's ``POST /upload``, the S3 gateway's PutObject and UploadPart)
are chunked in a bounded number of stream slots, a few per tenant (``dfs.api.body_slots``),
and their chunkers wait for the client's bytes on threads of their own, never on the event
loop's default executor (``dfs.api.ingest``). Found by review: one tenant's stalled uploads
held the default executor's every thread (six on two cores) until their body deadline, and
every request of any tenant that needed a thread waited for them."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from dfs import protocol
from dfs.api import ingest
from dfs.api.body_slots import BODY_PER_TENANT, STREAM_PER_TENANT, BigBodySlots
from dfs.api.context import STREAMS
from dfs.s3 import context as s3_context
from dfs.s3.app import make_app, make_runner
from dfs.server import Handler
from tests.clients import stall
from tests.e2e.test_stalled_uploads import put_head, upload_head
from tests.integration.conftest import InProcessCluster
from tests.integration.test_namespace_api import tokens
from tests.integration.test_s3_multipart_calls import _access_key, _client
from tests.integration.test_s3_tenancy import refused, run, s3_client
from tests.integration.test_security import raw

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning"),
]

DEADLINE = 20.0
MIB = 1 << 20


async def _until(condition: Callable[[], bool], what: str) -> None:
    """Wait (on this loop, which serves the API too) until ``condition()``."""
    try:
        async with asyncio.timeout(DEADLINE):
            while True:
                if condition():
                    return
                await asyncio.sleep(0.01)  # a poll: the condition is the servers' state
    except TimeoutError:
        raise AssertionError(f"not within {DEADLINE} s: {what}") from None


async def _upload(
    url: str, token: str, data: bytes, kind: str = "application/octet-stream"
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": kind}
    return await raw("POST", f"{url}{protocol.UPLOAD_FILE}?filename=f", headers, data=data)


async def test_uploads_are_chunked_in_the_tenants_stream_slots(
    inproc: InProcessCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``POST /upload`` took no slot: a tenant ran as many at once as it opened connections.
    Now each runs in one of the tenant's stream slots, 503 when it holds all of its own."""
    url = inproc.api.url
    alice, bob = await tokens(url, "alice", "bob")
    slots = inproc.api.runner.app[STREAMS]
    monkeypatch.setattr(slots, "_wait", 0.2)
    data = os.urandom(2 * MIB)  # chunked (above the chunker's smallest cut)
    async with contextlib.AsyncExitStack() as held:
        for _ in range(STREAM_PER_TENANT):  # alice's other uploads, all in flight
            await held.enter_async_context(slots.slot("alice"))
        st, body = await _upload(url, alice, data)
        assert (st, body["error"]["code"]) == (503, "busy"), body
        st, body = await _upload(url, bob, data)  # bob's own slots
        assert st == 201, body
    st, body = await _upload(url, alice, data)
    assert st == 201, body
    malformed = "multipart/form-data; boundary=b"
    st, body = await _upload(url, alice, b"--nothing", malformed)  # 400: slot let go too
    assert st == 400, body
    assert slots.tenants_waiting_or_holding() == 0


async def _stalled_upload(url: str, token: str, sent: int) -> asyncio.StreamWriter:
    """A ``POST /upload`` declaring 1 GiB that sends ``sent`` bytes and then nothing."""
    writer = await stall(url, upload_head(token), sent)
    await writer.drain()
    return writer


def _paused(request: web.Request) -> bool:
    """Whether the server stopped reading ``request``'s socket (its body buffer is full)."""
    protocol = request.protocol
    return protocol is not None and bool(protocol._reading_paused)


def _default_threads() -> int:
    """Threads of the event loop's default executor (``asyncio.to_thread``'s)."""
    return concurrent.futures.ThreadPoolExecutor()._max_workers


async def test_stalled_uploads_hold_no_thread_of_the_default_executor(
    inproc: InProcessCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As many stalled uploads as the default executor has threads, their chunkers each
    waiting for bytes in a thread: ``asyncio.to_thread`` (a JSON body, a verified read,
    another upload's chunker) still gets a thread. Before, it waited until the uploads'
    body deadline (minutes). Closed, the uploads let their slots go."""
    url = inproc.api.url
    count = _default_threads()
    names = [f"t{i}" for i in range(-(-count // STREAM_PER_TENANT))]
    who = await tokens(url, *names)
    entered = [0]
    cut = ingest._next_chunks

    def counted(chunks: Any) -> Any:
        entered[0] += 1  # in the chunker's thread, waiting for the body
        return cut(chunks)

    monkeypatch.setattr(ingest, "_next_chunks", counted)
    slots = inproc.api.runner.app[STREAMS]
    writers = [await _stalled_upload(url, who[i % len(who)], 2 * MIB) for i in range(count)]
    try:
        await _until(lambda: entered[0] >= count, "every upload's chunker in its thread")
        async with asyncio.timeout(DEADLINE):
            assert await asyncio.to_thread(sum, [1, 2]) == 3
        held = sum(slots.users(n) for n in names)
        assert held == count
    finally:
        for w in writers:
            w.close()
    await _until(lambda: slots.tenants_waiting_or_holding() == 0, "slots let go")


@contextlib.asynccontextmanager
async def _gateway(
    inproc: InProcessCluster,
    seen: list[web.Request] | None = None,
    arrived: Callable[[web.Request], None] | None = None,
) -> AsyncIterator[tuple[str, web.Application]]:
    """The gateway in process (as ``dfs.s3.app.start_s3`` runs it), its requests added to
    ``seen`` (and given to ``arrived``) as they arrive."""
    app = make_app(inproc.api.coordinator)

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        if seen is not None:
            seen.append(request)
        if arrived is not None:
            arrived(request)
        return await handler(request)

    app.middlewares.insert(0, record)
    runner = make_runner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", app
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def _two_tenants(
    inproc: InProcessCluster,
) -> AsyncIterator[tuple[web.Application, Any, Any]]:
    """The gateway (``_gateway``) and boto3 clients of alice and bob, each with a bucket
    (``abkt``, ``bbkt``)."""
    alice, bob = await tokens(inproc.api.url, "alice", "bob")
    async with _gateway(inproc) as (url, app):
        s3a = await s3_client(inproc.api.url, alice, url)
        s3b = await s3_client(inproc.api.url, bob, url)
        for s3, bucket in ((s3a, "abkt"), (s3b, "bbkt")):
            await run(s3.create_bucket, Bucket=bucket)
        yield app, s3a, s3b


async def test_s3_puts_and_parts_are_chunked_in_the_tenants_stream_slots(
    inproc: InProcessCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PutObject, UploadPart and UploadPartCopy took no slot either. Now, when the tenant
    holds all of its own, each is answered 503 SlowDown (which SDKs send again after a
    pause); another tenant's go through, and so do alice's once her slots are let go."""
    async with _two_tenants(inproc) as (app, s3a, s3b):
        await run(s3a.put_object, Bucket="abkt", Key="src", Body=b"source")
        uid = (await run(s3a.create_multipart_upload, Bucket="abkt", Key="m"))["UploadId"]
        part = {"Bucket": "abkt", "Key": "m", "UploadId": uid, "PartNumber": 1}
        slots: BigBodySlots = app[s3_context.STREAMS]
        monkeypatch.setattr(slots, "_wait", 0.2)
        async with contextlib.AsyncExitStack() as held:
            for _ in range(STREAM_PER_TENANT):
                await held.enter_async_context(slots.slot("alice"))
            put = {"Bucket": "abkt", "Key": "k", "Body": b"data"}
            assert await refused(s3a.put_object, **put) == "SlowDown"
            assert await refused(s3a.upload_part, **part, Body=b"data") == "SlowDown"
            copy = {**part, "CopySource": {"Bucket": "abkt", "Key": "src"}}
            assert await refused(s3a.upload_part_copy, **copy) == "SlowDown"
            await run(s3b.put_object, Bucket="bbkt", Key="k", Body=b"data")
        await run(s3a.put_object, Bucket="abkt", Key="k", Body=b"data")
        await run(s3a.upload_part, **part, Body=b"data")
        assert slots.tenants_waiting_or_holding() == 0


async def test_requests_past_the_queue_of_the_slots_are_refused_at_once(
    inproc: InProcessCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each request waiting for a stream slot costs what its connection buffered of its body
    (under 1 MiB), and how many could wait had no bound. Now a tenant's requests holding or
    waiting for slots are bounded (here: its 16 slots held and 2 waiting), and so are all
    tenants' together: past either bound a PutObject is answered SlowDown at once, not
    after the slot wait (here the test's whole deadline)."""
    async with _two_tenants(inproc) as (app, s3a, s3b):
        slots: BigBodySlots = app[s3_context.STREAMS]
        monkeypatch.setattr(slots, "_wait", DEADLINE)
        monkeypatch.setattr(slots, "_queue_per_tenant", STREAM_PER_TENANT + 2)
        put = {"Bucket": "abkt", "Key": "k", "Body": b"data"}
        let_go = asyncio.Event()

        async def wait_for_a_slot() -> None:
            async with slots.slot("alice"):
                await let_go.wait()

        loop = asyncio.get_running_loop()
        async with contextlib.AsyncExitStack() as held:
            for _ in range(STREAM_PER_TENANT):
                await held.enter_async_context(slots.slot("alice"))
            waiters = [asyncio.create_task(wait_for_a_slot()) for _ in range(2)]
            await _until(lambda: slots.users("alice") == STREAM_PER_TENANT + 2, "two waiting")
            started = loop.time()
            assert await refused(s3a.put_object, **put) == "SlowDown"
            assert loop.time() - started < DEADLINE / 2  # refused, not waited out
            await run(s3b.put_object, Bucket="bbkt", Key="k", Body=b"data")  # bob's own bound
            monkeypatch.setattr(slots, "_queue_total", STREAM_PER_TENANT + 2)  # all of it full
            started = loop.time()
            assert await refused(s3b.put_object, Bucket="bbkt", Key="k2", Body=b"data") == (
                "SlowDown"
            )
            assert loop.time() - started < DEADLINE / 2
            let_go.set()
        await asyncio.gather(*waiters)
        assert slots.tenants_waiting_or_holding() == 0
        await run(s3a.put_object, **put)


async def test_a_put_waiting_for_its_slot_holds_little_of_its_body(
    inproc: InProcessCluster, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A PutObject waiting for a stream slot held what aiohttp buffered of its body: 2 MiB
    in the gateway (its read buffer, widened for throughput), so hundreds of them pinned
    ~1 GiB (bench/stalled_streams.py). The buffer and the socket's receives are widened
    only once a slot is taken: a waiting one pauses its socket at well under 1 MiB. Its
    client hanging up was logged as a fault of the gateway (a traceback at ERROR)."""
    (alice,) = await tokens(inproc.api.url, "alice")
    seen: list[web.Request] = []
    async with _gateway(inproc, seen) as (url, app):
        creds = await _access_key(inproc.api.url, alice)
        s3 = _client(url, creds)
        await run(s3.create_bucket, Bucket="abkt")
        slots: BigBodySlots = app[s3_context.STREAMS]
        monkeypatch.setattr(slots, "_wait", DEADLINE)  # they wait for the whole test
        waiting = 4
        async with contextlib.AsyncExitStack() as held:
            for _ in range(STREAM_PER_TENANT):
                await held.enter_async_context(slots.slot("alice"))
            writers = [
                await stall(url, put_head(f"{url}/abkt/k{i}", creds), 4 * MIB)
                for i in range(waiting)
            ]
            try:
                await _until(
                    lambda: slots.users("alice") == STREAM_PER_TENANT + waiting, "all waiting"
                )
                puts = [r for r in seen if r.method == "PUT" and "/k" in r.path]
                # each stops reading its socket once its buffer is full
                await _until(lambda: all(_paused(r) for r in puts), "their sockets paused")
                buffered = [r.content.total_bytes for r in puts]
                assert max(buffered) <= MIB, buffered  # ~0.7 MiB; was 3 MiB (2 MiB + a receive)
            finally:
                for w in writers:
                    w.close()
        # their clients hung up: each ends when it reads, logged as that, not as a fault
        await _until(lambda: slots.tenants_waiting_or_holding() == 0, "the PUTs ended")
        faults = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert not faults, [r.getMessage() for r in faults]
        await run(s3.put_object, Bucket="abkt", Key="after", Body=os.urandom(3 * MIB))


async def test_big_xml_bodies_are_read_in_the_tenants_body_slots(
    inproc: InProcessCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An XML body (DeleteObjects, a Complete's part list...: up to 2 MiB) was read with no
    slot: a tenant's connections each held that much, as many as it opened. Above 64 KiB it
    is now read in one of the tenant's body slots, as the API's JSON bodies are: SlowDown
    when the tenant holds all of its own; small ones need none, bob has his own."""
    async with _two_tenants(inproc) as (app, s3a, s3b):
        many = {"Objects": [{"Key": f"{i:0>120}"} for i in range(1000)]}  # ~150 KB of XML
        few = {"Objects": [{"Key": "k"}]}
        slots: BigBodySlots = app[s3_context.BODIES]
        monkeypatch.setattr(slots, "_wait", 0.2)
        async with contextlib.AsyncExitStack() as held:
            for _ in range(BODY_PER_TENANT):
                await held.enter_async_context(slots.slot("alice"))
            assert await refused(s3a.delete_objects, Bucket="abkt", Delete=many) == "SlowDown"
            await run(s3a.delete_objects, Bucket="abkt", Delete=few)
            await run(s3b.delete_objects, Bucket="bbkt", Delete=many)
        await run(s3a.delete_objects, Bucket="abkt", Delete=many)
        assert slots.tenants_waiting_or_holding() == 0


async def test_a_kept_alive_connection_is_narrow_again_after_its_streamed_body(
    inproc: InProcessCluster,
) -> None:
    """The wide socket reads a streamed body gets with its slot were left on its connection,
    so every later request a client sent on it (boto3 keeps its connections alive: the next
    PutObject, waiting for a slot) was received in 1 MiB reads again, holding far more of
    its body than the default. Found by review: they end with the slot."""
    (alice,) = await tokens(inproc.api.url, "alice")
    arrivals: list[tuple[int, int | None]] = []  # (the connection, its receive size)

    def arrived(request: web.Request) -> None:
        transport = request.transport
        arrivals.append((id(transport), getattr(transport, "max_size", None)))

    async with _gateway(inproc, arrived=arrived) as (url, _app):
        s3 = await s3_client(inproc.api.url, alice, url)
        await run(s3.create_bucket, Bucket="abkt")
        for i in range(3):
            await run(s3.put_object, Bucket="abkt", Key=f"k{i}", Body=os.urandom(3 * MIB))
    first = {conn: size for conn, size in reversed(arrivals)}  # each one's size at first
    again = [(conn, size) for i, (conn, size) in enumerate(arrivals) if conn in dict(arrivals[:i])]
    assert again, "boto3 sent no request on a connection it had used"
    assert all(size == first[conn] for conn, size in again), (first, again)


async def test_an_upload_its_query_refuses_is_answered_before_a_slot(
    inproc: InProcessCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``POST /upload`` took its stream slot before it looked at its query: a tenant
    holding all of its own got 503 (after the 30 s wait, then sent again) for an upload
    into a bucket it has not, or with no name, instead of 404 or 400. Found by review:
    what the query decides is answered before the slot, as the gateway's PutObject does."""
    url = inproc.api.url
    (alice,) = await tokens(url, "alice")
    slots = inproc.api.runner.app[STREAMS]
    monkeypatch.setattr(slots, "_wait", 0.2)
    headers = {"Authorization": f"Bearer {alice}", "Content-Type": "application/octet-stream"}
    into = f"{url}{protocol.UPLOAD_FILE}?filename=f&bucket=nobkt&key=k"
    async with contextlib.AsyncExitStack() as held:
        for _ in range(STREAM_PER_TENANT):
            await held.enter_async_context(slots.slot("alice"))
        st, body = await raw("POST", into, headers, data=b"data")
        assert st == 404, body
        st, body = await raw("POST", f"{url}{protocol.UPLOAD_FILE}", headers, data=b"data")
        assert st == 400, body  # no filename
        st, body = await _upload(url, alice, b"data")  # a good one still waits its turn
        assert st == 503, body
    assert slots.tenants_waiting_or_holding() == 0
