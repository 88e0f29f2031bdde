"""Backends the contract suites run against."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dfs.meta import open_metadata_store
from dfs.meta.base import MetadataStore


@pytest.fixture(params=["sqlite"])
async def meta(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MetadataStore]:
    store = await open_metadata_store(f"sqlite://{tmp_path / 'meta.db'}")
    try:
        yield store
    finally:
        await store.close()
