"""Durable local-file steps shared by the node's chunk store and the client's downloads.

Standard library only (layer 0).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path

Buffer = bytes | bytearray | memoryview

_IOV_MAX = 1024
"""Buffers per ``writev`` call: POSIX guarantees at least 16, Linux takes 1024 (the value of
``SC_IOV_MAX`` where it is known; more makes the call fail with EINVAL)."""
if hasattr(os, "sysconf") and "SC_IOV_MAX" in os.sysconf_names:
    _IOV_MAX = max(16, min(_IOV_MAX, os.sysconf("SC_IOV_MAX")))


def fsync_dir(path: Path | str) -> None:
    """Make a rename or link inside ``path`` durable: fsync the directory itself."""
    _fsync_opened(path, os.O_RDONLY | os.O_DIRECTORY)


def fsync_file(path: Path | str, dir_fd: int | None = None) -> None:
    """Make a closed file's bytes durable (a symlink in its place is refused)."""
    _fsync_opened(path, os.O_RDONLY | os.O_NOFOLLOW, dir_fd)


def _fsync_opened(path: Path | str, flags: int, dir_fd: int | None = None) -> None:
    fd = os.open(path, flags, dir_fd=dir_fd)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, text: str) -> None:
    """``path`` holds ``text`` (and a newline) durably: temp file, fsync, rename, fsync dir;
    a folder it makes for it is made durable in its parent too (``make_dirs``: a node's
    chunk folder wiped while it runs is made again here, by its disk identity)."""
    make_dirs(os.fspath(path.parent))
    tmp = path.with_name(f"{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, f"{text}\n".encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def make_dirs(path: str) -> None:
    """Create ``path`` and any missing parents, durably: each directory created is made
    durable in its parent (the parent is fsync'd once it holds the new entry), so a crash
    cannot take away a directory, and the files already made durable inside it, that a
    caller has acknowledged. A directory that exists already costs nothing more."""
    missing: list[str] = []
    at = os.path.abspath(path)
    while not os.path.isdir(at):
        missing.append(at)
        parent = os.path.dirname(at)
        if parent == at:
            break
        at = parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory)
        except FileExistsError:
            if not os.path.isdir(directory):
                raise
            # another thread made it: its entry may not be durable yet, so fsync anyway
        fsync_dir(os.path.dirname(directory))


def write_all(fd: int, buffers: Sequence[Buffer]) -> int:
    """Write every buffer, in order, to ``fd`` with as few ``writev`` calls as the kernel
    allows (one, unless there are more buffers than the system's iovec limit or a call
    writes only part), without joining them first; returns the bytes written (all)."""
    return _write_vectored(lambda views, _at: os.writev(fd, views), buffers, 0)


def pwrite_all(fd: int, buffers: Sequence[Buffer], offset: int) -> int:
    """``write_all`` at ``offset`` (``pwritev``: the file position is neither used nor
    moved, so writers of other ranges of the file need no lock)."""
    return _write_vectored(lambda views, at: os.pwritev(fd, views, at), buffers, offset)


def _write_vectored(
    write: Callable[[Sequence[Buffer], int], int], buffers: Sequence[Buffer], offset: int
) -> int:
    """``write(buffers, offset)`` again and again (at the offset reached so far) until every
    byte is written: one call in the usual case."""
    total = sum(len(b) for b in buffers)
    done = write(buffers, offset) if 0 < len(buffers) <= _IOV_MAX else 0
    if done == total:
        return total  # the usual case: one call wrote it all
    at = offset + done
    views = [v for v in (memoryview(b).cast("B") for b in buffers) if len(v)]
    start = 0
    while True:
        # skip the buffers written whole; keep the unwritten rest of a partial one
        while start < len(views) and done >= len(views[start]):
            done -= len(views[start])
            start += 1
        if start == len(views):
            return total
        if done:
            views[start] = views[start][done:]
        done = write(views[start : start + _IOV_MAX], at)
        at += done
