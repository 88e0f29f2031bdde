"""Repair's reading of the storage nodes' background-replication journals
(REPLICATION_STRATEGY=async, ``dfs.node.forwarding.ReplicationLog``).

Each node numbers the forwards it completed since it started (``boot``: a new one at every
start) and answers ``/status?after=N`` with those after N. A repair pass reads each live
node's journal from its cursor, records the forwarded copies as locations, adds up the
backlog and returns the chunks the node gave up on (repair copies them).

The cursors are durable: node -> (boot, last number read), kept in the repair lease's info
(``RepairReport.replication_cursors``, carried from pass to pass like the inventory's), so
an API process that restarts, or another one taking the repair lease over, goes on where
the last pass stopped. Re-reading a journal from the start would record again every forward
in it, including copies lost, quarantined or trimmed since: locations naming copies that
are not there, which a drain or a repair would count.

Order: the journal is read, the new cursors are written into the lease, and only then are
the forwards read recorded. A pass that dies in between leaves forwards unrecorded, never
recorded twice: the copies are on their nodes, and the has-chunks check of short chunks or
the orphan sweep records them. A node read without a cursor of its current boot (the first
pass after an upgrade, a node whose cursor was dropped) may be replaying what was recorded
before: those forwards are recorded only if their target still holds the copy
(has-chunks). A read that follows a cursor of the same boot is new and recorded as it is.

Knows nothing of aiohttp.web.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dfs import auth
from dfs.api.coordinator import Coordinator
from dfs.errors import DfsError
from dfs.meta.base import Location, NodeRecord

log = logging.getLogger("dfs.api.repair")

Cursor = tuple[str, int]
"""(the node's boot, the last journal number read in it)."""


def cursor_map(raw: object) -> dict[str, Cursor]:
    """Journal cursors from a previous report's JSON (anything malformed is left out)."""
    if not isinstance(raw, dict):
        return {}
    out: dict[str, Cursor] = {}
    for node_id, value in raw.items():
        if isinstance(value, list | tuple) and len(value) == 2:
            boot, seq = value
            if isinstance(boot, str) and isinstance(seq, int) and seq >= 0:
                out[str(node_id)] = (boot, seq)
    return out


@dataclass
class JournalRead:
    """What one pass read of the live nodes' journals."""

    cursors: dict[str, Cursor]
    """The cursors to keep: the ones read past, and the others as they were."""
    new: list[Location] = field(default_factory=list)
    """Forwards read past a cursor of the same boot: recorded as they are."""
    replayed: list[Location] = field(default_factory=list)
    """Forwards read with no cursor of the node's boot: recorded once has-chunks confirms."""
    failed: set[str] = field(default_factory=set)
    pending: int = 0


async def _status(coord: Coordinator, node: NodeRecord, cursor: Cursor | None) -> dict[str, Any]:
    """The node's replication report after ``cursor`` (all of it when the node restarted)."""
    boot, seq = cursor or ("", 0)
    cap = coord.cap(auth.OP_STATUS, auth.ANY_CHUNK, node.node_id)
    body = await coord.nodes.status(node.url, cap=cap, after=seq, timeout=10.0)
    rep: dict[str, Any] = body.get("replication") or {}
    if rep and rep.get("boot") != boot and seq:  # the node restarted: read it all
        body = await coord.nodes.status(node.url, cap=cap, after=0, timeout=10.0)
        rep = body.get("replication") or {}
    return rep


async def read_journals(
    coord: Coordinator, live: list[NodeRecord], cursors: Mapping[str, Cursor]
) -> JournalRead:
    """Read each live node's journal after its cursor; records nothing. A node that does
    not answer keeps its cursor."""
    answers = await asyncio.gather(
        *(_status(coord, n, cursors.get(n.node_id)) for n in live), return_exceptions=True
    )
    out = JournalRead(cursors=dict(cursors))
    for node, rep in zip(live, answers, strict=True):
        if isinstance(rep, BaseException):
            if not isinstance(rep, DfsError):
                raise rep
            continue
        if not rep:
            continue
        out.pending += int(rep.get("pending", 0))
        out.failed.update(str(c) for c in rep.get("failed", []))
        boot = str(rep.get("boot", ""))
        done = [Location(str(c), str(n), int(size)) for c, n, size in rep.get("done", [])]
        before = cursors.get(node.node_id)
        if before is not None and before[0] == boot:
            out.new += done
        else:
            out.replayed += done
        out.cursors[node.node_id] = (boot, int(rep.get("seq", 0)))
    return out


async def _still_held(
    coord: Coordinator, locs: list[Location], live: Mapping[str, NodeRecord]
) -> list[Location]:
    """The ``locs`` whose node is live and answers has-chunks that it holds the copy."""
    wanted: dict[str, list[Location]] = {}
    for loc in locs:
        if loc.node_id in live:
            wanted.setdefault(loc.node_id, []).append(loc)

    async def ask(node_id: str, mine: list[Location]) -> list[Location]:
        node = live[node_id]
        cap = coord.cap(auth.OP_HAS, auth.ANY_CHUNK, node_id)
        present = await coord.nodes.has_chunks(
            node.url, sorted({loc.chunk_id for loc in mine}), cap=cap
        )
        return [loc for loc in mine if loc.chunk_id in present]

    answers = await asyncio.gather(
        *(ask(n, mine) for n, mine in wanted.items()), return_exceptions=True
    )
    out: list[Location] = []
    for answer in answers:
        if isinstance(answer, BaseException):
            if not isinstance(answer, DfsError):
                raise answer
            continue  # a node that does not answer: its copies are left to has-chunks later
        out += answer
    return out


async def record_forwards(
    coord: Coordinator, read: JournalRead, live: Mapping[str, NodeRecord]
) -> int:
    """Record the forwards ``read`` found (the replayed ones only where their target still
    holds the copy); returns how many were recorded. Recorded whether or not the chunk has
    a row yet: a forward often completes before the upload is finalized; an upload never
    finalized leaves a refcount-0 row that garbage collection removes with the copies."""
    confirmed = await _still_held(coord, read.replayed, live) if read.replayed else []
    if len(confirmed) < len(read.replayed):
        log.info(
            "replication journals: %d replayed forwards no longer held, not recorded",
            len(read.replayed) - len(confirmed),
        )
    found = read.new + confirmed
    if found:
        await coord.meta.add_locations(found, coord.clock())
    return len(found)
