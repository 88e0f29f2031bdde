"""A big download drops what it has written back from the page cache (``PartFile``)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from dfs.client import part_file
from tests.conftest import random_bytes

CHUNK = 64 * 1024


async def test_each_flush_drops_the_bytes_written_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(part_file, "DOWNLOAD_FLUSH_BYTES", 2 * CHUNK)
    advised: list[tuple[int, int, int]] = []
    real = os.posix_fadvise

    def spy(fd: int, offset: int, length: int, advice: int) -> None:
        advised.append((offset, length, advice))
        real(fd, offset, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", spy)
    target = tmp_path / "out.bin"
    data = random_bytes(3, 6 * CHUNK)
    part = part_file.PartFile(target, "f1", resume=False)
    await part.open()
    for offset in range(0, len(data), CHUNK):
        # a chunk in the pieces its body arrived in, as the fetcher hands them over
        half = offset + CHUNK // 3
        await part.write(offset, [data[offset:half], data[half : offset + CHUNK]])
        await part.settle()  # each flush done before the next write: a known sequence
    await part.fsync()
    await part.commit(target, "f1", hashlib.sha256(data).hexdigest())
    dontneed = os.POSIX_FADV_DONTNEED
    # contiguous, in order, never past what was written, and covering each flush's bytes
    assert advised == [
        (0, 2 * CHUNK, dontneed),
        (2 * CHUNK, 2 * CHUNK, dontneed),
        (4 * CHUNK, 2 * CHUNK, dontneed),
    ]
    assert target.read_bytes() == data
