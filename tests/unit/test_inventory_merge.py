"""The inventory merge (``dfs.api.inventory``): recorded ids against held ids, one bounded
window per pass, at page boundaries and across passes."""

from __future__ import annotations

import random

import pytest

from dfs.api import inventory
from dfs.api.inventory import ListPage, merge_window, reconcile_node, untracked_ids


def cid(i: int) -> str:
    return f"{i:064x}"


def lister(ids: list[str], calls: list[str]) -> ListPage:
    """A listing of sorted ``ids`` paged like both real ones: done when a page is short."""
    ordered = sorted(ids)

    async def page(after: str, limit: int) -> tuple[list[str], bool]:
        calls.append(after)
        out = [c for c in ordered if c > after][:limit]
        return out, len(out) < limit

    return page


def test_merge_reports_recorded_ids_the_node_lacks() -> None:
    recorded = [cid(i) for i in (1, 2, 3, 5, 8)]
    held = [cid(i) for i in (2, 3, 4, 8)]
    assert merge_window(recorded, True, held, True) == ([cid(1), cid(5)], "")


def test_window_ends_at_the_shorter_listing() -> None:
    recorded = [cid(i) for i in (1, 3, 5, 7, 9)]
    # the node's page ended at 5 and has more: 7 and 9 are not judged yet
    assert merge_window(recorded, True, [cid(1), cid(4), cid(5)], False) == ([cid(3)], cid(5))
    # metadata's page ended at 5 and has more: the node's ids beyond do not matter
    held = [cid(i) for i in (1, 4, 6, 7)]
    assert merge_window(recorded[:3], False, held, False) == ([cid(3), cid(5)], cid(5))
    assert merge_window(recorded[:3], False, [], True) == (recorded[:3], cid(5))


def test_window_that_covers_every_recorded_id_completes_the_cycle() -> None:
    recorded = [cid(2), cid(4)]
    assert merge_window(recorded, True, [cid(1), cid(4), cid(9)], False) == ([cid(2)], "")
    assert merge_window(recorded, True, [cid(1), cid(4)], False) == ([cid(2)], "")
    assert merge_window([], True, [cid(1)], False) == ([], "")


@pytest.mark.parametrize("page", [1, 2, 3, 7])
@pytest.mark.parametrize("pages", [1, 2, 5])
async def test_passes_find_every_missing_copy_once_per_cycle(
    monkeypatch: pytest.MonkeyPatch, page: int, pages: int
) -> None:
    """Whatever the page size and pages per pass, a cycle of windows finds exactly the
    recorded ids the node lacks, and reads no more than ``pages`` pages a side per pass."""
    monkeypatch.setattr(inventory, "PAGE", page)
    rng = random.Random(page * 100 + pages)
    recorded = sorted(cid(i) for i in rng.sample(range(200), 40))
    held = sorted({c for c in recorded if rng.random() < 0.7} | {cid(i) for i in range(200, 230)})
    held += [cid(i) for i in rng.sample(range(200), 10) if cid(i) not in recorded]
    expect = sorted(set(recorded) - set(held))
    found: list[str] = []
    cursor, passes = "", 0
    while True:
        rcalls: list[str] = []
        hcalls: list[str] = []
        w = await reconcile_node(lister(recorded, rcalls), lister(held, hcalls), cursor, pages)
        assert len(rcalls) <= pages
        assert len(hcalls) <= pages
        found += w.missing
        passes += 1
        cursor = w.cursor
        if not cursor:
            break
        assert passes < 1000
    assert found == expect
    # back at the start: the next cycle finds the same again
    w = await reconcile_node(lister(recorded, []), lister(held, []), "", 10**6)
    assert (w.missing, w.cursor) == (expect, "")


async def test_a_node_with_nothing_recorded_is_not_listed() -> None:
    calls: list[str] = []
    w = await reconcile_node(lister([], []), lister([cid(1)], calls), "", 3)
    assert (w.missing, w.cursor, calls) == ([], "", [])


def test_untracked_copies_are_the_held_ids_metadata_lacks_within_what_it_read() -> None:
    recorded = [cid(2), cid(4), cid(6)]
    held = [cid(1), cid(2), cid(5), cid(6), cid(9)]
    # metadata's listing was done: everything else the node holds is untracked
    assert untracked_ids(recorded, True, held) == [cid(1), cid(5), cid(9)]
    # not done: ids past the last recorded id read may be recorded on a later page
    assert untracked_ids(recorded, False, held) == [cid(1), cid(5)]
    assert untracked_ids(recorded, True, []) == []
