"""A node's disk identity: a random id kept beside its chunks, so the API can tell a node
that came back with the disk it left from one that came back empty or with another disk.

The node id says who a node is; it survives a wiped or replaced disk (``NODE_ID``, or the
``node_id`` file in the data directory). The metadata store's locations say what the node
held, and after such a loss they are all wrong. The id lives inside the chunk folder
(``chunks/.disk-id``, a name neither the chunk walk nor ``/list-chunks`` reads), so wiping the
folder takes it along: the next heartbeat carries a new one, and repair forgets every
location recorded for the node at once (``dfs.api.repair``).

The node's **boot number** is kept beside it, in the data directory (``boot``): every start
takes a number greater than the last one (``next_boot``), which the node's registry calls
carry and the API requires to grow, so a heartbeat captured before a restart cannot be
replayed after it. It is at least the start's Unix time in milliseconds, so a data directory
wiped or replaced still starts above the boots the API saw before (unless the clock went back
by more than the time since).

Both are written atomically (temporary file, fsync, rename, fsync of the directory): a crash
leaves the old value or the new one, never a torn one. Standard library and ``dfs.fsutil``
only.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path

from dfs.fsutil import write_atomically

DISK_ID_NAME = ".disk-id"
BOOT_NAME = "boot"
_PREFIX = "disk-"
MAX_BOOT = (1 << 63) - 1


def disk_id_path(data_dir: Path) -> Path:
    return data_dir / "chunks" / DISK_ID_NAME


def read_disk_id(data_dir: Path) -> str:
    """The disk identity stored in ``data_dir``, or "" if there is none (or it is torn)."""
    try:
        text = disk_id_path(data_dir).read_text(encoding="ascii").strip()
    except (FileNotFoundError, NotADirectoryError, UnicodeDecodeError):
        return ""
    return text if text.startswith(_PREFIX) and text[len(_PREFIX) :].isalnum() else ""


def ensure_disk_id(data_dir: Path) -> str:
    """The disk identity of ``data_dir``, written first if the chunk folder has none (a
    first start, or a folder wiped while the node ran or was down)."""
    found = read_disk_id(data_dir)
    if found:
        return found
    new = f"{_PREFIX}{secrets.token_hex(16)}"
    write_atomically(disk_id_path(data_dir), new)
    return new


def read_boot(data_dir: Path) -> int:
    """The last boot number taken in ``data_dir``; 0 if none (or torn)."""
    try:
        text = (data_dir / BOOT_NAME).read_text(encoding="ascii").strip()
    except (FileNotFoundError, NotADirectoryError, UnicodeDecodeError):
        return 0
    return int(text) if text.isascii() and text.isdigit() and len(text) < 19 else 0


def next_boot(data_dir: Path, now: float | None = None) -> int:
    """Take this start's boot number: greater than the last one taken in ``data_dir`` and at
    least the Unix time in milliseconds; durable before it is returned (blocking)."""
    now_ms = int((time.time() if now is None else now) * 1000)
    boot = max(read_boot(data_dir) + 1, now_ms, 1)
    if boot > MAX_BOOT:
        raise ValueError("boot number out of range")
    write_atomically(data_dir / BOOT_NAME, str(boot))
    return boot
