"""What a sync compares: a local file against its key's object, before anything moves.

``dfs-client upload DIR bucket/prefix/`` and ``download bucket/prefix/ OUT``
(``dfs.client.namespace_sync``) skip a file whose object already holds its content: same size
and mtime (the ``mtime`` user metadata an upload keeps, as rclone does), or with
``checksum`` the same SHA-256; a download also skips a key whose target has a directory, or a
file or link where a folder goes, in its way (``in_the_way``). The checks run in one pass on
a worker thread (a hop per file cost more than the ``stat`` it made).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dfs.client.local_files import LocalFile, Skipped, hash_file, in_the_way, same_version
from dfs.client.sync_links import MTIME


def same(local: Path, remote: dict[str, Any], checksum: bool) -> bool:
    """Is the local file the remote object's content (size and mtime, or SHA-256)?"""
    try:
        st = local.stat()
    except OSError:
        return False
    if st.st_size != remote.get("size"):
        return False
    if checksum:
        return bool(hash_file(local)[1] == remote.get("sha256"))
    return same_mtime(remote.get("metadata", {}).get(MTIME), st.st_mtime)


def same_mtime(stored: object, mtime: float) -> bool:
    """Is ``stored`` (the ``mtime`` metadata: microseconds as text) the time ``mtime``? Within
    a microsecond, not as text: a float of today's Unix time holds ~0.2 us, so a time set
    from one (a download's) and printed again can differ in its last digit."""
    try:
        return abs(float(str(stored)) - mtime) < 1e-6
    except ValueError:
        return False


def changed_uploads(
    files: Sequence[LocalFile], remote: dict[str, dict[str, Any]], checksum: bool
) -> tuple[list[LocalFile], list[str]]:
    """The files to upload, and the keys already holding their file (one pass on a worker
    thread: a hop per file cost more than the stat it made)."""
    todo, unchanged = [], []
    for f in files:
        there = remote.get(f.name)
        if there is not None and same(f.path, there, checksum):
            unchanged.append(f.name)
        else:
            todo.append(f)
    return todo, unchanged


class Found(dict[str, os.stat_result | None]):
    """What a download found at each target it writes (by path) when it compared them: the
    file's ``lstat``, or None for nothing. ``replaceable`` is the download's ``Overwrite``:
    a file at a target is replaced only while it is the one compared and found different
    (``same_version``); one that appeared where nothing was, or changed since, is kept."""

    def replaceable(self, target: str, dir_fd: int | None = None) -> bool:
        """``dir_fd``: the target's folder, open (``dfs.client.target_dirs``): its file is
        looked at there, never through a folder swapped for a link since."""
        was = self.get(target)
        if was is None:
            return False
        at = target if dir_fd is None else os.path.basename(target)
        try:
            return same_version(was, os.stat(at, dir_fd=dir_fd, follow_symlinks=False))
        except OSError:  # gone since: nothing to replace, nor to keep
            return False


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def changed_downloads(
    wanted: Sequence[tuple[dict[str, Any], Path]], root: Path, checksum: bool
) -> tuple[list[tuple[dict[str, Any], Path]], list[str], list[Skipped], Found]:
    """The objects to download (their folders made), the paths that hold them already, the
    keys skipped for what stands at or above their targets under ``root`` (``in_the_way``:
    a directory at one, a file or a symbolic link where a folder goes), and what is at the
    targets to download now (``Found``: a file written there after this is never
    replaced); one pass on a worker thread, each folder made once."""
    todo, unchanged, skipped = [], [], []
    found = Found()
    made: set[Path] = set()
    clear: set[Path] = set()  # each folder above the targets looked at once
    for obj, target in wanted:
        why = in_the_way(target, root, clear)
        if why is not None:
            skipped.append(Skipped(str(obj["key"]), why))
            continue
        if same(target, obj, checksum):
            unchanged.append(str(target))
            continue
        todo.append((obj, target))
        found[str(target)] = _lstat(target)
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
    return todo, unchanged, skipped, found


def stored_mtime(obj: dict[str, Any]) -> float | None:
    """The object's ``mtime`` metadata as a time to set, or None: missing, or not a finite
    number (user metadata: any S3 client or read-write grantee sets it to anything, and
    one such object must not fail the restore of the others)."""
    stored = (obj.get("metadata") or {}).get(MTIME)
    try:
        when = float(str(stored))
    except ValueError:
        return None
    # beyond the years a file system's time can hold, os.utime raises OverflowError
    return when if math.isfinite(when) and abs(when) < MTIME_MAX else None


MTIME_MAX = 1e11
"""Seconds from the epoch (about year 5138) beyond which a stored ``mtime`` is not set."""
