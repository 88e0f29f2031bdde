"""``SyncMethods.versions_at`` over a listing as the stores give it (keys in order, each key's
versions in write order, newest first): each key's latest version created by a time, even
where two API processes' clocks put a later write a little earlier."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from dfs.client.namespace_sync import SyncMethods


def v(key: str, created: float, marker: bool = False, name: str = "") -> dict[str, Any]:
    return {"key": key, "created_at": created, "is_delete_marker": marker, "version_id": name}


class Listed(SyncMethods):
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.read = 0

    async def list_pages(  # type: ignore[override]
        self, bucket: str, prefix: str = "", *, delimiter: str = "/", versions: bool = False
    ) -> AsyncIterator[dict[str, Any]]:
        """The rows under ``prefix``, a page each (read as they are asked for)."""
        assert versions
        assert delimiter == ""
        rows = [row for row in self.rows if row["key"].startswith(prefix)]
        for n, row in enumerate(rows):
            self.read += 1
            last = n == len(rows) - 1
            yield {"objects": [row], "common_prefixes": [], "next_token": None if last else "t"}


ROWS = [
    v("a", 30.0, name="a3"),
    v("a", 10.0, name="a2"),  # written after a1, by a process whose clock was behind
    v("a", 12.0, name="a1"),
    v("a.bak", 5.0, name="b1"),
    v("d", 20.0, marker=True, name="d2"),
    v("d", 8.0, name="d1"),
]


def pick(rows: list[dict[str, Any]], prefix: str, at: float, exact: bool = False) -> Any:
    got = asyncio.run(Listed(rows).versions_at("b", prefix, at, exact=exact))
    return {k: o["version_id"] for k, o in got.items()}


def test_each_keys_latest_version_by_the_time() -> None:
    assert pick(ROWS, "", 40.0) == {"a": "a3", "a.bak": "b1"}  # d's marker: left out
    assert pick(ROWS, "", 15.0) == {"a": "a1", "a.bak": "b1", "d": "d1"}
    assert pick(ROWS, "", 11.0) == {"a": "a2", "a.bak": "b1", "d": "d1"}
    assert pick(ROWS, "", 4.0) == {}


def test_one_key_stops_at_the_next_key() -> None:
    listed = Listed(ROWS)
    got = asyncio.run(listed.versions_at("b", "a", 40.0, exact=True))
    assert {k: o["version_id"] for k, o in got.items()} == {"a": "a3"}
    assert listed.read == 4  # a's three versions, then a.bak's first ends it


def test_the_first_pages_picks_are_told_as_it_comes() -> None:
    """``first_page`` gets the picks of the listing's first page (here one entry), before
    the rest is read."""
    listed = Listed(ROWS)
    told: list[tuple[list[str], int]] = []

    def first(objs: list[dict[str, Any]]) -> None:
        told.append(([o["version_id"] for o in objs], listed.read))

    got = asyncio.run(listed.versions_at("b", "", 40.0, first_page=first))
    assert told == [(["a3"], 1)]
    assert {k: o["version_id"] for k, o in got.items()} == {"a": "a3", "a.bak": "b1"}
