"""An upload's first batches planned before the client library runs (``EarlyBatches``), then
taken over by the upload pipeline, against an in-process cluster: every file is stored once
and keeps its place, nothing the cache knows is read, and whatever stops the early thread
(a file the cache does not know, a refused token, no API, a refused batch, a listing that
fails) leaves the rest to the pipeline as if it had never run."""

from __future__ import annotations

import asyncio
import hashlib
import random
import socket
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from dfs import protocol
from dfs.chunking import ChunkerProfile
from dfs.client import Client, batch_scan, file_cache
from dfs.client import upload as upload_mod
from dfs.client.early_batches import EarlyBatches
from dfs.client.file_upload import UploadResult
from dfs.client.local_files import LocalFile, walk
from dfs.errors import InvalidRequest
from dfs.transport.api_client import ApiClient
from tests.integration.conftest import ADMIN_TOKEN, InProcessCluster

pytestmark = pytest.mark.integration

PROFILE = ChunkerProfile.fixed(4096)
BIG = 20_000  # "big" here (``small_file``), so that a tree of a few files has big ones
WAIT = 30.0  # seconds the early thread gets to plan a small tree on its own


@pytest.fixture(autouse=True)
def small_big_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """The files here are seconds old: let the cache trust them (the racy rule is
    unit-tested); files over BIG go alone, in the pipeline as in the early thread."""
    monkeypatch.setattr(file_cache, "RACY_NS", -60 * 10**9)
    monkeypatch.setattr(upload_mod, "SMALL_FILE", BIG)


def tree(root: Path, n: int = 300) -> dict[str, bytes]:
    """``n`` files in a few folders, a big one (over BIG) every 97th."""
    rng = random.Random(5)
    out = {}
    for i in range(n):
        size = 3 * BIG if i % 97 == 50 else rng.choice([0, 100, 3000, 9000])
        data = rng.randbytes(size)
        (root / f"d{i % 4}").mkdir(parents=True, exist_ok=True)
        (root / f"d{i % 4}" / f"f{i:03}").write_bytes(data)
        out[f"d{i % 4}/f{i:03}"] = data
    return out


async def backed_up(
    inproc: InProcessCluster, root: Path, n: int = 300
) -> tuple[str, dict[str, bytes], list[LocalFile]]:
    """A tree of ``n`` files at ``root`` backed up once (as ``v1/``): the API's URL, the
    tree's content and its listing for the next backup (as ``v2/``)."""
    content = tree(root, n)
    url = inproc.api.url
    await upload(url, list(walk([root], "v1/")))
    return url, content, list(walk([root], "v2/"))


def early(url: str, files: Iterator[LocalFile], token: str = ADMIN_TOKEN) -> EarlyBatches:
    return EarlyBatches(url, token, files, PROFILE, small_file=BIG)


async def upload(
    url: str, files: list[LocalFile], batches: EarlyBatches | None = None
) -> list[UploadResult]:
    async with Client(url, token=ADMIN_TOKEN, concurrency=4) as c:
        return await c.upload_many(iter(files), profile=PROFILE, early_batches=batches)


async def stored(url: str, prefix: str) -> list[str]:
    """The names of the complete files under ``prefix``, one entry per stored file."""
    names: list[str] = []
    after = None
    async with Client(url, token=ADMIN_TOKEN) as c:
        while True:
            page = await c.api.list_files(limit=1000, after=after, prefix=prefix)
            names += [str(f["name"]) for f in page["files"]]
            after = page.get("next_after")
            if not after:
                return names


async def test_a_rebackup_planned_early_stores_each_file_once_in_its_place(
    inproc: InProcessCluster, tmp_path: Path, reads: list[Path]
) -> None:
    url, content, files = await backed_up(inproc, tmp_path / "src")
    reads.clear()
    batches = early(url, iter(files))
    assert await asyncio.to_thread(batches.finished, WAIT)
    planned = [n for p in batches.planned if p.plans is not None for n, _f in p.batch]
    assert len(planned) + len(batches.big) == len(files)  # every file taken early
    assert len(batches.big) == 3
    assert len(batches.planned) >= 2
    results = await upload(url, files, batches)
    assert [r.name for r in results] == [f.name for f in files]  # in the listing's order
    assert reads == []  # nothing the cache knows was read
    for r in results:
        assert r.sha256 == hashlib.sha256(content[r.name.removeprefix("v2/")]).hexdigest()
        assert r.bytes_sent == 0
    names = await stored(url, "v2/")
    assert sorted(names) == sorted(f.name for f in files)  # each once: none planned twice
    one = next(r for r in results if r.name == "v2/d2/f010")
    out = tmp_path / "out"
    async with Client(url, token=ADMIN_TOKEN) as c:
        await c.download(one.file_id, out)
    assert out.read_bytes() == content["d2/f010"]


async def test_the_pipeline_plans_files_the_cache_knows_in_bigger_batches(
    inproc: InProcessCluster, tmp_path: Path, reads: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without early batches: a first backup plans at most BATCH_FILES files per request;
    a re-backup of the same files, which the cache knows, up to CACHED_BATCH_FILES (the
    API's limit), reading none and storing each once in its place."""
    sizes: list[int] = []
    plan_uploads = ApiClient.plan_uploads

    async def counted(self: ApiClient, files: Any, *args: Any) -> Any:
        sizes.append(len(files))
        return await plan_uploads(self, files, *args)

    monkeypatch.setattr(ApiClient, "plan_uploads", counted)
    url, _content, files = await backed_up(inproc, tmp_path / "src", 2000)
    assert max(sizes) == batch_scan.BATCH_FILES
    sizes.clear()
    reads.clear()
    results = await upload(url, files)
    assert batch_scan.BATCH_FILES < max(sizes) <= batch_scan.CACHED_BATCH_FILES
    assert batch_scan.CACHED_BATCH_FILES <= protocol.MAX_BATCH_FILES
    assert sum(sizes) == len(files) - sum(f.size > BIG for f in files)  # once each
    assert reads == []
    assert [r.name for r in results] == [f.name for f in files]
    assert all(r.bytes_sent == 0 for r in results)
    assert sorted(await stored(url, "v2/")) == sorted(f.name for f in files)


async def test_taken_while_it_plans_every_file_is_stored_once_in_its_place(
    inproc: InProcessCluster, tmp_path: Path, reads: list[Path]
) -> None:
    url, _content, files = await backed_up(inproc, tmp_path / "src", 900)
    reads.clear()
    batches = early(url, iter(files))
    results = await upload(url, files, batches)  # taken wherever the thread is
    assert [r.name for r in results] == [f.name for f in files]
    assert reads == []
    assert sorted(await stored(url, "v2/")) == sorted(f.name for f in files)


async def test_a_file_the_cache_does_not_know_is_where_the_pipeline_goes_on(
    inproc: InProcessCluster, tmp_path: Path, reads: list[Path]
) -> None:
    url, content, files = await backed_up(inproc, tmp_path / "src")
    at = 180  # a small file in the second early batch (after the first's 125)
    victim = files[at].path
    assert files[at].size <= BIG
    victim.write_bytes(b"edited since v1")
    files = list(walk([tmp_path / "src"], "v2/"))  # listed again: its new stat
    reads.clear()
    batches = early(url, iter(files))
    assert await asyncio.to_thread(batches.finished, WAIT)
    assert batches.planned[0].plans is not None
    assert max(n for p in batches.planned for n, _f in p.batch) < at
    results = await upload(url, files, batches)
    assert reads == [victim]  # the one file read: by the pipeline
    assert [r.name for r in results] == [f.name for f in files]
    assert sorted(await stored(url, "v2/")) == sorted(f.name for f in files)
    edited = next(r for r in results if r.name == files[at].name)
    assert edited.sha256 == hashlib.sha256(b"edited since v1").hexdigest()
    assert len(content) == len(files)


async def test_a_refused_token_leaves_every_file_to_the_pipeline(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    url, _content, files = await backed_up(inproc, tmp_path / "src", 40)
    batches = early(url, iter(files), token="dfs_not-a-token-of-this-cluster-0000000000")
    assert await asyncio.to_thread(batches.finished, WAIT)
    taken = batches.take()
    assert (taken.cache, taken.planned, taken.count, taken.big) == (None, [], 0, [])
    assert list(taken.rest) == files
    results = await upload(url, files, early(url, iter(files), token="dfs_refused-00000000"))
    assert [r.name for r in results] == [f.name for f in files]


async def test_no_api_at_the_url_leaves_every_file_to_the_pipeline(tmp_path: Path) -> None:
    src = tmp_path / "src"
    tree(src, 10)
    files = list(walk([src], "v2/"))
    with socket.socket() as s:  # a port nothing listens on (bound, never listening)
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
        batches = early(url, iter(files))
        assert await asyncio.to_thread(batches.finished, WAIT)
    taken = batches.take()
    assert (taken.cache, taken.planned, taken.count) == (None, [], 0)
    assert list(taken.rest) == files


async def test_a_batch_the_api_refuses_is_planned_by_the_pipeline_which_says_why(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    url, _content, files = await backed_up(inproc, tmp_path / "src", 600)
    at = 450  # in the third early batch (after 125 and 250 small files)
    assert files[at].size <= BIG
    files[at] = replace(files[at], name="v2/" + "x" * 2000)  # over the API's name limit
    batches = early(url, iter(files))
    assert await asyncio.to_thread(batches.finished, WAIT)
    plans = [p.plans is not None for p in batches.planned]
    assert plans == [True, True, False]  # the third is refused
    with pytest.raises(InvalidRequest, match="name"):
        await upload(url, files, batches)
    first_two = [f for p in batches.planned[:2] for _n, f in p.batch]
    assert sorted(await stored(url, "v2/")) == sorted(f.name for f in first_two)


async def test_a_listing_that_fails_is_raised_after_the_files_before_it(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    url, _content, files = await backed_up(inproc, tmp_path / "src", 40)

    def listing() -> Iterator[LocalFile]:
        yield from files[:30]
        raise OSError("the listing broke")

    batches = early(url, listing())
    assert await asyncio.to_thread(batches.finished, WAIT)
    assert sum(len(p.batch) for p in batches.planned) == 30
    with pytest.raises(OSError, match="the listing broke"):
        await upload(url, files, batches)
