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

    async def list_all(  # type: ignore[override]
        self, bucket: str, prefix: str = "", *, delimiter: str = "/", versions: bool = False
    ) -> AsyncIterator[dict[str, Any]]:
        assert versions
        assert delimiter == ""
        for row in self.rows:
            if row["key"].startswith(prefix):
                self.read += 1
                yield row


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
