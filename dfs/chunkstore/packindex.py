"""A sealed pack's index file: its records' headers, so opening a store need not read packs.

When a pack stops taking appends (a newer one is active), ``PackSet`` writes
``pack-<seq>.idx`` beside it: every record's offset and header fields (kind, flags, length,
age, chunk id, and a tombstone's target), the pack's size, and a CRC-32 of it all. It is
written to a temporary name, fsync'd and renamed into place, so a crash leaves no index or
a whole one. ``rebuild`` reads a pack without one. On open, a pack with an index that checks (its CRC, and the size it names equals
the pack's) is indexed from it alone; any other pack (the one that was active, or one whose
index is missing or damaged) is read whole, torn tail and all, and gets a fresh index.
Payloads are still verified on every read and by scrub; the index only saves reading them
to learn where the records are. While a pack is appended to, its index is built in memory
(``Builder``: the encoded entries, 83 bytes a record) from the records as they are written,
so sealing it writes that instead of reading the pack back.

Standard library, ``dfs.chunkstore.record`` and ``dfs.fsutil`` only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from zlib_ng import zlib_ng

from dfs.chunkstore import record
from dfs.chunkstore.record import KIND_TOMBSTONE, Header
from dfs.fsutil import Buffer, fsync_dir
from dfs.ids import ChunkId

log = logging.getLogger("dfs.chunkstore")

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


class Builder:
    """The entries of a pack's index, encoded as its records are appended, in file order."""

    __slots__ = ("_body", "_count")

    def __init__(self) -> None:
        self._body = bytearray()
        self._count = 0

    def add(self, e: Entry) -> None:
        h = e.header
        digest = bytes.fromhex(h.chunk_id)
        self._body += _ENTRY.pack(
            e.offset, h.length, h.kind, h.flags, h.written_ms, digest, *e.target
        )
        self._count += 1

    def add_parts(self, base: int, parts: Sequence[Buffer]) -> None:
        """Note every record of ``parts`` (see ``encode_parts``) appended at ``base``."""
        self.add_encoded(*encode_parts(base, parts))

    def add_encoded(self, body: bytes, count: int) -> None:
        """Note ``count`` entries ``encode_parts`` encoded (cannot fail: a pack's records
        were appended by then)."""
        self._body += body
        self._count += count

    def encode(self, size: int) -> bytes:
        """The index file's bytes for the pack at ``size`` bytes."""
        body = _HEAD.pack(_MAGIC, _VERSION, size, self._count) + self._body
        return bytes(body + _CRC.pack(zlib_ng.crc32(body)))


def encode_parts(base: int, parts: Sequence[Buffer]) -> tuple[bytes, int]:
    """The entries (encoded, and how many) of the records of ``parts`` (header and payload
    alternately, whole records encoded by this process) if appended at offset ``base`` of a
    pack. Their fields are read without CRC checks, but a header that is not a record start
    raises ValueError: the caller encodes them before appending, so nothing is written."""
    body = bytearray()
    pos = base
    for n in range(0, len(parts), 2):
        kind, flags, length, written_ms, digest = record.header_fields(parts[n], 0)
        if length != len(parts[n + 1]):
            raise ValueError(
                f"a record header says {length} bytes, its payload has {len(parts[n + 1])}"
            )
        target = record.tombstone_target(parts[n + 1]) if kind == KIND_TOMBSTONE else (0, 0)
        body += _ENTRY.pack(pos, length, kind, flags, written_ms, digest, *target)
        pos += record.HEADER_SIZE + length
    return bytes(body), len(parts) // 2


def encode(size: int, entries: list[Entry]) -> bytes:
    built = Builder()
    for e in entries:
        built.add(e)
    return built.encode(size)


def decode(raw: bytes, size: int) -> list[Entry] | None:
    """The entries of an index for a pack of ``size`` bytes; None if it does not check."""
    if len(raw) < _HEAD.size + _CRC.size:
        return None
    body, (crc,) = raw[: -_CRC.size], _CRC.unpack(raw[-_CRC.size :])
    magic, version, indexed, count = _HEAD.unpack_from(body)
    ok = magic == _MAGIC and version == _VERSION and zlib_ng.crc32(body) == crc
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


def rebuild(pack: Path) -> tuple[list[Entry], list[tuple[int, ChunkId, bytes]]]:
    """Read a whole pack: cut a torn tail off the file, then write its index (what
    ``record.scan`` takes: every record with a good header up to the first bad spot, rotten
    payloads included, which the caller tombstones; after it only genuine chunk records).
    Returns the entries and the rotten chunk records as (offset, id, payload)."""
    data = pack.read_bytes()
    found = record.scan(data)
    if found.end < len(data):
        with open(pack, "r+b") as f:
            f.truncate(found.end)
            os.fsync(f.fileno())
    entries = []
    rot = {off for off, _ in found.rotten}
    for off, head in sorted(found.records + found.rotten, key=lambda r: r[0]):
        target = (0, 0)
        if head.kind == KIND_TOMBSTONE and off not in rot:
            payload = data[off + record.HEADER_SIZE : off + head.record_length]
            target = record.tombstone_target(payload)
        entries.append(Entry(off, head, target))
    try:
        write(pack, found.end, entries)
    except OSError as exc:  # a full disk: the next open reads the pack whole again
        log.warning("index of %s not written (%s): read whole at the next open", pack, exc)
    rotten = [
        (off, h.chunk_id, data[off + record.HEADER_SIZE : off + h.record_length])
        for off, h in found.rotten
        if h.kind != KIND_TOMBSTONE
    ]
    return entries, rotten


def write(pack: Path, size: int, entries: list[Entry]) -> None:
    """Write the index of ``pack`` durably (see ``write_encoded``)."""
    write_encoded(pack, encode(size, entries))


def write_encoded(pack: Path, encoded: bytes) -> None:
    """Write an encoded index of ``pack`` durably: temporary file, fsync, rename, directory
    fsync, so a crash leaves the old state or the whole index."""
    final = index_path(pack)
    tmp = final.with_name(final.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        data = memoryview(encoded)
        done = 0
        while done < len(data):
            done += os.write(fd, data[done:])
        os.fsync(fd)
    except BaseException:
        with contextlib.suppress(OSError):  # a full disk: not left taking room
            os.unlink(tmp)
        raise
    finally:
        os.close(fd)
    os.replace(tmp, final)
    fsync_dir(final.parent)
