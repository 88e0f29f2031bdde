"""The storage node's durability routes and background work: delete, repair copies, the
quarantine report, background (async) replication and the scrubber.

| method | path          | capability              | answer                                    |
|--------|---------------|-------------------------|-------------------------------------------|
| POST   | /delete-chunk | ``delete`` for the chunk | ``{"deleted": bool}``; ``min_age`` keeps a |
|        |               |                         | copy written or re-sent more recently      |
| POST   | /copy-chunk   | ``copy``, bound to the  | 201 ``{"node_id"}`` once the target holds  |
|        |               | target node id and URL  | a verified copy; 404 if this copy is bad   |
| GET    | /quarantined  | ``status``              | ``{"chunk_ids": [...]}`` quarantined here  |
|        |               |                         | and not stored again since                 |
| GET    | /list-chunks  | ``list``                | ``{"chunks": [[id, age_s]...], "next"}``:  |
|        |               |                         | stored ids after ``after``, ascending      |

Every operation is one the API asked for with a capability it signed: a node never deletes
or copies on its own. The scrubber (``scrub_loop`` around ``FsChunkStore.scrub``) only
re-hashes and quarantines; the API learns of quarantined copies from ``/quarantined`` and
repairs them. ``replicate_later`` is REPLICATION_STRATEGY=async: the primary answered after
its own copy, and forwards from disk in the background with bounded retries, to each target
on its own. ``ReplicationLog`` is what ``/status`` reports of that background work: the
forwards in flight (the backlog), the chunks given up on (repair copies them) and a numbered
journal of completed forwards, which the API's repair pass records as locations, reading
from the last number it saw (``/status?after=N``; ``boot`` changes when the node restarts).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import secrets
import time
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from dfs import auth, protocol
from dfs.chunkstore.fs import FsChunkStore
from dfs.config import NodeConfig
from dfs.errors import DfsError, InvalidRequest
from dfs.ids import ChunkId, parse_chunk_id, parse_node_id
from dfs.replication import fan_out
from dfs.server import query_param, read_json
from dfs.transport.node_client import NodeClient

log = logging.getLogger("dfs.node.maintenance")

CONFIG = web.AppKey("maintenance_config", NodeConfig)
STORE = web.AppKey("maintenance_store", FsChunkStore)
NODES = web.AppKey("maintenance_nodes", NodeClient)
PENDING = web.AppKey("replication_pending", set[asyncio.Task[None]])
REPLICATION_ATTEMPTS = 3
FAILED_KEPT = 10_000
"""Chunk ids given up on that /status keeps reporting (the oldest drop out first)."""
JOURNAL_KEPT = 100_000


class ReplicationLog:
    """Background (async) replication as /status reports it; bounded in memory."""

    def __init__(self) -> None:
        self.boot = secrets.token_hex(8)
        self.pending = 0
        self.failed: collections.OrderedDict[str, float] = collections.OrderedDict()
        self.seq = 0
        self.journal: collections.deque[tuple[int, str, str, int]] = collections.deque(
            maxlen=JOURNAL_KEPT
        )

    def done(self, chunk_id: str, node_id: str, size: int) -> None:
        self.seq += 1
        self.journal.append((self.seq, chunk_id, node_id, size))
        self.failed.pop(chunk_id, None)

    def gave_up(self, chunk_id: str) -> None:
        self.failed[chunk_id] = time.time()
        self.failed.move_to_end(chunk_id)
        while len(self.failed) > FAILED_KEPT:
            self.failed.popitem(last=False)

    def report(self, after: int, limit: int = protocol.MAX_LIST_CHUNKS) -> dict[str, Any]:
        entries = [e for e in self.journal if e[0] > after][:limit]
        return {
            "boot": self.boot,
            "pending": self.pending,
            "failed": list(self.failed),
            "seq": entries[-1][0] if entries else self.seq,
            "done": [[c, n, size] for _seq, c, n, size in entries],
        }


LOG = web.AppKey("replication_log", ReplicationLog)


def _cap(request: web.Request) -> str | None:
    return request.headers.get(protocol.CAPABILITY) or request.query.get("cap")


async def delete_chunk(request: web.Request) -> web.Response:
    cfg = request.app[CONFIG]
    chunk_id = parse_chunk_id(query_param(request, "chunk_id"))
    auth.check(cfg.cluster_secret, _cap(request), auth.OP_DELETE, chunk_id, cfg.node_id)
    try:
        min_age = float(request.query.get("min_age", "0"))
    except ValueError:
        raise InvalidRequest("min_age must be a number of seconds") from None
    deleted = await request.app[STORE].delete_if_idle(chunk_id, max(min_age, 0.0))
    return web.json_response({"deleted": deleted})


async def copy_chunk(request: web.Request) -> web.Response:
    """Send a verified copy of a chunk to the one node the capability names (repair)."""
    cfg = request.app[CONFIG]
    chunk_id = parse_chunk_id(query_param(request, "chunk_id"))
    body = await read_json(request, 4096)
    target_id = parse_node_id(body.get("target_id"), "target_id")
    target_url = body.get("target_url")
    if not isinstance(target_url, str) or not target_url.startswith(("http://", "https://")):
        raise InvalidRequest("target_url must be an http(s) URL")
    auth.check(
        cfg.cluster_secret,
        _cap(request),
        auth.OP_COPY,
        chunk_id,
        cfg.node_id,
        extra=protocol.copy_cap_extra(target_id, target_url),
    )
    data = await request.app[STORE].get(chunk_id)  # verified; a bad copy is quarantined: 404
    await _forward(cfg, request.app[NODES], chunk_id, data, [(target_id, target_url)])
    return web.json_response({"node_id": target_id}, status=201)


async def quarantined(request: web.Request) -> web.Response:
    cfg = request.app[CONFIG]
    auth.check(cfg.cluster_secret, _cap(request), auth.OP_STATUS, auth.ANY_CHUNK, cfg.node_id)
    return web.json_response({"chunk_ids": await request.app[STORE].quarantined()})


async def _forward(
    cfg: NodeConfig,
    nodes: NodeClient,
    chunk_id: str,
    data: bytes | bytearray,
    targets: Sequence[tuple[str, str]],
) -> list[str]:
    def replica_cap(node_id: str) -> str:
        return auth.mint(
            cfg.cluster_secret,
            auth.OP_REPLICATE,
            chunk_id,
            node_id,
            ttl=cfg.replication_timeout + auth.CLOCK_SKEW,
        )

    return await fan_out(nodes, chunk_id, data, targets, cfg.replication_timeout, replica_cap)


def replicate_later(app: web.Application, chunk_id: str, targets: list[tuple[str, str]]) -> None:
    """Forward a chunk already durable here to ``targets`` in the background (async
    replication), each on its own, re-reading it from disk so no bytes wait in memory."""
    rlog = app[LOG]

    async def run(target: tuple[str, str]) -> None:
        rlog.pending += 1
        try:
            delay = 0.5
            for attempt in range(1, REPLICATION_ATTEMPTS + 1):
                try:
                    data = await app[STORE].get(ChunkId(chunk_id))
                    await _forward(app[CONFIG], app[NODES], chunk_id, data, [target])
                    rlog.done(chunk_id, target[0], len(data))
                    return
                except DfsError as exc:
                    log.warning(
                        "background replication of %s to %s, attempt %d/%d: %s",
                        chunk_id[:12],
                        target[0],
                        attempt,
                        REPLICATION_ATTEMPTS,
                        exc.message,
                    )
                if attempt < REPLICATION_ATTEMPTS:
                    await asyncio.sleep(delay)
                    delay *= 2
            rlog.gave_up(chunk_id)
            log.error("gave up replicating %s; the API's repair will copy it", chunk_id[:12])
        finally:
            rlog.pending -= 1

    for target in targets:
        task = asyncio.create_task(run(target))
        app[PENDING].add(task)
        task.add_done_callback(app[PENDING].discard)


def status_extra(app: web.Application, request: web.Request) -> dict[str, Any]:
    """What /status adds about background replication (``after``: the journal position
    the caller has already read)."""
    try:
        after = int(request.query.get("after", "0"))
    except ValueError:
        raise InvalidRequest("after must be an integer") from None
    return {"replication": app[LOG].report(max(after, 0))}


async def list_chunks(request: web.Request) -> web.Response:
    cfg = request.app[CONFIG]
    auth.check(cfg.cluster_secret, _cap(request), auth.OP_LIST, auth.ANY_CHUNK, cfg.node_id)
    after = request.query.get("after", "")
    if after:
        after = parse_chunk_id(after, "after")
    try:
        limit = int(request.query.get("limit", "1000"))
    except ValueError:
        raise InvalidRequest("limit must be an integer") from None
    if not 0 < limit <= protocol.MAX_LIST_CHUNKS:
        raise InvalidRequest(f"limit must be in [1, {protocol.MAX_LIST_CHUNKS}]")
    page = await request.app[STORE].list_chunks(after, limit)
    return web.json_response(
        {
            "chunks": [[c, round(age, 3)] for c, age in page],
            "next": page[-1][0] if len(page) == limit else None,
        }
    )


async def _cancel_pending(app: web.Application) -> None:
    tasks: set[asyncio.Task[None]] = app[PENDING]
    for task in list(tasks):
        task.cancel()
    pending: set[asyncio.Task[None]] = app[PENDING]
    await asyncio.gather(*pending, return_exceptions=True)


def add_routes(
    app: web.Application, cfg: NodeConfig, store: FsChunkStore, nodes: NodeClient
) -> None:
    app[CONFIG] = cfg
    app[STORE] = store
    app[NODES] = nodes
    app[PENDING] = set()
    app[LOG] = ReplicationLog()
    app.on_cleanup.append(_cancel_pending)
    app.router.add_post(protocol.DELETE_CHUNK, delete_chunk)
    app.router.add_post(protocol.COPY_CHUNK, copy_chunk)
    app.router.add_get(protocol.QUARANTINED, quarantined)
    app.router.add_get(protocol.LIST_CHUNKS, list_chunks)


async def scrub_loop(store: FsChunkStore, rate_bytes: float, interval: float) -> None:
    """Scrub every ``interval`` seconds (the first pass after one interval); never give up."""
    while True:
        await asyncio.sleep(interval)
        try:
            checked, bad = await store.scrub(rate_bytes)
        except (DfsError, OSError) as exc:
            log.warning("scrub pass failed: %s", exc)
            continue
        if bad:
            log.error("scrub: %d of %d chunk copies failed verification", bad, checked + bad)
        else:
            log.info("scrub: %d chunk copies verified", checked)
