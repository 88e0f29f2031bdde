"""``record.serves``: the check a packed record passes before it is served from a batch read
(header fields and both CRCs, no ``Header`` built) refuses what ``decode_header`` refuses."""

from __future__ import annotations

import hashlib
import struct
import zlib

from dfs.chunkstore import record
from dfs.chunkstore.record import HEADER_SIZE
from dfs.ids import ChunkId

DATA = bytes(range(256)) * 3
CID = ChunkId(hashlib.sha256(DATA).hexdigest())
RAW = bytes.fromhex(CID)


def _reseal(buf: bytearray, at: int = 0) -> None:
    """Recompute the header CRC after a field was changed (so only that field differs)."""
    struct.pack_into("<I", buf, at + HEADER_SIZE - 4, zlib.crc32(buf[at : at + HEADER_SIZE - 4]))


def test_a_good_record_is_served_where_it_is() -> None:
    rec = b"x" * 7 + record.chunk_record(CID, DATA, 1.0) + b"tail"
    assert record.serves(rec, 7, RAW, len(DATA))
    assert record.serves(memoryview(rec), 7, RAW, len(DATA))
    assert record.decode_header(rec, 7) is not None


def test_anything_off_is_refused() -> None:
    good = bytearray(record.chunk_record(CID, DATA, 1.0))
    assert not record.serves(good, 0, bytes(32), len(DATA))  # another chunk's record
    assert not record.serves(good, 0, RAW, len(DATA) - 1)  # not the length indexed
    assert not record.serves(good[:-1], 0, RAW, len(DATA))  # cut short (a torn tail)
    rot = bytearray(good)
    rot[HEADER_SIZE + 5] ^= 1
    assert not record.serves(rot, 0, RAW, len(DATA))  # payload CRC
    head = bytearray(good)
    head[20] ^= 1
    assert not record.serves(head, 0, RAW, len(DATA))  # header CRC
    flagged = bytearray(good)
    struct.pack_into("<H", flagged, 6, record.FLAG_ZSTD)
    _reseal(flagged)
    assert record.decode_header(flagged, 0) is not None
    assert not record.serves(flagged, 0, RAW, len(DATA))  # an encoding this version lacks
    tomb = bytearray(record.tombstone_record(CID, 1, 0, 1.0))
    assert not record.serves(tomb, 0, RAW, record.TOMBSTONE_LENGTH)  # not a chunk record
    versioned = bytearray(good)
    versioned[4] = record.VERSION + 1
    _reseal(versioned)
    assert not record.serves(versioned, 0, RAW, len(DATA))
