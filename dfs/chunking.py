"""Pure chunkers: split a byte stream into content-defined (FastCDC) or fixed-size chunks.

A chunk's id is the lowercase hex SHA-256 of its bytes. Chunkers read from a binary stream in
bounded buffers, so memory stays bounded whatever the input size: the chunk list grows by one
small ``ChunkRef`` per chunk, never by the chunk bytes.

Profiles are written as strings and stored with each file, so a re-upload can chunk the same
way: ``fastcdc:MIN:AVG:MAX`` (default ``fastcdc:262144:1048576:4194304``) or ``fixed:SIZE``.
pyfastcdc's effective average is about AVG + MIN (its cut-point skipping); the parameters are
passed as given so that the profile string means what it says to anyone reading the paper.

No network, no asyncio, nothing from dfs but errors, ids and protocol.
"""

from __future__ import annotations

import collections
import hashlib
import io
import re
from collections.abc import Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

from dfs.errors import InvalidRequest
from dfs.ids import ChunkId
from dfs.protocol import KIB, MAX_CHUNK_SIZE, MIB, MIN_CHUNK_SIZE

DEFAULT_CDC_MIN = 256 * KIB
DEFAULT_CDC_AVG = 1 * MIB
DEFAULT_CDC_MAX = 4 * MIB
DEFAULT_PROFILE = f"fastcdc:{DEFAULT_CDC_MIN}:{DEFAULT_CDC_AVG}:{DEFAULT_CDC_MAX}"
_READ_SIZE = 4 * MIB
_SIZE_RE = re.compile(r"0|[1-9][0-9]*")
MAX_PROFILE_TEXT = 64
"""Characters of a profile string (the longest valid one, ``fastcdc:1048576:4194304:16777216``,
has 32)."""


@dataclass(frozen=True, slots=True)
class ChunkRef:
    """One chunk of a file: where it starts, how long it is, and its id."""

    offset: int
    size: int
    chunk_id: ChunkId


@dataclass(frozen=True, slots=True)
class Chunk:
    """A chunk with its bytes (for callers that send them on at once)."""

    offset: int
    data: memoryview | bytes
    chunk_id: ChunkId


@dataclass(frozen=True, slots=True)
class FileScan:
    """The result of chunking a whole file: its size, whole-file sha256 and chunk list."""

    size: int
    sha256: str
    chunks: list[ChunkRef]


@dataclass(frozen=True, slots=True)
class ChunkerProfile:
    """How to chunk: ``kind`` is "fastcdc" or "fixed"."""

    kind: str
    min_size: int
    avg_size: int
    max_size: int

    @classmethod
    def fastcdc(
        cls,
        min_size: int = DEFAULT_CDC_MIN,
        avg: int = DEFAULT_CDC_AVG,
        max_size: int = DEFAULT_CDC_MAX,
    ) -> ChunkerProfile:
        return cls.parse(f"fastcdc:{min_size}:{avg}:{max_size}")

    @classmethod
    def default(cls) -> ChunkerProfile:
        """FastCDC at DEFAULT_PROFILE: what every client and the API chunk with unless told."""
        return cls.parse(DEFAULT_PROFILE)

    @classmethod
    def fixed(cls, size: int) -> ChunkerProfile:
        return cls.parse(f"fixed:{size}")

    @classmethod
    def parse(cls, text: str) -> ChunkerProfile:
        """Parse and validate a profile string; raises InvalidRequest naming what is wrong.
        At most ``MAX_PROFILE_TEXT`` characters: a request's ``chunker`` of thousands of
        digits made ``int()`` raise ValueError (a 500), and every refusal quoted the whole
        text back."""
        if len(text) > MAX_PROFILE_TEXT:
            raise InvalidRequest(
                f"chunker profile {text[:40]!r}...: longer than {MAX_PROFILE_TEXT} characters"
            )
        kind, _, rest = text.partition(":")
        parts = rest.split(":") if rest else []
        # ASCII digits only: int() would also take " 8", "+8", "8_192" and non-ASCII digits,
        # and the stored profile string must be exactly str(profile)
        if not all(_SIZE_RE.fullmatch(p) for p in parts):
            raise InvalidRequest(f"chunker profile {text!r}: sizes must be decimal integers")
        numbers = [int(p) for p in parts]
        if kind == "fixed" and len(numbers) == 1:
            (size,) = numbers
            if not MIN_CHUNK_SIZE <= size <= MAX_CHUNK_SIZE:
                raise InvalidRequest(
                    f"fixed chunk size {size} must be within [{MIN_CHUNK_SIZE}, {MAX_CHUNK_SIZE}]"
                )
            return cls("fixed", size, size, size)
        if kind == "fastcdc" and len(numbers) == 3:
            lo, avg, hi = numbers
            # pyfastcdc's limits: min [64, 1 MiB], avg [256, 4 MiB], max [1 KiB, 16 MiB]
            if not (64 <= lo <= MIB and 256 <= avg <= 4 * MIB and KIB <= hi <= MAX_CHUNK_SIZE):
                raise InvalidRequest(f"chunker profile {text!r}: sizes out of FastCDC's range")
            if not lo <= avg <= hi:
                raise InvalidRequest(f"chunker profile {text!r}: need min <= avg <= max")
            return cls("fastcdc", lo, avg, hi)
        raise InvalidRequest(
            f"chunker profile {text!r}: expected 'fastcdc:MIN:AVG:MAX' or 'fixed:SIZE'"
        )

    def __str__(self) -> str:
        if self.kind == "fixed":
            return f"fixed:{self.max_size}"
        return f"fastcdc:{self.min_size}:{self.avg_size}:{self.max_size}"

    def loose_head_label(self) -> str:
        """The chunker recorded for a file cut by ``split_loose_head``: not ``str(self)``,
        so a reader that takes a file of ``str(self)`` for one cut by ``split`` (a multipart
        Complete of an older gateway, which keeps such a part's first chunk as a single
        stream's) never takes these; deliberately no profile ``parse`` accepts."""
        return f"{self}{LOOSE_HEAD_SUFFIX}"

    def split(self, stream: BinaryIO) -> Iterator[Chunk]:
        """Yield the chunks of ``stream`` in order.

        A yielded chunk's ``data`` may be a view into a buffer that the next chunk reuses:
        hash or copy it before advancing the iterator.
        """
        for c in _cut(stream, self):
            yield Chunk(c.offset, c.data, chunk_id_of(c.data))

    def split_loose_head(self, stream: BinaryIO) -> Iterator[Chunk]:
        """``split``, but the first chunk ends at the first cut candidate of FastCDC's looser
        mask (the one it uses past the average size), with no minimum size: for a multipart
        part that does not start the object. ``dfs.api.splice`` re-chunks the bytes around
        each part edge from the previous part's last in-step cut until a cut falls on one of
        this part's own; a single stream's first cut after the edge is often that candidate
        (always when the chunk across the edge is past its average size), and from an own
        cut that is one, this part's chunks are the stream's: fewer chunks around each edge
        are cut and stored twice (measured on random data, 8 MiB parts: 2.3 -> 1.8 MiB per
        edge). The chunks after the first are exactly ``split``'s from there."""
        loose = _loose_head_cdc(self)
        if loose is None:
            yield from self.split(stream)
            return
        head = _loose_head(stream, loose, self.max_size)
        if not head:
            return
        n = next(iter(loose.cut_buf(head))).length
        yield Chunk(0, memoryview(head)[:n], chunk_id_of(memoryview(head)[:n]))
        rest = cast(BinaryIO, _Prefixed(memoryview(head)[n:], stream))
        del head  # ``rest`` lets it go once read: no head held while the part is chunked
        for c in self.split(rest):
            yield Chunk(c.offset + n, c.data, c.chunk_id)

    def cut_buffer(self, buf: bytes | bytearray) -> Generator[Chunk, None, None]:
        """The chunks of the bytes in ``buf`` as ``split`` cuts them, without their ids
        (``chunk_id`` is empty), for a caller that keeps only some and hashes those
        (``chunk_id_of``); ``data`` views ``buf``. No stream and no copy: several times
        faster than ``split`` over a ``BytesIO`` for bytes held in memory."""
        if self.kind == "fixed":
            view = memoryview(buf)
            for offset in range(0, len(buf), self.max_size):
                yield Chunk(offset, view[offset : offset + self.max_size], ChunkId(""))
            return
        cdc = _fastcdc(self)
        for c in cdc.cut_buf(buf):
            yield Chunk(c.offset, c.data, ChunkId(""))


_LOOSE_HEAD_READ = 256 * KIB
LOOSE_HEAD_SUFFIX = "+loose-head"
"""Appended to the profile string of a file whose first chunk ``split_loose_head`` cut."""


def _loose_head_cdc(profile: ChunkerProfile) -> Any:
    """A FastCDC whose every mask is ``profile``'s looser one (pyfastcdc's normalized
    chunking 1: the average's bits less one), minimum 64 bytes; None where that cannot be
    built (fixed chunks, an average that is not a power of two)."""
    avg = profile.avg_size
    if profile.kind != "fastcdc" or avg & (avg - 1) or avg // 2 < 256:
        return None
    from pyfastcdc.cy import FastCDC

    return FastCDC(avg // 2, min_size=64, max_size=profile.max_size, normalized_chunking=0)


def _loose_head(stream: BinaryIO, loose: Any, max_size: int) -> bytearray:
    """The stream's first bytes, read until they hold the loose chunker's first cut (or
    ``max_size`` bytes, or the end): typically a few hundred KiB."""
    head = bytearray()
    while len(head) < max_size:
        more = stream.read(min(_LOOSE_HEAD_READ, max_size - len(head)))
        if not more:
            break
        head += more
        if next(iter(loose.cut_buf(head))).length < len(head):
            break
    return head


class _Prefixed(io.RawIOBase):
    """``prefix`` then the rest of ``stream``, as one stream (for ``split``)."""

    def __init__(self, prefix: memoryview, stream: BinaryIO) -> None:
        self._prefix = prefix
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self._prefix:
            n = min(len(b), len(self._prefix))
            b[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:] if n < len(self._prefix) else memoryview(b"")
            return n
        return self._stream.readinto(b)  # type: ignore[attr-defined,no-any-return]


def chunk_id_of(data: bytes | bytearray | memoryview) -> ChunkId:
    return ChunkId(hashlib.sha256(data).hexdigest())


def scan_stream(stream: BinaryIO, profile: ChunkerProfile) -> FileScan:
    """Chunk a whole stream: chunk list plus size and whole-file sha256, in one pass."""
    whole = hashlib.sha256()
    refs: list[ChunkRef] = []
    size = 0
    for chunk in profile.split(stream):
        whole.update(chunk.data)
        n = len(chunk.data)
        refs.append(ChunkRef(chunk.offset, n, chunk.chunk_id))
        size += n
    return FileScan(size=size, sha256=whole.hexdigest(), chunks=refs)


def scan_file(path: str | Path, profile: ChunkerProfile) -> FileScan:
    with open(path, "rb", buffering=_READ_SIZE) as f:
        return scan_stream(f, profile)


_SCAN_AHEAD = 8  # chunks in flight in scan_file_threaded: memory <= 8 x max chunk size


def scan_stream_threaded(stream: BinaryIO, profile: ChunkerProfile) -> FileScan:
    """The same answer as ``scan_stream``, with the two sha256 passes on their own threads.

    The calling thread only reads and cuts (FastCDC runs at >3 GB/s); each chunk is copied
    once out of the chunker's reused buffer and handed to one thread that hashes chunks and
    one that feeds the whole-file hash in order. hashlib releases the GIL, so on two cores
    the scan runs at about twice the one-thread rate. At most ``_SCAN_AHEAD`` chunks are in
    flight, so memory stays bounded whatever the file size.
    """
    whole = hashlib.sha256()
    refs: list[ChunkRef] = []
    size = 0
    pending: collections.deque[tuple[int, int, Future[ChunkId], Future[None]]]
    pending = collections.deque()

    def settle_one() -> None:
        offset, n, chunk_future, whole_future = pending.popleft()
        whole_future.result()
        refs.append(ChunkRef(offset, n, chunk_future.result()))

    with (
        ThreadPoolExecutor(1, thread_name_prefix="dfs-chunk-sha") as chunk_pool,
        ThreadPoolExecutor(1, thread_name_prefix="dfs-whole-sha") as whole_pool,
    ):
        for chunk in _cut(stream, profile):
            data = bytes(chunk.data)  # the chunker reuses its buffer for the next chunk
            if len(pending) >= _SCAN_AHEAD:
                settle_one()
            # one worker each: whole-file updates run in submission order
            pending.append(
                (
                    chunk.offset,
                    len(data),
                    chunk_pool.submit(chunk_id_of, data),
                    whole_pool.submit(whole.update, data),
                )
            )
            size += len(data)
        while pending:
            settle_one()
    return FileScan(size=size, sha256=whole.hexdigest(), chunks=refs)


def _fastcdc(profile: ChunkerProfile) -> Any:
    """pyfastcdc's chunker at ``profile``'s sizes. Imported here, not at the top: a client run
    that cuts nothing (a restore, a backup whose files the files cache already knows, --help)
    should not pay for loading it at start-up."""
    from pyfastcdc.cy import FastCDC

    return FastCDC(profile.avg_size, min_size=profile.min_size, max_size=profile.max_size)


_WHOLE_ON_THREAD = 64 * KIB
"""Chunks from this size on feed the whole-file sha256 on its own thread in
``hashed_chunks``; a smaller one costs less to hash than to hand over."""


def hashed_chunks(
    stream: BinaryIO, profile: ChunkerProfile, whole: hashlib._Hash
) -> Iterator[Chunk]:
    """``profile.split(stream)``, also feeding every chunk to ``whole`` (the whole-file
    sha256), on a second thread while this one hashes the chunk's id.

    hashlib releases the GIL, so the two hashes of a chunk run at once on two cores: the
    scan of a file being uploaded costs about one sha256 pass of wall time, not two. The
    chunk's bytes are not copied (both threads read the chunker's buffer, and the whole-file
    update is done before the chunk is yielded and the buffer reused), and ``whole`` sees
    the chunks in order. Consume it to the end for ``whole`` to cover the stream.
    """
    with ThreadPoolExecutor(1, thread_name_prefix="dfs-whole-sha") as pool:
        for c in _cut(stream, profile):
            if len(c.data) < _WHOLE_ON_THREAD:
                whole.update(c.data)
                yield Chunk(c.offset, c.data, chunk_id_of(c.data))
                continue
            fed = pool.submit(whole.update, c.data)
            chunk_id = chunk_id_of(c.data)
            fed.result()
            yield Chunk(c.offset, c.data, chunk_id)


def _cut(stream: BinaryIO, profile: ChunkerProfile) -> Iterator[Chunk]:
    """Chunks without their ids (``chunk_id`` is empty): the cutting part of ``split``."""
    if profile.kind == "fixed":
        yield from _cut_fixed(stream, profile.max_size)
        return
    cdc = _fastcdc(profile)
    for c in cdc.cut_stream(stream):
        yield Chunk(c.offset, c.data, ChunkId(""))


def _cut_fixed(stream: BinaryIO, size: int) -> Iterator[Chunk]:
    buf = bytearray(size)
    view = memoryview(buf)
    offset = 0
    while True:
        filled = 0
        while filled < size:
            n = stream.readinto(view[filled:])  # type: ignore[attr-defined]
            if not n:
                break
            filled += n
        if filled == 0:
            return
        yield Chunk(offset, view[:filled], ChunkId(""))
        offset += filled
        if filled < size:
            return


def scan_file_threaded(path: str | Path, profile: ChunkerProfile) -> FileScan:
    with open(path, "rb", buffering=_READ_SIZE) as f:
        return scan_stream_threaded(f, profile)
