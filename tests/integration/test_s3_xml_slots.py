"""A big XML body (over 64 KiB: a DeleteObjects of many keys) holds one of its tenant's body
slots until its request is answered, not only while it is read (``dfs.s3.context.hold``):
the bytes, the parsed document and the keys it names live until then, so however many
connections a tenant opens, the gateway holds at most its share of them. The gateway runs in
process (its slots made small), boto3 drives it."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest

from dfs.api.body_slots import SMALL_BODY, BigBodySlots
from dfs.s3 import routes_deletes, routes_multipart
from tests.integration.conftest import InProcessCluster
from tests.integration.test_namespace_api import tokens
from tests.integration.test_s3_tenancy import gateway, refused, run, s3_client

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning"),
]

DEADLINE = 20.0
KEYS = [f"{i:04d}-" + "k" * 120 for i in range(600)]  # a DeleteObjects body of ~90 KiB


def one_body_slot() -> BigBodySlots:
    """A tenant's big bodies one at a time (waits of 0.3 s)."""
    return BigBodySlots(total=4, per_tenant=1, wait=0.3)


def stalled(
    monkeypatch: pytest.MonkeyPatch, module: Any, name: str
) -> tuple[asyncio.Event, asyncio.Event]:
    """``module.name`` (a coroutine function) waits, once called, until the second event is
    set; the first is set when it is called."""
    called, released = asyncio.Event(), asyncio.Event()
    real = getattr(module, name)

    async def wait_then_run(*args: Any) -> Any:
        called.set()
        await released.wait()
        return await real(*args)

    monkeypatch.setattr(module, name, wait_then_run)
    return called, released


def delete_all(s3: Any) -> dict[str, Any]:
    objects = [{"Key": k} for k in KEYS]
    answer: dict[str, Any] = s3.delete_objects(
        Bucket="xml", Delete={"Objects": objects, "Quiet": True}
    )
    return answer


async def test_a_big_xml_body_holds_its_slot_until_answered(
    inproc: InProcessCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    (alice,) = await tokens(inproc.api.url, "alice")
    # the request is past its body, not answered yet
    started, released = stalled(monkeypatch, routes_deletes, "_delete_one")
    async with gateway(inproc, one_body_slot()) as url:
        s3 = await s3_client(inproc.api.url, alice, url)
        await run(s3.create_bucket, Bucket="xml")
        await run(s3.put_object, Bucket="xml", Key=KEYS[0], Body=b"x")
        first = asyncio.create_task(run(delete_all, s3=s3))
        await asyncio.wait_for(started.wait(), DEADLINE)
        # the first holds alice's one slot while it works: her second big body waits its
        # 0.3 s and is refused, its body never read
        assert await asyncio.wait_for(refused(delete_all, s3=s3), DEADLINE) == "SlowDown"
        released.set()
        answer = await asyncio.wait_for(first, DEADLINE)
        assert answer.get("Errors", []) == []
        assert "Contents" not in await run(s3.list_objects_v2, Bucket="xml")
        # answered: the slot is free again
        assert (await asyncio.wait_for(run(delete_all, s3=s3), DEADLINE)).get("Errors", []) == []


async def signed_post(s3: Any, url: str, body: bytes) -> tuple[int, str]:
    """``body`` POSTed to ``url``, signed with ``s3``'s key as boto3 signs (a body boto3
    would not send: a part list padded past ``SMALL_BODY``)."""
    request = AWSRequest(method="POST", url=url, data=body)
    S3SigV4Auth(s3._request_signer._credentials, "s3", "us-east-1").add_auth(request)
    headers = {k: str(v) for k, v in request.headers.items()}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as r,
    ):
        return r.status, await r.text()


async def test_a_complete_holds_no_body_slot_while_its_object_is_assembled(
    inproc: InProcessCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CompleteMultipartUpload's part list (over 64 KiB from ~700 parts) is read in a body
    slot, but the object's assembly after it (every chunk read back, minutes for a big
    object) is no XML work: holding the slot through it, a tenant's few Completes kept all
    of its big XML bodies (and the gateway's 32 all tenants') waiting, then refused."""
    (alice,) = await tokens(inproc.api.url, "alice")
    # the part list is read and parsed; the object is being assembled
    assembling, released = stalled(monkeypatch, routes_multipart, "_assemble_and_link")
    async with gateway(inproc, one_body_slot()) as url:
        s3 = await s3_client(inproc.api.url, alice, url)
        await run(s3.create_bucket, Bucket="xml")
        upload = (await run(s3.create_multipart_upload, Bucket="xml", Key="big"))["UploadId"]
        part = await run(
            s3.upload_part, Bucket="xml", Key="big", UploadId=upload, PartNumber=1, Body=b"p"
        )
        listed = f"<Part><PartNumber>1</PartNumber><ETag>{part['ETag']}</ETag></Part>"
        padding = " " * (SMALL_BODY + 1)  # a part list past the small bodies' bound
        body = f"<CompleteMultipartUpload>{listed}{padding}</CompleteMultipartUpload>".encode()
        complete = asyncio.create_task(signed_post(s3, f"{url}/xml/big?uploadId={upload}", body))
        try:
            await asyncio.wait_for(assembling.wait(), DEADLINE)
            # alice's one body slot is free for her next big body while the object is made
            answer = await asyncio.wait_for(run(delete_all, s3=s3), DEADLINE)
            assert answer.get("Errors", []) == []
        finally:
            released.set()
        status, text = await asyncio.wait_for(complete, DEADLINE)
        assert status == 200, text
        assert "<CompleteMultipartUploadResult" in text
        got = await asyncio.to_thread(lambda: s3.get_object(Bucket="xml", Key="big")["Body"].read())
        assert got == b"p"
