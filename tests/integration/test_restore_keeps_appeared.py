"""A bucket restore (``Client.download_from``, ``dfs-client download BUCKET/PREFIX/ OUT``)
replaces the local files it found different from their objects, and only while they are
what it compared: a file that appears at a target where nothing was when the restore
compared it, or that is written again since (by the user or a program while the restore
runs), is kept, never replaced by what was planned before. Into an empty folder and a used
one, small files and big ones (``download_file``), empty objects, and a bucket shared with
the caller (streamed through the API)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from dfs.client import Client, download, namespace_sync
from dfs.client.target_dirs import TargetDirs
from dfs.errors import Conflict
from tests.integration.conftest import InProcessCluster
from tests.integration.test_namespace_api import tokens

pytestmark = pytest.mark.integration

MINE = b"the user's file, written while the restore ran"


async def _bucket(c: Client, tmp_path: Path, objects: dict[str, bytes]) -> None:
    await c.make_bucket("bkt")
    for key, body in objects.items():
        (tmp_path / "p").write_bytes(body)
        await c.link("bkt", key, (await c.upload(tmp_path / "p")).file_id if body else "")


def appear(target: Path) -> None:
    """A file of the user's appears at ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(MINE)


def _appear_before_writes(monkeypatch: pytest.MonkeyPatch, names: Sequence[str]) -> None:
    """The files ``names`` are written under the restore's folder (made, or written again)
    after it compared its targets, just before it writes any (its empty objects, then the
    others)."""
    real_empty, real_files = namespace_sync._write_empty, download.DownloadPipeline.download_files

    def appear_at(targets: Sequence[Path]) -> None:
        for t in targets:
            if t.name in names and (not t.exists() or t.read_bytes() != MINE):
                appear(t)

    def write_empty(targets: Sequence[tuple[dict[str, Any], Path]], new: Any, dirs: Any) -> Any:
        appear_at([t for _o, t in targets])
        return real_empty(targets, new, dirs)

    async def download_files(self: Any, files: Sequence[tuple[str, Path]], *a: Any) -> Any:
        await asyncio.to_thread(appear_at, [t for _f, t in files])
        return await real_files(self, files, *a)

    monkeypatch.setattr(namespace_sync, "_write_empty", write_empty)
    monkeypatch.setattr(download.DownloadPipeline, "download_files", download_files)


@pytest.mark.parametrize("used", [False, True], ids=["empty-folder", "used-folder"])
@pytest.mark.parametrize("big", [False, True], ids=["small", "big"])
async def test_a_file_that_appears_at_a_target_is_kept(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, used: bool, big: bool
) -> None:
    if big:  # every file through the one-file pipeline (download_file), as one > 8 MiB is
        monkeypatch.setattr(download, "SMALL_FILE", 0)
    (alice,) = await tokens(inproc.api.url, "alice")
    rng = random.Random(3)
    objects = {"d/new.bin": rng.randbytes(5000), "d/empty": b"", "d/sub/x": rng.randbytes(70)}
    out = tmp_path / "out"
    if used:
        (out / "sub").mkdir(parents=True)
        (out / "sub" / "x").write_bytes(b"older, different bytes: replaced")
    async with Client(inproc.api.url, token=alice) as a:
        await _bucket(a, tmp_path, objects)
        _appear_before_writes(monkeypatch, ["new.bin", "empty"])
        with pytest.raises(Conflict, match="changed during the download"):
            await a.download_from("bkt", "d/", out)
    assert (out / "new.bin").read_bytes() == MINE
    assert (out / "empty").read_bytes() == MINE
    if not big:  # found different: replaced (a big file's Conflict stops the others, their
        # temp files kept for a run again to resume)
        assert (out / "sub" / "x").read_bytes() == objects["d/sub/x"]
        assert sorted(p.name for p in out.rglob("*dfs-part*")) == []


@pytest.mark.parametrize("big", [False, True], ids=["small", "big"])
async def test_a_file_written_again_after_the_comparison_is_kept(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, big: bool
) -> None:
    """``x`` differs from its object, so the restore means to replace it; the user saves it
    again before the restore writes it: that save is kept, never replaced by the object."""
    if big:
        monkeypatch.setattr(download, "SMALL_FILE", 0)
    (alice,) = await tokens(inproc.api.url, "alice")
    rng = random.Random(5)
    objects = {"d/x": rng.randbytes(5000), "d/y": rng.randbytes(70)}
    out = tmp_path / "out"
    out.mkdir()
    (out / "x").write_bytes(b"an older x")
    (out / "y").write_bytes(b"an older y")
    async with Client(inproc.api.url, token=alice) as a:
        await _bucket(a, tmp_path, objects)
        _appear_before_writes(monkeypatch, ["x"])
        with pytest.raises(Conflict, match="changed during the download"):
            await a.download_from("bkt", "d/", out)
    assert (out / "x").read_bytes() == MINE
    if not big:  # untouched since the comparison: replaced
        assert (out / "y").read_bytes() == objects["d/y"]


async def test_an_empty_object_where_a_file_appeared_is_skipped_and_reported(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (alice,) = await tokens(inproc.api.url, "alice")
    async with Client(inproc.api.url, token=alice) as a:
        await _bucket(a, tmp_path, {"d/empty": b"", "d/other": b""})
        _appear_before_writes(monkeypatch, ["empty"])
        got = await a.download_from("bkt", "d/", tmp_path / "out")
    assert [(s.what, "appeared" in s.reason) for s in got.skipped] == [("d/empty", True)]
    assert [d["key"] for d in got.done] == ["d/other"]
    assert (tmp_path / "out" / "empty").read_bytes() == MINE
    assert (tmp_path / "out" / "other").read_bytes() == b""


async def test_a_grantees_restore_keeps_a_file_that_appeared(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = await tokens(inproc.api.url, "alice", "bob")
    out = tmp_path / "out"
    async with Client(inproc.api.url, token=alice) as a, Client(inproc.api.url, token=bob) as b:
        await _bucket(a, tmp_path, {"d/new.bin": b"the object's bytes"})
        await a.set_bucket("bkt", grants={"bob": "read"})
        real = namespace_sync.SyncMethods._stream_to

        async def stream_to(
            self: Any, obj: Any, target: Path, replace: bool, dirs: TargetDirs
        ) -> None:
            await asyncio.to_thread(appear, target)  # after the comparison, before the write
            await real(self, obj, target, replace, dirs)

        monkeypatch.setattr(namespace_sync.SyncMethods, "_stream_to", stream_to)
        with pytest.raises(Conflict, match="changed during the download"):
            await b.download_from("bkt", "d/", out)
    assert (out / "new.bin").read_bytes() == MINE
