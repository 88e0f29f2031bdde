"""The metadata contract for paged manifests (issue 19 item 5): a pending file whose manifest
is appended page by page, each page proven, then sealed and committed; on every backend
(the ``meta`` fixture of ``conftest.py``: SQLite and DynamoDB on moto)."""

from __future__ import annotations

import dataclasses

import pytest

from dfs.errors import Conflict, FileNotFound
from dfs.meta.base import FILE_COMPLETE, FILE_PENDING, ManifestEntry, MetadataStore
from tests.contract.test_metadata_store import cid, new_file


def _pages(sizes: list[list[int]], first: int = 0) -> list[list[ManifestEntry]]:
    """Pages of entries with distinct chunks, offsets going on across pages."""
    out, off, n = [], 0, first
    for page in sizes:
        entries = []
        for size in page:
            entries.append(ManifestEntry(off, size, cid(n)))
            off += size
            n += 1
        out.append(entries)
    return out


async def _start(meta: MetadataStore, name: str = "big"):
    rec, _ = new_file(name, [])
    rec = dataclasses.replace(rec, size=0, sha256="", chunk_count=0)
    await meta.create_file(rec, [])
    return rec


async def test_pages_append_seal_and_commit(meta: MetadataStore) -> None:
    rec = await _start(meta)
    pages = _pages([[10, 20], [30], [40, 50, 60]])
    for no, page in enumerate(pages):
        await meta.append_manifest_page(rec.file_id, no, page)
    await meta.append_manifest_page(rec.file_id, 1, pages[1])  # the same again: a no-op
    with pytest.raises(Conflict):
        await meta.append_manifest_page(rec.file_id, 1, pages[2])
    everything = [e for p in pages for e in p]
    assert await meta.get_manifest(rec.file_id) == everything
    assert await meta.recent_pending_chunks(0.0) >= {e.chunk_id for e in everything}
    assert await meta.get_manifest_page(rec.file_id, 2) == (pages[2], False)
    with pytest.raises(FileNotFound):
        await meta.get_manifest_page(rec.file_id, 3)
    with pytest.raises(Conflict):  # not proven yet
        await meta.seal_file(rec.file_id, 210, cid("whole"))
    for no in range(3):
        await meta.mark_page_proven(rec.file_id, no)
    assert (await meta.get_manifest_page(rec.file_id, 0))[1] is True
    with pytest.raises(Conflict):  # the pages hold 210 bytes
        await meta.seal_file(rec.file_id, 211, cid("whole"))
    sealed = await meta.seal_file(rec.file_id, 210, cid("whole"))
    assert (sealed.size, sealed.sha256, sealed.chunk_count, sealed.state) == (
        210,
        cid("whole"),
        6,
        FILE_PENDING,
    )
    done = await meta.commit_file(rec.file_id, 5.0)
    assert (done.state, done.size, done.chunk_count) == (FILE_COMPLETE, 210, 6)
    stats = await meta.get_stats()
    assert (stats.total_files, stats.logical_bytes, stats.stored_bytes) == (1, 210, 210)
    found = await meta.find_file_by_sha256(rec.tenant, cid("whole"))
    assert found is not None
    assert found.file_id == rec.file_id
    with pytest.raises(Conflict):  # complete: no more pages
        await meta.append_manifest_page(rec.file_id, 3, _pages([[1]], 50)[0])


async def test_paged_file_counts_like_a_whole_one(meta: MetadataStore) -> None:
    # a chunk repeated across pages is one stored chunk and one duplicate, as in one page
    rec = await _start(meta)
    a, b = cid("a"), cid("b")
    pages = [[ManifestEntry(0, 10, a), ManifestEntry(10, 5, b)], [ManifestEntry(15, 10, a)]]
    for no, page in enumerate(pages):
        await meta.append_manifest_page(rec.file_id, no, page)
        await meta.mark_page_proven(rec.file_id, no)
    await meta.seal_file(rec.file_id, 25, cid("ab-a"))
    await meta.commit_file(rec.file_id, 5.0)
    stats = await meta.get_stats()
    assert (stats.stored_bytes, stats.unique_chunks, stats.duplicates_avoided) == (15, 2, 1)
    chunks = await meta.get_chunks([a, b])
    assert (chunks[a].refcount, chunks[b].refcount) == (2, 1)
    assert await meta.owned_chunks(rec.tenant, [a, b]) == {a, b}
    await meta.delete_file(rec.file_id, rec.tenant, 9.0)
    stats = await meta.get_stats()
    assert (stats.total_files, stats.stored_bytes, stats.duplicates_avoided) == (0, 0, 0)
    assert {c: i.refcount for c, i in (await meta.get_chunks([a, b])).items()} == {a: 0, b: 0}


async def test_seal_refuses_gaps_and_unknown_files(meta: MetadataStore) -> None:
    rec = await _start(meta)
    pages = _pages([[10], [20], [30]])
    for no in (0, 2):
        await meta.append_manifest_page(rec.file_id, no, pages[no])
        await meta.mark_page_proven(rec.file_id, no)
    with pytest.raises(Conflict):
        await meta.seal_file(rec.file_id, 60, cid("x"))
    with pytest.raises(FileNotFound):
        await meta.mark_page_proven(rec.file_id, 1)
    with pytest.raises(FileNotFound):
        await meta.append_manifest_page(str(rec.file_id[:-4]) + "0000", 0, pages[0])
    # a pending paged upload is deleted with its pages
    assert await meta.delete_pending_file(rec.file_id, 1e12)
    with pytest.raises(FileNotFound):
        await meta.get_manifest(rec.file_id)


async def test_empty_paged_file(meta: MetadataStore) -> None:
    rec = await _start(meta)
    sealed = await meta.seal_file(rec.file_id, 0, cid(""))
    assert (sealed.size, sealed.chunk_count) == (0, 0)
    assert (await meta.commit_file(rec.file_id, 1.0)).state == FILE_COMPLETE
    assert await meta.get_manifest(rec.file_id) == []


async def test_no_page_is_added_once_sealed(meta: MetadataStore) -> None:
    """A page appended after the seal (between a paged upload's seal and its commit, or
    after a refused finish left the file sealed) was committed unproven: a tenant could put
    another tenant's chunk id in it and read that chunk. Refused now; nothing it names is
    ever part of the file."""
    rec = await _start(meta)
    [page] = _pages([[10, 20]])
    await meta.append_manifest_page(rec.file_id, 0, page)
    await meta.mark_page_proven(rec.file_id, 0)
    await meta.seal_file(rec.file_id, 30, cid("sealed"))
    [extra] = _pages([[40]], first=100)
    with pytest.raises(Conflict):
        await meta.append_manifest_page(rec.file_id, 1, extra)
    done = await meta.commit_file(rec.file_id, 5.0)
    assert (done.size, done.chunk_count) == (30, 2)
    assert await meta.get_manifest(rec.file_id) == page
