"""A paged upload's finish commits only a file whose pages were all proven, on every backend:
never an /init-upload's pending file, whose chunks no receipt proved (the "Dropship"
attack: a tenant naming another's chunk by its sha256 in a manifest, then committing it)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest

from dfs.api import paged_uploads
from dfs.api.coordinator import Coordinator
from dfs.config import ApiConfig
from dfs.errors import Conflict
from dfs.meta.base import (
    FILE_COMPLETE,
    FILE_PENDING,
    FileRecord,
    Location,
    ManifestEntry,
    MetadataStore,
)
from dfs.transport.node_client import NodeClient
from tests.contract.test_metadata_store import cid, new_file

X = cid("another tenant's chunk")


@pytest.fixture
async def coord(meta: MetadataStore) -> AsyncIterator[Coordinator]:
    cfg = ApiConfig(cluster_secret=b"s" * 32, replication_factor=2)
    async with aiohttp.ClientSession() as session:
        yield Coordinator(cfg, meta, NodeClient(session), clock=lambda: 50.0)


@pytest.mark.parametrize("declared", [True, False], ids=["declared", "sealed-empty"])
async def test_a_finish_refuses_a_file_that_was_never_paged(
    meta: MetadataStore, coord: Coordinator, declared: bool
) -> None:
    """t2 stores chunk X (two copies, referenced); t1 creates a pending file naming X, as
    /init-upload does, and sends no byte. Its finalize asks for a receipt; its paged
    finish committed it without one, X then t1's to read: with the size and sha256 it
    declared, as it was (no seal, so no page checked); with size 0, sealed (no page, 0
    bytes: whole) and committed with its manifest's chunks referenced."""
    owner, _ = new_file("owner", [(X, 3)], tenant="t2")
    await meta.add_locations([Location(X, n, 3) for n in ("n1", "n2")], 40.0)
    await meta.create_file(owner, [ManifestEntry(0, 3, X)])
    await meta.commit_file(owner.file_id, 41.0)
    rec, manifest = new_file("stolen", [(X, 3)], tenant="t1")
    await meta.create_file(rec, manifest)
    size, sha256 = (rec.size, rec.sha256) if declared else (0, cid("empty"))
    with pytest.raises(Conflict):
        await paged_uploads.finish(coord, rec.file_id, size, sha256, "t1")
    assert (await meta.get_file(rec.file_id)).state == FILE_PENDING
    assert X not in await meta.owned_chunks("t1", [X], ever=True)


async def test_a_finish_again_commits_a_sealed_file_whose_pages_are_whole(
    meta: MetadataStore, coord: Coordinator
) -> None:
    """A paged file sealed by a finish whose commit was refused is not sealed again (on
    DynamoDB it is no longer pending): the next finish with the same size and sha256
    checks its pages, proven still, and commits it."""
    chunks = [cid(("paged", i)) for i in range(3)]
    await meta.add_locations([Location(c, n, 3) for c in chunks for n in ("n1", "n2")], 40.0)
    rec = FileRecord(
        file_id=str(uuid.uuid4()),
        name="paged",
        size=0,
        sha256="",
        chunker="fastcdc-v1",
        tenant="t1",
        created_at=45.0,
    )
    await meta.create_file(rec, [])
    for no in (0, 1):
        entries = [ManifestEntry(3 * i, 3, c) for i, c in enumerate(chunks) if i // 2 == no]
        await meta.append_manifest_page(rec.file_id, no, entries)
        await meta.mark_page_proven(rec.file_id, no)
    await meta.seal_file(rec.file_id, 9, "ab" * 32)  # as a refused finish left it
    body = await paged_uploads.finish(coord, rec.file_id, 9, "ab" * 32, "t1")
    assert (body["state"], body["size"], body["chunks"]) == (FILE_COMPLETE, 9, 3)
