"""``Expect: 100-continue`` answered once a request is authenticated, not when it arrives.

aiohttp's default sends ``100 Continue`` as soon as a request is routed, before any
middleware: a request with no valid signature or token was invited to send its body (up to
gigabytes), which the server then read and dropped for ``LINGERING_TIME``. Here nothing is
sent on arrival. ``send_continue`` sends the ``100`` when the API's or the S3 gateway's
middleware has authenticated the request (so the body arrives while the handler does its
own checks), or else when a handler first reads the body (``dfs.server.StreamDeadline``,
which every body read goes through: a node's writes after their capability check, the
API's routes without a token). An answer sent while the ``100`` is still owed (a refused
signature or token, a node's refused capability) closes the connection
(``Connection: close``): the client may still send the body after its own wait (about a
second), so the bytes that follow on that connection are not a next request. Every other
answer follows a ``100``, with or without a body: botocore keeps the status line of an
answer that came instead of its ``100`` and reads the next answer on that connection with
it (an answer's headers then read as garbage, and the client waits for the connection to
close), so a kept connection must never see one.

Every route of an app (and of a sub-app given to ``defer_continue`` too) gets the deferred
handler when the app starts; aiohttp's own routes for unknown paths and methods (404, 405)
keep its default. Any other ``Expect`` value is refused (417), as aiohttp does.
"""

from __future__ import annotations

from aiohttp import hdrs, web
from aiohttp.http import HttpVersion11

_PENDING = web.RequestKey("dfs.continue_pending", bool)
"""Set while a ``100`` is owed. A typed key: under a string key aiohttp warns
``NotAppKeyWarning`` (once per process; an error where warnings are, as in the tests)."""
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


async def _deferred(request: web.Request) -> None:
    """The routes' Expect handler: remember that a ``100`` is owed, send nothing yet."""
    if request.version != HttpVersion11:
        return  # HTTP/1.0 has no 100 (Continue): its clients send the body anyway
    expect = request.headers.get(hdrs.EXPECT, "")
    if expect.lower() != "100-continue":
        raise web.HTTPExpectationFailed(text=f"unknown Expect: {expect[:100]}")
    # even with no body: botocore keeps the status line of an answer that came instead of
    # the 100 and reads the next answer on that connection with it, so every answer but a
    # refusal (which closes the connection) follows a 100
    request[_PENDING] = True


async def send_continue(request: web.Request) -> None:
    """Invite the body, if the client is waiting for the invitation: the handler is about to
    read it."""
    if request.pop(_PENDING, False):
        await request.writer.write(CONTINUE)
        request.writer.output_size = 0  # the answer's own bytes are counted from here


def body_arrived(request: web.Request) -> None:
    """Body bytes were read without waiting: the client did not wait for a ``100``, so none
    is owed (and the connection may be kept)."""
    request.pop(_PENDING, None)


async def _close_uninvited(request: web.Request, response: web.StreamResponse) -> None:
    if request.get(_PENDING):
        response.force_close()  # the connection ends after this answer
        # aiohttp has written its Connection header by the time this signal runs: say it
        response.headers[hdrs.CONNECTION] = "close"


async def _defer_routes(app: web.Application) -> None:
    for route in app.router.routes():
        # aiohttp's per-route Expect hook (``add_route(..., expect_handler=)``), set here on
        # every route the app has once it starts instead of at each ``add_*`` call
        route._expect_handler = _deferred


def defer_continue(app: web.Application) -> None:
    """Make ``app`` (before it starts) owe ``100 Continue`` instead of sending it on
    arrival: ``send_continue`` sends it, after authentication or at a body's first read."""
    app.on_startup.append(_defer_routes)
    app.on_response_prepare.append(_close_uninvited)
