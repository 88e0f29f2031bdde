"""``dfs.s3.complete_answer.after_another``: how a Complete sent again while another Complete
of its upload is under way ends, for each way that one can end (the upload's state read from
a store that answers as told; the end-to-end cases are in
tests/integration/test_s3_complete_again.py), and a wait that ends with its request."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from aiohttp import web

from dfs.api.multipart import Multipart
from dfs.errors import UploadNotFound
from dfs.meta.multipart import UPLOAD_COMPLETING, UPLOAD_OPEN, MultipartUpload
from dfs.s3 import complete_answer, multipart_retry
from dfs.s3.errors import S3Error

UPLOAD = MultipartUpload("id1", "t", "bkt", "k", 1234.5)
ANSWER = web.Response(text="the first one's answer")


class _Store:
    """An upload whose state is ``states[i]`` at the i-th read (the last one from then on;
    "" for gone)."""

    def __init__(self, *states: str) -> None:
        self.states = list(states)
        self.reads = 0

    async def get_multipart_upload(self, upload_id: str) -> MultipartUpload:
        state = self.states[min(self.reads, len(self.states) - 1)]
        self.reads += 1
        if not state:
            raise UploadNotFound(upload_id)
        return MultipartUpload(upload_id, "t", "bkt", "k", 0.0, state=state)


def _mp(store: _Store) -> Multipart:
    return cast(Multipart, type("MP", (), {"store": store})())


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """Quick polls; no look for a linked object unless a test asks for one (a loaded
    machine's stall would otherwise bring it in)."""
    monkeypatch.setattr(complete_answer, "OTHER_POLL", 0.001)
    monkeypatch.setattr(complete_answer, "LINKED_AFTER", 3600.0)
    monkeypatch.setattr(complete_answer, "LINKED_EVERY", 0.02)


def _looking_for_links(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(complete_answer, "LINKED_AFTER", 0.0)


def _linked(monkeypatch: pytest.MonkeyPatch, answer: web.Response | None) -> list[float | None]:
    """``completed_before`` answers ``answer``; the list holds the ``made_after`` of each
    call."""
    calls: list[float | None] = []

    async def completed_before(*args: Any) -> web.Response | None:
        calls.append(args[4])
        return answer

    monkeypatch.setattr(multipart_retry, "completed_before", completed_before)
    return calls


async def _wait(store: _Store) -> web.Response:
    request = cast(web.Request, None)  # read only by completed_before, replaced here
    return await complete_answer.after_another(request, _mp(store), UPLOAD, [])


async def test_the_first_done_answers_as_it_did(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _linked(monkeypatch, ANSWER)
    store = _Store(UPLOAD_COMPLETING, UPLOAD_COMPLETING, "")
    assert await asyncio.wait_for(_wait(store), 5) is ANSWER
    assert store.reads == 3  # it waited for the end
    assert calls == [None]  # then any version of exactly these parts is its answer


async def test_the_first_done_with_other_parts_is_no_such_upload(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _linked(monkeypatch, None)
    with pytest.raises(UploadNotFound):
        await asyncio.wait_for(_wait(_Store(UPLOAD_COMPLETING, "")), 5)


async def test_the_first_failed_is_a_503_to_send_again(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _linked(monkeypatch, ANSWER)
    with pytest.raises(S3Error) as exc:
        await asyncio.wait_for(_wait(_Store(UPLOAD_COMPLETING, UPLOAD_OPEN)), 5)
    assert (exc.value.code, exc.value.status) == ("ServiceUnavailable", 503)
    assert calls == []


async def test_linked_but_left_completing_is_answered_as_completed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first's last state change failed after its link: the upload stays ``completing``
    until collected, and the wait finds the object instead of waiting that long; only one
    made since the upload began (an earlier object of the same bytes is no answer)."""
    calls = _linked(monkeypatch, ANSWER)
    _looking_for_links(monkeypatch)
    monkeypatch.setattr(complete_answer, "OTHER_WAIT", 60.0)
    assert await asyncio.wait_for(_wait(_Store(UPLOAD_COMPLETING)), 5) is ANSWER
    assert calls == [UPLOAD.created_at]


async def test_still_completing_after_the_wait_is_a_503(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _linked(monkeypatch, None)
    _looking_for_links(monkeypatch)
    monkeypatch.setattr(complete_answer, "OTHER_WAIT", 1.0)
    with pytest.raises(S3Error) as exc:
        await asyncio.wait_for(_wait(_Store(UPLOAD_COMPLETING)), 10)
    assert (exc.value.code, exc.value.status) == ("ServiceUnavailable", 503)
    assert len(calls) >= 2  # it kept looking for the object meanwhile
    assert set(calls) == {UPLOAD.created_at}


@pytest.mark.parametrize("finish", [False, True])
async def test_a_wait_ends_with_its_request_an_assembly_does_not(finish: bool) -> None:
    request = cast(web.Request, None)  # not read before KEEPALIVE
    started, cancelled, release = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def work() -> web.Response:
        started.set()
        try:
            await release.wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return ANSWER

    handler = asyncio.ensure_future(complete_answer.answer(request, work(), finish=finish))
    await asyncio.wait_for(started.wait(), 5)
    handler.cancel()  # its handler ends (a write to a client that went away failed)
    with pytest.raises(asyncio.CancelledError):
        await handler
    if finish:
        (running,) = complete_answer._RUNNING
        release.set()
        assert await asyncio.wait_for(running, 5) is ANSWER
    else:
        await asyncio.wait_for(cancelled.wait(), 5)
    assert not complete_answer._RUNNING
