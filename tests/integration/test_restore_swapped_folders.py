"""A restore's folder swapped for a symbolic link while the restore runs, on a live
in-process cluster: nothing is written through the link, for small files (groups) and big
ones (a temp file each, ``dfs.client.part_file``) alike. The checks of what stands above
each target run once, before the writes; the writes went by path after them."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from dfs.client import Client, download, part_file
from dfs.errors import Conflict
from tests.integration.conftest import ADMIN_TOKEN, InProcessCluster

pytestmark = pytest.mark.integration


async def _uploaded(cl: Client, tmp_path: Path, sizes: dict[str, int]) -> list[str]:
    ids = []
    for name, size in sizes.items():
        src = tmp_path / "src" / name
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_bytes(random.Random(name).randbytes(size))
        ids.append((await cl.upload(src)).file_id)
    return ids


@pytest.mark.parametrize("small", [True, False], ids=["small-files", "big-files"])
async def test_a_folder_swapped_for_a_link_before_the_writes_gets_nothing(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small: bool
) -> None:
    if not small:
        monkeypatch.setattr(download, "SMALL_FILE", 0)  # each through its own temp file
    root, outside = tmp_path / "restore", tmp_path / "elsewhere"
    outside.mkdir()
    (root / "sub").mkdir(parents=True)  # what the checks saw
    async with Client(inproc.api.url, token=ADMIN_TOKEN, resume=False) as cl:
        ids = await _uploaded(cl, tmp_path, {"a": 3000, "b": 70_000})
        (root / "sub").rmdir()
        (root / "sub").symlink_to(outside)  # swapped after them
        targets = [(ids[0], root / "sub" / "a"), (ids[1], root / "sub" / "b")]
        with pytest.raises(Conflict, match="symbolic link"):
            await cl.download_many(targets, root=root)
    assert list(outside.iterdir()) == []


async def test_a_big_files_folder_moved_before_its_commit_keeps_the_file(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The temp file written, its folder moved away and a link put in its place before the
    file takes its name: it takes it in the folder it was written in, never the link's."""
    monkeypatch.setattr(download, "SMALL_FILE", 0)
    root, outside = tmp_path / "restore", tmp_path / "elsewhere"
    outside.mkdir()
    real = part_file.PartFile.commit

    async def swap_then_commit(self: part_file.PartFile, *args: Any, **kwargs: Any) -> None:
        (root / "d" / "sub").rename(root / "moved")
        (root / "d" / "sub").symlink_to(outside)
        await real(self, *args, **kwargs)

    monkeypatch.setattr(part_file.PartFile, "commit", swap_then_commit)
    async with Client(inproc.api.url, token=ADMIN_TOKEN, resume=False) as cl:
        [file_id] = await _uploaded(cl, tmp_path, {"big": 200_000})
        await cl.download_many([(file_id, root / "d" / "sub" / "big")], root=root)
    assert list(outside.iterdir()) == []
    expected = random.Random("big").randbytes(200_000)
    assert (root / "moved" / "big").read_bytes() == expected
    assert sorted(p.name for p in (root / "moved").iterdir()) == ["big"]  # no temp file left
