"""What the API app's route modules share: the app's keys, the caller's principal, body slots.

One module owns these so that every ``routes_*`` module imports it, never ``dfs.api.app``
(which imports the route modules to assemble the app): no import cycle to dodge.

- ``COORDINATOR`` (files), ``REGISTRY`` (tokens, tenants, nodes), ``REPAIR`` and ``GC`` (the
  background passes), ``METRICS`` (the API's Prometheus series), ``BIG_BODIES`` (slots),
  ``VERIFIED`` (files whose sha256 this process checked, ``dfs.api.content_check``).
- ``NAMESPACE``: buckets and objects (``dfs.api.namespace_service``).
- ``auth_middleware`` resolves the bearer token to a ``Principal`` before any handler runs
  (except the ``PUBLIC`` routes); handlers read it with ``principal()`` or ``admin()``.
- ``big_body_slot`` bounds how many requests with big bodies are planned at once,
  ``big_answer_slot`` how many big answers (download plans) are built at once, and
  ``body_slot`` (``BODIES``) how many smaller bodies (a proxied chunk, a JSON body of up to
  1 MiB) are held at once, a few per tenant, each waiting a bounded time
  (``dfs.api.body_slots``), and ``STREAMS`` how many streamed uploads (``POST /upload``)
  are chunked at once;
  ``json_answer`` serializes big answers in a worker thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web

from dfs import protocol, server
from dfs.api import content_check
from dfs.api.bodies import Principal
from dfs.api.body_slots import SMALL_BODY, BigBodySlots
from dfs.api.content_check import VerifiedFiles
from dfs.api.coordinator import Coordinator
from dfs.api.gc import GarbageCollector
from dfs.api.namespace_service import Namespace
from dfs.api.registry import Registry
from dfs.api.repair import Repair
from dfs.api.usage_sampler import UsageSampler
from dfs.errors import AuthError, Forbidden
from dfs.expect_continue import send_continue
from dfs.ids import parse_sha256
from dfs.jsonio import json_bytes
from dfs.meta.base import FileRecord
from dfs.metrics import ApiMetrics
from dfs.server import Handler, json_response

COORDINATOR = web.AppKey("coordinator", Coordinator)
REGISTRY = web.AppKey("registry", Registry)
REPAIR = web.AppKey("repair", Repair)
GC = web.AppKey("gc", GarbageCollector)
METRICS = web.AppKey("api_metrics", ApiMetrics)
BIG_BODIES = web.AppKey("big_bodies", BigBodySlots)
BODIES = web.AppKey("bodies", BigBodySlots)
STREAMS = web.AppKey("streams", BigBodySlots)
VERIFIED = web.AppKey("verified_files", VerifiedFiles)
NAMESPACE = web.AppKey("namespace", Namespace)
USAGE_SAMPLER = web.AppKey("usage_sampler", UsageSampler)
PRINCIPAL = web.RequestKey("principal", Principal)


# routes that need no bearer token: health and readiness, node registration (a capability
# instead) and metrics (which check DFS_METRICS_TOKEN or an admin token themselves, see
# dfs.api.routes_monitoring); signed downloads carry their own signature
PUBLIC = frozenset(
    {
        protocol.HEALTHZ,
        protocol.READYZ,
        protocol.METRICS,
        protocol.NODE_HEARTBEAT,
        protocol.NODE_DEREGISTER,
    }
)


# reads that a caller without any Authorization header may make as "anonymous": public-read
# buckets and objects (``dfs.api.access`` decides; everything else answers 404 to them)
ANONYMOUS_READS = (protocol.OBJECTS_PREFIX, protocol.BUCKETS + "/")


def _anonymous(request: web.Request) -> bool:
    return (
        request.method in ("GET", "HEAD")
        and protocol.AUTHORIZATION not in request.headers
        and request.path.startswith(ANONYMOUS_READS)
    )


def _console(request: web.Request) -> bool:
    """The console's static files: public, like any login page (they hold no data)."""
    path = request.path
    return request.method in ("GET", "HEAD") and (
        path == protocol.CONSOLE or path.startswith(protocol.CONSOLE + "/")
    )


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Resolve the bearer token to a Principal before any handler runs."""
    public = (
        request.path in PUBLIC
        or request.path.startswith(protocol.SIGNED_DOWNLOAD)
        or _console(request)
    )
    if not public and request.method != "OPTIONS" and not _anonymous(request):
        header = request.headers.get(protocol.AUTHORIZATION, "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            token = ""
        request[PRINCIPAL] = await request.app[REGISTRY].authenticate(token.strip())
        # a known token: invite the body now, while the handler does its own checks
        await send_continue(request)
    return await handler(request)


def principal(request: web.Request) -> Principal:
    p: Principal | None = request.get(PRINCIPAL)
    if p is None:  # an anonymous read of a route that needs a token after all
        raise AuthError("this request needs a bearer token")
    return p


def caller(request: web.Request) -> Principal | None:
    """The principal, or None for an anonymous read (``ANONYMOUS_READS``)."""
    return request.get(PRINCIPAL)


def admin(request: web.Request) -> Principal:
    p = principal(request)
    if not p.is_admin:
        raise Forbidden("this endpoint is for admins")
    return p


def tenant(request: web.Request) -> str:
    """The tenant whose files this request sees."""
    return principal(request).tenant


def big_body_slot(request: web.Request) -> contextlib.AbstractAsyncContextManager[object]:
    """A big-request slot of the caller's tenant (``dfs.api.body_slots``) for a request
    whose body may be big (or is undeclared): a 100,000-chunk upload needs ~250 MiB while it
    is planned, so only a few run at once. A declared body of at most 1 MiB takes a
    ``body_slot`` instead (none if ``SMALL_BODY`` or less)."""
    declared = request.content_length
    if declared is not None and declared <= server.JSON_IN_THREAD:
        return body_slot(request)
    return request.app[BIG_BODIES].slot(tenant(request))


def body_slot(request: web.Request) -> contextlib.AbstractAsyncContextManager[object]:
    """A slot of the caller's tenant (``BODIES``) for a body of more than ``SMALL_BODY``
    bytes (or undeclared) that costs at most ~36 MiB once read: a proxied chunk, a JSON body
    of at most 1 MiB. Held while the body arrives and until the handler is done with it."""
    declared = request.content_length
    if declared is not None and declared <= SMALL_BODY:
        return contextlib.nullcontext()
    return request.app[BODIES].slot(tenant(request))


JSON_IN_THREAD_ENTRIES = 1000
"""Chunk entries above which an answer (a plan) is serialized in a worker thread, and above
which building it takes a big-request slot."""


def big_answer_slot(
    request: web.Request, entries: int
) -> contextlib.AbstractAsyncContextManager[object]:
    """A big-request slot for building an answer of ``entries`` chunk entries, when
    that is big: a 100,000-chunk download plan holds ~140 MiB until it is sent."""
    if entries <= JSON_IN_THREAD_ENTRIES:
        return contextlib.nullcontext()
    return request.app[BIG_BODIES].slot(tenant(request))


async def json_answer(data: Any, *, entries: int, status: int = 200) -> web.Response:
    """``data`` as a JSON answer; serialized off the event loop when it holds more than
    JSON_IN_THREAD_ENTRIES chunk entries (tens of MiB of JSON take seconds)."""
    if entries <= JSON_IN_THREAD_ENTRIES:
        return json_response(data, status=status)
    body = await asyncio.to_thread(json_bytes, data)
    return web.Response(body=body, status=status, content_type="application/json")


async def stored_file(request: web.Request, sha256: str, proof: object) -> FileRecord | None:
    """``content_check.stored_file`` for the caller's tenant, ``proof`` its
    ``manifest_sha256`` (checked here: 400 if not a sha256)."""
    if proof is not None:
        proof = parse_sha256(proof, "manifest_sha256")
    return await content_check.stored_file(
        request.app[COORDINATOR],
        principal(request).tenant,
        sha256,
        proof,
        request.app[VERIFIED],
        lambda big: big_slot(request, big),
    )


R = TypeVar("R", bound=web.StreamResponse)


def in_body_slot(
    handler: Callable[[web.Request], Awaitable[R]],
) -> Callable[[web.Request], Awaitable[R]]:
    """``handler``, run in a ``body_slot``: a route whose JSON body (at most 1 MiB) stays
    parsed until it answers."""

    @functools.wraps(handler)
    async def slotted(request: web.Request) -> R:
        async with body_slot(request):
            return await handler(request)

    return slotted


def big_slot(request: web.Request, big: bool) -> contextlib.AbstractAsyncContextManager[object]:
    """A big-request slot if ``big`` (a file read through the API to verify it)."""
    if not big:
        return contextlib.nullcontext()
    return request.app[BIG_BODIES].slot(tenant(request))
