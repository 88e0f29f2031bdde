"""Reads of several statements see one state when other processes write the same SQLite file
(``dfs.meta.sqlite_reads.in_snapshot``). A paged file's manifest is read page by page;
another process's delete committed between two of those reads cut the manifest short with no
error (a GET then answered 200 with a short body), and it aborted GC's pass over pending
uploads. Two stores on one file stand for two processes."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dfs.meta import open_metadata_store, sqlite_manifests
from dfs.meta.base import ManifestEntry
from dfs.meta.sqlite import SqliteMetadataStore
from dfs.meta.sqlite_codec import pack_file_id
from tests.contract.test_metadata_pages import _pages
from tests.contract.test_metadata_store import new_file


@pytest.fixture
async def two(tmp_path: Path) -> AsyncIterator[tuple[SqliteMetadataStore, sqlite3.Connection]]:
    store = await open_metadata_store(f"sqlite://{tmp_path / 'meta.db'}")
    assert isinstance(store, SqliteMetadataStore)
    # another process (used from the store's worker thread, where the reads run)
    other = sqlite3.connect(tmp_path / "meta.db", isolation_level=None, check_same_thread=False)
    try:
        yield store, other
    finally:
        other.close()
        await store.close()


async def paged_file(store: SqliteMetadataStore, pages: list[list[ManifestEntry]]) -> str:
    rec, _ = new_file("big", [])
    await store.create_file(dataclasses.replace(rec, size=0, sha256="", chunk_count=0), [])
    for no, page in enumerate(pages):
        await store.append_manifest_page(rec.file_id, no, page)
    return rec.file_id


def delete_after_the_first_page(
    monkeypatch: pytest.MonkeyPatch, other: sqlite3.Connection, file_id: str
) -> None:
    """The other process deletes the file's pages once the reader has read one page."""
    unpack = sqlite_manifests.unpack_page
    pages_read = []

    def unpack_then_delete(*args: object) -> list[ManifestEntry]:
        out = unpack(*args)  # type: ignore[arg-type]
        pages_read.append(1)
        if len(pages_read) == 2:  # the empty first page, then page 0
            other.execute("DELETE FROM manifest_pages WHERE file_id=?", (pack_file_id(file_id),))
        return out

    monkeypatch.setattr(sqlite_manifests, "unpack_page", unpack_then_delete)


@pytest.mark.parametrize("many", [False, True])
async def test_a_manifest_read_sees_one_state(
    two: tuple[SqliteMetadataStore, sqlite3.Connection],
    monkeypatch: pytest.MonkeyPatch,
    many: bool,
) -> None:
    store, other = two
    pages = _pages([[10], [20], [30]])
    file_id = await paged_file(store, pages)
    delete_after_the_first_page(monkeypatch, other, file_id)
    got = (
        (await store.get_manifests([file_id]))[file_id]
        if many
        else await store.get_manifest(file_id)
    )
    assert got == [e for page in pages for e in page]  # all of it, as it was when read
