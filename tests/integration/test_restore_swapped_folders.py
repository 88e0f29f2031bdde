"""A restore's folder swapped for a symbolic link while the restore runs, on a live
in-process cluster: nothing is written through the link, for small files (groups) and big
ones (a temp file each, ``dfs.client.part_file``) alike, and a bucket restore's empty objects
and a grantee's objects streamed through the API. The checks of what stands above
each target run once, before the writes; the writes went by path after them."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest

from dfs.client import Client, download, namespace_sync, part_file
from dfs.errors import Conflict
from tests.integration.conftest import ADMIN_TOKEN, InProcessCluster
from tests.integration.test_namespace_api import tokens

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


async def _bucket_with(cl: Client, tmp_path: Path, objects: dict[str, bytes]) -> None:
    await cl.make_bucket("bkt")
    for key, body in objects.items():
        (tmp_path / "p").write_bytes(body)
        await cl.link("bkt", key, (await cl.upload(tmp_path / "p")).file_id if body else "")


def _swap_for_link(folder: Path, outside: Path) -> None:
    folder.rename(folder.with_name("moved"))
    folder.symlink_to(outside)


async def test_a_bucket_restores_empty_objects_never_through_a_swapped_folder(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty object (no file: written apart from the others) whose folder is swapped for
    a link after the restore's checks: nothing is created through the link."""
    root, outside = tmp_path / "restore", tmp_path / "elsewhere"
    outside.mkdir()
    real = namespace_sync._write_empty

    def swap_then_write(targets: Any, found: Any, dirs: Any) -> Any:
        _swap_for_link(root / "d", outside)
        return real(targets, found, dirs)

    monkeypatch.setattr(namespace_sync, "_write_empty", swap_then_write)
    async with Client(inproc.api.url, token=ADMIN_TOKEN, resume=False) as cl:
        await _bucket_with(cl, tmp_path, {"d/empty": b""})
        (root / "d").mkdir(parents=True)  # what the checks see
        with pytest.raises(Conflict, match="symbolic link"):
            await cl.download_from("bkt", "", root)
    assert list(outside.iterdir()) == []
    assert list((root / "moved").iterdir()) == []


async def test_a_grantees_streamed_object_never_goes_through_a_swapped_folder(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A grantee's restore streams each object through the API (``_stream_to``): a folder
    swapped for a link before it gets nothing, and the object is not written."""
    alice, bob = await tokens(inproc.api.url, "alice", "bob")
    root, outside = tmp_path / "restore", tmp_path / "elsewhere"
    outside.mkdir()
    real = namespace_sync.SyncMethods._stream_to

    async def swap_then_stream(self: Any, obj: Any, target: Path, *args: Any) -> None:
        await asyncio.to_thread(_swap_for_link, root / "d", outside)
        await real(self, obj, target, *args)

    monkeypatch.setattr(namespace_sync.SyncMethods, "_stream_to", swap_then_stream)
    async with Client(inproc.api.url, token=alice) as a, Client(inproc.api.url, token=bob) as b:
        await _bucket_with(a, tmp_path, {"d/x.bin": b"the object's bytes"})
        await a.set_bucket("bkt", grants={"bob": "read"})
        (root / "d").mkdir(parents=True)
        with pytest.raises(Conflict, match="symbolic link"):
            await b.download_from("bkt", "", root)
    assert list(outside.iterdir()) == []
    assert list((root / "moved").iterdir()) == []
