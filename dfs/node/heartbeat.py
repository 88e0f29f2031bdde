"""Node registration: a heartbeat loop that keeps the node's registry entry alive.

Two ways to reach the registry, chosen by configuration: write it directly in the metadata
store (``DFS_META_URL``, the seed's design: nodes work while the API is down), or post it to
the API (``DFS_API_URL``: nodes need no metadata credentials). ``heartbeat_once`` is the
one-shot step tests call; ``heartbeat_loop`` repeats it with backoff on errors.
``TrackingRegistrar`` wraps either to remember when a heartbeat last succeeded and whether the
node has left the registry, which is what "registered" means to ``/readyz`` and ``/metrics``:
the entry the API reads is live exactly while the last heartbeat is younger than
NODE_HEARTBEAT_TIMEOUT. Every entry carries the node's disk identity
(``dfs.node.disk_identity``), by which repair tells a returning node from a wiped one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Protocol

from dfs import auth
from dfs.chunkstore.base import ChunkStore
from dfs.config import NodeConfig
from dfs.errors import DfsError, Unavailable
from dfs.meta.base import NODE_UP, MetadataStore, NodeRecord
from dfs.node.disk_identity import ensure_disk_id
from dfs.transport.api_client import ApiClient

log = logging.getLogger("dfs.node.heartbeat")

RETRY_AFTER_FAILURE = 0.25
"""Seconds before a failed heartbeat is sent again, times the failures in a row (up to 4)."""


class Registrar(Protocol):
    async def heartbeat(self, node: NodeRecord) -> None: ...
    async def deregister(self, node_id: str) -> None: ...


class MetaRegistrar:
    """Writes the registry entry straight into the metadata store."""

    def __init__(self, meta: MetadataStore) -> None:
        self._meta = meta

    async def heartbeat(self, node: NodeRecord) -> None:
        await self._meta.upsert_node(node)

    async def deregister(self, node_id: str) -> None:
        # a tombstone, not a delete: repair's grace runs from now, so a planned restart
        # within DFS_REPAIR_GRACE copies nothing
        await self._meta.deregister_node(node_id, time.time())


class ApiRegistrar:
    """Posts the registry entry to the API, which stamps it with its own clock. Each call
    carries a short capability minted with the cluster secret, so only nodes can register; it
    binds this start's boot number (``disk_identity.next_boot``: greater at every start) and
    a sequence number that grows with every call (the API accepts each (boot, seq) once and
    never an older one, so neither a call of this boot nor one captured before the restart
    can be replayed) and all a heartbeat announces: address, port, capacity, use, zone and disk
    identity."""

    def __init__(self, api: ApiClient, secret: bytes, boot: int) -> None:
        self._api = api
        self._secret = secret
        self._boot = boot
        self._seq = 0

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    async def heartbeat(self, node: NodeRecord) -> None:
        seq = self._next_seq()
        cap = auth.mint_heartbeat(
            self._secret,
            node.node_id,
            self._boot,
            seq,
            node.host,
            node.port,
            node.capacity_bytes,
            node.disk_id,
            used=node.used_bytes,
            zone=node.zone,
        )
        body = {**dataclasses.asdict(node), "boot": self._boot, "seq": seq}
        await self._api.heartbeat(body, cap=cap)

    async def deregister(self, node_id: str) -> None:
        seq = self._next_seq()
        cap = auth.mint_deregister(self._secret, node_id, self._boot, seq)
        await self._api.deregister(node_id, cap=cap, boot=self._boot, seq=seq)


class TrackingRegistrar:
    """A Registrar that remembers the last successful heartbeat (monotonic seconds)."""

    def __init__(self, inner: Registrar, ttl: float) -> None:
        self._inner = inner
        self._ttl = ttl
        self.last_ok: float | None = None
        self.deregistered = False

    async def heartbeat(self, node: NodeRecord) -> None:
        await self._inner.heartbeat(node)
        self.last_ok = time.monotonic()
        self.deregistered = False

    async def deregister(self, node_id: str) -> None:
        self.deregistered = True  # not ready from here on, even if the call below fails
        await self._inner.deregister(node_id)

    def registered(self) -> bool:
        return (
            not self.deregistered
            and self.last_ok is not None
            and time.monotonic() - self.last_ok < self._ttl
        )


def node_record(cfg: NodeConfig, port: int, store: ChunkStore, now: float) -> NodeRecord:
    """The node's registry entry as of ``now``. Blocking (disk usage, the disk identity):
    call it from a worker thread. The disk identity is read at every heartbeat, so a chunk
    folder wiped while the node runs gets a new one, and repair notices at its next pass."""
    return NodeRecord(
        node_id=cfg.node_id,
        host=cfg.advertise_host,
        port=port,
        zone=cfg.zone,
        capacity_bytes=store.capacity_bytes,
        used_bytes=store.used_bytes,
        status=NODE_UP,
        last_heartbeat=now,
        expires_at=now + cfg.heartbeat_timeout,
        disk_id=ensure_disk_id(cfg.data_dir),
    )


def heartbeat_deadline(cfg: NodeConfig) -> float:
    """Seconds one heartbeat may take. Without a bound, a heartbeat sent on a connection to
    an API process that stopped answering (one of several ``DFS_API_WORKERS``, SIGSTOP'd
    or hung) waited out the session's read timeout, and the node expired meanwhile; given
    up, its connection is closed and the next one may reach a process that answers."""
    return max(1.0, min(cfg.heartbeat_interval, cfg.heartbeat_timeout / 3))


async def heartbeat_once(
    cfg: NodeConfig, port: int, store: ChunkStore, registrar: Registrar
) -> None:
    now = time.time()
    rec = await asyncio.to_thread(node_record, cfg, port, store, now)  # disk_usage is a syscall
    deadline = heartbeat_deadline(cfg)
    try:
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that lands as
        # the heartbeat completes, and the loop then outlived the node's stop (its await)
        async with asyncio.timeout(deadline):
            await registrar.heartbeat(rec)
    except TimeoutError:
        raise Unavailable(f"the registry did not answer within {deadline:.1f} s") from None


async def heartbeat_loop(
    cfg: NodeConfig, port: int, store: ChunkStore, registrar: Registrar
) -> None:
    """Heartbeat every interval; on errors retry sooner, never give up, stop on cancel."""
    failures = 0
    while True:
        try:
            await heartbeat_once(cfg, port, store, registrar)
            if failures:
                log.info("heartbeat recovered after %d failures", failures)
            failures = 0
            delay = cfg.heartbeat_interval
        except DfsError as exc:
            failures += 1
            # soon, and never much later than a second: where nodes register through the
            # API, an API back from an outage longer than NODE_HEARTBEAT_TIMEOUT has no
            # live node until they do (its clients' plans are refused meanwhile)
            delay = min(cfg.heartbeat_interval, RETRY_AFTER_FAILURE * min(failures, 4))
            log.warning("heartbeat failed (%d in a row): %s", failures, exc.message)
        await asyncio.sleep(delay)
