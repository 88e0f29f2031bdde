"""An upload's listing started by the command line before it loads the client library.

``dfs-client upload`` imports aiohttp and the library (~0.25 s on a client's one core,
bench/README.md) only when it runs. ``ListedEarly`` runs the listing (a ``stat`` and an
``open`` per file: ``dfs.client.local_files.walk``) on a thread of its own from the start,
so its system calls run while those imports hold the interpreter instead of after them;
``dfs.client.walk_ahead.WalkAhead`` then reads the files from it as they come. Standard
library only: the command line imports this module, and it must not load aiohttp.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dfs.client.local_files import LocalFile


class ListedEarly:
    """``files`` listed on a thread of its own from now on, handed over in order as they come
    when iterated (once: by ``WalkAhead``, or any one reader). The listing's error is raised
    to that reader after the files listed before it; ``stop`` ends the listing at its next
    file (an upload that failed) and waits for its thread."""

    def __init__(self, files: Iterable[LocalFile]) -> None:
        self._queue: queue.SimpleQueue[LocalFile | _End] = queue.SimpleQueue()
        self._stopped = False
        self._thread = threading.Thread(target=self._list, args=(files,), name="dfs-list")
        self._thread.daemon = True  # a command that fails early exits without waiting for it
        self._thread.start()

    def _list(self, files: Iterable[LocalFile]) -> None:
        try:
            for f in files:
                if self._stopped:
                    break
                self._queue.put(f)
        except BaseException as exc:  # the reader raises it
            self._queue.put(_End(exc))
        else:
            self._queue.put(_End(None))

    def __iter__(self) -> Iterator[LocalFile]:
        while not isinstance(got := self._queue.get(), _End):
            yield got
        if got.error is not None:
            raise got.error

    def stop(self) -> None:
        self._stopped = True
        self._thread.join()


class _End:
    """The listing's end: ``error`` is what ended it early, if anything did."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error
