"""A multipart object's chunks spliced ahead, as its parts arrive, so that Complete reads
no chunk back.

``dfs.api.multipart_hash`` hashes a process's parts in order, holding each part's bytes
until its predecessors are hashed. ``Ahead`` rides on that: each part hashed is also fed to a
``streaming`` ``dfs.api.splice.Splicer`` (its own chunks from its manifest, with their
bytes where the splicer cuts again), so the chunks around every part edge are cut while the
bytes are still in memory, instead of being read back from the nodes (verified) at Complete:
measured on 8 MiB parts, Complete read about half the object's bytes back that way. The new
chunks it cuts (``take_unsent``) are sent by ``dfs.api.multipart`` under the object's file
id (``file_id``, chosen now), their receipts and copies kept here; Complete cuts the last
chunks (``finish``) and commits the manifest.

Those chunks have no chunk row and no pending file until Complete, so the orphan sweep
deletes them once they are older than DFS_GC_GRACE, and the receipts and copies kept here
say nothing of that. ``sent_at`` is when the first of them was offered to the nodes: once
it is older than 0.9 x DFS_GC_GRACE (``dfs.api.ingest.sent_too_long_ago``, the bound
finalize puts on any upload) the state is unusable: nothing more is sent ahead, and Complete
reads the edges back and sends them again (``dfs.api.multipart_assemble``), as when a chunk
could not be stored (``failed``).

The bytes fed are the request's own, the same the part's chunk ids were computed from (the
tap sees what the chunker sees); each new chunk's id is its SHA-256, and the nodes verify it.
Memory: the splicer's window (about a maximum chunk plus one own chunk) and the new chunks
not sent yet, counted against the chains' budget by ``dfs.api.multipart_hash``. Pure: no
I/O (the sending is the caller's).
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from dfs.api.splice import Own, Piece, Splicer
from dfs.chunking import ChunkerProfile
from dfs.meta.base import ManifestEntry


def _slice(
    pieces: Sequence[bytes], starts: Sequence[int], offset: int, size: int
) -> list[memoryview]:
    """Bytes ``offset``..``offset + size`` of the concatenated ``pieces`` (``starts``: each
    piece's offset), as views of the pieces: the splicer copies what it keeps, so slices
    of bytes or a join (copies themselves) would copy them twice."""
    i = bisect.bisect_right(starts, offset) - 1
    out: list[memoryview] = []
    want, at = size, offset
    while want > 0:
        piece = memoryview(pieces[i])
        begin = at - starts[i]
        take = piece[begin : begin + want]
        out.append(take)
        want -= len(take)
        at += len(take)
        i += 1
    return out


@dataclass
class Ahead:
    """One upload's object spliced as its parts are hashed in order."""

    profile: ChunkerProfile
    file_id: str
    made: float = field(default_factory=time.monotonic)
    base: int = 0  # the object offset of the next part
    manifest: list[ManifestEntry] = field(default_factory=list)
    unsent: list[Piece] = field(default_factory=list)
    sent: set[str] = field(default_factory=set)
    receipts: dict[str, str] = field(default_factory=dict)
    copies: dict[str, set[str]] = field(default_factory=dict)
    sent_at: float | None = None
    """When (the coordinator's clock) the first new chunk was offered to the nodes; None:
    none was yet."""
    failed: bool = False
    """A new chunk could not be sent: Complete takes the reading path instead."""

    def __post_init__(self) -> None:
        self.splicer = Splicer.streaming(self.profile)

    @property
    def held(self) -> int:
        return self.splicer.held + sum(p.size for p in self.unsent)

    def feed(self, pieces: Sequence[bytes], entries: Sequence[ManifestEntry], size: int) -> None:
        """The next part (in a worker thread: chunking is CPU): its bytes as read
        (``pieces``), its own chunks (``entries``, part offsets) and its size."""
        starts, at = [], 0
        for p in pieces:
            starts.append(at)
            at += len(p)
        if at != size or sum(e.size for e in entries) != size:
            raise ValueError("a part's bytes and chunks do not add up to its size")
        self.splicer.add_part([self.base + e.offset for e in entries])
        for e in entries:
            offset = self.base + e.offset
            if self.splicer.wants(offset):
                first, *more = _slice(pieces, starts, e.offset, e.size)
                own = Own(offset, e.chunk_id, first, e.size, tuple(more))
            else:
                own = Own(offset, e.chunk_id, None, e.size)
            self._take(self.splicer.feed(own))
        self.base += size

    def finish(self) -> None:
        """The object's last chunks (every part fed)."""
        self._take(self.splicer.finish(self.base))

    def take_unsent(self) -> list[Piece]:
        unsent, self.unsent = self.unsent, []
        return unsent

    def _take(self, pieces: Sequence[Piece]) -> None:
        for p in pieces:
            self.manifest.append(ManifestEntry(p.offset, p.size, p.chunk_id))
            if p.data is not None and p.chunk_id not in self.sent:
                self.sent.add(p.chunk_id)
                self.unsent.append(p)
