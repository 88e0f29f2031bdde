"""Where a large chunk's file lives under ``chunks/``: ``FsChunkStore``'s fan-out layout.

| layout | chunk file               | stores                                                  |
|--------|--------------------------|---------------------------------------------------------|
| 1      | ``chunks/ab/<sha256>``   | made since this layout came (its 256 folders made with it) |
| 2      | ``chunks/ab/cd/<sha256>``| made before: kept as they are, nothing is moved          |

``ab`` and ``cd`` are the id's first two bytes in hex. The layout is recorded in
``chunks/.layout`` (a name neither the chunk walk nor ``/list-chunks`` reads) the first time a
store is opened, and never changes. A folder with no record is read from what it holds: layout
2 if the first two-hex-digit folder with a folder or a chunk file in it has two-hex-digit
folders (only layout 2 makes those), else layout 1: a new or wiped folder, one of packs and the disk identity only, and one of layout 1
that lost its record (a folder wiped while the node ran: the store writes on in its layout and
makes the folders it needs, without ``.layout``; or a copy made with ``cp chunks/*``). Counting
the top folders alone read such a folder as layout 2 and hid every chunk in it.

Why one level: a folder costs ext4 a directory block and an inode, placed in a block group of
their own (the Orlov allocator spreads new directories), and the journal commit of the write
that made it grows by those blocks. A store of layout 2 made a folder for nearly every chunk of
its first ~65,000 and paid about three times the kernel CPU per chunk for it
(``bench.node_write``: 3.4 against 1.1 system CPU-s per GiB of 1 MiB chunks). 256 folders hold
about 4,000 files each at a million large chunks (a TiB at 1 MiB), which ext4's hashed
directories look up as fast as a few; git keeps its loose objects the same way.

What it costs: a page of ``/list-chunks`` (the inventory's and GC's walk, 1,000 ids by
default) lists and sorts the whole folder it starts in, where layout 2 read 1/256 of that. At
a million large chunks a node (~4,000 names a folder) that is noise beside the page's 1,000
``stat`` calls; at ten million (~40,000 a folder, ~25 ms a page) a full walk lists each
folder ~40 times, minutes of a node's CPU a pass. Caching a folder's sorted names across
pages would fix it, but only with a way to tell that no name came since (a directory's mtime
is too coarse); not done.

Standard library and ``dfs.fsutil`` only; blocking (call from a worker thread).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dfs.errors import DfsError
from dfs.fsutil import fsync_dir, make_dirs, write_atomically

LAYOUT_NAME = ".layout"
_CHUNK_NAME = re.compile(r"[0-9a-f]{64}")
_FAN_NAME = re.compile(r"[0-9a-f]{2}")


def is_chunk_name(name: object) -> bool:
    return isinstance(name, str) and _CHUNK_NAME.fullmatch(name) is not None


def _names(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _fans(path: str) -> list[str]:
    """The two-hex-digit folders in ``path``, in order."""
    return [d for d in _names(path) if _FAN_NAME.fullmatch(d)]


@dataclass(frozen=True)
class FanOut:
    """One store's layout: ``chunks`` is its ``chunks/`` folder, ``depth`` 1 or 2."""

    chunks: str
    depth: int

    def path(self, chunk_id: str) -> str:
        """The chunk's file (``chunk_id`` already checked to be 64 lowercase hex)."""
        if self.depth == 1:
            return f"{self.chunks}/{chunk_id[:2]}/{chunk_id}"
        return f"{self.chunks}/{chunk_id[:2]}/{chunk_id[2:4]}/{chunk_id}"

    def files_after(self, after: str) -> Iterator[tuple[str, str]]:
        """``(folder, name)`` of every chunk file whose id is greater than ``after``, in
        ascending id order, skipping the folders below ``after`` unread: a page of a listing
        reads the folders it reaches, not the store (the whole folder it starts in, though:
        the module docstring)."""
        return self._below(self.chunks, "", self.depth, after)

    def _below(self, folder: str, prefix: str, depth: int, after: str) -> Iterator[tuple[str, str]]:
        if depth == 0:
            for name in _names(folder):
                if name > after and is_chunk_name(name):
                    yield folder, name
            return
        for fan in _fans(folder):
            here = prefix + fan
            if here >= after[: len(here)]:
                yield from self._below(f"{folder}/{fan}", here, depth - 1, after)


def open_fan_out(chunks: str) -> FanOut:
    """The layout of the store whose chunk folder is ``chunks``, recorded (and for layout 1
    its 256 folders made, durably) if this is the store's first open."""
    make_dirs(chunks)
    record = os.path.join(chunks, LAYOUT_NAME)
    depth = _recorded_depth(record)
    if depth is None:
        depth = _found_depth(chunks)
        write_atomically(Path(record), str(depth))
    fan_out = FanOut(chunks, depth)
    if fan_out.depth == 1:
        _make_fans(chunks)
    return fan_out


def _recorded_depth(record: str) -> int | None:
    """The layout ``record`` holds, None if there is none; DfsError for anything but 1 or 2
    (a guess would hide every chunk of the store)."""
    try:
        with open(record, "rb") as f:
            text = f.read().strip()
    except FileNotFoundError:
        return None
    if text not in (b"1", b"2"):
        raise DfsError(f"{record}: unknown chunk layout {text!r}; refusing to guess")
    return int(text)


def _found_depth(chunks: str) -> int:
    """The layout of a folder with no record, from what it holds (module docstring): its
    first folder that holds a folder or a chunk file tells (a store of layout 2 made its
    folders for the chunks written into them and removes none), one listing more."""
    for fan in _fans(chunks):
        names = _names(f"{chunks}/{fan}")
        if any(_FAN_NAME.fullmatch(n) for n in names):
            return 2
        if any(is_chunk_name(n) for n in names):
            return 1
    return 1


def _make_fans(chunks: str) -> None:
    """The 256 folders of layout 1 that are missing made, and all made durable with one
    fsync of ``chunks``, at every open: a process that died between the mkdirs and that
    fsync left every folder there but maybe not durable, and finding them is no proof they
    are (one fsync a start)."""
    for n in range(256):
        with contextlib.suppress(FileExistsError):
            os.mkdir(f"{chunks}/{n:02x}")
    fsync_dir(chunks)


def read_fan_out(chunks: str) -> FanOut:
    """The layout recorded in ``chunks`` (for tools and tests: makes and writes nothing); a
    folder with no record is read from what it holds, as ``open_fan_out`` would record it."""
    depth = _recorded_depth(os.path.join(chunks, LAYOUT_NAME))
    return FanOut(chunks, _found_depth(chunks) if depth is None else depth)
