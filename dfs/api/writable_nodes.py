"""The nodes a new chunk may go to, and the API's first seconds after a start.

Nodes of a SQLite store register through the API (``dfs.config.registers_through_api``):
an API back from an outage longer than ``NODE_HEARTBEAT_TIMEOUT`` finds every node's entry
expired, and has no live node until their next heartbeat reaches it (their retries are at
most a second apart, ``dfs.node.heartbeat``). A plan asked in that moment would be refused
("only 0 live storage nodes") although the nodes are there. So in its first
``STARTUP_GRACE`` seconds an API that knows nodes whose entries expired waits for enough
of them to come back before it refuses; a cluster that never had enough nodes, or an API
up for longer, is answered at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection

from dfs.errors import Unavailable
from dfs.meta.base import NODE_UP, NodeRecord

STARTUP_GRACE = 3.0
"""Seconds after an API starts in which a plan waits for known nodes to register again."""
POLL = 0.1


async def writable_nodes(
    live_nodes: Callable[[], Awaitable[list[NodeRecord]]],
    known_nodes: Callable[[], Awaitable[list[NodeRecord]]],
    draining: Callable[[], Awaitable[Collection[str]]],
    rf: int,
    exclude: Collection[str],
    grace_ends: float,
) -> list[NodeRecord]:
    """The live nodes but ``exclude`` and the draining ones; Unavailable if fewer than
    ``rf`` are left once the start-up grace (until ``grace_ends``, monotonic) allows."""
    unwanted = {*exclude, *await draining()}
    while True:
        live = [n for n in await live_nodes() if n.node_id not in unwanted]
        if len(live) >= rf:
            return live
        if time.monotonic() >= grace_ends or not await _expired_known(known_nodes, live):
            break
        await asyncio.sleep(POLL)
    but = f" besides the {len(exclude)} excluded" if exclude else ""
    raise Unavailable(
        f"only {len(live)} live storage node(s){but}, REPLICATION_FACTOR={rf} needs "
        f"{rf}: start more nodes or lower REPLICATION_FACTOR"
    )


async def _expired_known(
    known_nodes: Callable[[], Awaitable[list[NodeRecord]]], live: list[NodeRecord]
) -> bool:
    """Whether the registry holds nodes that are up but not live: expired, not stopped."""
    alive = {n.node_id for n in live}
    return any(n.node_id not in alive and n.status == NODE_UP for n in await known_nodes())
