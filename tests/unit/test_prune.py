"""What ``prune --before`` removes of a versions listing (``dfs.client.version_times``) and
how ``PruneMethods.prune`` removes it: each key's replaced versions, then its marker, never
the version current at the time or anything newer; ties as ``--at`` breaks them; a version
already gone counts as removed; a refusal stops the prune as the error itself; a listing
whose keys come back out of order stops it before that key's marker could go."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from dfs.client.prune import PruneMethods
from dfs.client.version_times import NewestAt, by_key, key_prune
from dfs.errors import DfsError, Forbidden, KeyNotFound


def v(key: str, created: float, name: str, marker: bool = False) -> dict[str, Any]:
    return {
        "key": key,
        "created_at": created,
        "version_id": name,
        "is_delete_marker": marker,
        "size": 0 if marker else 10,
    }


def names(rows: list[dict[str, Any]]) -> list[str]:
    return [o["version_id"] for o in rows]


@pytest.mark.parametrize(
    ("rows", "before", "replaced", "marker", "kept"),
    [
        # the version current at `before` stays, and everything newer
        ([v("k", 30, "v3"), v("k", 20, "v2"), v("k", 10, "v1")], 25, ["v1"], None, 2),
        # all newer than `before`: nothing goes
        ([v("k", 30, "v2"), v("k", 20, "v1")], 5, [], None, 2),
        # a marker current then goes last, after what it hides
        ([v("k", 20, "m", True), v("k", 10, "v1")], 25, ["v1"], "m", 0),
        # ... and with a version after it, still (the key was absent at every time it ruled)
        ([v("k", 30, "v2"), v("k", 20, "m", True), v("k", 10, "v1")], 25, ["v1"], "m", 1),
        # an older marker under a later version is just replaced
        ([v("k", 20, "v2"), v("k", 15, "m", True), v("k", 10, "v1")], 25, ["m", "v1"], None, 1),
        # a later write stamped earlier (another API's clock): the latest time is current
        ([v("k", 30, "v3"), v("k", 10, "v2"), v("k", 12, "v1")], 20, ["v2"], None, 2),
        # a tie: the first listed is current, as for --at
        ([v("k", 10, "v2"), v("k", 10, "v1")], 10, ["v1"], None, 1),
        # exactly at `before` counts as made by then
        ([v("k", 20, "v2"), v("k", 10, "v1")], 20, ["v1"], None, 1),
    ],
)
def test_what_a_key_loses(
    rows: list[dict[str, Any]], before: float, replaced: list[str], marker: str | None, kept: int
) -> None:
    plan = key_prune(rows, before)
    assert names(plan.replaced) == replaced
    assert (plan.marker["version_id"] if plan.marker else None) == marker
    assert plan.kept == kept
    # what prune keeps gives every time from `before` on the same version as before
    left = [o for o in rows if o not in plan.replaced and o is not plan.marker]
    for at in (before, before + 5, 100):
        whole, pruned = NewestAt(at), NewestAt(at)
        for o in rows:
            whole.feed(o)
        for o in left:
            pruned.feed(o)
        assert whole.objects() == pruned.objects()


class Listed(PruneMethods):
    """A listing as the stores give it, and the removals asked of the API."""

    def __init__(self, rows: list[dict[str, Any]], refuse: type[DfsError] | None = None) -> None:
        self.rows = rows
        self.refuse = refuse
        self.asked: list[str] = []

    async def list_all(  # type: ignore[override]
        self, bucket: str, prefix: str = "", *, delimiter: str = "/", versions: bool = False
    ) -> AsyncIterator[dict[str, Any]]:
        assert (delimiter, versions) == ("", True)
        for row in self.rows:
            if row["key"].startswith(prefix):
                yield row

    async def remove(  # type: ignore[override]
        self, bucket: str, key: str, *, version: str | None = None, unless_deleted: bool = True
    ) -> dict[str, Any]:
        assert version is not None
        self.asked.append(version)
        await asyncio.sleep(0)  # let the other keys' removals interleave
        if self.refuse is not KeyNotFound and self.refuse is not None:
            raise self.refuse("refused")
        self.rows = [o for o in self.rows if (o["key"], o["version_id"]) != (key, version)]
        if self.refuse is KeyNotFound:  # gone already, before this request
            raise KeyNotFound("no such version")
        return {}


ROWS = [
    v("a", 30, "a3"),
    v("a", 20, "a2"),
    v("a", 10, "a1"),
    v("b", 20, "bm", True),
    v("b", 15, "b2"),
    v("b", 10, "b1"),
    v("c", 5, "c1"),
]


def test_prune_removes_markers_last_and_keeps_the_rest() -> None:
    c = Listed(ROWS)
    report = asyncio.run(c.prune("bk", "", 25))
    assert sorted(c.asked) == ["a1", "b1", "b2", "bm"]
    assert c.asked.index("bm") > max(c.asked.index("b1"), c.asked.index("b2"))
    assert (report.markers, report.bytes, report.kept) == (1, 30, 3)


def test_a_dry_run_asks_nothing() -> None:
    c = Listed(ROWS)
    report = asyncio.run(c.prune("bk", "", 25, dry_run=True))
    assert c.asked == []
    assert sorted(names(report.removed)) == ["a1", "b1", "b2", "bm"]


def test_a_version_gone_already_counts_as_removed() -> None:
    c = Listed(ROWS, refuse=KeyNotFound)
    assert sorted(names(asyncio.run(c.prune("bk", "", 25)).removed)) == ["a1", "b1", "b2", "bm"]


def test_a_refusal_is_the_error_itself() -> None:
    with pytest.raises(Forbidden):
        asyncio.run(Listed(ROWS, refuse=Forbidden).prune("bk", "", 25))


def test_a_key_that_comes_back_stops_the_prune_before_its_marker() -> None:
    rows = [v("b", 20, "bm", True), v("c", 5, "c1"), v("b", 10, "b1")]
    c = Listed(rows)
    with pytest.raises(DfsError, match="the versions listing went back from 'c'"):
        asyncio.run(c.prune("bk", "", 25))
    assert "bm" not in c.asked


def test_by_key_groups_a_listing() -> None:
    async def rows() -> AsyncIterator[dict[str, Any]]:
        for o in ROWS:
            yield o

    async def groups() -> list[list[str]]:
        return [names(g) async for g in by_key(rows())]

    assert asyncio.run(groups()) == [["a3", "a2", "a1"], ["bm", "b2", "b1"], ["c1"]]
