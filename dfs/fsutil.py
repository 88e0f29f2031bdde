"""Durable local-file steps shared by the node's chunk store and the client's downloads.

Standard library only (layer 0).
"""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make a rename or link inside ``path`` durable: fsync the directory itself."""
    _fsync_opened(path, os.O_RDONLY | os.O_DIRECTORY)


def fsync_file(path: Path) -> None:
    """Make a closed file's bytes durable (a symlink in its place is refused)."""
    _fsync_opened(path, os.O_RDONLY | os.O_NOFOLLOW)


def _fsync_opened(path: Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
