"""The client's side of the local file system: which files to upload, where downloads land.

``walk`` turns CLI arguments (files and directories) into ``LocalFile``s with their stored
names: a directory's files are named by their path relative to it, with ``/`` separators.
``local_path`` and ``safe_basename`` go the other way and refuse stored names that would
escape the target directory (a stored name is whatever some uploader chose). Kept apart from
the transfer pipelines so that the naming rules are in one place and testable without a
cluster. Standard library (and dfs.errors) only.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from dfs.errors import InvalidRequest


@dataclass(frozen=True)
class LocalFile:
    """A file to upload: where it is, the name to store it under, its size when listed."""

    path: Path
    name: str
    size: int


def walk(paths: Sequence[Path], prefix: str = "") -> Iterator[LocalFile]:
    """Files to upload with their stored names; directories recursively, in sorted order.

    Symbolic links to directories are not followed (no loops); links to files are read."""
    for p in paths:
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs.sort()
                for f in sorted(files):
                    full = Path(root) / f
                    if not full.is_file():
                        continue
                    rel = full.relative_to(p).as_posix()
                    yield LocalFile(full, prefix + rel, full.stat().st_size)
        else:
            yield LocalFile(p, prefix + p.name, p.stat().st_size)


def local_path(root: Path, name: str) -> Path:
    """Where a stored name lands under ``root``; refuses names that would escape it."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if not parts or parts[0] == "/" or any(x in ("..", "") or "\x00" in x for x in parts):
        raise InvalidRequest(f"stored name {name!r} cannot be written safely under {root}")
    return root.joinpath(*parts)


def safe_basename(name: str, fallback: str) -> str:
    """The last component of a stored name, safe to create in a directory."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    if base in ("", ".", "..") or "\x00" in base:
        return fallback
    return base


def hash_file(path: Path) -> tuple[int, str]:
    """Size and sha256 of a file, read in 4 MiB blocks; blocking (call it in a thread)."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while block := f.read(4 << 20):
            h.update(block)
            size += len(block)
    return size, h.hexdigest()
