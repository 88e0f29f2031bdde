"""Writing many small downloaded files: temp names, one sync, renames; a group at a time.

A restore of thousands of small files must not spend its time in per-file Python overhead
(a worker-thread hop for each step of each file) or in one fsync per file (a journal commit
each: ~4 ms here). So the files whose verified chunks have all arrived are written in
groups (``GROUP_FILES`` files or ``GROUP_BYTES``), each group on one worker thread, one
group after the other:

1. every file of the group goes to a temp file beside its target (``.NAME.TAG.dfs-part``:
   with resume the tag is the file id, so a run killed mid-group leaves files the next run
   reuses, never litter that grows; opened as ``dfs.client.resume.open_own`` does), its
   bytes in one ``write``, its mode and mtime set on the descriptor (``restore_attrs``'s
   rules);
2. one ``syncfs`` makes all of them durable at once (``fsync`` per file where ``syncfs`` is
   missing);
3. each temp file is renamed over its target (without ``overwrite``: ``renameat2`` with
   ``RENAME_NOREPLACE``, or a link where that is missing, so a file that appeared there
   meanwhile is never replaced: Conflict), then one more ``syncfs`` for the directory
   entries.

Per file that is about five system calls (create, write, utime, close, rename; ``fchmod``
only when the stored mode differs from the one the file was created with).

So a target only ever holds nothing, its old file, or the whole verified new file. The
whole-file sha256 is checked before the temp file is written (a one-chunk file's is its
chunk's, already verified). Standard library (and ``dfs.client.resume``) only.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import hashlib
import os
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dfs.client.resume import open_own
from dfs.errors import Conflict, IntegrityError

GROUP_FILES = 256
GROUP_BYTES = 8 * 1024 * 1024


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


UMASK = _umask()  # read once, at import, before any thread could create a file


def _libc_syncfs() -> Callable[[int], int] | None:
    # the symbols the process already has (libc's among them): ctypes.util.find_library
    # would run ldconfig or a compiler at every start
    try:
        fn: Callable[[int], int] = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    return fn


_SYNCFS = _libc_syncfs()
_AT_FDCWD = -100
_RENAME_NOREPLACE = 1


def _libc_renameat2() -> Callable[[int, bytes, int, bytes, int], int] | None:
    try:
        fn: Callable[[int, bytes, int, bytes, int], int] = ctypes.CDLL(
            None, use_errno=True
        ).renameat2
    except (OSError, AttributeError):
        return None
    return fn


_RENAMEAT2 = _libc_renameat2()


@dataclass(eq=False)
class SmallFile:
    """One file of a batched restore: its plan, its target and its chunks as they arrive."""

    plan: dict[str, Any]
    target: Path
    parts: list[bytes | None] = field(default_factory=list)
    missing: int = 0
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.parts = [None] * len(self.plan["chunks"])
        self.missing = len(self.parts)

    @property
    def size(self) -> int:
        return int(self.plan["size"])

    def check(self) -> list[bytes]:
        """The file's bytes in order, once its whole-file sha256 is checked."""
        parts = [p for p in self.parts if p is not None]
        chunks = self.plan["chunks"]
        whole = str(self.plan["sha256"])
        if len(chunks) == 1 and int(chunks[0]["size"]) == self.size:
            ok = chunks[0]["sha256"] == whole  # its bytes were verified against that id
        else:
            h = hashlib.sha256()
            for p in parts:
                h.update(p)
            ok = h.hexdigest() == whole
        if not ok or sum(map(len, parts)) != self.size:
            raise IntegrityError(
                f"file {self.plan['file_id']}: whole-file sha256 does not match its manifest"
            )
        return parts


def _sync(fds: Iterable[int], devices: Iterable[int] | None = None) -> None:
    """Make everything written through ``fds`` durable: one syncfs per file system.
    ``devices``: the descriptors among ``fds`` that stand for every file system they are
    on (one per directory will do), so that the others are not stat'ed one by one."""
    fds = list(fds)
    if _SYNCFS is None:
        for fd in fds:
            os.fsync(fd)
        return
    seen: set[int] = set()
    for fd in fds if devices is None else devices:
        dev = os.fstat(fd).st_dev
        if dev not in seen:
            seen.add(dev)
            if _SYNCFS(fd) != 0:
                _fsync_each(fds)
                return


def _fsync_each(fds: Iterable[int]) -> None:
    for fd in fds:
        os.fsync(fd)


def _write_all(fd: int, parts: list[bytes]) -> None:
    data = parts[0] if len(parts) == 1 else b"".join(parts)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


CREATED_MODE = 0o644 & ~UMASK
"""The mode of a temp file this process created (0o644 less the umask)."""


def _attrs(fd: int, plan: dict[str, Any], created: bool) -> None:
    """``restore_attrs`` on the descriptor: stored mtime; mode less umask, no set-id bits
    (not set again when the file was just created with it)."""
    if plan.get("mode") is not None:
        mode = int(plan["mode"]) & 0o777 & ~UMASK
        if not created or mode != CREATED_MODE:
            os.fchmod(fd, mode)
    if plan.get("mtime") is not None:
        ns = round(float(plan["mtime"]) * 1e9)
        os.utime(fd, ns=(time.time_ns(), ns))


_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW


def _open_temp(f: SmallFile, resume: bool) -> tuple[Path, int, bool]:
    """A temp file beside the target, never opened through a link planted at its name, and
    whether it was created here (else: reused, emptied).
    With ``resume`` its name is fixed, and a file an interrupted run left there is reused
    (when it is our own plain file), so interrupted restores leave no growing litter."""
    if resume:
        tmp = f.target.parent / f".{f.target.name}.{f.plan['file_id']}.dfs-part"
        try:  # the usual case first: nothing there (one system call)
            return tmp, os.open(tmp, _CREATE, 0o644), True
        except FileExistsError:
            pass
        fd = open_own(tmp, os.O_WRONLY | os.O_CREAT, 0o644)
        if fd is not None:
            os.ftruncate(fd, 0)
            return tmp, fd, False
    tmp = f.target.parent / f".{f.target.name}.{secrets.token_hex(8)}.dfs-part"
    return tmp, os.open(tmp, _CREATE, 0o644), True


def link_or_replace(tmp: Path, target: Path, overwrite: bool) -> None:
    """Rename ``tmp`` over ``target``; without ``overwrite`` link it there instead, so that
    a file already at ``target`` is never replaced (FileExistsError)."""
    if overwrite:
        os.replace(tmp, target)
        return
    if _RENAMEAT2 is not None:  # one atomic call that never replaces (Linux 3.15+)
        if (
            _RENAMEAT2(
                _AT_FDCWD, os.fsencode(tmp), _AT_FDCWD, os.fsencode(target), _RENAME_NOREPLACE
            )
            == 0
        ):
            return
        err = ctypes.get_errno()
        if err == errno.EEXIST:
            raise FileExistsError(errno.EEXIST, os.strerror(err), str(target))
        if err not in (errno.EINVAL, errno.ENOSYS, errno.EPERM, errno.EOPNOTSUPP):
            raise OSError(err, os.strerror(err), str(tmp))
        # a file system without RENAME_NOREPLACE: a link, as below
    try:
        os.link(tmp, target)  # atomic, and fails if anything is at target
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: a rename, checked first
        if os.path.lexists(target):
            raise FileExistsError(target) from None
        os.replace(tmp, target)
        return
    os.unlink(tmp)


def write_group(group: list[SmallFile], overwrite: bool, resume: bool) -> list[SmallFile]:
    """Write, sync and rename a group of complete files (blocking: one worker thread).
    Returns the files not renamed into place because something else took their target
    meanwhile (``overwrite`` off); their temp files are gone."""
    temps: list[tuple[SmallFile, Path]] = []
    fds: list[int] = []
    made: dict[Path, int] = {}  # each directory's first temp file's descriptor
    try:
        for f in group:
            parts = f.check()
            parent = f.target.parent
            if parent not in made:
                parent.mkdir(parents=True, exist_ok=True)
            tmp, fd, created = _open_temp(f, resume)
            temps.append((f, tmp))
            fds.append(fd)
            made.setdefault(parent, fd)
            if parts:
                _write_all(fd, parts)
            _attrs(fd, f.plan, created)
        _sync(fds, made.values())
    except BaseException:
        for _f, tmp in temps:
            tmp.unlink(missing_ok=True)
        raise
    finally:
        for fd in fds:
            os.close(fd)
    return _rename_all(temps, overwrite, set(made))


def _rename_all(
    temps: list[tuple[SmallFile, Path]], overwrite: bool, dirs: set[Path]
) -> list[SmallFile]:
    """Rename each temp file over its target, then make the directory entries durable."""
    taken: list[SmallFile] = []
    done = 0
    try:
        for f, tmp in temps:
            try:
                link_or_replace(tmp, f.target, overwrite)
            except FileExistsError:
                tmp.unlink(missing_ok=True)
                taken.append(f)
            done += 1
    finally:
        for _f, tmp in temps[done:]:
            tmp.unlink(missing_ok=True)
    fds = [os.open(d, os.O_RDONLY | os.O_DIRECTORY) for d in dirs]
    try:
        _sync(fds)
    finally:
        for fd in fds:
            os.close(fd)
    return taken


class GroupWriter:
    """Hands complete files to ``write_group`` in groups, one group at a time, in order."""

    def __init__(self, overwrite: bool, resume: bool, written: Callable[[SmallFile], None]):
        self.overwrite = overwrite
        self.resume = resume
        self.written = written  # called on the event loop for each file renamed into place
        self.conflicts: list[Conflict] = []
        self._ready: list[SmallFile] = []
        self._bytes = 0
        self._last: asyncio.Task[None] | None = None

    def add(self, f: SmallFile) -> None:
        self._ready.append(f)
        self._bytes += f.size
        if len(self._ready) >= GROUP_FILES or self._bytes >= GROUP_BYTES:
            self.flush()

    def flush(self) -> None:
        if self._ready:
            group, self._ready, self._bytes = self._ready, [], 0
            self._last = asyncio.create_task(self._write(self._last, group))

    async def _write(self, before: asyncio.Task[None] | None, group: list[SmallFile]) -> None:
        if before is not None:
            await before
        taken = await asyncio.to_thread(write_group, group, self.overwrite, self.resume)
        for f in taken:
            self.conflicts.append(
                Conflict(f"{f.target} appeared during the download; not replaced")
            )
        for f in group:
            if f not in taken:
                self.written(f)

    async def close(self) -> None:
        """Write what is left and wait for every group; the first Conflict, if any."""
        self.flush()
        if self._last is not None:
            await self._last
        if self.conflicts:
            raise self.conflicts[0]

    async def abandon(self) -> None:
        """After a failure: the groups already handed over finish; nothing more is written."""
        self._ready = []
        if self._last is not None:
            await asyncio.gather(self._last, return_exceptions=True)
