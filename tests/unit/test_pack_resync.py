"""What a pack's reader takes after a bad spot (a header that does not check, or a record that
runs past the end of the file): nothing found by searching on for the record magic may remove
or supersede a good record, since those bytes may lie inside a payload a tenant chose. Only a
chunk record whose payload hashes to its id is taken there; a tombstone is not; and any
tombstone kills only a record of its own chunk id. Before and without a bad spot, a pack is
read as it always was (rot quarantined, a torn tail cut off).
"""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from pathlib import Path

import pytest

from dfs.chunkstore import record
from dfs.chunkstore.packs import PackSet
from dfs.chunkstore.record import HEADER_SIZE
from dfs.ids import ChunkId


def cid(data: bytes) -> ChunkId:
    return ChunkId(hashlib.sha256(data).hexdigest())


def open_set(root: Path) -> PackSet:
    packs = PackSet(root / "chunks" / "packs", root / "quarantine")
    packs.load()
    return packs


def crash(packs: PackSet) -> Path:
    """Stop as kill -9 would (the active pack left without an index); its path."""
    assert packs._active is not None
    path = packs.path(packs._active.seq)
    os.close(packs._fd)
    packs._fd = -1
    return path


def cut(path: Path, keep: int) -> None:
    with path.open("r+b") as f:
        f.truncate(keep)


def flip(path: Path, at: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[at] ^= 0x01
    path.write_bytes(raw)


VICTIM = b"victim bytes, acknowledged long ago " * 10


def stored_victim(root: Path) -> tuple[ChunkId, int, int]:
    """The victim chunk put and sealed in pack 1; its id and (pack, offset)."""
    packs = open_set(root)
    victim = cid(VICTIM)
    packs.append([(victim, VICTIM)])
    loc = packs.lookup(victim)
    assert loc is not None
    packs.close()
    return victim, loc.pack, loc.offset


def put_torn(root: Path, data: bytes, keep: int) -> None:
    """Put ``data`` as a chunk of a fresh pack, crash, and cut its record to ``keep`` bytes
    (a torn write of it: never acknowledged)."""
    packs = open_set(root)
    packs.append([(cid(data), data)])
    loc = packs.lookup(cid(data))
    assert loc is not None
    path = crash(packs)
    cut(path, loc.offset + keep)


def assert_victim_held(root: Path, victim: ChunkId, at: tuple[int, int]) -> None:
    for _ in range(2):  # and nothing durable was done against it: the next open agrees
        packs = open_set(root)
        loc = packs.lookup(victim)
        assert loc is not None
        assert (loc.pack, loc.offset) == at
        assert packs.read(victim) == VICTIM
        packs.close()
    assert not list((root / "quarantine").iterdir())


def test_a_tombstone_inside_a_torn_payload_kills_nothing(tmp_path: Path) -> None:
    """The review's scenario: a tenant's chunk embeds a well-formed tombstone naming another
    chunk's record; a crash tears that chunk's record; the reload must not apply it."""
    victim, pack, offset = stored_victim(tmp_path)
    fake = record.tombstone_record(victim, pack, offset, 1.0)
    evil = b"x" * 100 + fake + b"y" * 4000
    put_torn(tmp_path, evil, HEADER_SIZE + 100 + len(fake) + 10)
    assert_victim_held(tmp_path, victim, (pack, offset))
    packs = open_set(tmp_path)
    assert packs.lookup(cid(evil)) is None  # the torn record itself is never served
    assert packs.path(2).stat().st_size == 0  # and cut off the file


def test_a_chunk_record_with_a_wrong_hash_after_a_bad_spot_supersedes_nothing(
    tmp_path: Path,
) -> None:
    """A well-formed record claiming the victim's id (good CRCs, other bytes) inside a torn
    payload: it must not become the victim's copy, nor get the real one tombstoned."""
    victim, pack, offset = stored_victim(tmp_path)
    fake = record.chunk_record(victim, b"not the victim's bytes" * 5, 1.0)
    evil = b"x" * 64 + fake + b"y" * 2000
    put_torn(tmp_path, evil, HEADER_SIZE + 64 + len(fake) + 10)
    assert_victim_held(tmp_path, victim, (pack, offset))


def test_a_genuine_record_after_a_bad_spot_is_still_recovered(tmp_path: Path) -> None:
    """Rot in a header in the middle of a pack: the records after it are real and verify, so
    they are found and served (and the rotten one is not)."""
    packs = open_set(tmp_path)
    chunks = [(cid(bytes([i]) * 700), bytes([i]) * 700) for i in range(4)]
    packs.append(chunks)
    loc = packs.lookup(chunks[1][0])
    assert loc is not None
    path = crash(packs)
    flip(path, loc.offset + 10)  # chunk 1's length: its header no longer checks
    packs = open_set(tmp_path)
    assert set(packs.ids()) == {c for i, (c, _) in enumerate(chunks) if i != 1}
    for i, (c, data) in enumerate(chunks):
        assert packs.read(c) == (None if i == 1 else data)


def test_a_genuine_record_inside_a_torn_payload_is_harmless(tmp_path: Path) -> None:
    """A real record of real bytes found inside a torn payload may be taken: it is the
    victim's content, wherever it lies, so the victim stays readable."""
    victim, _pack, _offset = stored_victim(tmp_path)
    copy = record.chunk_record(victim, VICTIM, 1.0)
    evil = b"x" * 64 + copy + b"y" * 2000
    put_torn(tmp_path, evil, HEADER_SIZE + 64 + len(copy) + 10)
    packs = open_set(tmp_path)
    assert packs.read(victim) == VICTIM
    packs.close()
    packs = open_set(tmp_path)
    assert packs.read(victim) == VICTIM
    assert not list((tmp_path / "quarantine").iterdir())


def test_a_tombstone_after_a_bad_spot_is_ignored(tmp_path: Path) -> None:
    """A real tombstone after a bad spot cannot be told from one inside a payload: it is
    ignored, so the chunk it deleted comes back (an orphan, deleted again by garbage
    collection)."""
    packs = open_set(tmp_path)
    a, b = b"a" * 500, b"b" * 500
    packs.append([(cid(a), a), (cid(b), b)])
    assert packs.remove(cid(b))
    path = crash(packs)
    flip(path, 10)  # a's header
    packs = open_set(tmp_path)
    assert packs.ids() == [cid(b)]
    assert packs.read(cid(b)) == b


def test_a_tombstone_kills_only_a_record_of_its_own_chunk(tmp_path: Path) -> None:
    """A tombstone in the normal run of a pack whose chunk id is not that of the record at
    the place it names kills nothing there."""
    victim, pack, offset = stored_victim(tmp_path)
    other = cid(b"another chunk")
    packs = open_set(tmp_path)
    path = crash(packs)
    with path.open("ab") as f:
        f.write(record.tombstone_record(other, pack, offset, 1.0))
    assert_victim_held(tmp_path, victim, (pack, offset))


def _header(chunk_id: ChunkId, length: int, payload_crc: int, flags: int = 0) -> bytes:
    """A chunk record's header with any length, payload CRC and flags (its own CRC good)."""
    head = struct.pack(
        "<4sBBHQQQ32sI", record.MAGIC, 1, record.KIND_CHUNK, flags, length, length, 0,
        bytes.fromhex(chunk_id), payload_crc,
    )  # fmt: skip
    return head + struct.pack("<I", zlib.crc32(head))


def test_a_record_in_an_unknown_encoding_after_a_bad_spot_supersedes_nothing(
    tmp_path: Path,
) -> None:
    """The victim's own bytes in a record flagged with an encoding this version lacks: they
    hash to the id, but the record could not be served, so it must not become the copy."""
    victim, pack, offset = stored_victim(tmp_path)
    flagged = _header(victim, len(VICTIM), zlib.crc32(VICTIM), record.FLAG_ZSTD) + VICTIM
    evil = b"x" * 64 + flagged + b"y" * 2000
    put_torn(tmp_path, evil, HEADER_SIZE + 64 + len(flagged) + 10)
    assert_victim_held(tmp_path, victim, (pack, offset))


@pytest.mark.parametrize("short", [0, 8])
def test_scan_a_record_failing_after_a_bad_spot_hides_nothing_it_covers(short: int) -> None:
    """A header inside a damaged record's payload whose length covers the records after it
    (to the end of the file, or nearly; its payload CRC wrong): it is not a record, and the
    real ones it covers are found."""
    later = [record.chunk_record(cid(bytes([i]) * 300), bytes([i]) * 300, 2.0) for i in range(3)]
    pad = b"z" * 40
    covering = len(pad) + sum(map(len, later)) - short
    fake = _header(cid(b"fake"), covering, 0)
    first = record.chunk_record(cid(pad + fake + pad), pad + fake + pad, 1.0)
    data = bytearray(first + b"".join(later))
    data[10] ^= 0x01  # the first header: a bad spot
    found = record.scan(bytes(data))
    assert [h.chunk_id for _, h in found.records] == [cid(bytes([i]) * 300) for i in range(3)]
    assert found.rotten == []
    assert found.end == len(data)


def test_scan_before_a_bad_spot_is_unchanged() -> None:
    """Without a bad spot, tombstones are taken and rot in the middle is reported."""
    a = record.chunk_record(cid(b"a"), b"a", 1.0)
    b = bytearray(record.chunk_record(cid(b"b" * 10), b"b" * 10, 1.0))
    b[-1] ^= 0x01
    t = record.tombstone_record(cid(b"a"), 1, 0, 2.0)
    found = record.scan(a + bytes(b) + t)
    assert [(off, h.kind) for off, h in found.records] == [
        (0, record.KIND_CHUNK),
        (len(a) + len(b), record.KIND_TOMBSTONE),
    ]
    assert [off for off, _ in found.rotten] == [len(a)]
    assert found.end == len(a) + len(b) + len(t)
