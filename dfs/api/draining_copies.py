"""Copies on draining nodes do not count for a commit; the API moves them instead, and tops
up a chunk short of copies from one it has (and ``copy_between``, the node-to-node copy
repair makes too).

A node being drained (``dfs.api.drain``) is removed once every chunk recorded on it has its
copies elsewhere. An upload that began before the drain may still have placed chunks there
(its plan, or an ingest's sender, picked the node then). Had its commit counted those copies,
it could commit right after the drain said done, and the operator's removal of the node would
leave those chunks short of copies. So a commit counts only the copies on nodes that are not
draining (``counted_copies``), and for a chunk short of them whose copy sits on a draining
node, the API has that node send its verified copy to writable nodes first (``/copy-chunk``,
as repair copies), so the upload commits instead of being refused. Only when that fails too
is the commit refused (``incomplete_upload``: the client sends the chunk again).

The same copy tops up a chunk whose copies a node lost between the upload and its commit (a
node killed: still live until its heartbeat expires, it answers no has-chunks; a disk wiped):
a counted copy on another node is sent to a writable one. An S3 CompleteMultipartUpload has no
bytes to send again, and its parts were acknowledged durable: without this it was refused
(503) on every retry until repair, a DFS_REPAIR_GRACE later, restored the copies.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Protocol

from dfs import auth, protocol
from dfs.api.finalizing import counting
from dfs.bounded import gather_bounded
from dfs.config import ApiConfig
from dfs.errors import DfsError
from dfs.meta.base import Location, NodeRecord
from dfs.transport.node_client import NodeClient

log = logging.getLogger("dfs.api")

COPIES_AT_ONCE = 8


class Coordinator(Protocol):
    """What of ``dfs.api.coordinator.Coordinator`` this needs (which calls it: no import)."""

    cfg: ApiConfig
    nodes: NodeClient

    @property
    def copies_to_commit(self) -> int: ...

    async def live_nodes(self) -> list[NodeRecord]: ...

    async def writable_nodes(self) -> list[NodeRecord]: ...

    def place(self, chunk_id: str, size: int, live: Sequence[NodeRecord]) -> list[NodeRecord]: ...

    def cap(self, op: str, chunk_id: str, node_id: str, extra: str = "") -> str: ...


async def counted_copies(
    coord: Coordinator,
    chunks: Mapping[str, int],
    found: Mapping[str, set[str]],
    draining: AbstractSet[str],
    new: list[Location],
    top_up: bool = True,
) -> dict[str, set[str]]:
    """Each chunk's copies that count for a commit (``found`` but those on ``draining``
    nodes), after copying each chunk short of ``copies_to_commit`` from a node that holds
    it (a draining one first; without ``top_up``, only from a draining one) to writable
    ones; the copies made are added to ``new`` (for the commit to record). A client that
    excludes nodes from its finalize is re-planning around them: it is told what is short
    and sends it (``top_up`` off)."""
    counts = counting(found, draining)
    need = coord.copies_to_commit
    # a chunk short of copies, with one to copy from (a draining one's, or any with top_up)
    movable = {c for c, held in found.items() if held and (top_up or held & draining)}
    short = [c for c in chunks if len(counts.get(c, ())) < need and c in movable]
    if not short:
        return counts
    live = {n.node_id: n for n in await coord.live_nodes()}
    writable = await coord.writable_nodes()

    async def move(chunk_id: str) -> None:
        held = found[chunk_id]
        order = [*sorted(held & draining), *sorted(held - draining)]
        sources = [live[n] for n in order if n in live]
        for target in _targets(coord, chunk_id, chunks[chunk_id], writable, held):
            if len(counts[chunk_id]) >= need or not sources:
                return
            why = "drain" if held & draining else "top-up"
            if await copy_between(coord, chunk_id, sources[0], target, why):
                counts[chunk_id].add(target.node_id)
                new.append(Location(chunk_id, target.node_id, chunks[chunk_id]))

    await gather_bounded(move, short, COPIES_AT_ONCE)
    return counts


def _targets(
    coord: Coordinator,
    chunk_id: str,
    size: int,
    writable: Sequence[NodeRecord],
    holding: AbstractSet[str],
) -> list[NodeRecord]:
    """Writable nodes that do not hold the chunk yet, in placement order."""
    ranked = [n for n in writable if n.node_id not in holding]
    try:
        return coord.place(chunk_id, size, ranked)
    except DfsError:  # too few with room for a full placement: any of them will do
        return ranked


async def copy_between(
    coord: Coordinator, chunk_id: str, source: NodeRecord, target: NodeRecord, why: str
) -> bool:
    """Have ``source`` send its verified copy of the chunk to ``target`` (``/copy-chunk``,
    a ``copy`` capability bound to the target); False, logged with ``why``, if it failed."""
    extra = protocol.copy_cap_extra(target.node_id, target.url)
    try:
        await coord.nodes.copy_chunk(
            source.url,
            chunk_id,
            target.node_id,
            target.url,
            cap=coord.cap(auth.OP_COPY, chunk_id, source.node_id, extra),
            timeout=coord.cfg.replication_timeout,
        )
    except DfsError as exc:
        log.warning(
            "%s: copy of %s from %s to %s failed: %s",
            why,
            chunk_id[:12],
            source.node_id,
            target.node_id,
            exc.message,
        )
        return False
    return True
