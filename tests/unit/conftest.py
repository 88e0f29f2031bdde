"""Fixtures the unit tests share: a real SQLite metadata store in the test's folder."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dfs.meta.sqlite import SqliteMetadataStore


@pytest.fixture
async def meta(tmp_path: Path) -> AsyncIterator[SqliteMetadataStore]:
    """A SQLite metadata store on a file in the test's folder, closed after the test."""
    store = await SqliteMetadataStore.open(f"sqlite:///{tmp_path / 'meta.db'}")
    try:
        yield store
    finally:
        await store.close()
