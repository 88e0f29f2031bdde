"""The stored-record format of pack files: a small fixed header before every chunk's bytes.

Every record in a pack (``dfs.chunkstore.packs``) is one header and its payload:

| field        | bytes | meaning                                                            |
|--------------|-------|--------------------------------------------------------------------|
| magic        | 4     | ``DFSR``: finds record starts again after a damaged region        |
| version      | 1     | format version, 1                                                  |
| kind         | 1     | 1 a chunk, 2 a tombstone (its chunk's record at pack, offset dies) |
| flags        | 2     | how the payload is encoded; reserved bits: 1 zstd, 2 encrypted      |
| length       | 8     | payload bytes as stored                                            |
| size         | 8     | the chunk's bytes (== length while no flag is set)                 |
| written_ms   | 8     | when the chunk was written or re-sent (garbage collection's age)    |
| chunk_id     | 32    | SHA-256 of the chunk's plain bytes                                 |
| payload_crc  | 4     | CRC-32 of the payload as stored                                    |
| header_crc   | 4     | CRC-32 of every field above                                        |

Why each field: the two CRCs tell a torn tail (a crash mid-append: the header or payload is
short or does not check) and rot in the middle of a pack apart from good records without
hashing, and the header CRC makes ``length`` trustworthy enough to skip to the next record.
``flags`` and ``size`` let per-chunk compression and encryption at rest arrive later without
migrating data: a record with a flag this version does not know is kept but never served
(``readable`` is False), so an older node refuses it instead of serving encoded bytes. Large
chunks stay plain files (``dfs.chunkstore.fs``): an encoded large chunk will get a header and
a file name of its own, so the plain files stored today need no migration either.

A tombstone names the record it kills by place and by chunk id: it kills a record only if
that record is of its chunk (``dfs.chunkstore.packs`` compares them).

Reading a pack (``scan``) walks from record to record, each header's ``length`` leading to
the next. After a bad spot (a header that does not check, or a record running past the end
of the file: rot, or a torn tail) it searches on for the magic, and what it finds there may
lie inside a payload, which a tenant chooses. So from the first bad spot to the end of the
pack nothing found may remove or supersede a good record: a chunk record is taken only if
this version can serve it (no flag it does not know) and its payload's SHA-256 is its id
(real content is harmless wherever it lies); any other record, a tombstone included, is
passed over and the search goes on from the byte after its start, so a record that is not
taken hides none it covers (nor is it quarantined: it may be a tenant's bytes).
A real tombstone passed over this way brings back at worst a copy that was deleted: an
orphan, which garbage collection deletes again. Before the first bad spot, records are taken
as they are (a payload that does not check is rot; a last one, a torn tail).

Standard library only; no I/O.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from zlib_ng import zlib_ng

from dfs.ids import ChunkId

MAGIC = b"DFSR"
VERSION = 1
KIND_CHUNK = 1
KIND_TOMBSTONE = 2
FLAG_ZSTD = 0x1
"""Reserved: the payload is zstd-compressed (not written by this version)."""
FLAG_ENCRYPTED = 0x2
"""Reserved: the payload is encrypted at rest (not written by this version)."""
KNOWN_FLAGS = 0
"""Flags this version can decode: none, so only plain payloads are served."""

_HEADER = struct.Struct("<4sBBHQQQ32sI")
_CRC = struct.Struct("<I")
HEADER_SIZE = _HEADER.size + _CRC.size
_TOMB = struct.Struct("<QQ")
TOMBSTONE_LENGTH = _TOMB.size
_FIELDS = struct.Struct("<4sxBHQ8xQ32s")  # _HEADER's magic, kind, flags, length, written, id


@dataclass(frozen=True, slots=True)
class Header:
    kind: int
    flags: int
    length: int
    size: int
    written_ms: int
    chunk_id: ChunkId
    payload_crc: int

    @property
    def record_length(self) -> int:
        return HEADER_SIZE + self.length

    @property
    def readable(self) -> bool:
        """Whether this version can serve the payload (no encoding it does not know)."""
        return self.kind == KIND_CHUNK and not self.flags & ~KNOWN_FLAGS


def _header(
    kind: int, chunk_id: ChunkId, payload: bytes | bytearray | memoryview, written: float
) -> bytes:
    head = _HEADER.pack(
        MAGIC,
        VERSION,
        kind,
        0,
        len(payload),
        len(payload),
        int(written * 1000),
        bytes.fromhex(chunk_id),
        zlib_ng.crc32(payload),
    )
    return head + _CRC.pack(zlib_ng.crc32(head))


def chunk_record(chunk_id: ChunkId, data: bytes | bytearray | memoryview, written: float) -> bytes:
    """A chunk record (header and plain payload) for verified bytes."""
    return b"".join(chunk_parts(chunk_id, data, written))


def chunk_parts(
    chunk_id: ChunkId, data: bytes | bytearray | memoryview, written: float
) -> tuple[bytes, bytes | bytearray | memoryview]:
    """``chunk_record`` as (header, payload), the payload not copied (for one ``writev``)."""
    return _header(KIND_CHUNK, chunk_id, data, written), data


def tombstone_record(chunk_id: ChunkId, pack: int, offset: int, written: float) -> bytes:
    """A record saying the record of ``chunk_id`` at (``pack``, ``offset``) is dead."""
    return b"".join(tombstone_parts(chunk_id, pack, offset, written))


def tombstone_parts(
    chunk_id: ChunkId, pack: int, offset: int, written: float
) -> tuple[bytes, bytes]:
    """``tombstone_record`` as (header, payload)."""
    payload = _TOMB.pack(pack, offset)
    return _header(KIND_TOMBSTONE, chunk_id, payload, written), payload


def tombstone_target(payload: bytes | bytearray | memoryview) -> tuple[int, int]:
    """(pack, offset) of the record a tombstone's payload kills."""
    pack, offset = _TOMB.unpack(payload)
    return int(pack), int(offset)


def header_fields(
    buf: bytes | bytearray | memoryview, offset: int
) -> tuple[int, int, int, int, bytes]:
    """(kind, flags, length, written_ms, raw id) of a record this process just encoded: no
    CRC check, no copy (an index entry's fields; ``decode_header`` for bytes read back).
    ValueError if it is not a record's start (bytes that were never a header)."""
    magic, kind, flags, length, written_ms, digest = _FIELDS.unpack_from(buf, offset)
    if magic != MAGIC or kind not in (KIND_CHUNK, KIND_TOMBSTONE):
        raise ValueError("not the start of a record")
    return kind, flags, length, written_ms, digest


def decode_header(buf: bytes | memoryview, offset: int) -> Header | None:
    """The header at ``offset``, or None if there is none that checks (too short, wrong magic,
    a version this code does not read, or a bad header CRC)."""
    end = offset + HEADER_SIZE
    if end > len(buf):
        return None
    raw = bytes(buf[offset:end])
    fields = _HEADER.unpack(raw[: _HEADER.size])
    (crc,) = _CRC.unpack(raw[_HEADER.size :])
    magic, version, kind, flags, length, size, written_ms, digest, payload_crc = fields
    if magic != MAGIC or version != VERSION or zlib_ng.crc32(raw[: _HEADER.size]) != crc:
        return None
    if kind not in (KIND_CHUNK, KIND_TOMBSTONE):
        return None
    return Header(kind, flags, length, size, written_ms, ChunkId(digest.hex()), payload_crc)


def serves(buf: bytes | memoryview, offset: int, raw_id: bytes, length: int) -> bool:
    """Whether the record at ``offset`` is a chunk record of the chunk ``raw_id`` (its 32-byte
    id) with a ``length``-byte payload this version can serve, its header and payload CRCs
    checking: ``decode_header``'s checks and the payload's, without building a ``Header``
    (serving a batch checks every record this way; anything that fails takes the slow path)."""
    end = offset + HEADER_SIZE
    if end + length > len(buf):
        return False
    magic, version, kind, flags, stored, _size, _written, digest, payload_crc = _HEADER.unpack_from(
        buf, offset
    )
    (crc,) = _CRC.unpack_from(buf, offset + _HEADER.size)
    return (
        magic == MAGIC
        and version == VERSION
        and kind == KIND_CHUNK
        and not flags & ~KNOWN_FLAGS
        and stored == length
        and digest == raw_id
        and zlib_ng.crc32(buf[offset : offset + _HEADER.size]) == crc
        and zlib_ng.crc32(buf[end : end + length]) == payload_crc
    )


def kept_encoded(buf: bytes | memoryview, offset: int, chunk_id: ChunkId, length: int) -> bool:
    """Whether the record at ``offset`` is an intact chunk record of ``chunk_id`` with a
    ``length``-byte payload in an encoding this version lacks: kept, never served (the module
    docstring). Its header and payload CRCs stand for the hash, which the encoding hides."""
    head = decode_header(buf, offset)
    if head is None or head.readable or head.kind != KIND_CHUNK or head.chunk_id != chunk_id:
        return False
    start = offset + HEADER_SIZE
    payload = buf[start : start + length]
    whole = head.length == length == len(payload)
    return whole and zlib_ng.crc32(payload) == head.payload_crc


@dataclass
class Scan:
    """What a pass over a pack's bytes found: good records in order, records whose payload
    does not check (rot), and where the last good record ends (what follows is a torn tail,
    or records not taken after a bad spot)."""

    records: list[tuple[int, Header]]
    rotten: list[tuple[int, Header]]
    end: int


def _resync(data: bytes, start: int) -> int | None:
    """The next offset from ``start`` where a whole record with a good header begins."""
    pos = data.find(MAGIC, start)
    while pos >= 0:
        found = decode_header(data, pos)
        if found is not None and pos + found.record_length <= len(data):
            return pos
        pos = data.find(MAGIC, pos + 1)
    return None


def _genuine(head: Header, payload: memoryview) -> bool:
    """Whether a record found after a bad spot may be taken: a chunk record this version can
    serve, its payload checking and hashing to its id. Never a tombstone: one inside a
    payload could kill any record (a real one ignored revives at worst a deleted copy, an
    orphan that garbage collection deletes again)."""
    return (
        head.readable
        and zlib_ng.crc32(payload) == head.payload_crc
        and hashlib.sha256(payload).digest() == bytes.fromhex(head.chunk_id)
    )


def scan(buf: bytes | memoryview) -> Scan:
    """Walk every record in a pack's bytes. A header that does not check, or a record running
    past the end, is a bad spot: the search goes on for the next good header, and from then
    on only ``_genuine`` records are taken (see the module docstring); none found means a
    torn tail, which ``end`` excludes, as it excludes a last record whose payload is short or
    does not check. Before any bad spot, a payload that does not check is rot."""
    data = bytes(buf)  # searched again after each bad spot: one copy, not one per search
    view = memoryview(data)
    out = Scan([], [], 0)
    pos, trusted = 0, True  # trusted: every record so far reached by lengths from offset 0
    while pos < len(data):
        head = decode_header(data, pos)
        if head is not None and pos + head.record_length <= len(data):
            stop = pos + head.record_length
            payload = view[pos + HEADER_SIZE : stop]
            if trusted:
                intact = zlib_ng.crc32(payload) == head.payload_crc
                if not intact and stop == len(data):
                    break  # the last record did not reach the disk whole: torn
                (out.records if intact else out.rotten).append((pos, head))
                pos = out.end = stop
                continue
            if _genuine(head, payload):
                out.records.append((pos, head))
                pos = out.end = stop
                continue
        trusted = False  # a bad spot or a record not taken: search on from the next byte
        found = _resync(data, pos + 1)
        if found is None:
            break
        pos = found
    return out
