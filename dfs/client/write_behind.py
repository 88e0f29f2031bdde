"""One thread that runs a download's writes in order, behind the event loop.

A large download writes each verified chunk into its temp file and feeds it to the
whole-file sha256, in file order. Done with ``asyncio.to_thread`` per chunk, every chunk cost
a future, an executor hand-off and a loop wake-up, and the fetch loop waited for each write
(about a millisecond per 1.25 MiB chunk: the copy into the page cache and the hash) before it
asked for the next chunk, so the window of chunks in flight shrank by one during every write.
``WriteBehind`` takes the writes on one thread of its own, fed through a queue: handing a
write over neither waits for it nor wakes the loop afterwards, unless more than ``limit``
bytes are queued (then ``put`` waits, which bounds memory). The first write that fails
fails the next ``put`` and ``finish``; the writes after it are skipped.

The thread touches the file's descriptor, so its owner must call ``finish`` (or ``stop``,
blocking, after a failure elsewhere) before it closes the descriptor. Either runs the writes
already queued: they are of verified bytes, and an interrupted download keeps what it wrote
for the next run to resume from. Standard library only.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable

Work = tuple[Callable[[], None], int]  # a write and its bytes


class WriteBehind:
    """Runs callables one after another on one thread, in the order ``put`` got them."""

    def __init__(self, limit: int) -> None:
        self.limit = limit  # bytes queued beyond which ``put`` waits
        self._queue: queue.SimpleQueue[Work | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._queued = 0
        self._error: BaseException | None = None
        self._ended = False  # the thread was told to end once the queue is done
        self._waiter: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    async def put(self, work: Callable[[], None], size: int) -> None:
        """Queue ``work`` (writing ``size`` bytes); wait while more than ``limit`` bytes are
        queued. Raises the error of a write that failed before."""
        self._raise()
        if self._thread is None:
            self._loop = asyncio.get_running_loop()
            self._thread = threading.Thread(target=self._run, name="dfs-write", daemon=True)
            self._thread.start()
        with self._lock:
            self._queued += size
        self._queue.put((work, size))
        while True:
            with self._lock:
                if self._queued <= self.limit or self._error is not None:
                    break
                waiter = self._waiter = self._loop_now().create_future()
            await waiter
        self._raise()

    def _loop_now(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None
        return self._loop

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            work, size = item
            if self._error is None:
                try:
                    work()
                except BaseException as exc:  # raised on the loop by the next put or finish
                    self._error = exc
            with self._lock:
                self._queued -= size
                waiter = self._waiter
                if waiter is None or (self._queued > self.limit and self._error is None):
                    continue
                self._waiter = None
            with contextlib.suppress(RuntimeError):  # a loop closed meanwhile: nobody waits
                self._loop_now().call_soon_threadsafe(_wake, waiter)

    def _end(self) -> None:
        if not self._ended:
            self._ended = True
            self._queue.put(None)

    async def finish(self) -> None:
        """Wait for every queued write; raise the first that failed."""
        if self._thread is not None:
            self._end()
            await asyncio.to_thread(self._thread.join)
            # (both kept when cancelled above: ``stop`` joins it); a later put starts anew
            self._thread, self._ended = None, False
        self._raise()

    def stop(self) -> None:
        """``finish``, blocking and without raising (after a failure elsewhere, or when
        ``finish`` was cancelled): so that the descriptor the writes use may be closed."""
        if self._thread is not None:
            self._end()
            self._thread.join()
            self._thread = None


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
