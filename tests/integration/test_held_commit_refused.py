"""A backup's unchanged files are recorded complete by ``/init-uploads`` itself
(``commit_held_files``). If the store refuses that commit because a chunk was garbage
collected after it was found held (IncompleteUpload), the files are left pending and
finalized as any upload, never failing the whole batch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dfs.client import Client
from dfs.client.local_files import walk
from dfs.errors import IncompleteUpload
from tests.integration.conftest import ADMIN_TOKEN, InProcessCluster

pytestmark = pytest.mark.integration


async def test_a_refused_commit_of_held_files_leaves_them_to_finalize(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, again = tmp_path / "first", tmp_path / "again"
    for folder in (first, again):
        folder.mkdir()
        for i in range(6):  # the same bytes under both folders: all held the second time
            (folder / f"f{i}.txt").write_bytes(f"file {i} ".encode() * (100 + i))
    meta = inproc.api.meta
    commit = meta.create_and_commit_files
    refused: list[int] = []

    async def refuse_once(files: Any, now: float, **kw: Any) -> Any:
        if not refused:  # as the store refuses a chunk collected since it was found held
            refused.append(len(files))
            raise IncompleteUpload("1 chunks were garbage-collected meanwhile")
        return await commit(files, now, **kw)

    async with Client(inproc.api.url, token=ADMIN_TOKEN) as c:
        await c.upload_many(list(walk([first])))
        monkeypatch.setattr(meta, "create_and_commit_files", refuse_once)
        results = await c.upload_many(list(walk([again])))
        assert refused == [6]  # the batch of held files went that way, and was refused
        assert len(results) == 6
        (tmp_path / "out").mkdir()
        for r in results:
            assert (await c.stat(r.file_id))["state"] == "complete"
            out = tmp_path / "out" / r.name
            await c.download(r.file_id, out)
            assert out.read_bytes() == (again / r.name).read_bytes()
