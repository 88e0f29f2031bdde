"""The error middleware's answer to a caller that hung up mid-answer (``dfs.server``): a node
serving ``/get-chunks`` to a client that went away logged it as an unhandled error with its
traceback (seen in a chaos run); a reset of a connection that is still open stays one."""

from __future__ import annotations

import logging
from unittest import mock

import pytest
from aiohttp import web
from aiohttp.client_exceptions import ClientConnectionResetError
from aiohttp.test_utils import make_mocked_request

from dfs.server import error_middleware


async def hung_up(request: web.Request) -> web.StreamResponse:
    raise ClientConnectionResetError("Cannot write to closing transport")


def request_on(closing: bool) -> web.Request:
    transport = mock.Mock()
    transport.is_closing.return_value = closing
    return make_mocked_request("POST", "/get-chunks", transport=transport)


async def test_a_caller_that_hung_up_is_no_error(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="dfs.server"):
        await error_middleware(request_on(closing=True), hung_up)
    [record] = caplog.records
    assert record.levelno == logging.INFO
    assert "closed the connection" in record.getMessage()


async def test_a_reset_on_an_open_connection_is_still_logged_as_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="dfs.server"):
        resp = await error_middleware(request_on(closing=False), hung_up)
    assert resp.status == 500
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
