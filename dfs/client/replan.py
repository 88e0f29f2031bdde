"""Writing one chunk to its nodes, and re-planning an upload around nodes that failed it.

A plan names each chunk's targets; the client sends the chunk to one of them (the primary),
which forwards it to the others before it answers. When a node dies or hangs mid-upload,
every write whose targets include it fails, whichever target is the primary: retrying the
same plan cannot succeed until the node's heartbeat expires. So:

- ``put_once`` writes a chunk once, with a primary this client does not avoid, and blames
  the nodes a failure points at (``AvoidList.failed``): the primary when it cannot be reached
  or misses its deadline (``Unavailable``); the replicas it forwarded to when it answers 502
  (``ReplicationError``; the ones already avoided if any, else all of them). A node's
  forward deadline is shorter than the client's deadline for a forwarded write
  (``NodeClient.write_deadline``), so a hung replica shows as a 502, not as a slow primary.
  The first such failure gives up the other writes in flight to the same node
  (``AvoidList.guard``: an ``Unavailable`` ``overtaken_by`` it), which are retried as if
  they had failed on their own, but blame no one anew.
- ``Replanner`` asks ``/resume-upload`` for a plan of this upload's missing chunks that
  leaves out the client's failed nodes (``exclude_nodes``), once per new set of failed
  nodes however many chunks are waiting for it; ``send_replanning`` uses its entries.

The exclusion steers only this client's own pending upload (see ``dfs.client.avoid``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from dfs import protocol
from dfs.client.avoid import AvoidList
from dfs.client.connection import Connection
from dfs.errors import DfsError, InvalidRequest, ReplicationError, Unavailable
from dfs.placement import rotation
from dfs.transport.http import FileSlice

log = logging.getLogger("dfs.client")

SEND_ATTEMPTS = 4
"""Writes of one chunk (each after a re-plan around the nodes the last one blamed)."""


def blame_forwards(avoid: AvoidList, forwards: Sequence[str]) -> None:
    """A primary answered 502: one of the replicas it forwarded to failed. Blame those the
    client already knows failed, or else all of them."""
    known = set(forwards) & avoid.excluded()
    for node_id in known or forwards:
        avoid.failed(node_id)


async def put_once(
    conn: Connection,
    file_id: str,
    chunk_id: str,
    data: bytes | FileSlice,
    item: dict[str, Any],
    i: int = -1,
) -> str:
    """Write the chunk once through rotation ``i`` of its targets (by default the first
    whose primary the client does not avoid); its receipt. A failure blames its nodes."""
    if "caps" not in item:
        raise InvalidRequest(
            f"the plan's entry of chunk {chunk_id[:12]} has no capability (a packed chunk): "
            "send it in its pack, or ask /resume-upload for a plan of single sends"
        )
    targets = [(str(t["node_id"]), str(t["url"])) for t in item["targets"]]
    if i < 0:
        excluded = conn.avoid.excluded()
        i = next((k for k, t in enumerate(targets) if t[0] not in excluded), 0)
    i %= len(targets)
    primary, forward = rotation(targets, i)
    write = conn.nodes.put_chunk(
        primary[1],
        chunk_id,
        data,
        cap=str(item["caps"][i]),
        file_id=file_id,
        forward=protocol.forward_header(forward),
    )
    try:
        # given up at once when another write to one of these nodes fails (AvoidList.guard)
        answer = await conn.avoid.guard([node_id for node_id, _ in targets], write)
    except ReplicationError:
        blame_forwards(conn.avoid, [node_id for node_id, _ in forward])
        raise
    except Unavailable as exc:
        if exc.overtaken_by is None:  # an overtaken write is no news about its primary
            conn.avoid.failed(primary[0])
        raise
    return str(answer["receipt"])


class Replanner:
    """Plans of one pending upload around the nodes its client avoids.

    ``receipts`` is the upload's own dict, so each re-plan hands in what is proven so far.
    """

    def __init__(self, conn: Connection, file_id: str, receipts: dict[str, str]) -> None:
        self.conn = conn
        self.file_id = file_id
        self.receipts = receipts
        self._lock = asyncio.Lock()
        self._plan: dict[str, dict[str, Any]] | None = None  # chunk id -> newest entry
        self._excluded: frozenset[str] = frozenset()  # what the newest plan left out
        self._refused: frozenset[str] = frozenset()  # an exclusion the API could not plan

    async def entry(self, item: dict[str, Any]) -> dict[str, Any] | None:
        """The entry to send ``item``'s chunk with: from a plan that leaves out the nodes
        the client avoids (made now if none does yet), or ``item`` itself when none of its
        targets is avoided and it carries capabilities (a packed chunk of ``/init-uploads``
        has none: the first such chunk sent alone re-plans the upload once). None: the
        chunk needs sending no more (proven and held)."""
        async with self._lock:
            chunk_id = str(item["sha256"])
            current = item if self._plan is None else self._plan.get(chunk_id)
            if current is None:
                return None  # proven and held when the newest plan was made
            exclude = frozenset(self.conn.avoid.excluded())
            targets = {str(t["node_id"]) for t in current["targets"]}
            capped = "caps" in current
            if capped and (not exclude & targets or exclude <= self._excluded | self._refused):
                return current
            plan = await self._replan(exclude)
            if plan is None and not capped:  # no plan around them: one over every live node
                plan = await self._replan(frozenset(), refuse=False)
            return current if plan is None else plan.get(chunk_id)

    async def replan(self) -> list[dict[str, Any]]:
        """A new plan now (finalize found chunks short of copies): the entries to send."""
        async with self._lock:
            exclude = frozenset(self.conn.avoid.excluded())
            # too few nodes besides the failed ones: a plan over every live node, then
            plan = await self._replan(exclude)
            if plan is None:
                plan = await self._replan(frozenset(), refuse=False)
            return list(plan.values()) if plan is not None else []

    async def _ask(self, exclude: frozenset[str]) -> dict[str, Any]:
        """A plan of the upload's unproven chunks that leaves out ``exclude``."""
        return await self.conn.api.resume_upload(self.file_id, dict(self.receipts), exclude)

    async def _replan(
        self, exclude: frozenset[str], *, refuse: bool = True
    ) -> dict[str, dict[str, Any]] | None:
        try:
            answer = await self._ask(exclude)
        except Unavailable as exc:
            if not refuse or not exclude:
                raise
            # too few nodes besides the failed ones: keep the plan, rotate its primaries
            log.warning("cannot re-plan upload %s around %s: %s", self.file_id, exclude, exc)
            self._refused = exclude
            return None
        self.conn.stats.replans += 1
        log.info("re-planned upload %s around %s", self.file_id, sorted(exclude) or "nothing")
        self._plan = {str(i["sha256"]): i for i in answer["upload"]}
        self._excluded = exclude
        return self._plan


async def send_replanning(
    conn: Connection, replanner: Replanner, data: bytes | FileSlice, item: dict[str, Any]
) -> str | None:
    """Send a chunk of ``replanner``'s upload: up to SEND_ATTEMPTS writes, each with the
    newest entry around the failed nodes; its receipt, or None if the newest plan no longer
    asks for it."""
    chunk_id = str(item["sha256"])
    last: DfsError | None = None
    for attempt in range(SEND_ATTEMPTS):
        entry = await replanner.entry(item)
        if entry is None:
            return None
        try:
            return await put_once(conn, replanner.file_id, chunk_id, data, entry)
        except (Unavailable, ReplicationError) as exc:
            log.info("write of chunk %s failed (%s); trying again", chunk_id[:12], exc.message)
            last = exc
            # a node may be restarting: back off a little (the next write usually goes
            # elsewhere anyway, after a re-plan around the node blamed)
            await asyncio.sleep(min(2.0, 0.1 * 2**attempt))
    assert last is not None
    raise last


def _send_retrying(attempts: int, *errors: type[DfsError], within: float = 0.0) -> Any:
    """The chunk sends' one retry policy: ``attempts`` tries (and on for ``within`` seconds),
    ``errors`` retried after a bounded exponential pause. tenacity (~7 ms of CPU at every
    start) is imported only by a run that sends chunks this way."""
    from tenacity import (
        AsyncRetrying,
        retry_if_exception_type,
        stop_after_attempt,
        stop_after_delay,
        wait_exponential,
    )

    return AsyncRetrying(
        stop=stop_after_attempt(attempts) & stop_after_delay(within),
        wait=wait_exponential(multiplier=0.1, max=2.0),
        retry=retry_if_exception_type(errors),
        reraise=True,
    )


PROXY_BUSY_SECONDS = 30.0
"""How long a proxied chunk is sent again while the API answers 503 (its body slots for the
tenant held and queued for: ``dfs.api.body_slots`` refuses past its queue at once, so the
client's pauses are all the time the queue has to drain)."""


async def _proxy_send(conn: Connection, file_id: str, chunk_id: str, data: bytes) -> str:
    """Send one chunk through the API proxy; its receipt. A 503 (the API's body slots for
    the tenant all held: ``dfs.api.body_slots``) is sent again after a pause, for up to
    ``PROXY_BUSY_SECONDS`` (at least ``SEND_ATTEMPTS`` tries): the API asks for exactly
    that. Four tries within a second failed an upload behind a queue full for two."""
    async for try_ in _send_retrying(SEND_ATTEMPTS, Unavailable, within=PROXY_BUSY_SECONDS):
        with try_:
            answer = await conn.api.proxy_put_chunk(chunk_id, data, file_id=file_id)
    return str(answer["receipt"])


async def send_chunk(
    conn: Connection, file_id: str, chunk_id: str, data: bytes, item: dict[str, Any]
) -> str:
    """Send one chunk to its primary (which forwards to the other targets); return the
    receipt that proves to finalize-upload that the bytes were sent. On failure the next
    target is the primary (bounded, with backoff); an upload's sends also re-plan around
    failed nodes (``ChunkSender``, ``dfs.client.replan``)."""
    if conn.proxy:
        return await _proxy_send(conn, file_id, chunk_id, data)
    n = len(item["targets"])
    attempt = 0
    retrying = _send_retrying(max(2 * n, 2), Unavailable, ReplicationError)
    async for try_ in retrying:
        with try_:
            # rotate the primary so a dead first target does not sink the chunk
            i, attempt = attempt, attempt + 1
            receipt = await put_once(conn, file_id, chunk_id, data, item, i)
    return receipt
