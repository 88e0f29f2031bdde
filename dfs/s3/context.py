"""What the gateway's route modules share: the app's services, the authenticated caller,
and small S3 formatting helpers (dates, XML)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from email.utils import formatdate
from xml.sax.saxutils import escape

from aiohttp import web

from dfs import auth
from dfs.api import access
from dfs.api.bodies import Principal
from dfs.api.body_slots import SMALL_BODY, BigBodySlots
from dfs.api.coordinator import Coordinator
from dfs.api.namespace_service import Namespace
from dfs.errors import Unavailable
from dfs.meta.bucket_config import BucketConfigStore, bucket_config_store
from dfs.meta.namespace import BucketRecord
from dfs.s3.errors import S3Error
from dfs.s3.names import bucket_name
from dfs.s3.sigv4 import Caller, KeyCache
from dfs.transport.http import narrow_socket_reads, widen_socket_reads

COORDINATOR = web.AppKey("coordinator", Coordinator)
NAMESPACE = web.AppKey("namespace", Namespace)
KEYS = web.AppKey("keys", KeyCache)  # access keys looked up recently (dfs.s3.sigv4)
STREAMS = web.AppKey("streams", BigBodySlots)
"""Slots of the bodies chunked at once: PutObject, UploadPart (``stream_slot``)."""
BODIES = web.AppKey("bodies", BigBodySlots)
"""Slots of the XML bodies above ``SMALL_BODY`` read at once (``body_slot``)."""
READ_BUFSIZE = 1 << 20
"""Body bytes aiohttp buffers before it pauses the socket (at twice this) once a streamed
body has its slot (``stream_slot``): its 64 KiB default pauses and resumes reading every
128 KiB of a multi-MiB PutObject or UploadPart body, each a wake-up of the event loop and a
smaller socket read (as ``dfs.node.app``'s). Every other request (and a streamed one until
it has its slot) keeps that default: measured, 224 PutObjects waiting for a slot, each
having sent 4 MiB, held ~2 MiB apiece of the gateway while the default was this wide."""
CALLER = "dfs.s3.caller"
NOT_EXPECTED_OWNER = "dfs.s3.not_expected_owner"
"""Buckets whose owner is not the one the request expects (``dfs.s3.expected_owner``)."""
XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"


def caller(request: web.Request) -> Caller:
    c: Caller = request[CALLER]
    return c


def owner_ok(request: web.Request, bucket: str) -> bool:
    """Whether ``bucket``'s owner is the one the request expects (True when it names none,
    or the bucket is missing): ``dfs.s3.expected_owner``."""
    return bucket not in request.get(NOT_EXPECTED_OWNER, ())


def principal(request: web.Request) -> Principal:
    """The signing key's tenant, as the namespace service knows callers (a user)."""
    c = caller(request)
    return Principal(c.tenant, auth.ROLE_USER, token_id=c.access_key_id)


_SIGNING_PARAMS = frozenset(
    {
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
        "X-Amz-Security-Token",
        "x-id",  # botocore names the operation in presigned URLs
    }
)


def params(request: web.Request) -> dict[str, str]:
    """The request's query without the signing parameters of a presigned URL: what the
    call itself asks for (sub-resources, listing options)."""
    return {k: v for k, v in request.query.items() if k not in _SIGNING_PARAMS}


def iso_time(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ts))


def http_time(ts: float) -> str:
    return formatdate(ts, usegmt=True)


def xml(tag: str, text: str | int) -> str:
    return f"<{tag}>{escape(str(text))}</{tag}>"


def xml_response(root: str, inner: str, status: int = 200) -> web.Response:
    body = f'<?xml version="1.0" encoding="UTF-8"?>\n<{root} xmlns="{XMLNS}">{inner}</{root}>'
    return web.Response(status=status, text=body, content_type="application/xml")


async def owned_bucket(request: web.Request) -> BucketRecord:
    """The request's bucket, if the caller owns it (its sub-resources are the owner's)."""
    b = await request.app[NAMESPACE].bucket(bucket_name(request))
    access.require_owner(principal(request), b)
    return b


def bucket_configs(request: web.Request, what: str) -> BucketConfigStore:
    """Where bucket configuration documents live; 501 on a backend that keeps none."""
    store = bucket_config_store(request.app[COORDINATOR].meta)
    if store is None:
        raise S3Error("NotImplemented", 501, f"this metadata backend keeps no bucket {what}")
    return store


@contextlib.asynccontextmanager
async def stream_slot(request: web.Request) -> AsyncIterator[None]:
    """One of the caller's tenant's stream slots (``dfs.api.body_slots.STREAM_PER_TENANT``,
    ``STREAM_TOTAL``) for the block: a body chunked as it arrives holds a chunker's buffers
    and thread for as long as its client sends. Taken before any byte of the body is read
    (until then aiohttp buffers at most 128 KiB of it: ``READ_BUFSIZE``); 503 ``SlowDown``
    (which SDKs retry after a pause) when none frees in time."""
    async with _slot(request, request.app[STREAMS]):
        replaced = wide_reads(request)  # admitted
        try:
            yield
        finally:  # the connection's next request (kept alive) waits narrow again
            narrow_socket_reads(request.transport, replaced)


HELD = "dfs.s3.held"
"""The request's ``contextlib.AsyncExitStack`` (``released_when_answered``)."""


@contextlib.asynccontextmanager
async def released_when_answered(request: web.Request) -> AsyncIterator[None]:
    """Around a handler (the gateway's middleware): what it takes with ``hold`` is
    released once it has answered, failed or been cancelled, not before."""
    async with contextlib.AsyncExitStack() as held:
        request[HELD] = held
        yield


async def hold(request: web.Request, taken: contextlib.AbstractAsyncContextManager[None]) -> None:
    """Enter ``taken`` until the request is answered (``released_when_answered``)."""
    held: contextlib.AsyncExitStack = request[HELD]
    await held.enter_async_context(taken)


@contextlib.asynccontextmanager
async def body_slot(request: web.Request) -> AsyncIterator[None]:
    """One of the caller's tenant's body slots (``BODIES``: ``dfs.api.body_slots``'
    ``BODY_PER_TENANT``, ``BODY_TOTAL``, as the API's) for a body of more than
    ``SMALL_BODY`` bytes (or undeclared) read whole: an XML document of up to 2 MiB, held
    from its first byte until the request is answered (``hold``: the bytes, the parsed
    document, the keys it names live that long), so a tenant's connections hold at most
    its share of them, however many it opens. 503 ``SlowDown`` when none frees in time."""
    declared = request.content_length
    if (declared is not None and declared <= SMALL_BODY) or request.get(CALLER) is None:
        yield  # small, or anonymous (refused before any body is read)
        return
    async with _slot(request, request.app[BODIES]):
        yield


@contextlib.asynccontextmanager
async def _slot(request: web.Request, slots: BigBodySlots) -> AsyncIterator[None]:
    """A slot of the caller's tenant's in ``slots``; SlowDown if none frees in time."""
    entered = False
    try:
        async with slots.slot(caller(request).tenant):
            entered = True
            yield
    except Unavailable as exc:
        if entered:  # the block's own (a node unavailable): answered as such
            raise
        raise S3Error("SlowDown", 503, f"Please reduce your request rate: {exc.message}") from None


def wide_reads(request: web.Request) -> int | None:
    """Receive ``request``'s body in 1 MiB socket reads (``SOCKET_READ``; 2 MiB measured no
    better, bench/README.md) into a buffer that pauses the socket at 2 MiB (``READ_BUFSIZE``),
    from now on: for a streamed body once admitted (``stream_slot``). Returns the receive
    size it replaced, for ``narrow_socket_reads`` once the body is done: the socket reads are
    the connection's, so the later requests of a kept-alive connection (a PutObject waiting
    for a slot) would be received wide too (found by review)."""
    replaced = widen_socket_reads(request.transport)
    request.content.set_read_chunk_size(READ_BUFSIZE)
    return replaced
