"""A chunk the API writes itself, placed again around the nodes that failed it.

The API stores chunks on the nodes for S3 PUTs and parts, ``POST /upload`` and the proxy
routes (``dfs.api.ingest``). A node that died or hung stays live in the registry until its
heartbeat expires (NODE_HEARTBEAT_TIMEOUT, 15 s by default), and every write whose placement
includes it fails whichever target is the primary: rotating the primary alone cannot succeed,
so an object PUT while a node was down failed whenever one of its chunks was placed there.
As the native client does (``dfs.client.replan``), ``put_to_nodes`` blames the nodes a
failure points at and places the chunk again on the others (``PLACEMENTS`` at most):

- the primary, when it cannot be reached, misses its deadline or answers with any error but
  a 502 (507: its disk is full);
- on a 502 (``ReplicationError``: a replica it forwarded to failed), the replicas its answer
  names (``failed_nodes``), else those this process blames already, else all it forwarded to.

The API's deadline for a forwarded write exceeds the node's deadline for its forward by at
least ``protocol.CHUNK_DEADLINE_FLOOR`` (``forwarded_write_timeout``), so a hung replica shows as
a 502 naming it, never as a slow primary.

The Coordinator's ``failed_writes`` (``dfs.api.write_failures``) keeps the blamed nodes for a
heartbeat timeout, process-wide, so the writes that follow place around them at once instead
of each finding out again (a hung node costs every write placed on it a deadline). The API
places for every tenant, so, unlike a client's avoidance, its memory may steer them all;
when leaving the blamed nodes out leaves too few for REPLICATION_FACTOR, they are tried all
the same. An answer from a node forgets it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dfs import protocol
from dfs.api.bodies import rotations
from dfs.api.coordinator import Coordinator
from dfs.errors import (
    DfsError,
    InsufficientStorage,
    IntegrityError,
    InvalidRequest,
    ReplicationError,
    Unavailable,
)
from dfs.meta.base import NodeRecord

PLACEMENTS = 3
"""Placements one chunk is written to at most: the first, then one after each failure that
blamed a node of it."""


def forwarded_write_timeout(cfg_timeout: float) -> float:
    """The API's deadline for a write its primary forwards: longer than the node's own
    deadline for the forward (``REPLICATION_TIMEOUT`` at most), so the node's 502 naming a
    hung replica arrives first."""
    return cfg_timeout + protocol.CHUNK_DEADLINE_FLOOR


def blamed_by(
    exc: DfsError, primary: NodeRecord, forwards: Sequence[str], known: set[str]
) -> set[str]:
    """The nodes ``exc``, the failure of a write to ``primary`` forwarding to
    ``forwards``, points at (see the module docstring)."""
    if not isinstance(exc, ReplicationError):
        return {primary.node_id}
    named = exc.details.get("failed_nodes")
    if isinstance(named, list):
        found = {n for n in named if n in forwards}
        if found:
            return found
    return (set(forwards) & known) or set(forwards)


def placement(
    coord: Coordinator, chunk_id: str, size: int, live: Sequence[NodeRecord], failed: set[str]
) -> list[NodeRecord] | None:
    """Where to write the chunk next: ``live`` nodes this write has not blamed, preferably
    none this process blames either; None when too few are left."""
    ours = [n for n in live if n.node_id not in failed]
    recent = coord.failed_writes.blamed()
    preferred = [n for n in ours if n.node_id not in recent]
    if len(preferred) >= coord.rf:
        try:
            return coord.place(chunk_id, size, preferred)
        except InsufficientStorage:
            pass  # the blamed nodes may have the room: try them as well
    if len(ours) < coord.rf:
        return None
    return coord.place(chunk_id, size, ours)


async def put_to_nodes(
    coord: Coordinator,
    chunk_id: str,
    data: bytes | bytearray,
    file_id: str,
    live: Sequence[NodeRecord],
) -> dict[str, Any]:
    """Store a chunk of pending upload ``file_id`` on a placement among ``live`` (the API
    acting as the client), placed again around the nodes that fail it; the primary's
    answer, which carries its receipt and the nodes holding the copies."""
    failed: set[str] = set()
    last: DfsError | None = None
    timeout = forwarded_write_timeout(coord.cfg.replication_timeout)
    for _ in range(PLACEMENTS):
        targets = placement(coord, chunk_id, len(data), live, failed)
        if targets is None:
            break
        primary, forward = rotations(targets)[0]
        cap = coord.put_caps(file_id, chunk_id, targets)[0]
        try:
            answer = await coord.nodes.put_chunk(
                primary.url,
                chunk_id,
                data,
                cap=cap,
                file_id=file_id,
                forward=forward,
                timeout=timeout,
            )
        except (IntegrityError, InvalidRequest):
            raise
        except DfsError as exc:
            last = exc
            forwards = [t.node_id for t in targets[1:]]
            blamed = blamed_by(exc, primary, forwards, coord.failed_writes.blamed())
            coord.failed_writes.blame(blamed)
            failed |= blamed
            continue
        replicas = answer.get("replicas")
        coord.failed_writes.answered(replicas if isinstance(replicas, list) else [])
        return answer
    if last is None:
        raise Unavailable(
            f"chunk {chunk_id[:12]}: fewer than REPLICATION_FACTOR={coord.rf} live nodes to "
            "write it to"
        )
    raise last
