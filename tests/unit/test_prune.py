"""What ``prune --before`` removes of a versions listing (``dfs.client.version_times``) and
how ``PruneMethods.prune`` removes it: never what the key holds now (the entry written last,
even when a skewed clock stamped it early), never a ``null`` entry, never what ``--at`` of
the time or later picks; a delete marker last and only when a fresh listing allows it;
a version gone already is not counted; a refusal stops the prune as the error itself; a
path without a slash is one key and its folder, not its siblings; a listing whose keys come
back out of order keeps that key's marker and stops."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from dfs.client.prune import PruneMethods
from dfs.client.version_times import NewestAt, by_key, key_prune
from dfs.errors import Conflict, DfsError, Forbidden


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
        # listed as written, the last first. The version current at `before` stays, and
        # everything newer
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
        ([v("k", 20, "v3"), v("k", 10, "v2"), v("k", 10, "v1")], 15, ["v1"], None, 2),
        # exactly at `before` counts as made by then
        ([v("k", 30, "v3"), v("k", 20, "v2"), v("k", 10, "v1")], 20, ["v1"], None, 2),
        # skew: the version written last stamped before the one it replaced stays (current)
        ([v("k", 11, "v2"), v("k", 15, "v1")], 20, [], None, 2),
        # skew: deleted, then written again stamped early: the marker stays above v1's
        # removal, since removing it would make v2 the version at 20
        ([v("k", 11, "v2"), v("k", 16, "m", True), v("k", 10, "v1")], 20, ["v1"], None, 2),
        # skew: written, then deleted with an early stamp: the marker is what the key holds
        ([v("k", 11, "m", True), v("k", 15, "v1")], 20, [], None, 2),
        # a null version (versioning suspended) is never removed by its id
        ([v("k", 30, "null"), v("k", 20, "v2"), v("k", 10, "v1")], 25, ["v1"], None, 2),
        ([v("k", 30, "v3"), v("k", 22, "v2"), v("k", 10, "null")], 25, [], None, 3),
        ([v("k", 30, "v2"), v("k", 20, "null", True), v("k", 10, "v1")], 25, ["v1"], None, 2),
        # a null entry above the marker: a write may replace it under the same id, so no
        # condition can hold the key still while the marker goes; it stays
        ([v("k", 30, "null"), v("k", 20, "m", True), v("k", 10, "v1")], 25, ["v1"], None, 2),
    ],
)
def test_what_a_key_loses(
    rows: list[dict[str, Any]], before: float, replaced: list[str], marker: str | None, kept: int
) -> None:
    plan = key_prune(rows, before)
    assert names(plan.replaced) == replaced
    assert (plan.marker["version_id"] if plan.marker else None) == marker
    assert plan.kept == kept
    going = set(replaced) | {marker}
    left = [o for o in rows if o["version_id"] not in going]
    # what the key holds now stays, or it was a marker and nothing is left under it
    assert rows[0] in left or (rows[0]["is_delete_marker"] and not left)
    # every time from `before` on finds the version it found before
    for at in (before, before + 2, before + 5, 100):
        whole, pruned = NewestAt(at), NewestAt(at)
        for o in rows:
            whole.feed(o)
        for o in left:
            pruned.feed(o)
        assert whole.objects() == pruned.objects()


class Listed(PruneMethods):
    """A listing as the stores give it, and the removals the API would make."""

    def __init__(self, rows: list[dict[str, Any]], refuse: bool = False) -> None:
        self.rows = rows
        self.refuse = refuse
        self.asked: list[str] = []
        self.gone: set[str] = set()  # removed by someone else before the prune asks

    async def list_all(  # type: ignore[override]
        self, bucket: str, prefix: str = "", *, delimiter: str = "/", versions: bool = False
    ) -> AsyncIterator[dict[str, Any]]:
        assert (delimiter, versions) == ("", True)
        for row in list(self.rows):
            if row["key"].startswith(prefix):
                yield row
                await asyncio.sleep(0)  # as a page from the network: the workers run

    async def remove(  # type: ignore[override]
        self,
        bucket: str,
        key: str,
        *,
        version: str | None = None,
        unless_deleted: bool = True,
        if_latest: str | None = None,
    ) -> dict[str, Any]:
        assert version is not None
        self.asked.append(version)
        await asyncio.sleep(0)  # let the other keys' removals interleave
        if self.refuse:
            raise Forbidden("refused")
        if if_latest is not None:  # the API's condition: the key's latest entry is that one
            mine = [o["version_id"] for o in self.rows if o["key"] == key]
            if not mine or mine[0] != if_latest:
                raise Conflict("the latest is another")
        there = [o for o in self.rows if (o["key"], o["version_id"]) == (key, version)]
        self.rows = [o for o in self.rows if o not in there]
        return {"deleted": key, "version": there[0] if there and version not in self.gone else None}

    async def remove_versions(  # type: ignore[override]
        self, bucket: str, entries: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """As the API's batch: each entry on its own, a refusal its answer."""
        out: list[dict[str, Any]] = []
        for e in entries:
            try:
                out.append(await self.remove(bucket, e["key"], version=e["version"]))
            except DfsError as exc:
                out.append({"key": e["key"], **exc.to_body()})
        return out


ROWS = [
    v("a", 30, "a3"),
    v("a", 20, "a2"),
    v("a", 10, "a1"),
    v("b", 20, "bm", True),
    v("b", 15, "b2"),
    v("b", 10, "b1"),
    v("b.bak", 5, "x1"),
    v("b/c", 5, "y2"),
    v("b/c", 4, "y1"),
    v("c", 5, "c1"),
]


def run(c: Listed, path: str, before: float, dry_run: bool = False) -> tuple[Any, list[str]]:
    seen: list[str] = []
    report = asyncio.run(
        c.prune(
            "bk", path, before, dry_run=dry_run, on_removed=lambda o: seen.append(o["version_id"])
        )
    )
    return report, seen


def test_prune_removes_markers_last_and_keeps_the_rest() -> None:
    c = Listed(list(ROWS))
    report, seen = run(c, "", 25)
    assert sorted(c.asked) == sorted(seen) == ["a1", "b1", "b2", "bm", "y1"]
    assert c.asked.index("bm") > max(c.asked.index("b1"), c.asked.index("b2"))
    assert (report.versions, report.markers, report.bytes, report.kept) == (4, 1, 40, 5)


def test_a_path_without_slash_is_one_key_and_its_folder() -> None:
    c = Listed(list(ROWS))
    run(c, "b", 25)
    assert sorted(c.asked) == ["b1", "b2", "bm", "y1"]  # not b.bak's


def test_a_dry_run_asks_nothing() -> None:
    c = Listed(list(ROWS))
    report, seen = run(c, "", 25, dry_run=True)
    assert c.asked == []
    assert sorted(seen) == ["a1", "b1", "b2", "bm", "y1"]
    assert (report.versions, report.markers, report.kept) == (4, 1, 5)


def test_a_version_gone_already_is_not_counted() -> None:
    c = Listed(list(ROWS))
    c.gone = {"a1", "b2"}
    report, seen = run(c, "", 25)
    assert sorted(seen) == ["b1", "bm", "y1"]
    assert (report.versions, report.markers) == (2, 1)


def test_a_marker_stays_when_its_key_changed_meanwhile() -> None:
    """A version written under the marker's key after the listing (a skewed clock: stamped
    before the time) keeps the marker, and counts as kept."""
    c = Listed([v("b", 20, "bm", True), v("b", 10, "b1")])

    async def go() -> Any:
        plan_seen = c.list_all

        async def listing(
            bucket: str, prefix: str = "", **kw: Any
        ) -> AsyncIterator[dict[str, Any]]:
            async for o in plan_seen(bucket, prefix, **kw):
                yield o
            if not c.asked:  # the first listing: a write lands right after it
                c.rows.insert(0, v("b", 12, "b2"))

        c.list_all = listing  # type: ignore[method-assign]
        return await c.prune("bk", "", 25)

    report = asyncio.run(go())
    assert c.asked == ["b1"]
    assert (report.versions, report.markers, report.kept) == (1, 0, 1)


def test_a_marker_stays_when_a_write_lands_after_its_fresh_listing() -> None:
    """The write lands between the marker's fresh listing and its removal: the removal's
    condition (the latest entry the listing saw) refuses it, and the marker is kept."""
    c = Listed([v("b", 20, "bm", True), v("b", 10, "b1")])
    listings = 0
    plain = c.list_all

    async def listing(bucket: str, prefix: str = "", **kw: Any) -> AsyncIterator[dict[str, Any]]:
        nonlocal listings
        listings += 1
        async for o in plain(bucket, prefix, **kw):
            yield o
        if listings == 2:  # the fresh listing is done: a write with a lagging clock lands
            c.rows.insert(0, v("b", 12, "b2"))

    c.list_all = listing  # type: ignore[method-assign]
    report = asyncio.run(c.prune("bk", "", 25))
    assert c.asked == ["b1", "bm"]  # asked, and refused
    assert [o["version_id"] for o in c.rows] == ["b2", "bm"]
    assert (report.versions, report.markers, report.kept) == (1, 0, 1)


def test_a_refusal_is_the_error_itself() -> None:
    with pytest.raises(Forbidden):
        run(Listed(list(ROWS), refuse=True), "", 25)


def test_a_key_that_comes_back_keeps_its_marker_and_stops_the_prune() -> None:
    """The marker planned on the key's first part is kept by its fresh listing, which shows
    the rest under it; the listing stops the prune when the key comes back."""
    rows = [v("b", 20, "bm", True), v("c", 5, "c1"), v("b", 10, "b1")]
    c = Listed(rows)
    with pytest.raises(DfsError, match="the versions listing went back from 'c'"):
        run(c, "", 25)
    assert "bm" not in c.asked


def test_by_key_groups_a_listing() -> None:
    async def rows() -> AsyncIterator[dict[str, Any]]:
        for o in ROWS:
            yield o

    async def groups() -> list[list[str]]:
        return [names(g) async for g in by_key(rows())]

    assert asyncio.run(groups()) == [
        ["a3", "a2", "a1"],
        ["bm", "b2", "b1"],
        ["x1"],
        ["y2", "y1"],
        ["c1"],
    ]


def test_a_batch_checks_its_markers_many_at_once() -> None:
    """Keys deleted (a marker over one version each): every marker goes, and their fresh
    listings run side by side, not one after another."""
    rows = []
    for i in range(40):
        rows += [v(f"k{i:02d}", 20, f"m{i}", True), v(f"k{i:02d}", 10, f"v{i}")]
    c = Listed(rows)
    plain, active, most = c.list_all, 0, 0

    async def listing(bucket: str, prefix: str = "", **kw: Any) -> AsyncIterator[dict[str, Any]]:
        nonlocal active, most
        active += 1
        most = max(most, active)
        try:
            async for o in plain(bucket, prefix, **kw):
                yield o
        finally:
            active -= 1

    c.list_all = listing  # type: ignore[method-assign]
    report = asyncio.run(c.prune("bk", "", 25))
    assert (report.versions, report.markers, report.kept) == (40, 40, 0)
    assert c.rows == []
    assert most > 2  # the whole listing, and markers' fresh listings beside each other
