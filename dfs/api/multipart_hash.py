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
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

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


@dataclass
class _Chain:
    hasher: Any = field(default_factory=hashlib.sha256)
    hashed: list[_Key] = field(default_factory=list)
    waiting: dict[int, tuple[_Key, list[bytes]]] = field(default_factory=dict)
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
        self, budget: int = BUFFER_BUDGET, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.budget = budget
        self.clock = clock
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

    async def recorded(self, tap: Tap, file_id: str, size: int) -> None:
        """``tap``'s part was recorded: hash it, and the parts waiting behind it, in order
        (or hold it until its predecessors are hashed)."""
        chain = self._chain(tap.upload_id)
        async with chain.lock:
            chain.used = self.clock()
            if chain.broken or tap.overflow or tap.held != size or tap.number < chain.next_number():
                self._break(chain)  # unsure what it hashed, or a number hashed already sent again
                tap.release()
                return
            old = chain.waiting.pop(tap.number, None)
            if old is not None:  # the part sent again before it was hashed: the new one counts
                self.unreserve(old[0][2])
            chain.waiting[tap.number] = ((tap.number, file_id, size), tap.pieces)
            tap.pieces, tap.held = [], 0  # the chain holds them now
            while chain.next_number() in chain.waiting:
                key, pieces = chain.waiting.pop(chain.next_number())
                await asyncio.to_thread(_hash_all, chain.hasher, pieces)
                chain.hashed.append(key)
                chain.progress = self.clock()
                self.unreserve(key[2])

    async def digest(self, upload_id: str, parts: Sequence[UploadPart]) -> str | None:
        """The SHA-256 of ``parts`` (in order) if this process hashed exactly those, else
        None; the chain is forgotten either way."""
        chain = self._chains.get(upload_id)
        if chain is None:
            return None
        async with chain.lock:
            want = [(p.part_number, p.file_id, p.size) for p in parts]
            whole = None
            if not chain.broken and not chain.waiting and chain.hashed == want:
                whole = str(chain.hasher.hexdigest())
            self.drop(upload_id)
            return whole

    def breaks(self, upload_id: str) -> None:
        """A part of the upload arrived that no tap saw (UploadPartCopy): no digest for it."""
        self._break(self._chain(upload_id))

    def _chain(self, upload_id: str) -> _Chain:
        chain = self._chains.get(upload_id)
        if chain is None:
            chain = self._chains[upload_id] = _Chain(used=self.clock(), progress=self.clock())
        return chain

    def drop(self, upload_id: str) -> None:
        chain = self._chains.pop(upload_id, None)
        if chain is not None:
            self._break(chain)

    def _break(self, chain: _Chain) -> None:
        chain.broken = True
        for key, _ in chain.waiting.values():
            self.unreserve(key[2])
        chain.waiting.clear()

    def _drop_idle(self) -> None:
        now = self.clock()
        for upload_id, chain in list(self._chains.items()):
            if chain.used < now - IDLE_SECONDS:
                self.drop(upload_id)
            elif chain.waiting and chain.progress < now - STALL_SECONDS:
                self._break(chain)  # its parts' predecessor is not coming here
