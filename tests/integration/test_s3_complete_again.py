"""A CompleteMultipartUpload sent again while the first is still assembling (issue 14).

botocore sends a Complete again when it lost the first one's answer; the first may still be
assembling the object. The second used to find the upload ``completing`` and answer
``NoSuchUpload``: the client's upload failed while its object was being stored. Now it
waits for the first (``dfs.s3.complete_answer.after_another``) and is answered as that one
was; when the first fails, it is told to send again (503, which botocore retries), and that
Complete makes the object. Through the gateway in process with boto3, one attempt per call;
the first Complete's assembly is held until the second has found the upload completing.
"""

from __future__ import annotations

import asyncio
import contextlib
from asyncio import FIRST_COMPLETED
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from dfs.api.multipart import Multipart
from dfs.errors import FileNotFound
from dfs.meta.multipart import UPLOAD_COMPLETING
from dfs.s3 import complete_answer, object_writes
from tests.integration.conftest import InProcessCluster
from tests.integration.test_namespace_api import tokens
from tests.integration.test_s3_multipart_calls import _access_key, _client, _read
from tests.integration.test_s3_tenancy import gateway, run

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning"),
]

MIB = 1024 * 1024
DEADLINE = 30.0
PARTS = [b"a" * (5 * MIB), b"tail"]


def _held_assembly(
    monkeypatch: pytest.MonkeyPatch, fail_first: bool
) -> tuple[asyncio.Event, asyncio.Event]:
    """``Multipart.assemble`` waits, at its first call, until the second event is set (the
    first is set when it is called); it then fails as a part's lost bytes make it fail, when
    ``fail_first``. Later calls are the real one."""
    # answers in time on a loaded machine too: a kept-alive one carries no x-amz-version-id
    monkeypatch.setattr(complete_answer, "KEEPALIVE", 60.0)
    entered, released = asyncio.Event(), asyncio.Event()
    real = Multipart.assemble
    calls = 0

    async def held(self: Multipart, *args: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            entered.set()
            await released.wait()
            if fail_first:
                raise FileNotFound("a part's file is gone")
        return await real(self, *args)

    monkeypatch.setattr(Multipart, "assemble", held)
    return entered, released


def _seen_completing(monkeypatch: pytest.MonkeyPatch, inproc: InProcessCluster) -> asyncio.Event:
    """Set when the store answers a read of an upload that is ``completing``: the first
    Complete reads it open, so that read is the second's (the real read runs)."""
    seen = asyncio.Event()
    store = type(inproc.api.coordinator.meta)
    real = store.get_multipart_upload

    async def spy(self: Any, upload_id: str) -> Any:
        got = await real(self, upload_id)
        if got.state == UPLOAD_COMPLETING:
            seen.set()
        return got

    monkeypatch.setattr(store, "get_multipart_upload", spy)
    return seen


async def _upload(s3: Any) -> tuple[str, list[dict[str, Any]]]:
    await run(s3.create_bucket, Bucket="bkt")
    await run(s3.put_bucket_versioning, Bucket="bkt", VersioningConfiguration={"Status": "Enabled"})
    uid = (await run(s3.create_multipart_upload, Bucket="bkt", Key="obj"))["UploadId"]
    listed = []
    for n, body in enumerate(PARTS, 1):
        got = await run(
            s3.upload_part, Bucket="bkt", Key="obj", UploadId=uid, PartNumber=n, Body=body
        )
        listed.append({"PartNumber": n, "ETag": got["ETag"]})
    return uid, listed


def _complete(s3: Any, uid: str, listed: list[dict[str, Any]]) -> Callable[[], Any]:
    return lambda: s3.complete_multipart_upload(
        Bucket="bkt", Key="obj", UploadId=uid, MultipartUpload={"Parts": listed}
    )


@contextlib.asynccontextmanager
async def _alices_s3(inproc: InProcessCluster) -> AsyncIterator[Any]:
    """boto3 as tenant alice, against the gateway in process."""
    (alice,) = await tokens(inproc.api.url, "alice")
    async with gateway(inproc) as url:
        yield _client(url, await _access_key(inproc.api.url, alice))


async def _sent_twice(
    monkeypatch: pytest.MonkeyPatch, inproc: InProcessCluster, s3: Any, fail_first: bool
) -> tuple[asyncio.Future[Any], asyncio.Future[Any], Callable[[], Any]]:
    """The upload's Complete sent, and sent again once the first is assembling
    (``_held_assembly``); the first is let go once the second has found it so. Both
    calls, and the call."""
    entered, released = _held_assembly(monkeypatch, fail_first)
    waiting = _seen_completing(monkeypatch, inproc)
    uid, listed = await _upload(s3)
    complete = _complete(s3, uid, listed)
    first = asyncio.ensure_future(asyncio.to_thread(complete))
    try:
        await asyncio.wait_for(entered.wait(), DEADLINE)
        second = asyncio.ensure_future(asyncio.to_thread(complete))
        await asyncio.wait_for(waiting.wait(), DEADLINE)
    finally:
        released.set()
    return first, second, complete


async def test_a_complete_sent_again_while_assembling_gets_the_first_ones_answer(
    inproc: InProcessCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with _alices_s3(inproc) as s3:
        first, second, _complete_call = await _sent_twice(monkeypatch, inproc, s3, False)
        one, two = await asyncio.wait_for(asyncio.gather(first, second), DEADLINE)
        assert one["ETag"] == two["ETag"]
        assert one["VersionId"] == two["VersionId"]
        versions = await run(s3.list_object_versions, Bucket="bkt")
        assert len(versions["Versions"]) == 1  # one object, not two
        assert (await asyncio.to_thread(_read, s3, "bkt", "obj"))[1] == b"".join(PARTS)


async def test_when_the_first_fails_the_one_sent_again_is_told_to_retry_and_completes(
    inproc: InProcessCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with _alices_s3(inproc) as s3:
        first, second, complete = await _sent_twice(monkeypatch, inproc, s3, True)
        codes = []
        for call in (first, second):
            with pytest.raises(ClientError) as info:
                await asyncio.wait_for(call, DEADLINE)
            codes.append(info.value.response["Error"]["Code"])
        assert codes == ["InvalidPart", "ServiceUnavailable"]
        # botocore sends a 503 again (one attempt per call here: sent by hand)
        done = await run(complete)
        assert done["ETag"]
        assert (await asyncio.to_thread(_read, s3, "bkt", "obj"))[1] == b"".join(PARTS)


async def test_a_complete_sent_again_that_read_the_upload_open_before_the_first_took_it(
    inproc: InProcessCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The retry (with ``If-None-Match: *``, as the first) reads the upload still open; the
    first then takes it and links the object; the retry's own condition now fails on that
    very object. It is answered as the first was, not 412."""
    monkeypatch.setattr(complete_answer, "KEEPALIVE", 60.0)
    second_in, first_done = asyncio.Event(), asyncio.Event()
    real = object_writes.check_condition
    calls = 0

    async def ordered(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:  # the first to get here: once the other has read the upload open
            await second_in.wait()
        else:  # the other: once the first has answered
            second_in.set()
            await first_done.wait()
        return await real(*args)

    monkeypatch.setattr(object_writes, "check_condition", ordered)
    async with _alices_s3(inproc) as s3:
        uid, listed = await _upload(s3)

        def complete() -> Any:
            return s3.complete_multipart_upload(
                Bucket="bkt",
                Key="obj",
                UploadId=uid,
                MultipartUpload={"Parts": listed},
                IfNoneMatch="*",
            )

        sent = {asyncio.ensure_future(asyncio.to_thread(complete)) for _ in range(2)}
        try:  # whichever came first answers first
            done, _ = await asyncio.wait(sent, timeout=DEADLINE, return_when=FIRST_COMPLETED)
            assert done, "neither Complete was answered"
        finally:
            first_done.set()
        one, two = await asyncio.wait_for(asyncio.gather(*sent), DEADLINE)
        assert calls == 2
        assert (one["ETag"], one["VersionId"]) == (two["ETag"], two["VersionId"])
        versions = await run(s3.list_object_versions, Bucket="bkt")
        assert len(versions["Versions"]) == 1
