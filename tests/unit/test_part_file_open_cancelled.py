"""A download's temp file whose open is cancelled while its worker thread runs
(``PartFile.open``): the thread keeps its folder's descriptor until it ends, then what it
opened is closed and removed and the folder closed; nothing is opened by the full path."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest

from dfs.client import part_file
from dfs.client.part_file import PartFile

DEADLINE = 30.0


async def test_a_cancelled_open_cleans_up_after_its_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    entered, go_on = threading.Event(), threading.Event()
    real = part_file.PartFile._open

    def slow_open(self: PartFile) -> None:
        entered.set()
        assert go_on.wait(DEADLINE)
        real(self)

    monkeypatch.setattr(part_file.PartFile, "_open", slow_open)
    part = PartFile(folder / "f.bin", "", False, os.open(folder, os.O_RDONLY | os.O_DIRECTORY))
    dir_fd = part.dir_fd
    assert dir_fd is not None
    task = asyncio.create_task(part.open())
    assert await asyncio.to_thread(entered.wait, DEADLINE)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    part.release_dir()  # as a caller does on the way out: left to the open's thread
    assert part.dir_fd == dir_fd
    os.fstat(dir_fd)  # still open for the thread
    closed = asyncio.Event()
    real_release = part.release_dir

    def release() -> None:
        real_release()
        if part.dir_fd is None:
            closed.set()

    part.release_dir = release  # type: ignore[method-assign]
    go_on.set()
    await asyncio.wait_for(closed.wait(), DEADLINE)
    assert os.listdir(folder) == []  # the temp file it made is gone
    assert os.listdir(tmp_path) == ["out"]


async def test_an_open_not_cancelled_keeps_its_file(tmp_path: Path) -> None:
    part = PartFile(tmp_path / "f.bin", "", False, os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY))
    await part.open()
    names = os.listdir(tmp_path)
    assert len(names) == 1
    assert names[0] != "f.bin"
    part.abandon()  # closed, its temp file removed, the folder closed
    assert os.listdir(tmp_path) == []
    assert part.dir_fd is None
