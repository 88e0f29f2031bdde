"""Inventory reconciliation: what each live node really holds against what metadata says it
holds, as HDFS block reports do, a bounded slice per repair pass.

Metadata trusts what it was told: a chunk file deleted by hand, a disk that lost files, or a
chunk folder wiped while its node kept its id leave locations pointing at nothing, and repair
(which counts locations) would never copy those chunks. Each repair pass therefore walks, for
every live node, one window of the node's chunk ids in ascending order: up to
DFS_INVENTORY_PAGES_PER_PASS pages (``PAGE`` ids each) of the by-node index
(``MetadataStore.node_chunks``), and the node's own listing (``/list-chunks``) over the same
range. A recorded id the node does not list is a missing copy: repair forgets the location
and handles the chunk in the same pass. The window's upper end is the cursor the next pass
starts after (kept in the repair lease's info); at the end of the ids it starts over.

Cost per pass and node: at most 2 x pages requests of ``PAGE`` ids (the node listing stops
once it has passed the last recorded id read), so a full inventory cycle of a node holding K
copies takes ceil(K / (PAGE x pages)) passes; see docs/ARCHITECTURE.md for the figures.

Order matters: metadata is read first, then the node. A location is recorded only after its
copy is on disk (receipts, copies, journals and has-chunks answers all come from the node),
so a copy written between the two reads can never look missing. The one way a good location
can be forgotten is a copy deleted (garbage collection) and stored again, with its location
recorded again, between the two reads: repair then makes one copy too many, which the orphan
sweep records and trimming removes. Copies the node lists of known chunks that metadata does
not place there are recorded, then the node is asked again and those it no longer holds are
forgotten (as the orphan sweep does: a trim may delete one after the listing); copies of
unknown chunks are left to the orphan sweep (``dfs.api.gc``).

``merge_window`` is the pure merge (unit-tested at page boundaries); ``reconcile_node``
drives it for one node, ``take_inventory`` for every live node of a repair pass. Knows
nothing of aiohttp.web.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from dfs import auth
from dfs.api.coordinator import Coordinator
from dfs.api.gc import record_if_held
from dfs.errors import DfsError
from dfs.meta.base import Location, NodeRecord

log = logging.getLogger("dfs.api.repair")

PAGE = 1000
"""Ids per page of both listings (within /list-chunks' limit)."""
CONCURRENCY = 8
"""Nodes whose windows a pass reads at once."""

ListPage = Callable[[str, int], Awaitable[tuple[list[str], bool]]]
"""(after, limit) -> (ascending ids greater than ``after``, whether that was the last page)."""


@dataclass(frozen=True, slots=True)
class Window:
    """What one pass learned about one node."""

    missing: list[str]
    """Recorded ids, within the window, that the node does not hold."""
    cursor: str
    """Where the next pass starts (exclusive); "" when this window reached the end."""
    recorded: int
    held: int
    untracked: list[str] = field(default_factory=list)
    """Ids the node holds, within the window, that metadata does not record on it."""


def merge_window(
    recorded: list[str], recorded_done: bool, held: list[str], held_done: bool
) -> tuple[list[str], str]:
    """Merge one window of ascending ids: ``recorded`` from metadata and ``held`` from the
    node, both after the same cursor; ``*_done`` says the listing reached its end.

    The window ends at the smaller of the two listings' last ids (a listing that is done
    has no end); beyond it either side may still have ids neither read. Returns the recorded
    ids within the window that the node does not hold, and the next cursor ("" when nothing
    recorded lies beyond the window: the cycle is complete)."""
    ends = [ids[-1] for ids, done in ((recorded, recorded_done), (held, held_done)) if not done]
    hi = min(ends) if ends else ""
    if recorded_done and (not recorded or (hi and hi >= recorded[-1])):
        hi = ""  # nothing recorded beyond what both sides covered
    missing: list[str] = []
    j = 0
    for c in recorded:
        if hi and c > hi:
            break
        while j < len(held) and held[j] < c:
            j += 1
        if j == len(held) or held[j] != c:
            missing.append(c)
    return missing, hi


async def _read(
    list_page: ListPage, after: str, pages: int, stop_at: str | None
) -> tuple[list[str], bool]:
    """Up to ``pages`` pages after ``after``; stops early once past ``stop_at``."""
    out: list[str] = []
    for _ in range(pages):
        page, done = await list_page(after, PAGE)
        out += page
        if done or not page:
            return out, True
        after = page[-1]
        if stop_at is not None and after >= stop_at:
            break
    return out, False


async def reconcile_node(
    recorded_page: ListPage, held_page: ListPage, cursor: str, pages: int
) -> Window:
    """One window of one node: metadata's ids first, then the node's over the same range
    (not at all when metadata records nothing after the cursor)."""
    recorded, recorded_done = await _read(recorded_page, cursor, pages, None)
    if not recorded:
        return Window([], "", 0, 0)
    held, held_done = await _read(held_page, cursor, pages, recorded[-1])
    missing, nxt = merge_window(recorded, recorded_done, held, held_done)
    return Window(
        missing, nxt, len(recorded), len(held), untracked_ids(recorded, recorded_done, held)
    )


def untracked_ids(recorded: list[str], recorded_done: bool, held: list[str]) -> list[str]:
    """The ids ``held`` lists that ``recorded`` lacks, up to the last recorded id read
    (beyond it metadata was not read, unless its listing was done)."""
    known = set(recorded)
    top = None if recorded_done or not recorded else recorded[-1]
    return [c for c in held if c not in known and (top is None or c <= top)]


@dataclass
class Inventory:
    """What one repair pass's inventory did."""

    cursors: dict[str, str]
    """node -> where its next window starts (none: at the start)."""
    checked: int = 0
    """Recorded copies compared with what their nodes list."""
    missing: int = 0
    """Of those, copies the nodes do not hold (forgotten)."""
    untracked: int = 0
    """Copies nodes hold of known chunks that metadata did not place there (recorded)."""
    suspects: set[str] = field(default_factory=set)
    """The chunks of the copies forgotten or recorded (repaired in the same pass)."""


def _recorded_page(coord: Coordinator, node_id: str) -> ListPage:
    async def page(after: str, limit: int) -> tuple[list[str], bool]:
        ids = await coord.meta.node_chunks(node_id, limit=limit, after=after or None)
        return ids, len(ids) < limit

    return page


def _held_page(coord: Coordinator, node: NodeRecord) -> ListPage:
    cap = coord.cap(auth.OP_LIST, auth.ANY_CHUNK, node.node_id)

    async def page(after: str, limit: int) -> tuple[list[str], bool]:
        rows, nxt = await coord.nodes.list_chunks(node.url, cap=cap, after=after, limit=limit)
        return [c for c, _age in rows], nxt is None

    return page


async def take_inventory(
    coord: Coordinator, live: list[NodeRecord], cursors: Mapping[str, str], pages: int
) -> Inventory:
    """Compare one window of each live node's recorded chunk ids with what it lists, forget
    the copies it does not hold and record the untracked ones of known chunks. A node that
    does not answer keeps its cursor; cursors of nodes not live are dropped (a returning
    node's inventory starts over)."""
    out = Inventory(cursors={})
    if pages <= 0:
        return out
    # a window holds up to 2 x pages x PAGE ids until merged: a few nodes at a time
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(node: NodeRecord) -> Window:
        cursor = cursors.get(node.node_id, "")
        async with gate:
            return await reconcile_node(
                _recorded_page(coord, node.node_id), _held_page(coord, node), cursor, pages
            )

    windows = await asyncio.gather(*(one(n) for n in live), return_exceptions=True)
    gone: list[Location] = []
    untracked: dict[str, list[str]] = {}
    for node, w in zip(live, windows, strict=True):
        if isinstance(w, BaseException):
            if not isinstance(w, DfsError):
                raise w
            log.warning("inventory of %s failed: %s", node.node_id, w.message)
            w = Window([], cursors.get(node.node_id, ""), 0, 0)
        out.checked += w.recorded
        if w.cursor:
            out.cursors[node.node_id] = w.cursor
        gone += [Location(c, node.node_id, 0) for c in w.missing]
        if w.untracked:
            untracked[node.node_id] = w.untracked
    if gone:
        log.warning("inventory: %d recorded copies are not on their nodes", len(gone))
        await coord.meta.remove_locations(gone)
    found, out.untracked = await _record_untracked(coord, untracked, {n.node_id: n for n in live})
    out.missing = len(gone)
    out.suspects = {loc.chunk_id for loc in gone} | {loc.chunk_id for loc in found}
    return out


async def _record_untracked(
    coord: Coordinator, untracked: dict[str, list[str]], nodes: Mapping[str, NodeRecord]
) -> tuple[list[Location], int]:
    """Record the copies nodes hold of known chunks that metadata does not place there
    (a write the client gave up on while the node died, then the node restarted): their
    chunks are triaged in the same pass, so a surplus copy is trimmed. Copies of unknown
    chunks are the orphan sweep's business. Returns the copies found and how many stay
    recorded: each node is asked again after the record (``gc.record_if_held``), since a
    trim of a pass that stalled past its lease may have deleted a copy after the listing
    and forgotten it before the record (found by review: it stayed recorded, a phantom
    that counted as a copy). Recorded first, asked after, the trim's forget after its
    delete or this ask always has the last word."""
    ids = sorted({c for cs in untracked.values() for c in cs})
    rows = await coord.meta.get_chunks(ids) if ids else {}
    found = [
        Location(c, node_id, rows[c].size)
        for node_id, cs in untracked.items()
        for c in cs
        if c in rows
    ]
    by_node: dict[str, list[Location]] = {}
    for loc in found:
        by_node.setdefault(loc.node_id, []).append(loc)
    kept = 0
    for node_id, mine in by_node.items():
        try:  # recorded, then the node asked again: a trim may have deleted it since
            kept += await record_if_held(coord, nodes[node_id], mine)
        except DfsError as exc:  # left unrecorded: the next window or the sweep finds it
            log.warning("inventory of %s: untracked copies not confirmed: %s", node_id, exc)
    if kept:
        log.info("inventory: %d untracked copies of known chunks recorded", kept)
    return found, kept
