"""``dfs.api.splice``: the parts' own chunks spliced into the chunks of one stream."""

from __future__ import annotations

import io
import random
from collections.abc import Generator

import pytest

from dfs.api.splice import Own, Piece, Splicer
from dfs.chunking import Chunk, ChunkerProfile

MIB = 1 << 20
PROFILE = ChunkerProfile.fastcdc(16 * 1024, 64 * 1024, 256 * 1024)


def _chunks(data: bytes) -> list[tuple[int, int, str]]:
    return [(c.offset, len(c.data), c.chunk_id) for c in PROFILE.split(io.BytesIO(data))]


def _part_chunks(part: bytes, loose: bool) -> list[tuple[int, int, str]]:
    """A part's own chunks as the gateway cuts them: the first part's as a stream's, the
    others' with a loose head (``ChunkerProfile.split_loose_head``) when ``loose``."""
    if not loose:
        return _chunks(part)
    return [(c.offset, len(c.data), c.chunk_id) for c in PROFILE.split_loose_head(io.BytesIO(part))]


def _splice(
    data: bytes, part_sizes: list[int], lazy: bool = False, loose: bool = True
) -> list[Piece]:
    owns: list[Own] = []
    window_starts, base = set(), 0
    for i, size in enumerate(part_sizes):
        part = data[base : base + size]
        chunks = _part_chunks(part, loose and i > 0)
        mine = [Own(base + o, cid, part[o : o + n]) for o, n, cid in chunks]
        owns += mine
        if mine:
            window_starts.add(mine[0].offset)
        if mine and i < len(part_sizes) - 1:
            window_starts.add(mine[-1].offset)
        base += size
    splicer = Splicer(PROFILE, window_starts, {o.offset for o in owns}, len(data))
    out: list[Piece] = []
    for own in owns:
        if lazy and not splicer.wants(own.offset):  # its length only: the bytes stay unread
            own = Own(own.offset, own.chunk_id, None, own.size)
        out += splicer.feed(own)
    return out + splicer.finish()


@pytest.mark.parametrize(
    ("seed", "parts"),
    [
        (1, [MIB // 2] * 6),
        (2, [MIB // 2 + 17, MIB // 3, MIB, 1000]),
        (3, [300_000, 1, 700_000]),  # a 1-byte part
        (4, [MIB]),
        (5, [MIB, 0, MIB // 2]),  # an empty part
    ],
)
@pytest.mark.parametrize("streaming", [False, True])
def test_spliced_chunks_are_the_single_streams(
    seed: int, parts: list[int], streaming: bool
) -> None:
    data = random.Random(seed).randbytes(sum(parts))
    pieces = _splice_streaming(data, parts) if streaming else _splice(data, parts)
    assert [(p.offset, p.size, p.chunk_id) for p in pieces] == _chunks(data)
    for p in pieces:
        if p.data is not None:
            assert p.data == data[p.offset : p.offset + p.size]
    # only around the part edges and at the object's start (the first part's first chunk,
    # the same chunk); the streaming splicer, not told the size until the end, also cuts the
    # last part's last chunk again (the same chunk)
    edges = len(parts) + 1 if streaming else len(parts)
    new = sum(p.size for p in pieces if p.data is not None)
    assert new <= edges * 4 * 256 * 1024


def test_data_never_back_in_step_stays_bounded() -> None:
    # zeros cut at the maximum size only: unaligned parts never meet the single stream's cuts
    parts = [300_001, 300_001, 300_001, 50]
    data = bytes(sum(parts))
    pieces = _splice(data, parts)
    assert [(p.offset, p.size, p.chunk_id) for p in pieces] == _chunks(data)


@pytest.mark.parametrize(
    ("seed", "parts"),
    [(1, [MIB // 2] * 6), (2, [MIB // 2 + 17, MIB // 3, MIB, 1000]), (3, [300_000, 1, 700_000])],
)
def test_chunks_fed_without_their_bytes_where_not_wanted(seed: int, parts: list[int]) -> None:
    """Complete with the object's SHA-256 known reads only the chunks the splicer wants:
    the same chunks, and fewer bytes read."""
    data = random.Random(seed).randbytes(sum(parts))
    full = _splice(data, parts)
    assert _splice(data, parts, lazy=True) == full
    assert [(p.offset, p.size, p.chunk_id) for p in full] == _chunks(data)


def test_a_wanted_chunk_without_its_bytes_is_refused() -> None:
    own = _chunks(b"x" * 100_000)[0]
    splicer = Splicer(PROFILE, {0}, {0}, 100_000)
    assert splicer.wants(0)
    with pytest.raises(ValueError, match="bytes are needed"):
        splicer.feed(Own(0, own[2], None, own[1]))


def _splice_streaming(data: bytes, part_sizes: list[int]) -> list[Piece]:
    """As ``_splice``, with the parts told one by one and the size only at the end."""
    splicer = Splicer.streaming(PROFILE)
    out: list[Piece] = []
    base = 0
    for i, size in enumerate(part_sizes):
        part = data[base : base + size]
        chunks = _part_chunks(part, i > 0)
        mine = [Own(base + o, cid, part[o : o + n]) for o, n, cid in chunks]
        splicer.add_part([o.offset for o in mine])
        for own in mine:
            if not splicer.wants(own.offset):
                own = Own(own.offset, own.chunk_id, None, own.size)
            out += splicer.feed(own)
        base += size
    return out + splicer.finish(len(data))


class _Counting(ChunkerProfile):
    """``PROFILE``, counting the bytes its ``cut_buffer`` is given."""

    def cut_buffer(self, buf: bytes | bytearray) -> Generator[Chunk, None, None]:
        _SCANNED.append(len(buf))
        return super().cut_buffer(buf)


_SCANNED: list[int] = []


def test_a_windows_first_chunk_alone_is_not_cut_and_views_will_do() -> None:
    """A part's last own chunk, which opens a window, is cut again only once the next
    part's bytes follow it (alone it has no cut before its end); own chunks may come as
    views of the request's bytes, in pieces; the object's chunks are the single stream's."""
    parts = [MIB // 2, MIB // 2, MIB // 3]
    data = random.Random(9).randbytes(sum(parts))
    profile = _Counting(PROFILE.kind, PROFILE.min_size, PROFILE.avg_size, PROFILE.max_size)
    splicer = Splicer.streaming(profile)
    view = memoryview(data)
    out: list[Piece] = []
    base = 0
    _SCANNED.clear()
    for i, size in enumerate(parts):
        mine = [(base + o, n, cid) for o, n, cid in _part_chunks(data[base : base + size], i > 0)]
        splicer.add_part([o for o, _, _ in mine])
        for offset, n, cid in mine:
            if splicer.wants(offset):
                scanned = len(_SCANNED)
                half = offset + n // 2  # in two pieces, as a part's socket reads split it
                out += splicer.feed(
                    Own(offset, cid, view[offset:half], n, (view[half : offset + n],))
                )
                if offset == mine[-1][0] and i < len(parts) - 1:
                    assert len(_SCANNED) == scanned  # the window's first chunk alone
            else:
                out += splicer.feed(Own(offset, cid, None, n))
        base += size
    out += splicer.finish(len(data))
    assert [(p.offset, p.size, p.chunk_id) for p in out] == _chunks(data)
    assert all(p.data == data[p.offset : p.offset + p.size] for p in out if p.data is not None)
    assert sum(_SCANNED) < 2 * len(data)


def test_parts_with_loose_heads_cut_fewer_bytes_again() -> None:
    """Parts after the first cut with a loose first chunk come back in step with the single
    stream sooner: the same object's chunks, fewer of its bytes cut again and stored twice
    (about 0.8x on random data)."""
    parts = [256 * 1024] * 40
    data = random.Random(11).randbytes(sum(parts))
    again = {}
    for loose in (False, True):
        pieces = _splice(data, parts, loose=loose)
        assert [(p.offset, p.size, p.chunk_id) for p in pieces] == _chunks(data)
        again[loose] = sum(p.size for p in pieces if p.data is not None)
    assert again[True] < 0.9 * again[False]


def test_a_first_part_chunked_loose_is_still_spliced_as_a_stream() -> None:
    """Whatever a part's first chunk is (a first part sent with a loose head, a part copied
    in), the splicer never keeps it as in step: the object's chunks are the stream's."""
    parts = [MIB // 2, MIB // 3, MIB // 2]
    data = random.Random(12).randbytes(sum(parts))
    splicer = Splicer.streaming(PROFILE)
    out: list[Piece] = []
    base = 0
    for size in parts:
        part = data[base : base + size]
        mine = [Own(base + o, cid, part[o : o + n]) for o, n, cid in _part_chunks(part, True)]
        splicer.add_part([o.offset for o in mine])
        for own in mine:
            out += splicer.feed(own)
        base += size
    out += splicer.finish(len(data))
    assert [(p.offset, p.size, p.chunk_id) for p in out] == _chunks(data)
