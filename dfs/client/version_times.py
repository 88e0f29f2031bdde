"""Which version of a key was current at a time, and which versions no time since needs.

A versioned bucket that a folder is uploaded into again and again holds a series of
snapshots: ``download --at T`` restores one (each key's version current at T), ``prune
--before T`` forgets the ones older than T. Both read a versions listing (docs/WIRE.md: keys
in order, each key's versions newest first) through the one rule here, so that what
``prune --before T`` keeps is exactly what ``--at`` needs for T and every later time.

The rule: a key's version at ``at`` is its latest ``created_at`` at or before ``at`` (the
API's clock), ties to the first listed. Not the first listed one created then or before:
with several API processes the order of writes and the order of their clocks may differ by
a little. A version a newer one had replaced at ``before`` (created at or before it, not the
one current then) is reached by no ``--at`` of ``before`` or later: prunable. A delete marker
current at ``before`` is prunable too once every older version of its key is gone: the key
is absent at those times with it or without it.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from dfs.errors import DfsError

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
    not None) once all of them are gone; ``kept``: how many of its versions stay."""

    key: str
    replaced: list[Entry] = field(default_factory=list)
    marker: Entry | None = None
    kept: int = 0


def key_prune(versions: Sequence[Entry], before: float) -> KeyPrune:
    """The prune of one key's ``versions`` (all of them, as listed) at ``before``."""
    picks = NewestAt(before)
    for o in versions:
        picks.feed(o)
    key = versions[0]["key"]
    current = picks.picked.get(key)
    plan = KeyPrune(key)
    for o in versions:
        if current is not None and o["version_id"] == current["version_id"]:
            continue
        if created(o) <= before:
            plan.replaced.append(o)
    if current is not None and current["is_delete_marker"]:
        plan.marker = current
    plan.kept = len(versions) - len(plan.replaced) - (plan.marker is not None)
    return plan


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
