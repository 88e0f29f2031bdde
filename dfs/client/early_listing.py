"""Uploads' listings started by the command line before it loads the client library.

``dfs-client upload`` imports aiohttp and the library (~0.25 s on a client's one core,
bench/README.md) only when it runs, and listed the files to upload after that: a ``stat``
and an ``open`` per file (``dfs.client.local_files.walk``), with the listing's thread then
contending with the pipeline's for the interpreter. Here the listing runs on a thread of its
own from the command's start, beside those imports:

- ``ListedEarly``: an upload by name; ``dfs.client.walk_ahead.WalkAhead`` reads the files
  from it as they come;
- ``listed_now(keyed_files ...)``: an upload to a bucket, whose comparison with the
  bucket's listing needs the whole list (``dfs.client.namespace_sync``).

The command line imports this module: nothing here may load aiohttp (tests/unit/test_layering.py).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import TypeVar

from dfs.client.local_files import LocalFile, Skipped, storable, walk

T = TypeVar("T")

KeyedFiles = tuple[list[LocalFile], str, list[Skipped]]
"""The local files with the key each goes to, the prefix they all share, and the files
skipped (their keys refused, or unreadable)."""


def keyed_files(paths: Sequence[Path], key: str, follow_symlinks: bool = False) -> KeyedFiles:
    """The files of an upload to a bucket: one file to ``key`` itself unless it names a
    folder (ends with "/" or is empty); directories map to the prefix ``key``
    (``follow_symlinks``: the links in them followed, as ``walk``). A file whose key the API
    would refuse (``storable``) is skipped."""
    skipped: list[Skipped] = []
    if len(paths) == 1 and paths[0].is_file() and key and not key.endswith("/"):
        # its stat now, before it is read: the mtime linked is the one of the bytes read
        # (``UploadLinker._entry``), never that of a save made after the read
        st = paths[0].stat()
        one = [LocalFile(paths[0], key, st.st_size, st=st)]
        return list(storable(one, skipped, as_keys=True)), key, skipped
    if key and not key.endswith("/"):
        key += "/"
    files = walk(paths, key, follow_symlinks=follow_symlinks, skipped=skipped)
    return list(storable(files, skipped, as_keys=True)), key, skipped


def listed_now(fn: Callable[[], T]) -> Future[T]:
    """``fn()`` on a thread of its own from now on; its result, or its error, in the future."""
    done: Future[T] = Future()

    def run() -> None:
        if not done.set_running_or_notify_cancel():
            return  # cancelled before it began
        try:
            done.set_result(fn())
        except BaseException as exc:  # the reader raises it
            done.set_exception(exc)

    threading.Thread(target=run, name="dfs-list", daemon=True).start()
    return done


class ListedEarly:
    """``files`` listed on a thread of its own from now on, handed over in order as they come
    when iterated (once: by ``WalkAhead``, or any one reader). The listing's error is raised
    to that reader after the files listed before it; ``stop`` ends the listing at its next
    file (an upload that failed) and waits for its thread."""

    def __init__(self, files: Iterable[LocalFile]) -> None:
        self._queue: queue.SimpleQueue[LocalFile | _End] = queue.SimpleQueue()
        self._stopped = False
        self._thread = threading.Thread(target=self._list, args=(files,), name="dfs-list")
        # not one to wait for at exit: ``stop`` ends it at its next file
        self._thread.daemon = True
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
