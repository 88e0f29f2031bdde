"""``ApiClient`` sends again what the API dropped without an answer, only when it may.

A local aiohttp server stands in for the API's transport behaviour (it answers, or drops the
connection without an answer); the real API restarting under a CLI run is
``tests/e2e/test_api_restart.py``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from dfs.client.cli_common import RETRY_ENV, api_retry_seconds
from dfs.client.library import Client
from dfs.errors import InvalidRequest, Unreachable
from dfs.transport import api_client
from dfs.transport.api_client import ApiClient
from tests.local_app import serving


class FlakyApi:
    """Answers an empty listing or plan, except that the first ``drop`` requests (counted from when it
    is set) have their connection closed without an answer."""

    def __init__(self) -> None:
        self.drop = 0
        self.seen: list[str] = []
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(f"{request.method} {request.path}")
        if self.drop > 0:
            self.drop -= 1
            assert request.transport is not None
            request.transport.abort()  # no status line: the client gets no answer at all
        return web.json_response({"plans": [], "files": [], "next_after": None})


AIOHTTP_TRIES = 2
"""Attempts aiohttp itself may make of a request: a method HTTP calls idempotent (GET,
DELETE) is sent once more on a new connection when a reused one is dropped."""


@pytest.fixture(autouse=True)
def short_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api_client, "RETRY_SECONDS", 2.0)


@contextlib.asynccontextmanager
async def client_of(api: FlakyApi, answered: bool = True) -> AsyncIterator[ApiClient]:
    """An ``ApiClient`` of ``api``, which has answered it once when ``answered``; from then
    on ``api`` drops every request."""
    async with serving(api.app) as port, aiohttp.ClientSession() as session:
        client = ApiClient(session, f"http://127.0.0.1:{port}", "t")
        if answered:
            await client.whoami()
        api.drop = 10_000
        yield client


async def test_a_dropped_read_is_sent_again_once_the_api_has_answered() -> None:
    api = FlakyApi()
    async with client_of(api) as client:
        api.drop = 2
        assert await client.download_plans(["a"]) == []  # answered, after two drops
        assert api.seen == ["GET /whoami", *["POST /download-plans"] * 3]


async def test_before_any_answer_a_dropped_request_fails_at_once() -> None:
    api = FlakyApi()
    async with client_of(api, answered=False) as client:
        with pytest.raises(Unreachable):
            await client.whoami()
        assert len(api.seen) <= AIOHTTP_TRIES


ONCE: dict[str, Callable[[ApiClient], Awaitable[object]]] = {
    "delete": lambda c: c.delete_file("f"),
    "create a token": lambda c: c.create_token("acme", "user"),
    "revoke a key": lambda c: c.revoke_access_key("AK"),
    "start a drain": lambda c: c.drain("node1", "POST"),
    "heartbeat": lambda c: c.heartbeat({"node_id": "n"}, cap="c"),
}


@pytest.mark.parametrize("call", ONCE)
async def test_what_may_not_be_repeated_is_sent_once(call: str) -> None:
    api = FlakyApi()
    async with client_of(api) as client:
        with pytest.raises(Unreachable):
            await ONCE[call](client)
        assert len(api.seen) - 1 <= AIOHTTP_TRIES  # whoami, then no retry of ours


async def test_retries_end_after_retry_seconds_with_the_error() -> None:
    api = FlakyApi()
    async with client_of(api) as client:
        with pytest.raises(Unreachable):
            await client.list_files()
        assert len(api.seen) - 1 > AIOHTTP_TRIES  # sent again by us, then given up on


async def test_a_retry_window_of_zero_sends_nothing_again() -> None:
    """Through the library, as ``dfs-client`` builds it from DFS_API_RETRY_SECONDS=0."""
    api = FlakyApi()
    async with serving(api.app) as port:
        async with Client(f"http://127.0.0.1:{port}", token="t", api_retry_seconds=0) as c:
            await c.api.whoami()
            api.drop = 10_000
            with pytest.raises(Unreachable):
                await c.api.download_plans(["a"])
        assert api.seen == ["GET /whoami", "POST /download-plans"]


@pytest.mark.parametrize(("text", "seconds"), [("", None), ("0", 0.0), (" 300 ", 300.0)])
def test_the_retry_window_from_the_environment(text: str, seconds: float | None) -> None:
    assert api_retry_seconds({RETRY_ENV: text}) == seconds
    assert api_retry_seconds({}) is None


@pytest.mark.parametrize("text", ["abc", "-1", "nan", "3601", "inf"])
def test_a_retry_window_that_is_not_one_exits_2(
    text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        api_retry_seconds({RETRY_ENV: text})
    assert exit_.value.code == 2
    assert f"{RETRY_ENV} must be a number of seconds from 0 to 3600" in capsys.readouterr().err


def test_the_library_refuses_a_retry_window_out_of_bounds() -> None:
    with pytest.raises(InvalidRequest):
        Client("http://127.0.0.1:1", api_retry_seconds=-1)
