"""The chunk-store port: content-addressed chunk bytes on one node.

Must not import aiohttp or anything of dfs above layer 0.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Protocol

from dfs.ids import ChunkId


class ChunkStore(Protocol):
    """Content-addressed chunk bytes on one node.

    - ``put()`` verifies ``sha256(data) == chunk_id`` before anything reaches the disk and
      raises IntegrityError otherwise; it never leaves a partial file. It is idempotent:
      storing an existing id writes nothing and returns False (True when newly stored).
      It raises InsufficientStorage when the bytes do not fit.
    - ``get()`` returns the bytes only after re-hashing them; a copy that fails is moved to
      quarantine (never served again) and ChunkNotFound is raised, as for a missing id.
    - ``has()`` answers for many ids at once (a set of the ids present).
    - ``delete()`` of a missing id is a no-op.
    - ``used_bytes`` counts the bytes of stored chunks; ``capacity_bytes`` the configured
      or physical bound.
    No exception other than dfs errors escapes an implementation.
    """

    @property
    def used_bytes(self) -> int: ...
    @property
    def capacity_bytes(self) -> int: ...
    @property
    def chunk_count(self) -> int: ...

    async def put(self, chunk_id: ChunkId, data: bytes | bytearray | memoryview) -> bool: ...
    async def get(self, chunk_id: ChunkId) -> bytes: ...
    async def has(self, chunk_ids: Iterable[ChunkId]) -> set[ChunkId]: ...
    async def delete(self, chunk_id: ChunkId) -> None: ...
    def iter_ids(self) -> AsyncIterator[ChunkId]: ...
