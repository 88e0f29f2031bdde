"""The services' collector policy (``dfs.server.run_service``): what was imported before the
service runs is frozen out of every collection, and young collections run every
``SERVICE_GC_THRESHOLD`` allocations, not Python's 700."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from dfs import server


@pytest.fixture
def collector() -> Iterator[None]:
    """Python's policy back after the test (pytest's own objects unfrozen)."""
    thresholds = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def test_a_service_runs_with_its_imports_frozen_and_rarer_young_collections(
    collector: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server, "configure_logging", lambda env: None)  # pytest's logging kept
    seen: list[tuple[tuple[int, int, int], int]] = []
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    code = server.run_service(
        "dfs-test", lambda: seen.append((gc.get_threshold(), gc.get_freeze_count()))
    )
    assert code == 0
    ((thresholds, frozen),) = seen
    assert thresholds == (server.SERVICE_GC_THRESHOLD, 20, 20)
    assert frozen > 1000  # the modules' objects, at least
