"""Hedged reads: ask one source; when it is slow, ask the next one too; the first good answer
wins and the others are cancelled.

A hung node accepts a connection and never answers, so waiting for its deadline before
trying another replica costs every chunk it holds that deadline. A hedged read waits only
``delay`` (a few times what the read is expected to take) before it also asks the next
source; a source that fails is replaced at once. Used by the client's downloads and by the
API's reads for proxies and signed downloads, which each say what a good answer is (the
``read`` callables verify and raise ``DfsError`` otherwise) and what to learn from the race
(``HedgeObserver``). Must not import ``aiohttp.web``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from dfs.errors import ChunkNotFound, DfsError

K = TypeVar("K")
K_contra = TypeVar("K_contra", contravariant=True)
A = TypeVar("A")
"""What a good read answers: bytes, or the pieces a body arrived in (the client's reads)."""


@dataclass(frozen=True)
class Source(Generic[K, A]):
    """One place to read from: ``key`` names it to the observer; ``read`` returns verified
    bytes (``A``) or raises DfsError. ``hedge``: may be asked while another source still runs (False
    for a last resort that is asked only once every other source failed)."""

    key: K
    read: Callable[[], Awaitable[A]]
    hedge: bool = True


class HedgeObserver(Protocol[K_contra]):
    def hedged(self, key: K_contra) -> None:
        """``key`` is being asked because the sources running were slow."""

    def failed(self, key: K_contra, exc: DfsError) -> None:
        """``key`` failed (an error, a timeout or bad bytes)."""

    def won(self, key: K_contra, losers: Sequence[K_contra]) -> None:
        """``key`` answered first; ``losers`` were still running and are cancelled."""


async def first_good(
    sources: Sequence[Source[K, A]], delay: float, observer: HedgeObserver[K], what: str
) -> A:
    """The first good answer of ``sources``, asked in order: the next one as soon as every
    running one failed, or (if it may hedge) after ``delay`` seconds without an answer.
    ChunkNotFound naming ``what`` when none answers well."""
    waiting = list(sources)
    running: dict[asyncio.Task[A], Source[K, A]] = {}
    errors: list[str] = []
    try:
        while waiting or running:
            if not running:  # the first read, or a failover: nothing else to wait for
                _start(waiting.pop(0), running)
                continue
            hedge = bool(waiting) and waiting[0].hedge
            done, _ = await asyncio.wait(
                running, timeout=delay if hedge else None, return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                observer.hedged(waiting[0].key)
                _start(waiting.pop(0), running)
                continue
            data = _take_done(running, errors, observer)
            if data is not None:
                return data
    finally:
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
    raise ChunkNotFound(f"no replica returned good bytes for {what}: {'; '.join(errors[-3:])}")


def _start(source: Source[K, A], running: dict[asyncio.Task[A], Source[K, A]]) -> None:
    running[asyncio.ensure_future(source.read())] = source


def _take_done(
    running: dict[asyncio.Task[A], Source[K, A]], errors: list[str], observer: HedgeObserver[K]
) -> A | None:
    """The answer of a finished read, if one succeeded (the rest stay in ``running`` for the
    caller to cancel); each failed one is reported and dropped."""
    for task in [t for t in running if t.done()]:
        source = running.pop(task)
        exc = task.exception()
        if exc is None:
            observer.won(source.key, [s.key for s in running.values()])
            return task.result()
        if not isinstance(exc, DfsError):
            raise exc
        errors.append(exc.message)
        observer.failed(source.key, exc)
    return None
