"""Two API processes changing the set of draining nodes at once: neither change is lost.

The set is the info of the "drain" lease, changed by read-modify-write. Two admins draining
two nodes through two API processes (``DFS_API_WORKERS``, or two hosts) each read the set
before the other wrote it, and the second write dropped the first node: its drain silently
stopped (its copies counted again, it took new chunks) though its start had answered
``draining``. A cancel racing a start could likewise bring the cancelled node back. The
race is run at the exact step: the second process's whole change lands between the first
one's read and its write.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dfs.api.drain import DrainSet
from dfs.meta import open_metadata_store
from dfs.meta.base import Lease

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("first_starts", [True, False], ids=["two-starts", "cancel-vs-start"])
async def test_concurrent_drain_changes_are_both_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, first_starts: bool
) -> None:
    meta = await open_metadata_store(f"sqlite://{tmp_path / 'meta.db'}")
    try:
        one, two = DrainSet(meta, lambda: 1000.0), DrainSet(meta, lambda: 1000.0)
        if not first_starts:
            await one.set_draining("node1", True)
        get_lease = meta.get_lease
        raced: list[bool] = []

        async def read_then_other_writes(name: str) -> Lease | None:
            lease = await get_lease(name)
            if not raced:  # the first process's read: the other's change lands after it
                raced.append(True)
                await two.set_draining("node2", True)
            return lease

        monkeypatch.setattr(meta, "get_lease", read_then_other_writes)
        answer = await one.set_draining("node1", first_starts)
        monkeypatch.setattr(meta, "get_lease", get_lease)
        expected = {"node1", "node2"} if first_starts else {"node2"}
        assert raced
        assert set(answer) == expected
        fresh = DrainSet(meta, lambda: 1000.0)
        assert set(await fresh.ids()) == expected
    finally:
        await meta.close()
