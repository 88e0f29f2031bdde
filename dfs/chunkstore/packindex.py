"""A sealed pack's index file: its records' headers, so opening a store need not read packs.

When a pack stops taking appends (a newer one is active), ``PackSet`` writes
``pack-<seq>.idx`` beside it: every record's offset and header fields (kind, flags, length,
age, chunk id, and a tombstone's target), the pack's size, and a CRC-32 of it all. It is
written to a temporary name, fsync'd and renamed into place, so a crash leaves no index or
a whole one. On open, a pack with an index that checks (its CRC, and the size it names equals
the pack's) is indexed from it alone; any other pack (the one that was active, or one whose
index is missing or damaged) is read whole, torn tail and all, and gets a fresh index.
Payloads are still verified on every read and by scrub; the index only saves reading them
to learn where the records are.

Standard library and ``dfs.fsutil`` only.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from dfs.chunkstore.record import Header
from dfs.fsutil import fsync_dir
from dfs.ids import ChunkId

_MAGIC = b"DFSI"
_VERSION = 1
_HEAD = struct.Struct("<4sBQI")  # magic, version, pack size, entries
_ENTRY = struct.Struct("<QQBHQ32sQQ")  # offset, length, kind, flags, written_ms, id, target
_CRC = struct.Struct("<I")


@dataclass(frozen=True, slots=True)
class Entry:
    """One record of a pack: where it is, its header, and (a tombstone's) what it kills."""

    offset: int
    header: Header
    target: tuple[int, int] = (0, 0)


def encode(size: int, entries: list[Entry]) -> bytes:
    parts = [_HEAD.pack(_MAGIC, _VERSION, size, len(entries))]
    for e in entries:
        h = e.header
        digest = bytes.fromhex(h.chunk_id)
        parts.append(
            _ENTRY.pack(e.offset, h.length, h.kind, h.flags, h.written_ms, digest, *e.target)
        )
    body = b"".join(parts)
    return body + _CRC.pack(zlib.crc32(body))


def decode(raw: bytes, size: int) -> list[Entry] | None:
    """The entries of an index for a pack of ``size`` bytes; None if it does not check."""
    if len(raw) < _HEAD.size + _CRC.size:
        return None
    body, (crc,) = raw[: -_CRC.size], _CRC.unpack(raw[-_CRC.size :])
    magic, version, indexed, count = _HEAD.unpack_from(body)
    ok = magic == _MAGIC and version == _VERSION and zlib.crc32(body) == crc
    if not ok or indexed != size or len(body) != _HEAD.size + count * _ENTRY.size:
        return None
    out = []
    for i in range(count):
        fields = _ENTRY.unpack_from(body, _HEAD.size + i * _ENTRY.size)
        offset, length, kind, flags, written_ms, digest, target, target_offset = fields
        header = Header(kind, flags, length, length, written_ms, ChunkId(digest.hex()), 0)
        out.append(Entry(offset, header, (target, target_offset)))
    return out


def index_path(pack: Path) -> Path:
    return pack.with_suffix(".idx")


def read(pack: Path, size: int) -> list[Entry] | None:
    """The index of ``pack`` (``size`` bytes now), or None if it has none that checks."""
    try:
        raw = index_path(pack).read_bytes()
    except FileNotFoundError:
        return None
    return decode(raw, size)


def write(pack: Path, size: int, entries: list[Entry]) -> None:
    """Write the index of ``pack`` durably (temporary file, fsync, rename, directory fsync)."""
    final = index_path(pack)
    tmp = final.with_name(final.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        data = memoryview(encode(size, entries))
        done = 0
        while done < len(data):
            done += os.write(fd, data[done:])
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, final)
    fsync_dir(final.parent)
