"""Draining storage nodes before their planned removal: which nodes are draining, and how far
a drain has got.

A draining node stays live and serves reads, but:
- no new chunk is placed on it (``Coordinator.writable_nodes`` leaves it out);
- its copies no longer count towards REPLICATION_FACTOR, so repair copies each of its chunks
  to other nodes (reading from any live holder, the draining node included), never to a
  draining node; once a chunk has its copies elsewhere, the draining node's copy is the
  surplus repair trims (``dfs.api.repair``).
The drain is done when every referenced chunk recorded on the node has REPLICATION_FACTOR
copies on live nodes that are not draining: the node can then be stopped and removed without
any chunk ever having had fewer copies (``DrainSet.status``). Locations alone do not prove it
(one may name a copy lost since, or one a race recorded after it was deleted), so a chunk
whose locations say it is safe is confirmed with those holders (has-chunks, one request per
node and page of chunks): only copies the nodes answer they hold count, a node that does
not answer counts for nothing, and a copy a node answers it does not hold is forgotten
(repair, which reads the draining node's chunks every pass, then copies the chunk). The
holders are asked through ``confirm_with``, which the API's ``Repair`` binds to its node
client; without it no chunk is confirmed and the drain is never done.

The set of draining nodes is shared by every API process: it is the info of the "drain"
lease in the metadata store (a lease no pass contends for, its ``expires_at`` years ahead),
so both metadata backends keep it without a new table. A change is a read, then a write
conditional on the lease's ``expires_at`` being still the one read (``set_draining``), so
two admins draining or cancelling at the same instant through two API processes both get
their change. Each API process caches the set for ``CACHE_SECONDS``.

``done`` waits a settling time (``DFS_DRAIN_SETTLE``, ``ApiConfig.drain_settle``) from the
drain's start. A commit counts copies against a draining set read up to ``CACHE_SECONDS``
before, so one that began before the drain may still record a copy on the node after a
status pass has read its chunks; had ``done`` been answered then, the operator's removal of
the node would have taken that copy. Each commit checks the set again just before its
write (``relied_on``: a node it counted a copy on that began draining meanwhile has the
commit count again without it, or refuse with Busy, which the client sends again), so its
write starts at most ``CACHE_SECONDS`` after the read it rests on; a status pass that starts
``drain_settle`` (well over that plus a write's latency) after the drain began sees every
such copy. The start times travel in the lease with the ids: the list of ids, then one
object ``{"since": {id: epoch seconds}}`` (an older API process reads only the strings, and
takes that object for a node id no node has). A drain whose start is not known (the set an
older process wrote) is given the time it is first seen, written back: it settles anew.

Knows nothing of aiohttp.web.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from typing import Any

from dfs.errors import Busy, DfsError, InvalidRequest, Unavailable
from dfs.ids import parse_node_id
from dfs.meta.base import Location, MetadataStore, NodeRecord

log = logging.getLogger("dfs.api.drain")

DRAIN_LEASE = "drain"
OWNER = "drain"
TTL = 10 * 365 * 86400.0
"""The lease never expires in practice: a drain lasts until cancelled."""
CACHE_SECONDS = 2.0
PAGE = 500
WRITE_TRIES = 20
"""Reads and conditional writes a change of the set makes before giving up (each try lost
means another change landed)."""

HasChunks = Callable[[NodeRecord, list[str]], Awaitable[set[str]]]
"""(node, chunk ids) -> the ids the node answers it holds (has-chunks)."""


def began_draining() -> Busy:
    """A commit's answer when a node it counted copies on began draining before its write,
    twice (counted again each time): refused before anything was written, sent again."""
    return Busy("a node began draining during this commit; send it again")


class DrainSet:
    def __init__(
        self,
        meta: MetadataStore,
        clock: Callable[[], float],
        has_chunks: HasChunks | None = None,
        settle: float = 0.0,
    ) -> None:
        self.meta = meta
        self.clock = clock
        self.settle = settle
        self._has_chunks = has_chunks
        self._cached: frozenset[str] = frozenset()
        self._since: dict[str, float | None] = {}  # node -> when its drain began, if known
        self._read_at: float | None = None

    def confirm_with(self, has_chunks: HasChunks) -> None:
        """How ``status`` asks the holders which copies they really hold."""
        self._has_chunks = has_chunks

    async def _read(self) -> frozenset[str]:
        return frozenset((await self._read_lease())[0])

    async def _read_lease(self) -> tuple[dict[str, float | None], float]:
        """The draining nodes with their drains' start times, and the lease's
        ``expires_at`` (0 with no lease): its version."""
        lease = await self.meta.get_lease(DRAIN_LEASE)
        since = _parse_info(lease.info) if lease is not None and lease.info else {}
        self._cached, self._since, self._read_at = frozenset(since), since, self.clock()
        return since, lease.expires_at if lease is not None else 0.0

    async def ids(self) -> frozenset[str]:
        """The draining nodes (cached for CACHE_SECONDS)."""
        if self._read_at is not None and self.clock() - self._read_at < CACHE_SECONDS:
            return self._cached
        return await self._read()

    async def relied_on(
        self, read: frozenset[str], nodes: Iterable[str] | Mapping[str, Collection[str]]
    ) -> bool:
        """Just before a commit's write: whether one of ``nodes`` (those it counted copies
        on against ``read``, or each chunk's) began draining since (then it counts again)."""
        began = await self.ids() - read
        if began and isinstance(nodes, Mapping):
            return any(not began.isdisjoint(held) for held in nodes.values())
        return bool(began) and not began.isdisjoint(nodes)

    async def set_draining(self, node_id: str, draining: bool) -> frozenset[str]:
        """Start (or cancel) draining ``node_id``; returns the new set.

        A compare-and-set on the lease's ``expires_at``, which every write moves on by
        ``TTL``: written as a new owner "as of" the ``expires_at`` read, the lease is free to
        take only if no other write came since (one would have moved it past that), else
        read again. A plain read-modify-write lost one of two changes made at once by two
        API processes (found by review: a drain silently stopped, or a cancelled one came
        back)."""
        for _ in range(WRITE_TRIES):
            current, version = await self._read_lease()
            now = self.clock()  # also for drains of unknown start: they settle from now
            since = {n: now if t is None else t for n, t in current.items()}
            if draining:
                since.setdefault(node_id, now)
            else:
                since.pop(node_id, None)
            owner = f"{OWNER}-{secrets.token_hex(8)}"  # never the lease's owner: no renewal
            info = json.dumps([*sorted(since), {"since": since}])
            if await self.meta.acquire_lease(DRAIN_LEASE, owner, version, TTL, info):
                ids = frozenset(since)
                self._cached, self._since, self._read_at = ids, dict(since), self.clock()
                return ids
        raise Unavailable("the set of draining nodes kept changing: try again")

    async def status(self, node_id: str, rf: int) -> dict[str, Any]:
        """How far the drain of ``node_id`` has got: its referenced chunks, how many of them
        lack REPLICATION_FACTOR copies, confirmed by their nodes, on live nodes that are not
        draining, and ``done``: none short, on a pass begun once the drain settled (at
        ``settles_at``: its start plus ``settle``)."""
        draining = await self._read()
        if node_id in draining and self._since.get(node_id) is None:
            draining = await self.set_draining(node_id, True)  # its start: now, written
        now = self.clock()
        settles_at = (self._since.get(node_id) or 0.0) + self.settle
        others = {n.node_id: n for n in await self.meta.list_live_nodes(now)}
        for n in draining:
            others.pop(n, None)
        chunks = short = 0
        after: str | None = None
        while True:
            ids = await self.meta.node_chunks(node_id, limit=PAGE, after=after)
            if not ids:
                break
            infos = await self.meta.get_chunks(ids)
            locations = await self.meta.get_locations(ids)
            claimed: dict[str, set[str]] = {}
            for chunk_id in ids:
                info = infos.get(chunk_id)
                if info is None or info.refcount <= 0:
                    continue  # unreferenced: garbage collection's, not worth a copy
                chunks += 1
                claimed[chunk_id] = locations.get(chunk_id, set()) & others.keys()
            safe = {c: where for c, where in claimed.items() if len(where) >= rf}
            short += len(claimed) - len(safe)
            held = await self._confirm(safe, others)
            short += sum(len(held[c]) < rf for c in safe)
            after = ids[-1]
            if len(ids) < PAGE:
                break
        return {
            "node_id": node_id,
            "draining": node_id in draining,
            "chunks": chunks,
            "short": short,
            "done": node_id in draining and short == 0 and now >= settles_at,
            "settles_at": settles_at if node_id in draining else None,
            "draining_nodes": sorted(draining),
        }

    async def _confirm(
        self, claimed: dict[str, set[str]], nodes: dict[str, NodeRecord]
    ) -> dict[str, set[str]]:
        """chunk -> the nodes among those ``claimed`` for it that answer they hold it. Copies
        a node answers it does not hold are forgotten."""
        held: dict[str, set[str]] = {c: set() for c in claimed}
        asks: dict[str, list[str]] = {}
        for c, where in claimed.items():
            for n in where:
                asks.setdefault(n, []).append(c)
        has_chunks = self._has_chunks
        if has_chunks is None or not asks:
            return held
        answers = await asyncio.gather(
            *(has_chunks(nodes[n], sorted(ids)) for n, ids in asks.items()),
            return_exceptions=True,
        )
        gone: list[Location] = []
        for (n, ids), answer in zip(asks.items(), answers, strict=True):
            if isinstance(answer, BaseException):
                if not isinstance(answer, DfsError):
                    raise answer
                log.warning("drain status: node %s did not answer has-chunks: %s", n, answer)
                continue
            for c in ids:
                if c in answer:
                    held[c].add(n)
                else:
                    gone.append(Location(c, n, 0))
        if gone:
            log.warning("drain status: %d recorded copies are not on their nodes", len(gone))
            await self.meta.remove_locations(gone)
        return held


def _parse_info(info: str) -> dict[str, float | None]:
    """The lease's info -> node id -> when its drain began: the ids, then (from this
    version on) ``{"since": {...}}``. An id without a start time (a set an older API process
    wrote) has None. Strings that are not node ids (an older process's copy of that object)
    are dropped."""
    raw = json.loads(info)
    if not isinstance(raw, list):
        return {}
    known: object = next((x["since"] for x in raw if isinstance(x, dict) and "since" in x), {})
    since: dict[str, float | None] = {}
    for n in raw:
        if isinstance(n, str) and _is_node_id(n):
            when = known.get(n) if isinstance(known, dict) else None
            since[n] = float(when) if isinstance(when, int | float) else None
    return since


def _is_node_id(value: str) -> bool:
    try:
        parse_node_id(value)
    except InvalidRequest:
        return False
    return True
