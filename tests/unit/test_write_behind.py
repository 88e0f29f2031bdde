"""``WriteBehind``: a download's writes on one thread, in order, bounded, failures raised."""

from __future__ import annotations

import asyncio
import errno
import os
import threading
import time
from pathlib import Path

import pytest

from dfs.client import part_file
from dfs.client.write_behind import WriteBehind

DEADLINE = 10.0


async def test_writes_run_in_order_on_one_thread_and_finish_waits_for_them() -> None:
    behind = WriteBehind(limit=1 << 20)
    done: list[tuple[int, str]] = []
    for n in range(200):
        await behind.put(lambda n=n: done.append((n, threading.current_thread().name)), 10)
    await behind.finish()
    assert [n for n, _ in done] == list(range(200))
    assert {name for _, name in done} == {"dfs-write"}
    # a put after finish starts the thread again
    await behind.put(lambda: done.append((200, threading.current_thread().name)), 1)
    await behind.finish()
    assert done[-1] == (200, "dfs-write")


async def test_put_waits_while_more_than_the_limit_is_queued() -> None:
    behind = WriteBehind(limit=100)
    gate = threading.Event()
    ran: list[str] = []

    def held() -> None:  # the thread holds this one until the gate opens
        assert gate.wait(DEADLINE)
        ran.append("held")

    await behind.put(held, 60)
    await behind.put(lambda: ran.append("second"), 40)  # 100 queued: not over, no wait
    third = asyncio.create_task(behind.put(lambda: ran.append("third"), 1))
    # a put that does not wait has no suspension point, so it would be done after the
    # first step; several loop passes later it still waits for the held write
    for _ in range(20):
        await asyncio.sleep(0)
    assert not third.done()
    assert ran == []
    gate.set()
    await asyncio.wait_for(third, DEADLINE)
    assert ran[0] == "held"  # the third put returned only once the held write was done
    await behind.finish()
    assert ran == ["held", "second", "third"]


async def test_a_failed_write_fails_the_next_put_and_finish_and_skips_the_rest() -> None:
    behind = WriteBehind(limit=1 << 20)
    ran: list[int] = []

    def fail() -> None:
        raise OSError(28, "No space left on device")

    await behind.put(fail, 1)
    await behind.put(lambda: ran.append(1), 1)
    with pytest.raises(OSError, match="No space"):
        await behind.finish()
    assert ran == []
    with pytest.raises(OSError, match="No space"):
        await behind.put(lambda: ran.append(2), 1)


async def test_stop_runs_what_is_queued_and_returns_once_the_thread_is_gone() -> None:
    behind = WriteBehind(limit=1 << 20)
    gate = threading.Event()
    writer: list[threading.Thread] = []
    ran: list[int] = []

    def gated() -> None:
        writer.append(threading.current_thread())
        gate.wait(DEADLINE)

    await behind.put(gated, 1)
    for n in range(5):
        await behind.put(lambda n=n: ran.append(n), 1)
    deadline = time.monotonic() + DEADLINE
    while not writer:  # the gated write has begun
        assert time.monotonic() < deadline
        await asyncio.sleep(0)
    stopping = asyncio.create_task(asyncio.to_thread(behind.stop))
    gate.set()
    await asyncio.wait_for(stopping, DEADLINE)
    assert ran == [0, 1, 2, 3, 4]  # queued before the stop: written (an interrupted
    assert len(writer) == 1  # download keeps them for its resume)
    assert not writer[0].is_alive()


async def test_a_download_whose_write_fails_raises_it_at_fsync_and_keeps_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``PartFile`` hands its writes to a ``WriteBehind``: a failed write (a full disk) fails
    the download before its commit, and abandoning it leaves no temp file and no thread."""

    def full(fd: int, data: object, offset: int) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(part_file, "pwrite_all", full)
    target = tmp_path / "out.bin"
    part = part_file.PartFile(target, "f1", resume=False)
    await part.open()
    await part.write(0, [b"x" * 1000])
    await part.settle()  # never raises: it runs in a finally
    with pytest.raises(OSError, match="No space"):
        await part.fsync()
    part.abandon()
    assert os.listdir(tmp_path) == []
    assert not any(t.name == "dfs-write" and t.is_alive() for t in threading.enumerate())
