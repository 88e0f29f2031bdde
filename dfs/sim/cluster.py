"""The modelled cluster's state: nodes (registry view and physical truth) and placement
groups (the chunk rows the policy sees), with the running totals the reports sample.

A group's ``nodes`` is what metadata lists (dead nodes' locations are kept, as in the
service); ``gone`` is which of those copies no longer exist (a lost disk). A node is
physically ``up`` or not; its registry entry (``expires_at``) expires a heartbeat timeout
after it went down, which is what the policy reads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

INF = math.inf


@dataclass(slots=True)
class SimNode:
    node_id: str
    zone: str
    rack: int
    capacity: int
    used: int = 0
    free_bytes: int = -1
    """capacity - used, kept as a field: placement reads it millions of times."""
    expires_at: float = INF
    down_reasons: int = 0
    epoch: int = 0
    """Bumped each time the node goes down, so stale events are ignored."""
    dead: bool = False
    """Its disk was lost: it never returns under this id."""
    joined_at: float = 0.0

    def __post_init__(self) -> None:
        self.use(0)

    def use(self, delta: int) -> None:
        self.used += delta
        self.free_bytes = max(self.capacity - self.used, 0)

    @property
    def up(self) -> bool:
        return self.down_reasons == 0 and not self.dead


@dataclass(slots=True)
class Group:
    """A placement group: the chunk row the policy classifies."""

    chunk_id: str
    size: int
    nodes: frozenset[str]
    refcount: int = 1
    zero_since: float = 0.0
    gone: frozenset[str] = frozenset()
    lost: bool = False
    collected: bool = False


@dataclass
class Totals:
    """Bytes by state, kept up to date as copies and nodes change (physical view)."""

    stored: int = 0
    under: int = 0
    """Referenced bytes with fewer than RF copies on nodes that are up."""
    unavailable: int = 0
    """Referenced bytes with no copy on a node that is up."""
    lost: int = 0


@dataclass
class Cluster:
    rf: int
    nodes: dict[str, SimNode] = field(default_factory=dict)
    groups: list[Group] = field(default_factory=list)
    by_node: dict[str, set[int]] = field(default_factory=dict)
    """Group indexes listed on each node (the by-node index repair reads)."""
    up_copies: list[int] = field(default_factory=list)
    totals: Totals = field(default_factory=Totals)
    double_copies: int = 0
    """Copies added to a node that already held the group (must stay 0)."""

    def add_node(self, node: SimNode) -> None:
        self.nodes[node.node_id] = node
        self.by_node[node.node_id] = set()

    def _state(self, g: int) -> tuple[bool, bool]:
        grp = self.groups[g]
        if grp.refcount <= 0 or grp.lost or grp.collected:
            return False, False
        return self.up_copies[g] < self.rf, self.up_copies[g] == 0

    def _account(self, g: int, before: tuple[bool, bool]) -> None:
        after = self._state(g)
        size = self.groups[g].size
        self.totals.under += size * (after[0] - before[0])
        self.totals.unavailable += size * (after[1] - before[1])

    def new_group(self, grp: Group) -> int:
        g = len(self.groups)
        self.groups.append(grp)
        self.up_copies.append(0)
        self.totals.stored += grp.size
        nodes, grp.nodes = grp.nodes, frozenset()
        self._account(g, (False, False))
        for n in sorted(nodes):
            self.add_copy(g, n)
        return g

    def add_copy(self, g: int, node_id: str) -> None:
        before = self._state(g)
        grp = self.groups[g]
        node = self.nodes[node_id]
        if node_id in grp.nodes and node_id not in grp.gone:
            self.double_copies += 1
        grp.nodes = grp.nodes | {node_id}
        grp.gone = grp.gone - {node_id}
        node.use(grp.size)
        self.by_node[node_id].add(g)
        if node.up:
            self.up_copies[g] += 1
        self._account(g, before)

    def remove_copy(self, g: int, node_id: str) -> None:
        """Forget and delete a copy (trim, garbage collection)."""
        before = self._state(g)
        grp = self.groups[g]
        node = self.nodes[node_id]
        if node_id not in grp.nodes:
            return
        grp.nodes = grp.nodes - {node_id}
        self.by_node[node_id].discard(g)
        if node_id not in grp.gone:
            node.use(-grp.size)
            if node.up:
                self.up_copies[g] -= 1
        grp.gone = grp.gone - {node_id}
        self._account(g, before)

    def node_down(self, node_id: str) -> None:
        node = self.nodes[node_id]
        was_up = node.up
        node.down_reasons += 1
        if was_up:
            self._shift(node_id, -1)

    def node_up(self, node_id: str) -> bool:
        """One reason for being down ended; True if the node is up again."""
        node = self.nodes[node_id]
        node.down_reasons = max(node.down_reasons - 1, 0)
        if node.up:
            self._shift(node_id, +1)
            return True
        return False

    def _shift(self, node_id: str, delta: int) -> None:
        for g in self.by_node[node_id]:
            if node_id in self.groups[g].gone:
                continue
            before = self._state(g)
            self.up_copies[g] += delta
            self._account(g, before)

    def lose_disk(self, node_id: str) -> list[int]:
        """The node's copies are destroyed (metadata still lists them); returns the groups
        that lost their last copy."""
        node = self.nodes[node_id]
        if node.up:
            self._shift(node_id, -1)
        node.dead = True
        node.use(-node.used)
        lost: list[int] = []
        for g in self.by_node[node_id]:
            grp = self.groups[g]
            grp.gone = grp.gone | {node_id}
            if grp.nodes <= grp.gone and not grp.lost and not grp.collected:
                before = self._state(g)
                grp.lost = True
                self.totals.lost += grp.size
                self._account(g, before)
                lost.append(g)
        return lost

    def collect(self, g: int) -> None:
        """Garbage collection removed the group's row and its copies."""
        grp = self.groups[g]
        for n in sorted(grp.nodes):
            self.remove_copy(g, n)
        grp.collected = True
        self.totals.stored -= grp.size

    def unreference(self, g: int, now: float) -> None:
        before = self._state(g)
        grp = self.groups[g]
        grp.refcount = 0
        grp.zero_since = now
        self._account(g, before)

    def rereference(self, g: int) -> None:
        before = self._state(g)
        self.groups[g].refcount = 1
        self._account(g, before)

    def heal(self) -> None:
        """Every node that still has its disk is up and registered again (a scenario's
        starting point); the totals are recomputed."""
        for node in self.nodes.values():
            if not node.dead:
                node.down_reasons = 0
                node.expires_at = INF
        self.totals.under = self.totals.unavailable = 0
        for g, grp in enumerate(self.groups):
            self.up_copies[g] = sum(self.nodes[n].up for n in grp.nodes - grp.gone)
            self._account(g, (False, False))

    def single_zone_bytes(self) -> int:
        """Referenced bytes whose existing copies all sit in one zone (a zone loss takes
        them): repair and trimming rank nodes without looking at zones."""
        total = 0
        for grp in self.groups:
            if grp.refcount <= 0 or grp.lost or grp.collected:
                continue
            zones = {self.nodes[n].zone for n in grp.nodes - grp.gone}
            if len(zones) == 1 and self.rf > 1:
                total += grp.size
        return total

    def used_by_node(self) -> dict[str, int]:
        return {n.node_id: n.used for n in self.nodes.values() if not n.dead}
