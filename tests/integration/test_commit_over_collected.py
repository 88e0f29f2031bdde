"""A commit that found a chunk held, then lost its row to garbage collection before it wrote.

GC deletes a chunk's row once it is unreferenced past the grace (the store's conditional
``delete_chunk_if_unreferenced``), and an upload may have found that chunk's copies just
before: a client's re-sent chunk that the row already listed (nothing new to record), or a
paged upload's page proven before the pass. The commit used to add the reference to a row
it made again with no copy: a complete file that no download could read, that repair's
targeted passes never looked at. Now the store refuses the commit (``IncompleteUpload``,
nothing written) and the API records the copies the nodes still hold (GC keeps copies
written within the commit window) and commits again; only when the nodes lost them too is
the client told to send them again.

Each test makes GC's row delete happen at the exact moment between the copies' check and
the commit (the store call a GC pass makes), with the nodes' copies in place.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from typing import Any

import pytest

from dfs.api import paged_uploads
from dfs.api.bodies import DEFAULT_TENANT, UploadRequest
from dfs.api.chunk_writes import put_to_nodes
from dfs.api.coordinator import Coordinator
from dfs.chunking import ChunkerProfile
from dfs.errors import IncompleteUpload
from dfs.ids import new_file_id
from dfs.meta.base import ManifestEntry
from tests.integration.conftest import InProcessCluster
from tests.integration.test_ingest_grace import read_file

pytestmark = pytest.mark.integration

FAR_FUTURE = 1e12
"""A GC cutoff every unreferenced row is past (the pass's ``now - grace``, made certain)."""


async def _unreferenced_chunk(
    coord: Coordinator, data: bytes
) -> tuple[str, ManifestEntry, set[str]]:
    """A chunk stored by a file since deleted: its row, with both copies (the nodes
    returned), has no reference."""
    cid = hashlib.sha256(data).hexdigest()
    entry = ManifestEntry(0, len(data), cid)
    old = await _pending(coord, entry)
    sent = await put_to_nodes(coord, cid, data, old, await coord.writable_nodes())
    await coord.finalize_upload(old, {cid: sent["receipt"]})
    await coord.delete_file(old, DEFAULT_TENANT)
    holders = (await coord.meta.get_locations([cid]))[cid]
    assert len(holders) == 2
    return cid, entry, holders


async def _pending(coord: Coordinator, entry: ManifestEntry) -> str:
    file_id = new_file_id()
    profile = str(ChunkerProfile.default())
    req = UploadRequest("f", entry.size, entry.chunk_id, profile, [entry])
    await coord.create_uploads([(file_id, req)], DEFAULT_TENANT)
    return file_id


def gc_right_before_the_commit(
    coord: Coordinator, monkeypatch: pytest.MonkeyPatch, method: str, cid: str
) -> list[Any]:
    """Make the store's next ``method`` call (a commit) run after GC deleted ``cid``'s row;
    returns what each GC delete answered."""
    meta = coord.meta
    real = getattr(meta, method)
    answers: list[Any] = []

    async def commit_after_gc(*args: Any, **kwargs: Any) -> Any:
        if not answers:
            answers.append(await meta.delete_chunk_if_unreferenced(cid, FAR_FUTURE))
        return await real(*args, **kwargs)

    monkeypatch.setattr(meta, method, commit_after_gc)
    return answers


async def test_a_finalize_records_again_the_copies_of_a_row_gc_took(
    inproc: InProcessCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    coord = inproc.api.coordinator
    data = random.Random(1).randbytes(50_000)
    cid, entry, holders = await _unreferenced_chunk(coord, data)
    new = await _pending(coord, entry)
    sent = await put_to_nodes(coord, cid, data, new, await coord.writable_nodes())
    collected = gc_right_before_the_commit(coord, monkeypatch, "commit_files", cid)
    body = await coord.finalize_upload(new, {cid: sent["receipt"]})
    assert collected == [holders]  # GC took the row between the check and the write
    assert body["state"] == "complete"
    assert (await coord.meta.get_locations([cid]))[cid] == holders
    assert (await coord.meta.get_chunks([cid]))[cid].refcount == 1
    assert await read_file(coord, new, DEFAULT_TENANT) == data


async def test_a_paged_finish_records_again_the_copies_of_a_row_gc_took(
    inproc: InProcessCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    coord = inproc.api.coordinator
    data = random.Random(2).randbytes(50_000)
    cid, entry, holders = await _unreferenced_chunk(coord, data)
    new = (await paged_uploads.start(coord, "new", "fixed", None, None, DEFAULT_TENANT))["file_id"]
    await paged_uploads.page(coord, new, 0, [entry], {}, DEFAULT_TENANT)
    sent = await put_to_nodes(coord, cid, data, new, await coord.writable_nodes())
    await paged_uploads.prove(coord, new, 0, {cid: sent["receipt"]}, DEFAULT_TENANT)
    collected = gc_right_before_the_commit(coord, monkeypatch, "commit_file", cid)
    body = await paged_uploads.finish(coord, new, len(data), cid, DEFAULT_TENANT)
    assert collected == [holders]
    assert body["state"] == "complete"
    assert (await coord.meta.get_locations([cid]))[cid] == holders
    assert await read_file(coord, new, DEFAULT_TENANT) == data


async def test_a_commit_whose_copies_gc_also_deleted_is_refused_not_made(
    inproc: InProcessCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The row and every copy gone (a commit past the window GC keeps copies for): the
    file stays pending and the client is told to send the chunk again; no row without a
    copy is ever made."""
    coord = inproc.api.coordinator
    data = random.Random(3).randbytes(50_000)
    cid, entry, _ = await _unreferenced_chunk(coord, data)
    new = await _pending(coord, entry)
    sent = await put_to_nodes(coord, cid, data, new, await coord.writable_nodes())
    meta = coord.meta
    real = meta.commit_files

    async def commit_after_gc_and_node_deletes(*args: Any, **kwargs: Any) -> Sequence[Any]:
        if await meta.delete_chunk_if_unreferenced(cid, FAR_FUTURE):
            for node in inproc.nodes:
                await node.store.delete(cid)
        return await real(*args, **kwargs)

    monkeypatch.setattr(meta, "commit_files", commit_after_gc_and_node_deletes)
    with pytest.raises(IncompleteUpload):
        await coord.finalize_upload(new, {cid: sent["receipt"]})
    assert await meta.get_chunks([cid]) == {}
    assert (await meta.get_file(new)).state == "pending"
