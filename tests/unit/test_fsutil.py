"""``dfs.fsutil``: ``write_all`` (and ``pwrite_all`` at an offset) writes every buffer whole,
in order, whatever ``writev`` takes per call; ``make_dirs`` makes each directory it creates durable in its parent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dfs import fsutil
from tests.fsync_trace import record_fsyncs


def _write(path: Path, buffers: list[bytes | bytearray | memoryview]) -> bytes:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        assert fsutil.write_all(fd, buffers) == sum(len(b) for b in buffers)
    finally:
        os.close(fd)
    return path.read_bytes()


def test_write_all_writes_every_buffer_in_order(tmp_path: Path) -> None:
    buffers: list[bytes | bytearray | memoryview] = [
        b"head",
        bytearray(b"-mid-"),
        memoryview(b"xxtailxx")[2:6],
        b"",
        b"!",
    ]
    assert _write(tmp_path / "f", buffers) == b"head-mid-tail!"
    assert _write(tmp_path / "g", []) == b""


def test_write_all_goes_on_after_partial_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writev that takes only some bytes (here at most 5 a call, cutting buffers in the
    middle) is followed by more, from where it stopped."""
    real = os.writev
    calls: list[int] = []

    def short(fd: int, buffers: list[memoryview]) -> int:
        calls.append(len(buffers))
        view = memoryview(b"".join(bytes(b) for b in buffers))[:5]
        return real(fd, [view])

    monkeypatch.setattr(os, "writev", short)
    parts = [b"abc", b"defghij", b"", b"klmnopqrstu", b"v"]
    assert _write(tmp_path / "f", list(parts)) == b"".join(parts)
    assert len(calls) == 5  # 22 bytes, 5 at a time


def test_write_all_splits_at_the_iovec_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.writev
    sizes: list[int] = []

    def counted(fd: int, buffers: list[memoryview]) -> int:
        sizes.append(len(buffers))
        return real(fd, buffers)

    monkeypatch.setattr(os, "writev", counted)
    monkeypatch.setattr(fsutil, "_IOV_MAX", 16)
    parts = [bytes([n % 256]) * (n % 7 + 1) for n in range(40)]
    assert _write(tmp_path / "f", list(parts)) == b"".join(parts)
    assert sizes == [16, 16, 8]


def test_pwrite_all_writes_at_its_offset_after_partial_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``pwrite_all`` puts the buffers at the offset, each short ``pwritev`` followed by
    another from where it stopped, and leaves the bytes around them as they were."""
    real = os.pwritev
    offsets: list[int] = []

    def short(fd: int, buffers: list[memoryview], offset: int) -> int:
        offsets.append(offset)
        view = memoryview(b"".join(bytes(b) for b in buffers))[:4]
        return real(fd, [view], offset)

    monkeypatch.setattr(os, "pwritev", short)
    path = tmp_path / "f"
    path.write_bytes(b"." * 20)
    parts = [b"abc", memoryview(b"xdefx")[1:4], b"", b"ghij"]
    fd = os.open(path, os.O_WRONLY)
    try:
        assert fsutil.pwrite_all(fd, parts, 5) == 10
        assert os.lseek(fd, 0, os.SEEK_CUR) == 0  # the file position did not move
    finally:
        os.close(fd)
    assert path.read_bytes() == b"....." + b"abcdefghij" + b"....."
    assert offsets == [5, 9, 13]


def test_make_dirs_fsyncs_the_parent_of_each_directory_it_creates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced = record_fsyncs(monkeypatch)
    base = tmp_path.resolve()
    fsutil.make_dirs(str(base / "a" / "b" / "c"))
    assert (base / "a" / "b" / "c").is_dir()
    assert synced == [str(base), str(base / "a"), str(base / "a" / "b")]
    synced.clear()
    fsutil.make_dirs(str(base / "a" / "b" / "c"))  # there already: nothing to make durable
    fsutil.make_dirs(str(base / "a" / "d"))
    assert synced == [str(base / "a")]
