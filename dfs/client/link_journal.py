"""The files a folder upload into a bucket has uploaded and not linked yet, kept on disk while
it runs, so that a run killed halfway leaves nothing behind for good.

``dfs-client upload DIR bucket/prefix/`` uploads each file ``for_object`` (a file of the
caller's that no lookup by content hands out) and links it to its key a batch at a time
(``dfs.client.sync_links``). A client killed between the two (SIGKILL, a crash, a machine
switched off) left those files on the cluster, complete and linked by nothing: kept, and
counted as the tenant's, forever; the same command run again uploads them afresh (their
chunks are stored once) and links the new ones.

So each run writes a journal under the cache directory, ``links/<who>/<pid>-<random>.log``
(``who``: the API and the token, hashed): a line ``+FILE_ID`` for each file as soon as its
plan names it, and ``-FILE_ID`` once its link answered (or the file was deleted). Lines are
appended by single ``write`` calls, so a killed process loses none. The run holds an
exclusive ``flock`` on its journal and removes it when every file it named is done.

The next folder upload to the same API with the same token takes the journals no running
client holds (a lock is free once its process is gone; a journal is locked before it gets
its ``.log`` name), and deletes each file they name as up but not done: complete ones only
(``DELETE /files/{id}`` is refused with 409 for a file some version links by then, which
stays), and none that a running client's journal names open too (a big file's upload it
took over through its resume journal); a pending one is left to its own resume journal or
to the API's collection of pending uploads. Then those journals are removed, unless a file
could not be looked at (the API unreachable: the next run tries again).

It is all best effort and never fails an upload: a cache directory that cannot hold a
journal, or a write that fails, only leaves what a kill would have left before. Uploads
with ``--no-resume`` keep none.

Standard library only.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import secrets
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from dfs.client.resume import cache_dir

log = logging.getLogger("dfs.client")


def journal_folder(api_url: str, token: str | None) -> Path:
    who = hashlib.sha256(f"{api_url.rstrip('/')}\n{token or ''}".encode()).hexdigest()[:32]
    return cache_dir() / "links" / who


class LinkJournal:
    """One run's journal, locked by it while it runs."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self._fd = path, fd
        self._open: set[str] = set()  # named up, not done yet
        self._broken = False  # a write failed: the journal is incomplete

    @classmethod
    def create(cls, folder: Path) -> LinkJournal:
        """A new journal, locked before it is named ``*.log`` (so no other run can take it
        for a dead run's between its creation and its lock)."""
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        name = f"{os.getpid()}-{secrets.token_hex(6)}"
        new = folder / f"{name}.new"
        fd = os.open(new, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            path = new.rename(folder / f"{name}.log")
        except BaseException:
            os.close(fd)
            new.unlink(missing_ok=True)
            raise
        return cls(path, fd)

    def up(self, file_ids: Iterable[str]) -> None:
        """Files the upload made (planned: they may become complete at any moment)."""
        ids = [f for f in file_ids if f not in self._open]
        self._open.update(ids)
        self._write("+", ids)

    def done(self, file_ids: Iterable[str]) -> None:
        """Files linked, or deleted: nothing left for a later run to do."""
        ids = [f for f in file_ids if f in self._open]
        self._open.difference_update(ids)
        self._write("-", ids)

    def _write(self, sign: str, ids: list[str]) -> None:
        """Append lines; a journal that cannot be written (a full disk) is given up, not
        the upload: without a ``+`` line a killed run leaves that file (as with no journal
        at all), and a ``-`` line missing only costs the next run a refused delete."""
        data = memoryview("".join(f"{sign}{f}\n" for f in ids).encode())
        try:
            while data and not self._broken:  # a short write goes on where it stopped
                data = data[os.write(self._fd, data) :]
        except OSError as exc:
            log.warning("link journal %s not written: %s", self.path, exc)
            self._broken = True

    def close(self) -> None:
        """Removed when nothing is left open; else kept (unlocked) for the next run."""
        try:
            if not self._open and not self._broken:
                self.path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("link journal %s not removed: %s", self.path, exc)
        os.close(self._fd)


@dataclass
class Leftovers:
    """Journals of runs that ended with files open, taken (locked) by this run."""

    file_ids: list[str] = field(default_factory=list)
    _taken: list[tuple[Path, int]] = field(default_factory=list)

    def release(self, remove: bool) -> None:
        """Unlock the journals taken, removed first when their files are done (a journal
        that cannot be removed is taken, and found done, again by the next run)."""
        for path, fd in self._taken:
            try:
                if remove:
                    path.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("link journal %s not removed: %s", path, exc)
            finally:
                os.close(fd)
        self._taken = []


def running_ids(folder: Path, left: Leftovers) -> set[str]:
    """The ids open now in the journals of ``folder`` that running clients hold (not those
    ``left`` took)."""
    running: set[str] = set()
    taken = {path for path, _ in left._taken}
    for path in folder.glob("*.log"):
        if path in taken:
            continue
        with contextlib.suppress(OSError):
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            with contextlib.closing(_Fd(fd)):
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except OSError:  # held by its run
                    running.update(open_ids(_read_all(fd).decode(errors="replace")))
    return running


def take_leftovers(folder: Path) -> Leftovers:
    """The files open in the journals of ``folder`` that no running client holds, each
    journal locked until ``Leftovers.release``; not those a running client's journal names
    open too (it resumed a dead run's upload of the same file, and links it next)."""
    out, running = Leftovers(), set[str]()
    try:
        for path in sorted(folder.glob("*.log")):
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            except OSError:  # gone meanwhile, or not a plain file of ours
                continue
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # a folder or a pipe: not a journal
                os.close(fd)
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # its run is still going
                with contextlib.closing(_Fd(fd)):
                    running.update(open_ids(_read_all(fd).decode(errors="replace")))
                continue
            out._taken.append((path, fd))
            out.file_ids += open_ids(_read_all(fd).decode(errors="replace"))
        _sweep_unnamed(folder)
    except BaseException:
        out.release(remove=False)
        raise
    out.file_ids = [f for f in dict.fromkeys(out.file_ids) if f not in running]
    return out


class _Fd:
    def __init__(self, fd: int) -> None:
        self.fd = fd

    def close(self) -> None:
        os.close(self.fd)


UNNAMED_AGE = 60.0
"""Seconds after which a journal never named ``.log`` (its run died between creating and
renaming it: it holds nothing) is removed."""


def _sweep_unnamed(folder: Path) -> None:
    now = time.time()
    for path in folder.glob("*.new"):
        with contextlib.suppress(OSError):
            if now - path.stat().st_mtime > UNNAMED_AGE:
                path.unlink()


def _read_all(fd: int) -> bytes:
    parts = []
    while part := os.read(fd, 1 << 20):
        parts.append(part)
    return b"".join(parts)


def open_ids(text: str) -> list[str]:
    """The ids named ``+`` and not ``-`` (a torn last line is not an id)."""
    opened: dict[str, None] = {}
    for line in text.splitlines()[: None if text.endswith("\n") else -1]:
        if line.startswith("+"):
            opened[line[1:]] = None
        elif line.startswith("-"):
            opened.pop(line[1:], None)
    return list(opened)
