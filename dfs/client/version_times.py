"""Which version of a key was current at a time, and which versions no time since needs.

A versioned bucket that a folder is uploaded into again and again holds a series of
snapshots: ``download --at T`` restores one (each key's version current at T), ``prune
--before T`` forgets the ones older than T. Both read a versions listing (docs/WIRE.md: keys
in order, each key's versions newest first) through the one rule here, so that what
``prune --before T`` keeps is exactly what ``--at`` needs for T and every later time.

The rule of ``--at``: a key's version at ``at`` is its latest ``created_at`` at or before
``at`` (the API's clock), ties to the first listed. Not the first listed one created then or
before: with several API processes the order of writes and the order of their clocks may
differ by a little. What the key holds *now* is the other order's: the entry written last,
listed first.

What ``prune --before T`` may remove of a key (``key_prune``), keeping both promises (what
is current stays, and every ``--at`` of T or later finds what it found before):

- an entry created at or before T that is not the key's version at T: some kept entry is
  newer by the clock and not after T, so no later ``--at`` picks it;
- never the entry written last (even when a skewed clock stamped it before the version at
  T), and never a ``null`` version or marker: its id names whatever the key's null entry is
  when the delete arrives (a write in a bucket whose versioning is suspended replaces it),
  so removing it by id could take a newer write;
- the delete marker that is the key's version at T, only when every other entry left is
  written after it, created after T and numbered (``marker_removable``): the key was absent
  from T until the next of them with it or without it, and none of them becomes current.

Keeping more than that never changes what ``--at`` picks (the pick is the newest of all, so
of any set that holds it).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from dfs.errors import DfsError
from dfs.namespace_rules import NULL_VERSION

Entry = dict[str, Any]
"""An object version or delete marker as a listing answers it (docs/WIRE.md)."""


def created(o: Entry) -> float:
    return float(o["created_at"])


class NewestAt:
    """Each key's version current at ``at``, fed a versions listing an entry at a time."""

    def __init__(self, at: float) -> None:
        self.at = at
        self.picked: dict[str, Entry] = {}

    def feed(self, o: Entry) -> None:
        when = created(o)
        if when > self.at:
            return
        got = self.picked.get(o["key"])
        if got is None or when > created(got):
            self.picked[o["key"]] = o

    def objects(self) -> dict[str, Entry]:
        """The keys that held an object then (a key whose version was a marker is absent)."""
        return {k: o for k, o in self.picked.items() if not o["is_delete_marker"]}


@dataclass
class KeyPrune:
    """What ``prune --before`` removes of one key: ``replaced`` first, then ``marker`` (when
    not None) if ``marker_removable`` still holds once they are gone; ``kept``: how many of
    its entries stay for certain (the marker not counted)."""

    key: str
    replaced: list[Entry] = field(default_factory=list)
    marker: Entry | None = None
    kept: int = 0


def key_prune(versions: Sequence[Entry], before: float) -> KeyPrune:
    """The prune of one key's ``versions`` (all of them, as listed: the last written first)
    at ``before``."""
    picks = NewestAt(before)
    for o in versions:
        picks.feed(o)
    key = versions[0]["key"]
    then = picks.picked.get(key)
    plan = KeyPrune(key)
    for i, o in enumerate(versions):
        if i == 0 or o["version_id"] == NULL_VERSION:
            continue  # what the key holds now; a null entry's id names no one entry
        if then is not None and o["version_id"] == then["version_id"]:
            continue
        if created(o) <= before:
            plan.replaced.append(o)
    going = {o["version_id"] for o in plan.replaced}
    left = [o for o in versions if o["version_id"] not in going]
    if then is not None and marker_removable(left, then, before):
        plan.marker = then
    plan.kept = len(left) - (plan.marker is not None)
    return plan


def marker_removable(versions: Sequence[Entry], marker: Entry, before: float) -> bool:
    """Whether ``marker`` (a key's version at ``before``) may go from the key's
    ``versions`` (as listed): it is a delete marker with an id of its own, and every other
    entry is written after it (listed above it) and created after ``before``."""
    if not marker["is_delete_marker"] or marker["version_id"] == NULL_VERSION:
        return False
    found = False
    for o in versions:
        if o["version_id"] == marker["version_id"]:
            found = True
        elif found or created(o) <= before or o["version_id"] == NULL_VERSION:
            # written before the marker, or not after ``before``; or a null entry, which a
            # write replaces under the same id, so no condition on it holds (``if_latest``)
            return False
    return found  # False too when it is gone already


async def by_key(entries: AsyncIterable[Entry]) -> AsyncIterator[list[Entry]]:
    """The entries of a versions listing, each key's together. Keys must come in ascending
    order (as both metadata stores list them): one that goes back stops the listing with a
    ``DfsError``, since a delete marker pruned on part of its key's versions could make an
    older version current again."""
    group: list[Entry] = []
    async for o in entries:
        if group and o["key"] != group[0]["key"]:
            if o["key"] < group[0]["key"]:
                raise DfsError(f"the versions listing went back from {group[0]['key']!r}")
            yield group
            group = []
        group.append(o)
    if group:
        yield group
