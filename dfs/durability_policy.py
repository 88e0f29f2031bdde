"""The pure decision rules of durability: which copies count, what repair does first and
where it copies to, which surplus copies go, and what garbage collection may collect.

The API's repair and garbage-collection passes and the scale model (``dfs.sim``) both call
these functions, so the simulator runs the service's rules rather than a re-implementation
of them. Pure: no I/O, no clock, no metadata store; nothing from dfs but ``placement``. A node
is anything with ``node_id``, ``zone``, ``free_bytes`` and ``expires_at`` (``NodeRecord`` in
the service, the simulator's own nodes), a chunk anything with ``chunk_id``, ``size``,
``refcount``, ``nodes`` and ``zero_since`` (``ChunkState``).
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Protocol, TypeVar

from dfs import placement


class NodeView(Protocol):
    """What the rules need to know of a storage node."""

    @property
    def node_id(self) -> str: ...

    @property
    def zone(self) -> str: ...

    @property
    def free_bytes(self) -> int: ...

    @property
    def expires_at(self) -> float: ...


class ChunkView(Protocol):
    """What the rules need to know of a chunk row (its copies as node ids)."""

    @property
    def chunk_id(self) -> str: ...

    @property
    def size(self) -> int: ...

    @property
    def refcount(self) -> int: ...

    @property
    def nodes(self) -> frozenset[str]: ...


N = TypeVar("N", bound=NodeView)
C = TypeVar("C", bound=ChunkView)


class Verdict(enum.Enum):
    """What a repair pass does with one chunk."""

    UNREFERENCED = "unreferenced"  # refcount 0: garbage collection's business
    NO_LIVE_COPY = "no_live_copy"  # no holder is live: nothing to copy from
    SHORT = "short"  # fewer counting copies than the replication factor: repair
    SURPLUS = "surplus"  # more live copies than the replication factor: trim
    OK = "ok"


class GcVerdict(enum.Enum):
    """What a garbage-collection pass does with one chunk row."""

    KEEP = "keep"  # referenced, or unreferenced for less than the grace
    PROTECTED = "protected"  # a pending upload created within the grace references it
    COLLECT = "collect"


# --- which nodes and copies count ----------------------------------------------------------


def live_ids(nodes: Iterable[NodeView], now: float) -> set[str]:
    """Nodes whose registry entry has not expired."""
    return {n.node_id for n in nodes if n.expires_at > now}


def down_ids(nodes: Iterable[NodeView], now: float) -> set[str]:
    """Nodes whose registry entry expired (crashed, or a clean shutdown's tombstone)."""
    return {n.node_id for n in nodes if n.expires_at <= now}


def counting_ids(nodes: Iterable[NodeView], now: float, grace: float) -> set[str]:
    """Nodes whose copies count: live, or down for less than ``grace`` (they may come back).

    A clean shutdown leaves a tombstone whose ``expires_at`` is the deregistration; a node
    missing from the registry is not in ``nodes`` and so counts as down past the grace.
    """
    return {n.node_id for n in nodes if n.expires_at > now - grace}


def shared_disks(disks: Mapping[str, str]) -> dict[str, str]:
    """Nodes that announce the disk identity another one announces too (``disks``: live node
    id -> its identity): two node ids serving one data directory. Returns node id -> the id
    that stands for their disk (the smallest, so every pass and API process picks the same);
    only that one's copies count and only it is a repair target, since one disk is one copy
    whatever number of ids it answers under. An empty identity (a node older than identities)
    shares with nothing."""
    by_disk: dict[str, list[str]] = {}
    for node_id, disk in disks.items():
        if disk:
            by_disk.setdefault(disk, []).append(node_id)
    out: dict[str, str] = {}
    for ids in by_disk.values():
        first, *rest = sorted(ids)
        out.update(dict.fromkeys(rest, first))
    return out


def returned_ids(previously_down: Iterable[str], live: Collection[str]) -> set[str]:
    """Nodes the previous pass saw down that are live again."""
    return set(previously_down) & set(live)


def targeted_nodes(down: set[str], settled: Iterable[str], returned: set[str]) -> set[str]:
    """The nodes whose chunks a targeted pass reads: down and not settled, or returned."""
    return (down - set(settled)) | returned


def settled_ids(
    down: Iterable[str], counting: Collection[str], unsettled: Collection[str]
) -> set[str]:
    """Nodes down past the grace whose every chunk has its copies elsewhere: no second look
    until they return."""
    return {n for n in down if n not in counting and n not in unsettled}


# --- classifying and ordering ----------------------------------------------------------------


def needs_check(c: ChunkView, live: AbstractSet[str], counting: AbstractSet[str], rf: int) -> bool:
    """A referenced chunk short of counting copies or with no live copy: ask the live nodes
    what they hold before repairing it (metadata may miss a copy)."""
    return c.refcount > 0 and (len(c.nodes & counting) < rf or not c.nodes & live)


def classify(c: ChunkView, live: AbstractSet[str], counting: AbstractSet[str], rf: int) -> Verdict:
    """What repair does with ``c``: nothing (unreferenced or fine), copy, trim, or report it
    as having no live copy."""
    if c.refcount <= 0:
        return Verdict.UNREFERENCED
    up = c.nodes & live
    if not up:
        return Verdict.NO_LIVE_COPY
    if len(c.nodes & counting) < rf:
        return Verdict.SHORT
    if len(up) > rf:
        return Verdict.SURPLUS
    return Verdict.OK


def repair_key(c: ChunkView, live: AbstractSet[str]) -> tuple[int, str]:
    """Repair order: fewest live copies first (most endangered), then by chunk id."""
    return (len(c.nodes & live), c.chunk_id)


def repair_order(chunks: Iterable[C], live: Collection[str]) -> list[C]:
    live_set = set(live)
    return sorted(chunks, key=lambda c: repair_key(c, live_set))


def copies_needed(c: ChunkView, counting: AbstractSet[str], rf: int) -> int:
    """Copies a short chunk lacks: the replication factor less its counting copies."""
    return rf - len(c.nodes & counting)


# --- where copies go and which go away -------------------------------------------------------


def rank_nodes(chunk_id: str, nodes: Sequence[N]) -> list[N]:
    """``nodes`` in placement order for ``chunk_id`` (best first)."""
    if len(nodes) <= 1:  # nothing to order: a plan ranks every chunk's holders
        return list(nodes)
    by_id = {n.node_id: n for n in nodes}
    cands = [placement.Candidate(n.node_id, n.zone, n.free_bytes) for n in nodes]
    return [by_id[c.node_id] for c in placement.rank(chunk_id, cands)]


def place_new(chunk_id: str, size: int, live: Sequence[N], min_free: int, rf: int) -> list[N]:
    """The nodes a new chunk goes to: rendezvous over the live nodes with room for it (free
    bytes, as last heartbeated, covering the chunk plus the reserve ``min_free``), distinct
    zones first; fewer than ``rf`` means the cluster is full."""
    room = size + min_free
    roomy = [n for n in live if n.free_bytes >= room]
    if len(roomy) <= 1:  # nothing to choose between (as ``rank_nodes``): no hashing per chunk
        return roomy[:rf]
    by_id = {n.node_id: n for n in roomy}
    cands = [placement.Candidate(n.node_id, n.zone, n.free_bytes) for n in roomy]
    return [by_id[c.node_id] for c in placement.choose(chunk_id, cands, rf)]


def repair_targets(c: ChunkView, live: Sequence[N], min_free: int) -> list[N]:
    """Live nodes that lack ``c`` and have room for it, best placement first. Repair copies
    to the first ones that accept until ``copies_needed`` are made."""
    room = c.size + min_free
    return rank_nodes(
        c.chunk_id, [n for n in live if n.free_bytes >= room and n.node_id not in c.nodes]
    )


def repair_sources(c: ChunkView, live: Sequence[N]) -> list[N]:
    """Live holders of ``c``, best placement first: the order repair tries to copy from."""
    return rank_nodes(c.chunk_id, [n for n in live if n.node_id in c.nodes])


def trim_victims(chunk_id: str, holders: Sequence[N], rf: int) -> list[N]:
    """The copies to remove from a chunk with more than ``rf`` live copies: its
    lowest-ranked holders (``holders``: the live nodes that really hold it)."""
    return rank_nodes(chunk_id, holders)[rf:]


def repair_pause(size: int, copies_made: int, rate: float) -> float:
    """Seconds repair waits after one chunk, so copying stays under ``rate`` bytes/s."""
    return size * max(copies_made, 1) / rate


# --- garbage collection ------------------------------------------------------------------------

COMMIT_WINDOW = 0.9
"""An upload commits on the copies the nodes acknowledged only within this share of the GC
grace of its start (finalize and the API's own ingests refuse older ones), so garbage
collection never deletes a copy written or re-sent more recently than this share of the
grace (``gc_copy_min_age``): whatever an upload that may still commit was acknowledged, stays."""


def gc_copy_min_age(grace: float, since_looked: float, margin: float) -> float:
    """The ``min_age`` of a GC delete: a copy written or re-sent since the pass looked at the
    pending uploads, or within the commit window, is kept (the orphan sweep deletes it
    later if nothing commits on it)."""
    return max(since_looked, COMMIT_WINDOW * grace) + margin


def past_commit_window(started: float, now: float, grace: float) -> bool:
    """Whether an upload that started at ``started`` may no longer commit on its
    acknowledgements: GC may have deleted copies it was acknowledged."""
    return now - started > COMMIT_WINDOW * grace


def gc_verdict(
    refcount: int,
    zero_since: float,
    chunk_id: str,
    now: float,
    grace: float,
    protected: Collection[str],
) -> GcVerdict:
    """A chunk is collected only if its refcount is 0 and has been for ``grace``, and no
    pending upload created within the grace references it (``protected``)."""
    if refcount > 0 or zero_since >= now - grace:
        return GcVerdict.KEEP
    if chunk_id in protected:
        return GcVerdict.PROTECTED
    return GcVerdict.COLLECT


# --- zone-aware repair and trimming ------------------------------------------------------
# ``repair_targets`` and ``trim_victims`` rank by placement alone, whatever the zones, so
# crash-repair-trim cycles gathered copies in one zone (the scale model measures how much,
# docs/SCALE.md; the simulator still runs those rules without --zone-aware). The service
# repairs and trims with these variants, which keep placement's rule of distinct zones first.


def spread_repair_targets(
    c: ChunkView, live: Sequence[N], min_free: int, held_zones: AbstractSet[str]
) -> list[N]:
    """``repair_targets`` reordered so that nodes in zones holding no counting copy come
    first (the best-ranked one per zone), then the rest in rank order."""
    ranked = repair_targets(c, live, min_free)
    first: list[N] = []
    zones = set(held_zones)
    for n in ranked:
        if n.zone not in zones:
            first.append(n)
            zones.add(n.zone)
    chosen = {n.node_id for n in first}
    return first + [n for n in ranked if n.node_id not in chosen]


def spread_trim_victims(chunk_id: str, holders: Sequence[N], rf: int) -> list[N]:
    """The copies to remove so that the ``rf`` kept are placement's choice among the
    holders (distinct zones first, then rank)."""
    ranked = rank_nodes(chunk_id, holders)
    cands = [placement.Candidate(n.node_id, n.zone, n.free_bytes) for n in ranked]
    keep = {c.node_id for c in placement.choose(chunk_id, cands, rf)}
    return [n for n in ranked if n.node_id not in keep]


def trim_order(chunk_id: str, holders: Sequence[N], rf: int) -> list[N]:
    """Every holder, the first to delete first: the surplus ``spread_trim_victims`` picks,
    lowest-ranked first, then the copies it keeps, lowest-ranked first (a trim goes on past
    a copy it may not delete yet, too young, to the next)."""
    ranked = rank_nodes(chunk_id, holders)[::-1]
    spare = {n.node_id for n in spread_trim_victims(chunk_id, holders, rf)}
    return [n for n in ranked if n.node_id in spare] + [n for n in ranked if n.node_id not in spare]
