"""One byte budget for the pieces all of a download's files fetch ahead (issue 19).

A download runs ``concurrency`` big files at once (twice that while two batches overlap),
each with a window of up to ``2 * concurrency`` pieces: without a shared bound its memory
grew with the square of ``concurrency``. ``dfs.client.download.ByteBudget`` bounds the
pieces fetched ahead by all the files together, plus one piece per file (a file with an
empty window always takes one, so no file waits on another's bytes). These tests download
through the real API and nodes (in-process) with a small budget and check the bound, the
bytes, that no file can deadlock on a budget of nothing, and that a cancelled download
gives back all it took.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from pathlib import Path
from typing import Any

import pytest

from dfs.chunking import ChunkerProfile
from dfs.client import Client
from dfs.client.download import RUN_CHUNK_MAX, ByteBudget, DownloadPipeline
from dfs.client.local_files import LocalFile
from tests.integration.conftest import ADMIN_TOKEN, InProcessCluster

pytestmark = pytest.mark.integration

FILES = 10
FILE_BYTES = 9 * 1024 * 1024  # over BATCHED_FILE_MAX: each file through its own window
CONCURRENCY = 8
# every chunk at least RUN_CHUNK_MAX: each is a piece of its own, at most MAX_CHUNK bytes
MAX_CHUNK = 1024 * 1024
PROFILE = ChunkerProfile.fastcdc(min_size=RUN_CHUNK_MAX, avg=512 * 1024, max_size=MAX_CHUNK)


def _written(root: Path) -> list[tuple[LocalFile, bytes]]:
    """FILES random files under ``root`` and their sha256."""
    root.mkdir()
    rng = random.Random(7)
    files = []
    for i in range(FILES):
        path = root / f"f{i}.bin"
        data = rng.randbytes(FILE_BYTES)
        path.write_bytes(data)
        files.append(
            (LocalFile(path, f"big/{path.name}", FILE_BYTES), hashlib.sha256(data).digest())
        )
    return files


async def _stored(inproc: InProcessCluster, root: Path) -> list[tuple[str, bytes]]:
    """(file id, sha256) of FILES random files uploaded with PROFILE."""
    files = _written(root)
    async with Client(inproc.api.url, token=ADMIN_TOKEN, resume=False) as cl:
        results = await cl.upload_many([f for f, _h in files], profile=PROFILE)
    return [(r.file_id, h) for r, (_f, h) in zip(results, files, strict=True)]


def _same(stored: list[tuple[str, bytes]], out: Path) -> None:
    for file_id, digest in stored:
        assert hashlib.sha256((out / f"{file_id}.bin").read_bytes()).digest() == digest


async def _download(
    inproc: InProcessCluster, stored: list[tuple[str, bytes]], out: Path, window_bytes: int
) -> DownloadPipeline:
    async with Client(
        inproc.api.url, token=ADMIN_TOKEN, resume=False, concurrency=CONCURRENCY
    ) as cl:
        pipeline = DownloadPipeline(cl._connection(), None, window_bytes=window_bytes)
        pipeline.root = out
        results = await pipeline.download_files([(f, out / f"{f}.bin") for f, _h in stored])
    assert [r.file_id for r in results] == [f for f, _h in stored]
    _same(stored, out)
    return pipeline


async def test_files_at_once_hold_the_budget_and_a_piece_each(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    stored = await _stored(inproc, tmp_path / "src")
    budget = 3 * MAX_CHUNK
    pipeline = await _download(inproc, stored, tmp_path, budget)
    # CONCURRENCY files at once (one batch), each over the budget by one piece at most;
    # unbounded, each would have held its whole window of 9+ pieces
    assert 0 < pipeline.budget.peak <= budget + CONCURRENCY * MAX_CHUNK
    assert pipeline.budget.used == 0


async def test_a_budget_of_nothing_still_downloads_a_piece_per_file(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    stored = await _stored(inproc, tmp_path / "src")
    pipeline = await _download(inproc, stored, tmp_path, 0)
    assert 0 < pipeline.budget.peak <= CONCURRENCY * MAX_CHUNK
    assert pipeline.budget.used == 0


class _Signalling(ByteBudget):
    """A ``ByteBudget`` that sets ``taken`` when it first takes bytes."""

    def __init__(self, limit: int, taken: asyncio.Event) -> None:
        super().__init__(limit)
        self.taken = taken

    def take(self, size: int) -> None:
        super().take(size)
        self.taken.set()


async def test_a_cancelled_download_gives_back_what_it_took(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    stored = await _stored(inproc, tmp_path / "src")
    out = tmp_path
    async with Client(
        inproc.api.url, token=ADMIN_TOKEN, resume=False, concurrency=CONCURRENCY
    ) as cl:
        pipeline = DownloadPipeline(cl._connection(), None)
        pipeline.root = out
        taken = asyncio.Event()
        pipeline.budget = _Signalling(pipeline.budget.limit, taken)
        files = [(f, out / f"{f}.bin") for f, _h in stored]
        task: asyncio.Task[Any] = asyncio.ensure_future(pipeline.download_files(files))
        await asyncio.wait_for(taken.wait(), 30)  # a piece is being fetched ahead
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert pipeline.budget.peak > 0
    assert pipeline.budget.used == 0
