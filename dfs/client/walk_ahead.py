"""The files of an upload listed on a worker thread while the first ones are already sent.

A backup used to list its whole tree (``dfs.client.local_files.walk``: a ``fstatat`` and an
``openat`` per file, ~0.15-0.2 s for the 7,733 files of the CPython standard library here)
before its first batch was scanned or planned. ``WalkAhead`` runs the listing on a thread of
its own and hands the pipeline (``dfs.client.upload``) the small files in batches
(``dfs.client.batch_scan.batches``, the first ones small) and each big file, as they are
listed: the first plan goes out once the first batch is listed, and the rest of the listing
runs while the plans of a cached re-backup wait on the API.

Each file keeps its place in the listing (its index), so results come back in that order, as
they did from a list. The listing is not gated by the upload: it runs to its end at once,
so a big file found late still starts as soon as it is listed. A listing that raises fails
the upload with that error: each reader gets it after what was handed over to it (a batch
not yet full is not), and the pipeline's task group cancels the rest. The CLI's listing
reports a file or folder it cannot open (``Skipped``) and goes on.

The CLI starts that listing even earlier (``dfs.client.early_listing``), and ``WalkAhead``
then reads the files from it as they come.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from dfs.client.batch_scan import FIRST_BATCH_FILES, batches
from dfs.client.local_files import LocalFile

Item = tuple[int, LocalFile]  # a file and its place in the listing
T = TypeVar("T")


class WalkAhead:
    """``files`` listed on a thread: small ones (``size <= small_file``) in ``batches``
    through ``next_batch``, big ones one by one through ``next_big``; ``count`` files
    listed in all once both answered None, numbered from ``start`` (``big``: big files of
    the ``start`` listed before, with their places, handed over first), in batches from
    ``first_batch`` files (``known``: whether the files cache knows a file unchanged, for
    ``batches``; asked on the listing's thread). ``listed(n)`` is called on the event loop
    with the bytes of each hand-over (a progress bar's total)."""

    def __init__(
        self,
        files: Iterable[LocalFile],
        small_file: int,
        listed: Callable[[int], None] | None = None,
        start: int = 0,
        big: Iterable[Item] = (),
        first_batch: int = FIRST_BATCH_FILES,
        known: Callable[[LocalFile], bool] | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._small: asyncio.Queue[list[Item] | None] = asyncio.Queue()
        self._big: asyncio.Queue[Item | None] = asyncio.Queue()
        self._small_file = small_file
        self._first_batch = first_batch
        self._known = known
        self._listed = listed
        self._error: BaseException | None = None
        self.count = start  # files listed before ``files`` (``dfs.client.early_batches``)
        for item in big:  # big ones among them, not sent yet
            self._put(self._big, item, item[1].size)
        self._task = asyncio.create_task(asyncio.to_thread(self._walk, iter(files)))

    async def next_batch(self) -> list[Item] | None:
        """The next batch of small files; None when the listing is over."""
        return self._raise_at_end(await self._small.get())

    async def next_big(self) -> Item | None:
        """The next big file; None when the listing is over."""
        return self._raise_at_end(await self._big.get())

    async def close(self) -> None:
        """Wait for the listing's thread (it stops at the next file once cancelled)."""
        self._error = self._error or asyncio.CancelledError()
        await asyncio.gather(self._task, return_exceptions=True)

    def _raise_at_end(self, got: T | None) -> T | None:
        if got is None and self._error is not None:
            raise self._error
        return got

    def _walk(self, files: Iterator[LocalFile]) -> None:
        try:
            for batch in batches(self._small_ones(files), self._first_batch, self._known):
                self._hand(self._small, batch, sum(f.size for _n, f in batch))
        except BaseException as exc:  # raised to the pipeline from next_batch / next_big
            self._error = self._error or exc
        finally:
            self._hand(self._small, None, 0)
            self._hand(self._big, None, 0)

    def _small_ones(self, files: Iterator[LocalFile]) -> Iterator[Item]:
        """The small files of ``files`` with their places; the big ones handed over."""
        for f in files:
            if self._error is not None:  # closed: the upload is over
                return
            n, self.count = self.count, self.count + 1
            if f.size > self._small_file:
                self._hand(self._big, (n, f), f.size)
            else:
                yield n, f

    def _hand(self, queue: asyncio.Queue[T], item: T, size: int) -> None:
        self._loop.call_soon_threadsafe(self._put, queue, item, size)

    def _put(self, queue: asyncio.Queue[T], item: T, size: int) -> None:
        if size and self._listed is not None:
            self._listed(size)
        queue.put_nowait(item)
