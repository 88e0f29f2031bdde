"""Writing many small downloaded files: unnamed files, one sync, links; in groups.

A restore of thousands of small files must not spend its time in per-file Python overhead
(a worker-thread hop for each step of each file) or in one fsync per file (a journal commit
each: ~4 ms here). So the files whose verified chunks have all arrived are written in
groups (``GROUP_FILES`` files or ``GROUP_BYTES``), each group on one worker thread,
``WRITERS`` groups at once (creating a file is kernel work that releases the GIL):

1. every file of the group is created *unnamed* in its target's directory (``O_TMPFILE``:
   no directory entry until it is linked, so nothing half-written is ever visible, and a run
   killed mid-group leaves nothing behind: the kernel frees an unnamed file when its
   descriptor closes), its bytes in one ``write`` (``writev`` for several chunks), its mode
   and mtime set on the descriptor (``restore_attrs``'s rules); the descriptor stays open
   until the commit. Where ``O_TMPFILE`` is not supported (or the process may not hold that
   many descriptors open, ``UNNAMED_FDS``), a named temp file beside the target instead
   (``.NAME.TAG.dfs-part``, a long NAME cut short: ``file_names.temp_name``; with resume
   the tag is the file id, so a run killed mid-group leaves files the next run reuses,
   never litter that grows; opened as ``dfs.client.resume.open_own`` does), closed at once;
2. not per group but per commit (a ``GroupWriter`` commits every ``COMMIT_FILES`` files or
   ``COMMIT_BYTES`` written, and when it closes: each sync is a journal commit, and the
   whole file system's dirty pages), one ``syncfs`` makes all the files written since
   the last commit durable at once (``fsync`` per file where ``syncfs`` is missing);
3. each of them is then given its target's name: an unnamed file is linked there
   (``linkat`` of ``/proc/self/fd/N``, which fails if anything is at the target: Conflict,
   unless ``overwrite``: then linked to a temp name and renamed over it), a named temp file
   renamed there while its name is still the file written (a file put at that name since
   is refused, IntegrityError, as ``PartFile.commit`` refuses one; without ``overwrite``:
   ``renameat2`` with ``RENAME_NOREPLACE``, or a link where that is missing, so a file that
   appeared at the target meanwhile is never replaced), and at ``close`` one more
   ``syncfs`` makes the directory entries durable.

Per file that is about five system calls (create, write, utime, link, close; ``fchmod`` only
where the stored mode is not the one created: a named temp file is made 0600, so always).

So a target only ever holds nothing, its old file, or the whole verified new file. The
whole-file sha256 is checked before the file is written (a one-chunk file's is its
chunk's, already verified). Standard library (and ``dfs.client.resume``) only.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import hashlib
import logging
import math
import os
import resource
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dfs.client.file_names import (
    PROC_FD,
    Overwrite,
    fsync_each,
    has_syncfs,
    link_or_replace,
    link_unnamed,
    still_names,
    sync_dirs,
    syncfs_each,
    temp_name,
    unlink_quietly,
)
from dfs.client.resume import open_own
from dfs.client.target_dirs import TargetDirs
from dfs.errors import Conflict, IntegrityError
from dfs.fsutil import fsync_file

log = logging.getLogger("dfs.client")

GROUP_FILES = 256
GROUP_BYTES = 8 * 1024 * 1024
SMALL_GROUP_BYTES = 32 * 1024 * 1024  # bytes of small files read together at most


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


UMASK = _umask()  # read once, at import, before any thread could create a file


UNNAMED = hasattr(os, "O_TMPFILE") and os.path.isdir(PROC_FD)
"""Whether small files are created unnamed (``O_TMPFILE``) and linked at their commit;
turned off for the rest of the process the first time a file system refuses it."""
_NO_TMPFILE = frozenset({errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL})
"""How ``open`` refuses ``O_TMPFILE``: a file system without it, a kernel that predates it."""
UNNAMED_FDS = 8192
"""Descriptors a process needs (its RLIMIT_NOFILE) for a ``GroupWriter`` to keep unnamed
files open until their commit: up to ``COMMIT_FILES`` plus a group wait for a commit while
as many are being committed and ``WRITERS`` groups written, with room for the rest
(``GroupWriter.drain`` holds its readers back while more commits than that wait)."""


@dataclass(eq=False)
class SmallFile:
    """One file of a batched restore: its plan, its target and its chunks as they arrive."""

    plan: dict[str, Any]
    target: Path
    parts: list[bytes | None] = field(default_factory=list)
    missing: int = 0
    started: float = field(default_factory=time.monotonic)
    failovers: int = 0  # sources that failed one of its chunks before a good copy came
    # its named temp file as written (``_place`` renames that name only while it is this)
    written: os.stat_result | None = field(default=None, repr=False)
    # its directory, open (``dfs.client.target_dirs``; the commit's ``Pending`` owns it)
    dir_fd: int = field(default=-1, repr=False)

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


IOV_MAX = 1024  # Linux's limit on the buffers of one writev


def _write_all(fd: int, parts: list[bytes]) -> None:
    """A file's chunks in one system call as a rule (``writev``: no joined copy)."""
    if len(parts) == 1:
        data = parts[0]
        written = os.write(fd, data)
    elif len(parts) <= IOV_MAX:
        written = os.writev(fd, parts)
        if written == sum(map(len, parts)):
            return
        data = b"".join(parts)
    else:
        data, written = b"".join(parts), 0
    view = memoryview(data)[written:]
    while view:
        view = view[os.write(fd, view) :]


CREATED_MODE = 0o644 & ~UMASK
"""The mode of a temp file this process created (0o644 less the umask)."""


def final_mode(plan: Mapping[str, Any]) -> int:
    """The mode a downloaded file ends with: the stored one (``plan``'s) less the umask and
    the set-id and sticky bits, else 0o644 less the umask (``CREATED_MODE``)."""
    mode = plan.get("mode")
    return (int(mode) & 0o777 & ~UMASK) if mode is not None else CREATED_MODE


def mtime_ns(seconds: float) -> int:
    """A time in seconds as nanoseconds, as ``os.utime`` takes a float: whole seconds and
    the fraction apart (``round(seconds * 1e9)`` is off by up to ~200 ns at today's
    times, so 1600000000.25 came back as 1600000000.2499998)."""
    whole = math.floor(seconds)
    return whole * 1_000_000_000 + round((seconds - whole) * 1e9)


def final_attrs(fd: int, plan: Mapping[str, Any], created: bool = False) -> None:
    """Like ``rsync -t`` without ``-p``, on the descriptor of the file written for a target
    (before it has the target's name: never through a link planted there): the stored
    mtime, and the stored permission bits less the process umask and without set-uid,
    set-gid or sticky (a downloaded file must not become set-uid), else 0644 less the umask
    (``final_mode``; not set again when the file was created with it: ``created``)."""
    mode = final_mode(plan)
    if not created or mode != CREATED_MODE:
        os.fchmod(fd, mode)
    if plan.get("mtime") is not None:
        os.utime(fd, ns=(time.time_ns(), mtime_ns(float(plan["mtime"]))))


_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
_UNNAMED_FILE = os.O_WRONLY | getattr(os, "O_TMPFILE", 0)


def _open_temp(
    f: SmallFile, parent: int, name: str, resume: bool, unnamed: bool
) -> tuple[str | None, int, bool]:
    """A file for the target ``name`` in the directory open at ``parent``: with
    ``unnamed``, an unnamed one there (name None), else a temp file beside the target (its
    name), never opened through a link planted at its name; and whether it was created here
    with ``CREATED_MODE`` (an unnamed one: no one can open it before it is linked). A named
    one is made 0600 (else: reused, emptied), so that a private file's bytes are never open
    to others while written.
    With ``resume`` a temp file's name is fixed, and a file an interrupted run left there is
    reused (when it is our own plain file), so interrupted restores leave no growing litter.
    Strings, not pathlib: this runs once per restored file, holding the GIL the event loop
    needs (pathlib's parsing was about a fifth of the writer thread's CPU)."""
    global UNNAMED
    if unnamed and UNNAMED:
        try:
            return None, os.open(".", _UNNAMED_FILE, 0o644, dir_fd=parent), True
        except OSError as exc:
            if exc.errno not in _NO_TMPFILE:
                raise
            UNNAMED = False  # named temp files from now on (safe everywhere)
            log.info("%s: no unnamed files (O_TMPFILE); temp names instead", f.target.parent)
    if resume:
        tmp = temp_name(name, str(f.plan["file_id"]))
        try:  # the usual case first: nothing there (one system call)
            return tmp, os.open(tmp, _CREATE, 0o600, dir_fd=parent), False
        except FileExistsError:
            pass
        fd = open_own(tmp, os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=parent)
        if fd is not None:
            os.ftruncate(fd, 0)
            os.fchmod(fd, 0o600)  # one an older client made readable to all
            return tmp, fd, False
    tmp = temp_name(name, secrets.token_hex(8))
    return tmp, os.open(tmp, _CREATE, 0o600, dir_fd=parent), False


Temp = tuple[SmallFile, str | None, int]
"""A file written for a target: a temp file's name (in ``SmallFile.dir_fd``) and -1
(closed), or None and the open descriptor of an unnamed file."""


def _discard(temp: Temp) -> None:
    """Drop a file written for a target (an unnamed one vanishes when it is closed)."""
    f, tmp, fd = temp
    if tmp is None:
        os.close(fd)
    else:
        unlink_quietly(tmp, f.dir_fd)


@dataclass
class Pending:
    """Files written, not yet made durable and given their names (``commit``), and the
    directories they go in, open (``dfs.client.target_dirs``; closed by ``close_dirs``)."""

    temps: list[Temp] = field(default_factory=list)
    devices: dict[int, int] = field(default_factory=dict)  # a directory's fd per file system
    dirs: dict[str, int] = field(default_factory=dict)  # each directory of a temp file, open
    fds: list[int] = field(default_factory=list)  # every directory descriptor held
    size: int = 0

    def merge(self, other: Pending) -> None:
        """Take over ``other``'s temp files (a group written on its own)."""
        self.temps += other.temps
        self.devices = {**other.devices, **self.devices}  # one open directory per device
        self.dirs = {**other.dirs, **self.dirs}
        self.fds += other.fds
        self.size += other.size

    def open_dir(self, dirs: TargetDirs, parent: str) -> int:
        """The directory ``parent``, open (once per ``Pending``)."""
        fd = self.dirs.get(parent)
        if fd is None:
            fd = dirs.open(parent)
            self.fds.append(fd)
            self.dirs[parent] = fd
            self.devices.setdefault(os.fstat(fd).st_dev, fd)
        return fd

    def close_dirs(self, held: int = 0) -> None:
        """Close the directories opened after the first ``held``."""
        fds, self.fds = set(self.fds[held:]), self.fds[:held]
        self.dirs = {p: fd for p, fd in self.dirs.items() if fd not in fds}
        self.devices = {dev: fd for dev, fd in self.devices.items() if fd not in fds}
        for fd in fds:
            os.close(fd)


def write_temps(
    group: list[SmallFile],
    resume: bool,
    into: Pending,
    unnamed: bool | None = None,
    dirs: TargetDirs | None = None,
) -> None:
    """Write each file of a group, with its attributes, unnamed in its target's directory
    (``unnamed``, by default ``UNNAMED``; kept open for ``commit``) or to a temp file beside
    the target (blocking); the directories opened by ``dirs`` (by default by path). Durable
    only once ``commit`` has synced them, except where ``syncfs`` is missing: then each is
    fsync'ed here, while its descriptor is open. On an error the group's files are dropped
    (those ``into`` held before are kept)."""
    unnamed = UNNAMED if unnamed is None else unnamed
    dirs = dirs or TargetDirs(None)
    temps: list[Temp] = []
    held = len(into.fds)
    try:
        for f in group:
            parts = f.check()
            parent, name = os.path.split(str(f.target))
            f.dir_fd = into.open_dir(dirs, parent or ".")  # "": in the working directory
            tmp, fd, created = _open_temp(f, f.dir_fd, name, resume, unnamed)
            temps.append((f, tmp, fd))
            f.written = None if tmp is None else os.fstat(fd)
            if parts:
                _write_all(fd, parts)
            final_attrs(fd, f.plan, created)
        if not has_syncfs():
            fsync_each(fd for _f, _tmp, fd in temps)
    except BaseException:
        for temp in temps:
            if temp[1] is not None:
                os.close(temp[2])
            _discard(temp)
        into.close_dirs(held)
        raise
    for i, (f, tmp, fd) in enumerate(temps):
        if tmp is not None:  # a temp file has its name: closed now
            os.close(fd)
            temps[i] = (f, tmp, -1)
    into.temps += temps
    into.size += sum(f.size for f in group)


def commit(pending: Pending, overwrite: Overwrite) -> list[SmallFile]:
    """Make every pending file durable at once (one ``syncfs`` per file system), then give
    each its target's name (``_place``; its directories closed then). Returns the files not
    placed because something else took their target meanwhile (``overwrite`` off); their
    files are gone, as are all of them when this fails. Directory entries: ``sync_dirs``."""
    done = 0
    proc = -1
    try:
        if has_syncfs() and not syncfs_each(pending.devices.values()):
            for f, tmp, fd in pending.temps:  # syncfs failed: each file, as where missing
                if tmp is None:
                    os.fsync(fd)
                else:
                    fsync_file(tmp, f.dir_fd)
        if any(tmp is None for _f, tmp, _fd in pending.temps):
            proc = os.open(PROC_FD, os.O_RDONLY | os.O_DIRECTORY)
        taken: list[SmallFile] = []
        for temp in pending.temps:
            done += 1  # _place drops it, whatever happens
            if not _place(proc, temp, overwrite):
                taken.append(temp[0])
    finally:
        for temp in pending.temps[done:]:
            _discard(temp)
        if proc >= 0:
            os.close(proc)
        pending.close_dirs()
    return taken


def _place(proc: int, temp: Temp, overwrite: Overwrite) -> bool:
    """Give a written file its target's name (False: the target was taken, ``overwrite``
    off); the file is dropped, placed or not. An unnamed one is linked through its
    descriptor in ``proc`` (``/proc/self/fd``); a named one is renamed only while its name
    is still the file written (IntegrityError: one put there since, left alone, holds bytes
    no hash checked)."""
    f, tmp, fd = temp
    target, name = str(f.target), f.target.name
    if tmp is not None:
        if f.written is None or not still_names(tmp, f.written, f.dir_fd):
            raise IntegrityError(f"{tmp} was replaced while {target} was written into it")
        try:
            link_or_replace(tmp, name, overwrite, f.dir_fd, target)
        except FileExistsError:
            unlink_quietly(tmp, f.dir_fd)
            return False
        except BaseException:
            unlink_quietly(tmp, f.dir_fd)
            raise
        return True
    try:
        link_unnamed(proc, fd, name, overwrite, f.dir_fd, target)
    except FileExistsError:
        return False
    finally:
        os.close(fd)
    return True


def write_group(group: list[SmallFile], overwrite: Overwrite, resume: bool) -> list[SmallFile]:
    """Write, sync and rename a group of complete files (blocking: one worker thread).
    Returns the files not renamed into place because something else took their target
    meanwhile (``overwrite`` off); their temp files are gone."""
    pending = Pending()
    write_temps(group, resume, pending)
    dirs = list(pending.dirs)
    taken = commit(pending, overwrite)
    sync_dirs(dirs)
    return taken


COMMIT_FILES = 2048
COMMIT_DIRS = 256  # folders held open by a commit's files, at most (one descriptor each)
COMMIT_BYTES = 64 * 1024 * 1024
"""A ``GroupWriter`` syncs and renames what it wrote once this many files or bytes wait
(and at ``close``): each sync is a journal commit, and one per 256 files was most of the
writer thread's time in a restore of thousands of small files."""
WRITERS = 2
"""Groups a ``GroupWriter`` writes at once, each on a worker thread. Creating, writing and
renaming a small file is mostly kernel work that releases the GIL; with one thread writing
group after group, that thread was what a restore of thousands of small files waited for
(its readers blocked in ``drain`` while the event loop sat idle)."""


def _descriptors(n: int) -> bool:
    """Whether this process may open ``n`` descriptors (RLIMIT_NOFILE), its soft limit
    raised toward the hard one when it is lower (as servers holding many files open do)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= n:
        return True
    want = n if hard == resource.RLIM_INFINITY else min(n, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ValueError, OSError):
        return False
    return want >= n


class GroupWriter:
    """Hands complete files to ``write_temps`` in groups, ``WRITERS`` groups at a time;
    syncs and renames what was written (``commit``, one commit at a time, while the next
    groups are written) every ``COMMIT_FILES`` files or ``COMMIT_BYTES`` and at ``close``,
    then syncs the directories once."""

    def __init__(
        self,
        overwrite: Overwrite,
        resume: bool,
        written: Callable[[SmallFile], None],
        root: str | Path | None = None,
    ) -> None:
        self.overwrite = overwrite
        self.resume = resume
        self.target_dirs = TargetDirs(root)  # the targets' directories, walked from root
        self.written = written  # called on the event loop for each file renamed into place
        self.unnamed = _descriptors(UNNAMED_FDS) and UNNAMED  # folders' descriptors too, either way
        self.conflicts: list[Conflict] = []
        self._ready: list[SmallFile] = []
        self._bytes = 0
        self._slots: asyncio.Semaphore | None = None  # made on the loop that uses it
        self._queued: collections.deque[tuple[asyncio.Task[None], int]] = collections.deque()
        self._queued_bytes = 0
        self._commits: list[asyncio.Task[None]] = []  # each waits for the one before
        self._pending = Pending()
        self._dirs: set[str] = set()

    def add(self, f: SmallFile) -> None:
        self._ready.append(f)
        self._bytes += f.size
        if len(self._ready) >= GROUP_FILES or self._bytes >= GROUP_BYTES:
            self.flush()

    def flush(self) -> None:
        if self._ready:
            group, self._ready, size = self._ready, [], self._bytes
            self._bytes = 0
            self._queued.append((asyncio.create_task(self._write(group)), size))
            self._queued_bytes += size

    def _reap(self) -> None:
        """Forget the finished groups and commits; raise what failed one of them."""
        for task, size in [q for q in self._queued if q[0].done()]:
            self._queued.remove((task, size))
            self._queued_bytes -= size
            task.result()  # a group that failed fails the restore now, not at close
        for task in [t for t in self._commits if t.done()]:
            self._commits.remove(task)
            task.result()

    async def drain(self, limit: int) -> None:
        """Wait until at most ``limit`` bytes of the files handed over are still in memory
        (not yet in their temp files), and at most one commit waits behind the one running:
        the readers feeding a writer that lags wait here, so a restore's memory and open
        descriptors stay bounded without waiting for every write or commit."""
        self.flush()
        self._reap()
        while self._queued_bytes > limit:
            await asyncio.wait([t for t, _s in self._queued], return_when=asyncio.FIRST_COMPLETED)
            self._reap()
        await self._room_for_files()
        self._reap()

    async def _room_for_files(self) -> None:
        """Wait while a commit waits behind the one running. Each holds the files it names
        open until it is done (unnamed ones: up to ``COMMIT_FILES`` descriptors); behind a
        slow sync, commits queued without bound ran the process out of descriptors."""
        while len(waiting := [t for t in self._commits if not t.done()]) > 1:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)

    async def _write(self, group: list[SmallFile]) -> None:
        if self._slots is None:
            self._slots = asyncio.Semaphore(WRITERS)
        written = Pending()
        async with self._slots:
            # in the slot: groups let through at once would each open their files
            await self._room_for_files()
            await asyncio.to_thread(
                write_temps, group, self.resume, written, self.unnamed, self.target_dirs
            )
        for f in group:
            f.parts = []  # on disk now: the bytes need not wait in memory for the commit
        self._pending.merge(written)
        p = self._pending
        if len(p.temps) >= COMMIT_FILES or len(p.fds) >= COMMIT_DIRS or p.size >= COMMIT_BYTES:
            pending, self._pending = p, Pending()
            before = self._commits[-1] if self._commits else None
            self._commits.append(asyncio.create_task(self._commit(before, pending)))

    async def _commit(self, before: asyncio.Task[None] | None, pending: Pending) -> None:
        if before is not None:  # one commit at a time; its failure is raised by _reap
            await asyncio.wait([before])
        self._dirs |= pending.dirs.keys()
        self._reported(await asyncio.to_thread(self._commit_now, pending))

    def _commit_now(self, pending: Pending) -> tuple[list[SmallFile], list[SmallFile]]:
        """(renamed, taken) of ``pending`` (blocking)."""
        taken = commit(pending, self.overwrite)
        return [f for f, _tmp, _fd in pending.temps if f not in taken], taken

    def _finish(self) -> tuple[list[SmallFile], list[SmallFile]]:
        pending, self._pending = self._pending, Pending()
        self._dirs |= pending.dirs.keys()
        try:
            return self._commit_now(pending)
        finally:
            sync_dirs(self._dirs)

    def _reported(self, outcome: tuple[list[SmallFile], list[SmallFile]]) -> None:
        renamed, taken = outcome
        for f in taken:
            self.conflicts.append(Conflict(f"{f.target} changed during the download; not replaced"))
        for f in renamed:
            self.written(f)

    async def _settle(self) -> list[BaseException]:
        """Wait for every group and commit handed over; what failed them."""
        writes = [t for t, _s in self._queued]
        self._queued.clear()
        self._queued_bytes = 0
        got = await asyncio.gather(*writes, return_exceptions=True)
        commits, self._commits = self._commits, []  # the writes above may have added some
        got += await asyncio.gather(*commits, return_exceptions=True)
        return [r for r in got if isinstance(r, BaseException)]

    async def close(self) -> None:
        """Write what is left, wait for every group and commit; the first failure, else the
        first Conflict. Files of the groups that did not fail are still committed (they are
        verified)."""
        self.flush()
        failed = await self._settle()
        self._reported(await asyncio.to_thread(self._finish))
        if failed:
            raise failed[0]
        if self.conflicts:
            raise self.conflicts[0]

    async def abandon(self) -> None:
        """After a failure: the groups already handed over finish and are committed;
        nothing more is written."""
        self._ready = []
        await self._settle()
        try:
            self._reported(await asyncio.to_thread(self._finish))
        except OSError as exc:  # the failure being handled is the one to report
            log.warning("could not commit the files written before a failure: %s", exc)


Small = tuple[int, dict[str, Any], Path]  # a small file of a batch: its place, plan, target


def small_groups(small: Sequence[Small]) -> list[list[Small]]:
    """Small files in groups of at most SMALL_GROUP_BYTES, read together (each group's
    chunks in memory at once) and handed to a ``GroupWriter``."""
    groups: list[list[Small]] = []
    group: list[Small] = []
    size = 0
    for item in small:
        n = int(item[1]["size"])
        if group and size + n > SMALL_GROUP_BYTES:
            groups.append(group)
            group, size = [], 0
        group.append(item)
        size += n
    if group:
        groups.append(group)
    return groups
