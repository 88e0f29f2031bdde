"""Chunkers: golden vectors, exact coverage, size bounds, dedup under insertion, profile strings.

The golden vectors pin the chunk boundaries: a change in them means every file stored so far
chunks differently on re-upload (no dedup against old copies), so it must be deliberate.
Regenerate with ``_vectors(data, profile)`` below and paste.
"""

from __future__ import annotations

import hashlib
import io
import itertools
from pathlib import Path

import pytest

from dfs.chunking import (
    DEFAULT_PROFILE,
    ChunkerProfile,
    FileScan,
    chunk_id_of,
    hashed_chunks,
    scan_file,
    scan_stream,
)
from dfs.errors import InvalidRequest
from dfs.protocol import KIB, MAX_CHUNK_SIZE, MIB, MIN_CHUNK_SIZE
from tests.conftest import random_bytes

# random_bytes(1, 8 MiB); pinned so that a change of the generator is not blamed on a chunker
SEED1_8MIB_SHA256 = "78a9957e1924a199ef38debd575557fedb4e735df3f2406615fef8a288622f45"

GOLDEN_DEFAULT = [
    (1521776, "89a0f054128868fa3534d0c367b5add204c3b43fadcdc6710b0f585285bb2ced"),
    (1829765, "cd0605929a703e0fc1e5a47f0e11f0b9a6d2fb964a2ded2ca62a07ec8ac66d76"),
    (518824, "dc8e71924f908269d2821f86df49919e6ef3f65a5e664bf48af21e0ce2c22707"),
    (1607681, "6cdb8a9aaffabc7243dc07b14e24fc337f83ec571d25d35d524678d90b2d9599"),
    (487789, "3f0dff5242def1c5c4374e14f4b21097a6a04d406ac5c0adbd0bf00ccced262d"),
    (565186, "cddc138adb86e066bf341fa2185e4e03d1918a300a41c205d13533b875d06482"),
    (1109923, "060c2a4678d1b469a3f65deac6e47f3a5217326ee5a9f5801d170f5d5929c6dc"),
    (747664, "4492158e40c44fbb4c2d266f7f96adb4652a11f04f09488de5c2391cfb8d1937"),
]

GOLDEN_FIXED_64K_HEAD = [
    (65536, "230e87ec762302c68b5a0368441f0ac43c9b0349b93c160b26b78a125ff57557"),
    (65536, "edad3540aeb2a6358937bf989293496b6b9d782891ef5485aa94b336ebb6f52a"),
    (65536, "9c0c59ba3edb1383a6c6786a1e013cfd691b7b2a4261b7eb5c9f03a56efcb4e2"),
    (65536, "d61de67b266afe204e4ff4b35cf71d93d6e0753facc6474bc3e8d036a80b4d2b"),
    (65536, "7737ae8710cd12a8a7a89ee6a171edc3fc2e65fb88d48f1e68355fd3111a5a9c"),
]
GOLDEN_FIXED_64K_COUNT = 128
# sha256 of "".join(f"{length}:{sha256}\n" for each chunk)
GOLDEN_FIXED_64K_DIGEST = "936f1e17a997782b58357061b90ebaec0abbb8d573eead7442a06b630401ebca"

SMALL_CDC = "fastcdc:4096:16384:65536"  # many chunks per MiB, for the statistical properties


@pytest.fixture(scope="module")
def seed1_8mib() -> bytes:
    data = random_bytes(1, 8 * MIB)
    assert hashlib.sha256(data).hexdigest() == SEED1_8MIB_SHA256, "random_bytes changed"
    return data


def _vectors(data: bytes, profile: str) -> list[tuple[int, str]]:
    return [
        (len(c.data), c.chunk_id) for c in ChunkerProfile.parse(profile).split(io.BytesIO(data))
    ]


def _digest(vectors: list[tuple[int, str]]) -> str:
    return hashlib.sha256("".join(f"{n}:{h}\n" for n, h in vectors).encode()).hexdigest()


# --- golden vectors ------------------------------------------------------------------------


def test_golden_default_fastcdc(seed1_8mib: bytes) -> None:
    assert DEFAULT_PROFILE == "fastcdc:262144:1048576:4194304"
    assert _vectors(seed1_8mib, DEFAULT_PROFILE) == GOLDEN_DEFAULT


def test_golden_fixed_64k(seed1_8mib: bytes) -> None:
    vectors = _vectors(seed1_8mib, "fixed:65536")
    assert vectors[:5] == GOLDEN_FIXED_64K_HEAD
    assert len(vectors) == GOLDEN_FIXED_64K_COUNT
    assert _digest(vectors) == GOLDEN_FIXED_64K_DIGEST


def test_chunk_id_is_sha256_of_the_bytes(seed1_8mib: bytes) -> None:
    for chunk in ChunkerProfile.parse(SMALL_CDC).split(io.BytesIO(seed1_8mib[: 1 * MIB])):
        assert chunk.chunk_id == hashlib.sha256(chunk.data).hexdigest()
    assert chunk_id_of(b"") == hashlib.sha256(b"").hexdigest()


# --- coverage and bounds -------------------------------------------------------------------


@pytest.mark.parametrize(
    "profile", [DEFAULT_PROFILE, SMALL_CDC, "fastcdc:64:256:1024", "fixed:65536", "fixed:4096"]
)
@pytest.mark.parametrize("size", [1, 4095, 4096, 65537, MIB + 7])
def test_chunks_cover_input_exactly(profile: str, size: int) -> None:
    data = random_bytes(size, size)
    offset = 0
    pieces = []
    for chunk in ChunkerProfile.parse(profile).split(io.BytesIO(data)):
        assert chunk.offset == offset
        pieces.append(bytes(chunk.data))  # copy before advancing: the buffer may be reused
        offset += len(chunk.data)
    assert offset == size
    assert b"".join(pieces) == data

    scan = scan_stream(io.BytesIO(data), ChunkerProfile.parse(profile))
    assert scan.size == size
    assert sum(c.size for c in scan.chunks) == size
    assert [c.offset for c in scan.chunks] == [
        sum(c.size for c in scan.chunks[:i]) for i in range(len(scan.chunks))
    ]


@pytest.mark.parametrize(
    "profile", [DEFAULT_PROFILE, SMALL_CDC, "fastcdc:64:256:1024", "fixed:65536", "fixed:4096"]
)
@pytest.mark.parametrize("size", [0, 1, 4096, 65537, 9 * MIB + 7])
def test_cut_buffer_cuts_as_split(profile: str, size: int) -> None:
    """The splicer cuts bytes held in memory with ``cut_buffer``: the same chunks as
    ``split`` over a stream of them, the ids left to the caller."""
    prof = ChunkerProfile.parse(profile)
    data = bytearray(random_bytes(size + 3, size))
    split = [(c.offset, bytes(c.data), c.chunk_id) for c in prof.split(io.BytesIO(data))]
    cut = [(c.offset, bytes(c.data), c.chunk_id) for c in prof.cut_buffer(data)]
    assert [(o, d) for o, d, _ in cut] == [(o, d) for o, d, _ in split]
    assert all(cid == "" for _, _, cid in cut)
    data += b"x"  # no view of the buffer outlives the iteration: it can be resized


@pytest.mark.parametrize(
    "profile", [DEFAULT_PROFILE, SMALL_CDC, "fastcdc:64:256:1024", "fastcdc:64:300:1024"]
)
@pytest.mark.parametrize("size", [0, 1, 100, 65537, 9 * MIB + 7])
def test_split_loose_head_is_split_after_its_first_chunk(profile: str, size: int) -> None:
    """A multipart part's chunks (``split_loose_head``): the bytes covered exactly, each id
    its chunk's SHA-256, the first chunk ending at the first cut of the looser mask (no
    minimum size), and every chunk after it ``split``'s from there."""
    prof = ChunkerProfile.parse(profile)
    data = random_bytes(size + 5, size)
    got = [(c.offset, bytes(c.data), c.chunk_id) for c in prof.split_loose_head(io.BytesIO(data))]
    assert b"".join(d for _, d, _ in got) == data
    assert all(cid == hashlib.sha256(d).hexdigest() for _, d, cid in got)
    ends = list(itertools.accumulate(len(d) for _, d, _ in got))
    assert [o for o, _, _ in got] == [0, *ends][: len(got)]
    if not got:
        return
    first = len(got[0][1])
    rest = [(c.offset + first, bytes(c.data)) for c in prof.split(io.BytesIO(data[first:]))]
    assert [(o, d) for o, d, _ in got[1:]] == rest
    if prof.avg_size & (prof.avg_size - 1):  # not a power of two: no loose mask, as split
        assert [d for _, d, _ in got] == [bytes(c.data) for c in prof.split(io.BytesIO(data))]
    elif size > 4 * prof.avg_size:  # random bytes: the loose cut comes well before the max
        assert first < prof.max_size


@pytest.mark.parametrize("profile", [DEFAULT_PROFILE, SMALL_CDC, "fixed:65536", "fixed:4096"])
@pytest.mark.parametrize("size", [0, 1, 65537, 9 * MIB + 7])
def test_hashed_chunks_are_split_plus_the_whole_file_sha256(profile: str, size: int) -> None:
    """``hashed_chunks`` (the paged upload's scan): the chunks and ids of ``split``, each
    copied before the next is asked for, and the whole-file sha256 of the stream, whether
    the chunks feed it on the second thread (>= 64 KiB) or inline."""
    prof = ChunkerProfile.parse(profile)
    data = random_bytes(size + 11, size)
    whole = hashlib.sha256()
    got = [
        (c.offset, bytes(c.data), c.chunk_id) for c in hashed_chunks(io.BytesIO(data), prof, whole)
    ]
    want = [(c.offset, bytes(c.data), c.chunk_id) for c in prof.split(io.BytesIO(data))]
    assert got == want
    assert all(cid == chunk_id_of(d) for _, d, cid in got)
    assert whole.hexdigest() == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    "data",
    [random_bytes(7, 9 * MIB), bytes(9 * MIB), b"ab" * (9 * MIB // 2)],
    ids=["random", "zeros", "periodic"],
)
@pytest.mark.parametrize("profile", [DEFAULT_PROFILE, SMALL_CDC, "fixed:65536"])
def test_size_bounds(profile: str, data: bytes) -> None:
    prof = ChunkerProfile.parse(profile)
    sizes = [c.size for c in scan_stream(io.BytesIO(data), prof).chunks]
    assert len(sizes) > 1
    assert all(s >= prof.min_size for s in sizes[:-1]), sizes
    assert all(0 < s <= prof.max_size for s in sizes), sizes
    assert max(sizes) <= MAX_CHUNK_SIZE


def test_scan_stream_whole_file_sha256(seed1_8mib: bytes) -> None:
    for profile in (DEFAULT_PROFILE, "fixed:65536"):
        scan = scan_stream(io.BytesIO(seed1_8mib), ChunkerProfile.parse(profile))
        assert scan.sha256 == SEED1_8MIB_SHA256
        assert scan.size == len(seed1_8mib)


@pytest.mark.parametrize("profile", [DEFAULT_PROFILE, "fixed:65536"])
def test_empty_input(profile: str) -> None:
    scan = scan_stream(io.BytesIO(b""), ChunkerProfile.parse(profile))
    assert scan == FileScan(size=0, sha256=hashlib.sha256(b"").hexdigest(), chunks=[])


def test_scan_file_matches_scan_stream(tmp_path: Path, seed1_8mib: bytes) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(seed1_8mib[: 2 * MIB + 3])
    prof = ChunkerProfile.parse(SMALL_CDC)
    assert scan_file(path, prof) == scan_stream(io.BytesIO(seed1_8mib[: 2 * MIB + 3]), prof)


# --- dedup ---------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", [DEFAULT_PROFILE, SMALL_CDC])
def test_insertion_changes_only_nearby_chunks(profile: str) -> None:
    data = random_bytes(2, 16 * MIB)
    mid = len(data) // 2
    edited = data[:mid] + random_bytes(3, 100) + data[mid:]
    prof = ChunkerProfile.parse(profile)
    before = [c.chunk_id for c in scan_stream(io.BytesIO(data), prof).chunks]
    after = {c.chunk_id for c in scan_stream(io.BytesIO(edited), prof).chunks}
    shared = sum(c in after for c in before)
    assert shared >= 0.8 * len(before), (shared, len(before))
    assert shared < len(before)  # the edit did change something


def test_fixed_chunker_does_not_dedup_after_insertion() -> None:
    # the contrast that justifies CDC as the default: every chunk after the edit shifts
    data = random_bytes(2, 1 * MIB)
    edited = data[:100] + b"x" + data[100:]
    prof = ChunkerProfile.parse("fixed:65536")
    before = {c.chunk_id for c in scan_stream(io.BytesIO(data), prof).chunks}
    after = {c.chunk_id for c in scan_stream(io.BytesIO(edited), prof).chunks}
    assert not before & after


# --- the fixed chunker's reused buffer -----------------------------------------------------


def test_fixed_chunker_yields_views_that_are_correct_when_consumed_in_time() -> None:
    data = random_bytes(5, 5 * 4096 + 10)
    ids = []
    copies = []
    for chunk in ChunkerProfile.parse("fixed:4096").split(io.BytesIO(data)):
        assert isinstance(chunk.data, memoryview)
        copies.append(bytes(chunk.data))
        ids.append(chunk.chunk_id)
    assert b"".join(copies) == data
    assert [len(c) for c in copies] == [4096] * 5 + [10]
    assert ids == [chunk_id_of(c) for c in copies]


class _Trickle(io.RawIOBase):
    """A stream that returns at most 1000 bytes per read (like a pipe or socket)."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: memoryview) -> int:  # type: ignore[override]
        n = min(len(b), 1000, len(self._data) - self._pos)
        b[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


def test_fixed_chunker_fills_chunks_from_short_reads() -> None:
    data = random_bytes(6, 3 * 4096 + 1)
    scan = scan_stream(_Trickle(data), ChunkerProfile.parse("fixed:4096"))  # type: ignore[arg-type]
    assert [c.size for c in scan.chunks] == [4096, 4096, 4096, 1]
    assert scan.sha256 == hashlib.sha256(data).hexdigest()


# --- profiles ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        DEFAULT_PROFILE,
        "fastcdc:64:256:1024",
        "fastcdc:65536:65536:65536",
        f"fastcdc:{MIB}:{4 * MIB}:{MAX_CHUNK_SIZE}",
        f"fixed:{MIN_CHUNK_SIZE}",
        "fixed:65536",
        f"fixed:{MAX_CHUNK_SIZE}",
    ],
)
def test_profile_parse_accepts_and_round_trips(text: str) -> None:
    prof = ChunkerProfile.parse(text)
    assert str(prof) == text
    assert ChunkerProfile.parse(str(prof)) == prof


def test_profile_constructors() -> None:
    assert str(ChunkerProfile.fastcdc()) == DEFAULT_PROFILE
    assert ChunkerProfile.fixed(65536) == ChunkerProfile("fixed", 65536, 65536, 65536)
    assert ChunkerProfile.fastcdc(4 * KIB, 16 * KIB, 64 * KIB) == ChunkerProfile.parse(SMALL_CDC)


@pytest.mark.parametrize(
    "text",
    [
        f"fixed:{MIN_CHUNK_SIZE - 1}",
        f"fixed:{MAX_CHUNK_SIZE + 1}",
        "fixed:0",
        "fixed:-4096",
        "fixed:",
        "fixed",
        "fixed:65536:65536",
        "fixed:64k",
        "fixed: 65536",
        "fixed:+65536",
        "fixed:65_536",
        "fixed:065536",
        "fixed:\u0666\u0665\u0665\u0663\u0666",  # Arabic-Indic digits: int() takes them
        "FIXED:65536",
        "fastcdc:1024:512:2048",  # min > avg
        "fastcdc:4096:65536:16384",  # avg > max
        "fastcdc:32:256:1024",  # min below FastCDC's range
        f"fastcdc:4096:16384:{MAX_CHUNK_SIZE + 1}",
        "fastcdc:4096:16384",
        "fastcdc",
        "rabin:4096:16384:65536",
        "",
        ":",
        "garbage",
    ],
)
def test_profile_parse_rejects(text: str) -> None:
    with pytest.raises(InvalidRequest):
        ChunkerProfile.parse(text)
