"""The whole-object SHA-256 of a multipart upload, kept as its parts arrive, so that
CompleteMultipartUpload need not read every part back to compute it.

SHA-256 runs over the bytes in order and cannot be combined from the parts' hashes, and
parts arrive in parallel (boto3 and the AWS CLI send 10 at once). So ``Chains`` keeps, for
each upload whose parts this process receives, the hash of its parts 1..k and the bytes of
the later parts that were recorded before their predecessors, held until those are hashed;
each part's bytes are collected as they are read (``Tap``, the same bytes the chunker gets
and whose chunk ids the nodes verified). The bytes held in all are bounded
(``BUFFER_BUDGET``): a part that does not fit breaks its upload's chain.

A chain is broken (its bytes dropped, nothing answered for it) by anything that leaves it
unsure: a part over the budget, a part sent again after its number was hashed. Complete
asks ``digest``: the SHA-256 if the chain hashed exactly the parts it completes (numbers,
file ids and sizes, in order) and nothing else; otherwise None, and Complete reads the
parts back as before (also when parts came through other gateways: a chain is one
process's). A chain holding parts that has hashed none for ``STALL_SECONDS`` (their
predecessor went to another gateway, or never comes) is broken, so its bytes do not stay
held; chains idle for ``IDLE_SECONDS`` are forgotten. No I/O but a worker thread for the
hashing.

A chain's object spliced ahead (``dfs.api.multipart_ahead``) is handed to Complete
(``complete``) unless a chunk of it could not be sent (``Ahead.failed``); its chunks sent
ahead are committed only within 0.9 x DFS_GC_GRACE of the first (``Ahead.sent_at``: GC's
orphan sweep deletes them past the grace), else Complete reads the edges back
(``dfs.api.multipart_assemble``).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from dfs.api.multipart_ahead import Ahead
from dfs.api.splice import Piece
from dfs.chunking import ChunkerProfile
from dfs.ids import new_file_id
from dfs.meta.base import ManifestEntry
from dfs.meta.multipart import UploadPart

BUFFER_BUDGET = 256 * 1024**2
"""Bytes of parts held (read or recorded, not yet hashed) by one process, all uploads."""
IDLE_SECONDS = 3600.0
STALL_SECONDS = 120.0
ReadFn = Callable[[int], Coroutine[Any, Any, bytes]]
_Key = tuple[int, str, int]  # part number, file id, size


def _hash_all(h: Any, pieces: Sequence[bytes]) -> None:
    for p in pieces:
        h.update(p)


def _hash_part(h: Any, pieces: Sequence[bytes], ahead: Ahead | None, part: _Waiting) -> bool:
    """Hash a part's bytes and splice it ahead (``ahead``, when the chain has one and the
    part's chunks are known); False if the splice failed (the chain's ``ahead`` is dropped)."""
    _hash_all(h, pieces)
    if ahead is None or part.entries is None:
        return ahead is None
    try:
        ahead.feed(pieces, part.entries, part.key[2])
    except ValueError:
        return False
    return True


@dataclass
class _Waiting:
    key: _Key
    pieces: list[bytes]
    entries: Sequence[ManifestEntry] | None  # the part's own chunks, if known


@dataclass
class _Chain:
    hasher: Any = field(default_factory=hashlib.sha256)
    hashed: list[_Key] = field(default_factory=list)
    waiting: dict[int, _Waiting] = field(default_factory=dict)
    ahead: Ahead | None = None  # the object spliced as its parts are hashed
    ahead_held: int = 0  # bytes of ``ahead`` counted against the budget
    broken: bool = False
    used: float = 0.0
    progress: float = 0.0  # when it last hashed a part (or was made)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def next_number(self) -> int:
        return self.hashed[-1][0] + 1 if self.hashed else 1


class Tap:
    """One part's bytes as they are read (``reading`` wraps the body's ``read``)."""

    def __init__(self, chains: Chains, upload_id: str, number: int) -> None:
        self._chains = chains
        self.upload_id = upload_id
        self.number = number
        self.pieces: list[bytes] = []
        self.held = 0
        self.overflow = False

    def reading(self, read: ReadFn) -> ReadFn:
        async def tapped(n: int) -> bytes:
            data = await read(n)
            if data and not self.overflow:
                if self._chains.reserve(len(data)):
                    self.pieces.append(data)
                    self.held += len(data)
                else:
                    self.overflow = True
                    self.release()
            return data

        return tapped

    def release(self) -> None:
        """Give the bytes held back to the budget (the part failed, or was handed on)."""
        self._chains.unreserve(self.held)
        self.pieces, self.held = [], 0


class Chains:
    """The hash chains of the uploads this process receives parts of."""

    def __init__(
        self,
        budget: int = BUFFER_BUDGET,
        clock: Callable[[], float] = time.monotonic,
        splice: ChunkerProfile | None = None,
    ) -> None:
        """``splice``: the profile the parts are chunked with, to splice each upload's
        object ahead as its parts are hashed (``dfs.api.multipart_ahead``; None: no)."""
        self.budget = budget
        self.clock = clock
        self.splice = splice
        self.held = 0
        self._chains: dict[str, _Chain] = {}

    def reserve(self, n: int) -> bool:
        if self.held + n > self.budget:
            return False
        self.held += n
        return True

    def unreserve(self, n: int) -> None:
        self.held -= n

    def tap(self, upload_id: str, number: int) -> Tap:
        self._drop_idle()
        return Tap(self, upload_id, number)

    async def recorded(
        self,
        tap: Tap,
        file_id: str,
        size: int,
        entries: Sequence[ManifestEntry] | None = None,
    ) -> None:
        """``tap``'s part was recorded: hash it, and the parts waiting behind it, in order
        (or hold it until its predecessors are hashed). ``entries``: the part's own chunks
        (part offsets), to splice it ahead; without them its upload is not spliced ahead."""
        chain = self._chain(tap.upload_id)
        async with chain.lock:
            chain.used = self.clock()
            if chain.broken or tap.overflow or tap.held != size or tap.number < chain.next_number():
                self._break(chain)  # unsure what it hashed, or a number hashed already sent again
                tap.release()
                return
            old = chain.waiting.pop(tap.number, None)
            if old is not None:  # the part sent again before it was hashed: the new one counts
                self.unreserve(old.key[2])
            chain.waiting[tap.number] = _Waiting((tap.number, file_id, size), tap.pieces, entries)
            tap.pieces, tap.held = [], 0  # the chain holds them now
            while chain.next_number() in chain.waiting:
                part = chain.waiting.pop(chain.next_number())
                ahead = chain.ahead
                if not await asyncio.to_thread(_hash_part, chain.hasher, part.pieces, ahead, part):
                    self._drop_ahead(chain)
                chain.hashed.append(part.key)
                chain.progress = self.clock()
                self.unreserve(part.key[2])
                self._hold_ahead(chain)

    async def take_unsent(self, upload_id: str) -> tuple[Ahead, list[Piece]] | None:
        """The new chunks the upload's object was spliced into and that are not sent yet
        (the caller sends them and keeps their receipts in the ``Ahead``), if it is spliced
        ahead."""
        chain = self._chains.get(upload_id)
        if chain is None:
            return None
        async with chain.lock:  # not while a part is fed to it
            ahead = chain.ahead
            if ahead is None:
                return None
            unsent = ahead.take_unsent()
            self._hold_ahead(chain)
            return ahead, unsent

    def _hold_ahead(self, chain: _Chain) -> None:
        """Count the bytes ``chain.ahead`` holds against the budget (dropped if over)."""
        held = chain.ahead.held if chain.ahead is not None else 0
        if held > chain.ahead_held and not self.reserve(held - chain.ahead_held):
            self._drop_ahead(chain)
            return
        if held < chain.ahead_held:
            self.unreserve(chain.ahead_held - held)
        chain.ahead_held = held

    def _drop_ahead(self, chain: _Chain) -> None:
        self.unreserve(chain.ahead_held)
        chain.ahead, chain.ahead_held = None, 0

    async def digest(self, upload_id: str, parts: Sequence[UploadPart]) -> str | None:
        """The SHA-256 of ``parts`` (in order) if this process hashed exactly those, else
        None; the chain is forgotten either way."""
        return (await self.complete(upload_id, parts))[0]

    async def complete(
        self, upload_id: str, parts: Sequence[UploadPart]
    ) -> tuple[str | None, Ahead | None]:
        """``digest``, and the object spliced ahead when it was, of exactly those parts
        (its last chunks not cut yet: ``Ahead.finish``)."""
        chain = self._chains.get(upload_id)
        if chain is None:
            return None, None
        async with chain.lock:
            want = [(p.part_number, p.file_id, p.size) for p in parts]
            whole, ahead = None, None
            if not chain.broken and not chain.waiting and chain.hashed == want:
                whole = str(chain.hasher.hexdigest())
                ahead = chain.ahead if chain.ahead is not None and not chain.ahead.failed else None
            self.drop(upload_id)
            return whole, ahead

    def breaks(self, upload_id: str) -> None:
        """A part of the upload arrived that no tap saw (UploadPartCopy): no digest for it."""
        self._break(self._chain(upload_id))

    def _chain(self, upload_id: str) -> _Chain:
        chain = self._chains.get(upload_id)
        if chain is None:
            chain = self._chains[upload_id] = _Chain(used=self.clock(), progress=self.clock())
            if self.splice is not None:
                chain.ahead = Ahead(self.splice, new_file_id())
        return chain

    def drop(self, upload_id: str) -> None:
        chain = self._chains.pop(upload_id, None)
        if chain is not None:
            self._break(chain)

    def _break(self, chain: _Chain) -> None:
        chain.broken = True
        for part in chain.waiting.values():
            self.unreserve(part.key[2])
        chain.waiting.clear()
        self._drop_ahead(chain)

    def _drop_idle(self) -> None:
        now = self.clock()
        for upload_id, chain in list(self._chains.items()):
            if chain.used < now - IDLE_SECONDS:
                self.drop(upload_id)
            elif chain.waiting and chain.progress < now - STALL_SECONDS:
                self._break(chain)  # its parts' predecessor is not coming here
