"""The API's few slots for requests whose bodies or answers are big, shared fairly.

A 100,000-chunk upload plan needs ~250 MiB while it is read and planned, and a download plan
that big ~140 MiB until it is sent, so an API process builds only ``TOTAL`` of them at once
(``dfs.api.context``: ``big_body_slot``, ``big_answer_slot``, ``big_slot``). Bodies that
cost less but still far more than a connection does (a proxied chunk of up to 16 MiB, a
JSON body of up to 1 MiB: ~35 MiB once parsed) take one of a second, wider set of slots
(``BODY_TOTAL``, ``BODY_PER_TENANT``; ``dfs.api.context.body_slot``): without one, every
connection of a tenant could pin that much at once, and a connection costs its client
almost nothing. (A caller without a valid token is answered 401 before its body is read.)

A slot is taken before the body is read (the read is what costs the memory), so it is held
while a slow client sends: one tenant opening ``TOTAL`` connections that declare a big body and send
nothing held every slot for the body deadline (minutes), and every other tenant's big
upload or restore waited behind them with no bound.

So a tenant holds at most ``PER_TENANT`` slots (its other big requests wait for its own),
and a request that cannot get one within ``WAIT`` seconds is answered 503 (``Busy``:
clients send it again after a pause, ``dfs.transport.api_client``) instead of waiting for
ever. Requests of the same tenant still queue in order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from dfs.errors import Busy

TOTAL = 4
PER_TENANT = 2
BODY_TOTAL = 32
BODY_PER_TENANT = 8
"""The slots for bodies of at most ~36 MiB in memory (~1.1 GiB of them at once at worst,
as much as the big slots'): as many per tenant as a client fetches chunks at once by
default (``protocol.DEFAULT_CONCURRENCY``); an upload's 16 (``DEFAULT_UPLOAD_CONCURRENCY``)
through the proxy wait for its own slots (``QUEUED_PER_SLOT``: queued, not refused), and two
busy tenants never hold every slot."""
STREAM_TOTAL = 32
STREAM_PER_TENANT = 16
"""Streamed bodies chunked in this process at once (the API's ``POST /upload``, the S3
gateway's PutObject and UploadPart): each holds ~9 MiB while it runs (the chunker's
buffers, the chunks in flight to the nodes; an UploadPart ~17 MiB, with the bytes its
object's SHA-256 holds, bounded apart by ``multipart_hash.BUFFER_BUDGET``) and one chunker
thread while it waits for the client's bytes, for as long as the client keeps them coming:
measured (``bench/stalled_streams.py``), 32 stalled parts held ~0.7 GiB of a gateway.
16 per tenant: more than the parts boto3 (10) or rclone (4 files x 4 parts) send at once,
so a client over the limit for a moment waits for its own slot (``WAIT``), never refused."""
SMALL_BODY = 64 * 1024
"""Bytes of a declared body read with no slot, by the API and the S3 gateway alike: ~2 MiB
at most once parsed (JSON costs ~35 times its size), about what a connection's buffers cost
anyway. Above it a body takes a slot before it is read, so that the memory bodies hold is
bounded however many connections send them."""
WAIT = 30.0
"""Seconds a big request waits for a slot before it is answered 503."""
QUEUED_PER_SLOT = 4
"""Requests that may hold or wait for slots at once, per slot, of one tenant and of all:
beyond that a request is answered 503 at once. A waiting request costs what its connection
buffered of its body (under 1 MiB each: ``dfs.s3.context.wide_reads``), so without a bound
a tenant opening thousands of connections pinned a GiB while they waited."""


class BigBodySlots:
    """``TOTAL`` slots, at most ``PER_TENANT`` of them for one tenant at once."""

    def __init__(
        self,
        total: int = TOTAL,
        per_tenant: int = PER_TENANT,
        wait: float = WAIT,
        refusal: str = "too many large request bodies in flight; send it again in a moment",
    ):
        self._all = asyncio.Semaphore(total)
        self._refusal = refusal
        self._per_tenant = per_tenant
        self._wait = wait
        self._tenants: dict[str, tuple[asyncio.Semaphore, list[int]]] = {}
        self._queued = 0
        self._queue_per_tenant = per_tenant * QUEUED_PER_SLOT
        self._queue_total = total * QUEUED_PER_SLOT

    @contextlib.asynccontextmanager
    async def slot(self, tenant: str) -> AsyncIterator[None]:
        """Hold a slot of ``tenant``'s for the block; Busy after ``wait`` seconds, or
        at once when ``QUEUED_PER_SLOT`` requests per slot hold or wait already."""
        if self.users(tenant) >= self._queue_per_tenant or self._queued >= self._queue_total:
            raise Busy(self._refusal)
        own, users = self._tenants.setdefault(tenant, (asyncio.Semaphore(self._per_tenant), [0]))
        users[0] += 1  # the tenant's entry goes when nobody holds or waits for its slots
        self._queued += 1
        try:
            async with contextlib.AsyncExitStack() as held:
                try:
                    async with asyncio.timeout(self._wait):
                        await held.enter_async_context(own)
                        await held.enter_async_context(self._all)
                except TimeoutError:
                    raise Busy(self._refusal) from None
                yield
        finally:
            self._queued -= 1
            users[0] -= 1
            if not users[0]:
                del self._tenants[tenant]

    def users(self, tenant: str) -> int:
        """How many of ``tenant``'s requests hold or wait for a slot (for tests and metrics)."""
        entry = self._tenants.get(tenant)
        return entry[1][0] if entry is not None else 0

    def tenants_waiting_or_holding(self) -> int:
        """How many tenants hold or wait for a slot (for tests and metrics)."""
        return len(self._tenants)


def stream_slots() -> BigBodySlots:
    """The slots of a process's streamed uploads (``STREAM_TOTAL``, ``STREAM_PER_TENANT``)."""
    return BigBodySlots(
        total=STREAM_TOTAL,
        per_tenant=STREAM_PER_TENANT,
        refusal="too many streamed uploads in flight; send it again in a moment",
    )
