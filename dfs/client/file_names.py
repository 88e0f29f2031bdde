"""Durability and names of restored files: one ``syncfs`` for many files, renames that never
replace a file (``renameat2`` with ``RENAME_NOREPLACE``, or a link), links of unnamed
(``O_TMPFILE``) files to their targets, and the temp names written beside a target
(``temp_name``: bounded, so that any name a file system takes can be restored).
``dfs.client.file_writer`` (groups of small files) and ``dfs.client.download`` (one file)
commit through these. Standard library only; libc's ``syncfs`` and ``renameat2`` through
ctypes, from the symbols the process already has.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import os
import re
import secrets
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

PROC_FD = "/proc/self/fd"
"""Where a descriptor is a path: ``linkat`` of ``PROC_FD/N`` following it names the file."""


def _libc(name: str) -> Callable[..., int] | None:
    """libc's function ``name`` from the symbols the process already has (None if absent):
    ctypes.util.find_library would run ldconfig or a compiler at every start."""
    try:
        fn: Callable[..., int] = getattr(ctypes.CDLL(None, use_errno=True), name)
    except (OSError, AttributeError):
        return None
    return fn


SYNCFS: Callable[[int], int] | None = _libc("syncfs")
_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_RENAMEAT2: Callable[[int, bytes, int, bytes, int], int] | None = _libc("renameat2")


STAND_IN_BYTES = 128
"""A target's name longer than this (in bytes) stands in a temp name by a shorter form: the
temp name adds a tag (a file id: 36 bytes), ``.dfs-part`` and a resume sidecar's ``.done``,
and must stay within NAME_MAX (255 bytes) for every name that is itself within it."""


_TAG = re.compile(r"[0-9A-Za-z-]{1,64}")
"""A tag ``temp_name`` puts in a name as it is (a file id, random hex); any other stands in
a hash of it."""


def temp_name(name: str, tag: str) -> str:
    """The temp file's name for a target named ``name``: ``.NAME.TAG.dfs-part``. A name over
    ``STAND_IN_BYTES`` is cut (at a UTF-8 character's start) and followed by a hash of the
    whole name: stable, so that a resumed download finds its temp file again, and distinct
    for distinct names beside one another (two keys may share a file and a long prefix).
    A tag that is not letters, digits and "-" (a file id is the server's word: one of
    ``x/../../y`` named a file outside the target's folder) stands in its hash: one name
    segment, as stable."""
    if not _TAG.fullmatch(tag):
        tag = hashlib.sha256(tag.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    raw = os.fsencode(name)
    if len(raw) > STAND_IN_BYTES:
        cut = STAND_IN_BYTES - 17
        while cut > 0 and raw[cut] & 0xC0 == 0x80:  # not inside a multi-byte character
            cut -= 1
        name = f"{os.fsdecode(raw[:cut])}~{hashlib.sha256(raw).hexdigest()[:16]}"
    return f".{name}.{tag}.dfs-part"


TEMP_SUFFIXES = (".dfs-part", ".dfs-part.done")
"""How the names of a download's temp file and its resume sidecar end (``temp_name``)."""


def is_temp_name(name: str) -> bool:
    """Whether the last segment of ``name`` has the form of a download's temp file or its
    sidecar (``.NAME.TAG.dfs-part``, ``...dfs-part.done``): a file restored under such a
    name could be the temp file of another download beside it (its name is predictable:
    the target's and the file id), written into or renamed over while that one runs."""
    base = name.rsplit("/", 1)[-1]
    return base.startswith(".") and base.endswith(TEMP_SUFFIXES)


def has_syncfs() -> bool:
    """Whether libc has ``syncfs`` (else every file is fsync'ed on its own)."""
    return SYNCFS is not None


def sync_fds(fds: Iterable[int]) -> None:
    """Make everything written on the file systems of ``fds`` durable: one syncfs per file
    system (each descriptor fsync'ed where syncfs is missing or fails)."""
    fds = list(fds)
    if not syncfs_each(fds):
        fsync_each(fds)


def syncfs_each(fds: Iterable[int]) -> bool:
    """syncfs once per file system ``fds`` are on; False when it is missing or failed."""
    if SYNCFS is None:
        return False
    seen: set[int] = set()
    for fd in fds:
        dev = os.fstat(fd).st_dev
        if dev not in seen:
            seen.add(dev)
            if SYNCFS(fd) != 0:
                return False
    return True


def fsync_each(fds: Iterable[int]) -> None:
    for fd in fds:
        os.fsync(fd)


Overwrite = bool | Callable[[str, int | None], bool]
"""Whether a file found at a download's target may be replaced: always, never, or asked of
the target's path and its folder's descriptor (None: by the path alone) just before the
rename (a bucket restore: only a file it compared and found different, while it is still
that version); a file never replaced is kept (FileExistsError)."""


def replaces(overwrite: Overwrite, target: str | Path, dir_fd: int | None = None) -> bool:
    """``overwrite`` for a file at ``target`` now (its name in ``dir_fd``, when given)."""
    return overwrite(str(target), dir_fd) if callable(overwrite) else overwrite


def link_or_replace(
    tmp: str | Path,
    target: str | Path,
    overwrite: Overwrite,
    dir_fd: int | None = None,
    asked: str | None = None,
) -> None:
    """Rename ``tmp`` over ``target``; without ``overwrite`` link it there instead, so that
    a file already at ``target`` is never replaced (FileExistsError). ``dir_fd``: both
    names are in that directory (``dfs.client.target_dirs``), and ``overwrite`` is asked
    of ``asked``, the target's full path."""
    if replaces(overwrite, asked or target, dir_fd):
        os.replace(tmp, target, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        return
    if _RENAMEAT2 is not None:  # one atomic call that never replaces (Linux 3.15+)
        at = _AT_FDCWD if dir_fd is None else dir_fd
        if _RENAMEAT2(at, os.fsencode(tmp), at, os.fsencode(target), _RENAME_NOREPLACE) == 0:
            return
        err = ctypes.get_errno()
        if err == errno.EEXIST:
            raise FileExistsError(errno.EEXIST, os.strerror(err), str(asked or target))
        if err not in (errno.EINVAL, errno.ENOSYS, errno.EPERM, errno.EOPNOTSUPP):
            raise OSError(err, os.strerror(err), str(tmp))
        # a file system without RENAME_NOREPLACE: a link, as below
    try:  # atomic, and fails if anything is at target
        os.link(tmp, target, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: a rename, checked first
        if _lexists(target, dir_fd):
            raise FileExistsError(asked or target) from None
        os.replace(tmp, target, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        return
    os.unlink(tmp, dir_fd=dir_fd)


def _lexists(path: str | Path, dir_fd: int | None) -> bool:
    try:
        os.stat(path, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def link_unnamed(
    proc: int,
    fd: int,
    target: str,
    overwrite: Overwrite,
    dir_fd: int | None = None,
    asked: str | None = None,
) -> None:
    """Link the unnamed file open at ``fd`` to ``target`` (``linkat`` of its ``proc``
    entry, following it to the file). That never replaces anything (FileExistsError);
    with ``overwrite`` a file at ``target`` is replaced atomically instead: the file is
    linked to a temp name beside it and renamed over it. ``dir_fd`` and ``asked`` as for
    ``link_or_replace``."""
    try:
        os.link(str(fd), target, src_dir_fd=proc, dst_dir_fd=dir_fd, follow_symlinks=True)
        return
    except FileExistsError:
        if not replaces(overwrite, asked or target, dir_fd):
            raise
    parent, name = os.path.split(target)
    tmp = os.path.join(parent, temp_name(name, secrets.token_hex(8)))
    os.link(str(fd), tmp, src_dir_fd=proc, dst_dir_fd=dir_fd, follow_symlinks=True)
    try:
        os.replace(tmp, target, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        unlink_quietly(tmp, dir_fd)
        raise


def still_names(path: str | Path, st: os.stat_result, dir_fd: int | None = None) -> bool:
    """Whether ``path`` (never followed; in ``dir_fd``) is still the file whose stat is
    ``st``: a temp file renamed by its name must be the one written and hashed, not one put
    there since."""
    try:
        now = os.stat(path, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return False
    return now.st_ino == st.st_ino and now.st_dev == st.st_dev


def unlink_quietly(path: str, dir_fd: int | None = None) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path, dir_fd=dir_fd)


@contextlib.contextmanager
def _opened_dirs(dirs: Iterable[str]) -> Iterator[list[int]]:
    fds: list[int] = []
    try:
        for d in dirs:  # (those opened before one that fails are closed all the same)
            fds.append(os.open(d, os.O_RDONLY | os.O_DIRECTORY))
        yield fds
    finally:
        for fd in fds:
            os.close(fd)


def sync_dirs(dirs: Iterable[str]) -> None:
    """Make the renames into ``dirs`` durable (one ``syncfs`` per file system, each
    directory fsync'ed where that is missing)."""
    with _opened_dirs(dirs) as fds:
        sync_fds(fds)
