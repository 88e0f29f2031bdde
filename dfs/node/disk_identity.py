"""A node's disk identity: a random id kept beside its chunks, so the API can tell a node
that came back with the disk it left from one that came back empty or with another disk.

The node id says who a node is; it survives a wiped or replaced disk (``NODE_ID``, or the
``node_id`` file in the data directory). The metadata store's locations say what the node
held, and after such a loss they are all wrong. The id lives inside the chunk folder
(``chunks/.disk-id``, a name neither the chunk walk nor ``/list-chunks`` reads), so wiping the
folder takes it along: the next heartbeat carries a new one, and repair forgets every
location recorded for the node at once (``dfs.api.repair``).

Written atomically (temporary file, fsync, rename, fsync of the directory): a crash leaves
the old id or the new one, never a torn one. Standard library and ``dfs.fsutil`` only.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from dfs.fsutil import fsync_dir

DISK_ID_NAME = ".disk-id"
_PREFIX = "disk-"


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
    path = disk_id_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    new = f"{_PREFIX}{secrets.token_hex(16)}"
    tmp = path.with_name(f"{DISK_ID_NAME}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, f"{new}\n".encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return new
