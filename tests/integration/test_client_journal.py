"""Upload journals that nothing can resume are cleaned up (issue 16 Broken 6, the library
part): removed when the upload failed for good, kept when running it again can resume it,
and swept once older than the API keeps a pending upload. Against an in-process cluster."""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from dfs.chunking import ChunkerProfile
from dfs.client import Client
from dfs.client.resume import JOURNAL_MAX_AGE, UploadJournal
from dfs.errors import (
    AuthError,
    Conflict,
    FileNotFound,
    InsufficientStorage,
    IntegrityError,
    InvalidRequest,
    ReplicationError,
    Unavailable,
)
from dfs.transport.api_client import ApiClient
from tests.integration.conftest import ADMIN_TOKEN, InProcessCluster

pytestmark = pytest.mark.integration

CHUNK = 64 * 1024
FIXED = ChunkerProfile.fixed(CHUNK)


def journals() -> list[Path]:
    return sorted((Path(os.environ["DFS_CACHE_DIR"]) / "uploads").glob("*.jsonl"))


def raising(exc: BaseException) -> Callable[..., Coroutine[Any, Any, dict[str, Any]]]:
    async def finalize(self: ApiClient, *args: Any, **kwargs: Any) -> dict[str, Any]:
        raise exc

    return finalize


@pytest.mark.parametrize(
    ("error", "kept"),
    [
        (Conflict("upload not complete"), False),
        (InvalidRequest("bad receipts"), False),
        (FileNotFound("pending upload gone"), False),
        (AuthError("token revoked"), False),
        (Unavailable("API down"), True),
        (ReplicationError("too few copies"), True),
        (InsufficientStorage("full"), True),
        (asyncio.CancelledError(), True),
    ],
)
async def test_a_failed_finalize_keeps_the_journal_only_when_a_rerun_can_resume(
    inproc: InProcessCluster,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    error: BaseException,
    kept: bool,
) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(random.Random(1).randbytes(8 * CHUNK))
    finalize = ApiClient.finalize_upload
    monkeypatch.setattr(ApiClient, "finalize_upload", raising(error))
    async with Client(inproc.api.url, token=ADMIN_TOKEN, concurrency=2) as c:
        with pytest.raises(type(error)):
            await c.upload(src, profile=FIXED)
    assert bool(journals()) is kept
    if kept:  # and running it again resumes and finishes it
        monkeypatch.setattr(ApiClient, "finalize_upload", finalize)
        async with Client(inproc.api.url, token=ADMIN_TOKEN, concurrency=2) as c:
            up = await c.upload(src, profile=FIXED)
        assert up.bytes_sent == 0
        assert journals() == []


async def test_a_file_that_changed_during_its_upload_leaves_no_journal(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(random.Random(2).randbytes(16 * CHUNK))
    seen: list[Path] = []

    def change_it(n: int) -> None:
        if not seen:  # after the plan, before any chunk is sent: the journal exists
            seen.extend(journals())
            src.write_bytes(random.Random(3).randbytes(16 * CHUNK))

    async with Client(inproc.api.url, token=ADMIN_TOKEN, concurrency=1) as c:
        with pytest.raises(IntegrityError, match="changed"):
            await c.upload(src, profile=FIXED, progress=change_it)
    assert len(seen) == 1
    assert journals() == []


async def test_journals_older_than_a_pending_upload_lives_are_swept(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    folder = Path(os.environ["DFS_CACHE_DIR"]) / "uploads"
    folder.mkdir(parents=True)
    old, fresh = folder / ("0" * 40 + ".jsonl"), folder / ("1" * 40 + ".jsonl")
    for path in (old, fresh):
        path.write_text('{"file_id": "00000000-0000-4000-8000-000000000000"}\n')
    stale = time.time() - JOURNAL_MAX_AGE - 60
    os.utime(old, (stale, stale))
    src = tmp_path / "f.bin"
    src.write_bytes(random.Random(4).randbytes(4 * CHUNK))
    async with Client(inproc.api.url, token=ADMIN_TOKEN) as c:
        await c.upload(src, profile=FIXED)
    assert journals() == [fresh]
    assert UploadJournal.sweep(now=time.time() + JOURNAL_MAX_AGE + 60) == 1
    assert journals() == []
