"""A folder download from a bucket reads ahead of its listing (``dfs.client.listing_ahead``):
the first page's plans, and into a folder with nothing in it their small files' chunks,
are asked for while the listing goes on and handed to the download, which then neither
asks for those plans nor reads those chunks again; into a folder that holds files, no chunk
is read ahead (a target there may hold its object already). Either way every object comes
back byte for byte, and what stands in a target's way is still skipped."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from dfs.client import Client
from dfs.client.download import DownloadPipeline
from tests.integration.conftest import InProcessCluster
from tests.integration.test_namespace_api import tokens

pytestmark = pytest.mark.integration


def _tree(src: Path, files: int) -> dict[str, bytes]:
    made = {}
    for i in range(files):
        name = f"d{i % 7}/f{i:04d}.txt"
        made[name] = os.urandom(100 + i) if i % 5 else f"same {i % 3}".encode()
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(made[name])
    return made


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """(plans, chunks) each ``download_files`` call was handed."""
    seen: list[tuple[int, int]] = []
    real = DownloadPipeline.download_files

    async def spy(
        self: DownloadPipeline,
        files: Any,
        plans: Mapping[str, dict[str, Any]] | None = None,
        chunks: dict[str, bytes] | None = None,
    ) -> Any:
        seen.append((len(plans or {}), len(chunks or {})))
        return await real(self, files, plans, chunks)

    monkeypatch.setattr(DownloadPipeline, "download_files", spy)
    return seen


async def test_a_fresh_folder_gets_the_first_pages_plans_and_chunks_read_ahead(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (alice,) = await tokens(inproc.api.url, "alice")
    made = _tree(tmp_path / "src", 1200)  # two listing pages
    seen = _spy(monkeypatch)
    async with Client(inproc.api.url, token=alice) as a:
        await a.make_bucket("bkt")
        await a.upload_to([tmp_path / "src"], "bkt", "b/")
        report = await a.download_from("bkt", "b/", tmp_path / "out")
    assert len(report.done) == 1200
    assert not report.skipped
    for name, data in made.items():
        assert (tmp_path / "out" / name).read_bytes() == data
    ((plans, chunks),) = seen
    assert plans == 1000  # the first page's, asked for while the second was listed
    assert chunks > 0  # distinct chunks of its small files, read once, by the read ahead


async def test_a_folder_holding_files_gets_plans_but_no_chunks_read_ahead(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (alice,) = await tokens(inproc.api.url, "alice")
    made = _tree(tmp_path / "src", 30)
    out = tmp_path / "out"
    (out / "d1").mkdir(parents=True)
    (out / "d1" / "f0001.txt").write_bytes(made["d1/f0001.txt"])  # the object's bytes
    os.utime(out / "d1" / "f0001.txt", ns=(0, (tmp_path / "src/d1/f0001.txt").stat().st_mtime_ns))
    (out / "d2" / "f0002.txt").mkdir(parents=True)  # a folder where a key lands
    seen = _spy(monkeypatch)
    async with Client(inproc.api.url, token=alice) as a:
        await a.make_bucket("bkt")
        await a.upload_to([tmp_path / "src"], "bkt", "b/")
        report = await a.download_from("bkt", "b/", out)
    assert report.unchanged == [str(out / "d1" / "f0001.txt")]
    assert [s.what for s in report.skipped] == ["b/d2/f0002.txt"]
    assert len(report.done) == 28
    for name, data in made.items():
        if name != "d2/f0002.txt":
            assert (out / name).read_bytes() == data
    ((plans, chunks),) = seen
    assert plans == 30
    assert chunks == 0


async def test_a_folder_as_it_was_gets_its_first_pages_picks_read_ahead(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``download --at``: the versions listing's first page picks each key's version then,
    and those picks' plans and chunks are read ahead as for the current objects."""
    (alice,) = await tokens(inproc.api.url, "alice")
    src = tmp_path / "src"
    made = _tree(src, 40)
    seen = _spy(monkeypatch)
    async with Client(inproc.api.url, token=alice) as a:
        await a.make_bucket("bkt", versioning="enabled")
        await a.upload_to([src], "bkt", "b/")
        then = time.time()
        for name in list(made)[:10]:  # a newer version of a quarter of the keys
            (src / name).write_bytes(b"edited " + made[name])
            os.utime(src / name, (then + 5, then + 5))
        await a.upload_to([src], "bkt", "b/")
        report = await a.download_from("bkt", "b/", tmp_path / "out", at=then)
    assert len(report.done) == 40
    for name, data in made.items():
        assert (tmp_path / "out" / name).read_bytes() == data
    ((plans, chunks),) = seen
    assert plans == 40  # each key's version then, picked from the first page
    assert chunks > 0
