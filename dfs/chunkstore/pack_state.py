"""What ``PackSet`` (``dfs.chunkstore.packs``) keeps in memory about its pack files: where
each chunk's live record is (``Loc``), each pack's live records, tombstones and size
(``Pack``, ``Tomb``), and how a pack file is named. Plain data: every rule about them (what is
live, when a pack is sealed or compacted) is ``PackSet``'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dfs.chunkstore import packindex
from dfs.ids import ChunkId

_PREFIX, _SUFFIX = "pack-", ".pack"


@dataclass(slots=True)
class Loc:
    """Where a chunk's live record is: pack, offset of its header, payload bytes, age."""

    pack: int
    offset: int
    length: int
    written: float


@dataclass
class Tomb:
    """A tombstone in a pack: it kills the record of ``chunk_id`` at (target, target_offset)."""

    chunk_id: ChunkId
    target: int
    target_offset: int
    written: float


@dataclass
class Pack:
    seq: int
    path: Path
    size: int
    ids: set[ChunkId] = field(default_factory=set)  # chunks whose live record is here
    live: int = 0  # bytes of those records
    tombs: list[Tomb] = field(default_factory=list)
    index: packindex.Builder | None = None  # while appended to, until its index is written


def pack_name(seq: int) -> str:
    return f"{_PREFIX}{seq:08d}{_SUFFIX}"


def pack_seq(name: str) -> int | None:
    digits = name[len(_PREFIX) : -len(_SUFFIX)]
    ok = name.startswith(_PREFIX) and name.endswith(_SUFFIX) and digits.isdigit()
    return int(digits) if ok else None
