"""The chunks of a multipart object as one stream would give them, from its parts' chunks.

Each part of a multipart upload was chunked on its own (FastCDC), so the last chunk of every
part but the last ends where the part ends, not where the content says: a boundary a single
stream would not have. ``Splicer`` is fed the parts' own chunks in order (absolute offsets,
verified bytes) and hands back the object's chunks:

- A part's own chunk is kept as it is while the chunking is in step with a single stream's
  (from the point where each part comes back in step).
- From the start of the last chunk of a part, the bytes are chunked again as one stream
  (the "window"), across the part edge, until a boundary of that chunking falls on a
  boundary of the next parts' own chunking (one that is not itself the start of a part's
  last chunk). FastCDC cuts a chunk using only the bytes since the previous cut, so from
  that boundary on, the parts' own chunks are exactly the single stream's again, and they
  are kept. Only the window's chunks are new (``Piece.data`` set): usually one to three
  around each part edge.
- A part's first chunk is never taken as in step: it starts where the part starts, not
  where a stream's cut is, and a part after the first has it cut short on purpose
  (``ChunkerProfile.split_loose_head``, so that the part's next cut is more often one of
  the stream's). So a window also starts at every part's first chunk (the first part's
  included: at the object's start the window's first cut is that chunk itself when the
  part was chunked as a stream, and a chunk the tenant holds is not sent again); only the
  chunks after a part's first are taken as in step.
- Every chunk the window cuts before the end of the bytes it holds is final (it was cut
  from a single-stream boundary), so the window keeps only the bytes since its last cut:
  memory stays within about a maximum chunk plus one own chunk, whatever the data (even
  data that never comes back in step).
- The window is cut again at every own chunk fed after its first, from its last final cut:
  the cuts are the same however late they are looked for (FastCDC cuts a chunk from its
  start, whatever follows the cut), so a cut skipped only delays them. Its first chunk alone
  is not cut: it is a part's last own chunk, which the same chunker, from the same start,
  ended only where the part ends (a cut of those bytes finds nothing final). That is about
  a third of the window's FastCDC passes (measured: 3.3 cuts per edge on 8 MiB parts).

Pure: no I/O; the chunker is ``dfs.chunking``'s. ``dfs.api.multipart`` drives it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from dfs.chunking import ChunkerProfile, chunk_id_of


@dataclass(frozen=True, slots=True)
class Piece:
    """A chunk of the object: ``data`` is None for a part's own chunk kept as it is (stored
    already), or the bytes of a chunk cut here (to store)."""

    offset: int
    size: int
    chunk_id: str
    data: bytes | None = None


@dataclass(frozen=True, slots=True)
class Own:
    """A part's own chunk, at its offset in the object: its bytes (``data`` then ``more``,
    when they are in several pieces; views will do: the splicer copies what it keeps), or
    only its ``length`` where the splicer does not want them (``Splicer.wants``)."""

    offset: int
    chunk_id: str
    data: bytes | memoryview | None
    length: int = 0
    more: tuple[bytes | memoryview, ...] = ()

    @property
    def size(self) -> int:
        if self.data is None:
            return self.length
        return len(self.data) + sum(len(m) for m in self.more)


class Splicer:
    def __init__(
        self,
        profile: ChunkerProfile,
        window_starts: Collection[int],
        own_starts: Collection[int],
        total: int,
    ) -> None:
        """``window_starts``: the offsets of the first chunk of every part and of the last
        chunk of every part but the last; ``own_starts``: the offsets of every own chunk of
        every part; ``total``: the object's size."""
        self._profile = profile
        self._window_starts = set(window_starts)
        self._in_step = set(own_starts) - self._window_starts | {total}
        self._total: int | None = total
        self._pending: deque[Own] = deque()
        self._window: list[Own] | None = None
        self._start = 0  # offset of the window's first byte
        self._buf = bytearray()

    @classmethod
    def streaming(cls, profile: ChunkerProfile) -> Splicer:
        """A splicer told the parts one by one (``add_part``, before their chunks are fed)
        and the object's size only at ``finish``: for parts spliced as they arrive. Every
        part's last chunk starts a window (whether a part is the last is known only at the
        end), so the last part's is cut again at ``finish``: the same chunk, as its start is
        in step."""
        splicer = cls(profile, (), (), 0)
        splicer._in_step.clear()
        splicer._total = None
        return splicer

    def add_part(self, own_starts: Sequence[int]) -> None:
        """The next part's own chunk starts, in object offsets (``streaming``)."""
        if own_starts:
            self._window_starts.update((own_starts[0], own_starts[-1]))
            self._in_step.update(own_starts[1:-1])

    @property
    def held(self) -> int:
        """Bytes the splicer holds (its window's and the own chunks not settled yet)."""
        return len(self._buf) + sum(o.size for o in self._pending if o.data is not None)

    def wants(self, offset: int) -> bool:
        """Whether the next own chunk, at ``offset``, must be fed with its bytes (it is cut
        again); the others may be fed with their length only."""
        return self._window is not None or offset in self._window_starts

    def feed(self, own: Own) -> list[Piece]:
        """The object's chunks ``own`` (the next own chunk, in order) settles."""
        if own.data is None and self.wants(own.offset):
            raise ValueError(f"the own chunk at {own.offset} is cut again: its bytes are needed")
        self._pending.append(own)
        return self._drain(final=False)

    def finish(self, total: int | None = None) -> list[Piece]:
        """The object's last chunks, once every own chunk was fed; ``total``: the object's
        size, for a ``streaming`` splicer."""
        if total is not None:
            self._total = total
            self._in_step.add(total)
        return self._drain(final=True)

    def _drain(self, final: bool) -> list[Piece]:
        out: list[Piece] = []
        while self._pending or (final and self._window is not None):
            if self._window is None:
                own = self._pending.popleft()
                if own.offset not in self._window_starts:
                    out.append(Piece(own.offset, own.size, own.chunk_id))
                    continue
                self._window, self._start, self._buf = [], own.offset, bytearray()
                self._pending.appendleft(own)
            while self._pending:
                own = self._pending.popleft()
                assert own.data is not None  # checked by feed: a window's chunks have bytes
                self._buf += own.data
                for more in own.more:
                    self._buf += more
                self._window.append(Own(own.offset, own.chunk_id, None, own.size))
            if not final and len(self._window) == 1 and self._window[0].offset == self._start:
                return out  # its first chunk alone: nothing final in it (module docstring)
            cut, back_in_step = self._cut(final)
            out += cut
            if back_in_step is None:
                if final:
                    raise ValueError("the own chunks do not add up to the object's size")
                return out
            # in step again: the own chunks from there on are the single stream's
            self._pending.extend(self._own_from(back_in_step))
            self._window, self._buf = None, bytearray()
        return out

    def _own_from(self, offset: int) -> list[Own]:
        """The window's own chunks from ``offset`` on, with their bytes (from the window's)
        where a window starts again."""
        assert self._window is not None
        out = []
        for o in self._window:
            if o.offset >= offset:
                at = o.offset - self._start
                starts = o.offset in self._window_starts
                data = bytes(self._buf[at : at + o.size]) if starts else None
                out.append(Own(o.offset, o.chunk_id, data, o.size))
        return out

    def _cut(self, final: bool) -> tuple[list[Piece], int | None]:
        """Chunk the window's bytes; the final chunks cut, and the offset where the chunking
        is back in step with the parts' own (None: not yet). Keeps the bytes after the last
        final cut."""
        assert self._window is not None
        end = self._start + len(self._buf)
        pieces, back = self._final_chunks(final, end)
        if pieces:
            done = pieces[-1].offset + pieces[-1].size
            del self._buf[: done - self._start]
            self._start = done
            self._window = [o for o in self._window if o.offset >= done]
        if final and back is None and end == self._total and self._start == end:
            back = end  # everything cut: nothing left in the window
        return pieces, back

    def _final_chunks(self, final: bool, end: int) -> tuple[list[Piece], int | None]:
        """The window's chunks that are final, up to the first that ends back in step (and
        that offset). Cut again at every feed: only the chunks kept are hashed. Returns
        holding no view of the buffer (the caller resizes it)."""
        pieces: list[Piece] = []
        chunks = self._profile.cut_buffer(self._buf)
        try:
            for c in chunks:
                c_end = self._start + c.offset + len(c.data)
                if c_end == end and not (final and end == self._total):
                    break  # cut only because the bytes held end here: not final yet
                data = bytes(c.data)
                pieces.append(Piece(self._start + c.offset, len(data), chunk_id_of(data), data))
                if c_end in self._in_step:
                    return pieces, c_end
            return pieces, None
        finally:
            chunks.close()
