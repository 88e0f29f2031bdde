"""Reading the whole chunk table renews the pass's lease page by page.

Repair's full scan and garbage collection's scan read every chunk row. Read whole before the
pass renewed its lease again, a table that took longer than the lease's time to live was
always lost with two API processes: the other took the lease over meanwhile and the pass
stopped; and repair had noted its full scan as done before it, so it did not try again for
DFS_REPAIR_FULL_SCAN. The scans now renew before every page (``scan_chunk_pages``), and a full
repair pass counts as done only once it completed. In process: the API's clock is moved on
as the pages are read (each row "takes" part of the lease's time), never waited out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from dfs.api import gc as gc_mod
from dfs.api import repair as repair_mod
from dfs.api.coordinator import REPAIR_LEASE, Coordinator
from dfs.api.gc import GC_LEASE, GarbageCollector
from dfs.api.repair import Repair
from tests.integration.conftest import InProcessCluster, running_cluster
from tests.integration.test_phantom_locations import PATIENT_NODES, shifted_clock, store

pytestmark = pytest.mark.integration

TTL = 30.0
"""Both leases' time to live here (repair: 3 x 10 s; GC: 3 x 5 s; at least 30 s)."""
ROWS = 4
PER_ROW = 0.4 * TTL
"""What reading one row "takes": the table takes 1.6 x the lease's time to live."""


@pytest.fixture
async def cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[InProcessCluster]:
    cfg = {"maintenance": False, "gc_grace": 1.0, "gc_interval": 5.0}
    async with running_cluster(tmp_path, n=3, rf=2, api_cfg=cfg, node_cfg=PATIENT_NODES) as c:
        for i in range(ROWS):
            await store(c.api.coordinator, f"f{i}", 30_000, 200 + i)
        # one row a page, so the renewals between pages show
        monkeypatch.setattr(repair_mod, "SCAN_PAGE", 1)
        monkeypatch.setattr(gc_mod, "SCAN_PAGE", 1)
        yield c


def slow_table(
    monkeypatch: pytest.MonkeyPatch, coord: Coordinator, lease: str, others: list[bool]
) -> None:
    """Each row read moves the clock on by ``PER_ROW``; after each page another process
    tries to take ``lease`` (``others``: whether it got it)."""
    advance = shifted_clock(monkeypatch, coord)
    scan = coord.meta.scan_chunks

    async def slow_scan(**kw: Any) -> Any:
        rows = await scan(**kw)
        advance(PER_ROW * len(rows))
        others.append(await coord.meta.acquire_lease(lease, "api-other", coord.clock(), TTL))
        return rows

    monkeypatch.setattr(coord.meta, "scan_chunks", slow_scan)


async def test_a_full_repair_scan_longer_than_the_lease_keeps_it(
    cluster: InProcessCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    coord = cluster.api.coordinator
    others: list[bool] = []
    slow_table(monkeypatch, coord, REPAIR_LEASE, others)
    repair = Repair(coord, owner="api-one")
    report = await repair.repair_once()
    assert report is not None
    assert (report.scope, report.chunks_scanned) == ("full", ROWS)
    assert len(others) >= ROWS  # a page at a time
    assert not any(others)  # the other process never got the lease
    lease = await coord.meta.get_lease(REPAIR_LEASE)
    assert lease is not None
    assert lease.owner == "api-one"
    assert repair._last_full == report.started_at


async def test_a_full_repair_pass_lost_is_full_again_next_time(
    cluster: InProcessCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    coord = cluster.api.coordinator
    advance = shifted_clock(monkeypatch, coord)
    scan = coord.meta.scan_chunks
    stalled: list[bool] = []

    async def stall_once(**kw: Any) -> Any:
        rows = await scan(**kw)
        if not stalled:  # the first page stalls past the lease; another process takes it
            stalled.append(True)
            advance(TTL + 1.0)
            assert await coord.meta.acquire_lease(REPAIR_LEASE, "api-other", coord.clock(), TTL)
        return rows

    monkeypatch.setattr(coord.meta, "scan_chunks", stall_once)
    repair = Repair(coord, owner="api-one")
    assert await repair.repair_once() is None
    advance(TTL + 1.0)  # the other process is gone: its lease expires
    report = await repair.repair_once()
    assert report is not None
    assert (report.scope, report.chunks_scanned) == ("full", ROWS)


async def test_a_gc_scan_longer_than_the_lease_keeps_it(
    cluster: InProcessCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    coord = cluster.api.coordinator
    others: list[bool] = []
    slow_table(monkeypatch, coord, GC_LEASE, others)
    report = await GarbageCollector(coord, owner="api-one").gc_once()
    assert report is not None
    assert report.chunks_scanned == ROWS
    assert len(others) >= ROWS  # a page at a time
    assert not any(others)  # the other process never got the lease
