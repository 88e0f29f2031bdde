"""A big file's scan started by the command line before it loads the client library.

``dfs-client upload BIG`` spends its first ~0.3-0.4 s importing aiohttp and the library on
one core (bench/README.md), then asks the API to start a paged upload, and only then began
to cut and hash the file (``dfs.client.paged_upload.PageScanner``): for that time the other
core had nothing to do, in an upload that is otherwise bound by the CPU of both. Here the
scan of a file that will go page by page (``wants_pages``) starts on a thread of its own
from the command's start, beside those imports; the paged upload takes its chunk refs as
they come instead of scanning the file again (``claim``).

The scan is the same one ``PageScanner`` runs (``chunking.hashed_chunks``: the chunk ids
and the whole file's SHA-256), so it cuts the same chunks and pages, and a resumed upload
finds its proven pages. It runs at most ``AHEAD_BYTES`` of the file ahead of the upload
reading its refs (no bytes are held), and waits while it is.

Versions: the scan records the stat of the file it opened, and of the same descriptor once
read to its end. The upload takes the scan only when the first is the stat it begins the
upload with (the same size, mtime, ctime, inode and device: ``same_version``), and fails
with ``FileChanged`` unless the second is too, exactly as its own scan would. Anything else
(another file, another version, a chunker profile of its own) stops the early scan and the
upload scans the file itself.

The command line imports this module: nothing here may load aiohttp (tests/unit/test_layering.py).
"""

from __future__ import annotations

import hashlib
import os
import queue
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dfs import protocol
from dfs.chunking import ChunkerProfile, ChunkRef, hashed_chunks
from dfs.client.local_files import open_to_read, same_version
from dfs.errors import FileChanged

PAGED_BYTES = 64 << 20
"""Files above this size are uploaded page by page (scan overlapping send) in any case:
a whole-file plan makes the servers wait for the scan of the whole file (bench/README.md)."""
AHEAD_BYTES = 256 << 20
"""Bytes of the file the early scan cuts ahead of the upload reading its refs (in refs:
this over the profile's average chunk): about what it scans during the imports, so that
the sends still read the bytes from the page cache, as they do a few pages behind the
upload's own scan."""
OPEN_WAIT = 30.0
"""Seconds ``claim`` waits for the scan's thread to open the file (it does at once, but a
FIFO put at the path meanwhile would hold it: see ``_scan``)."""
STOP_WAIT = 5.0
"""Seconds ``stop`` waits for the scan's thread (a daemon) to end."""


def wants_pages(size: int, profile: ChunkerProfile, paged_bytes: int = PAGED_BYTES) -> bool:
    """Whether a file of ``size`` bytes goes page by page: it is big, or it may hold more
    chunks than one ``/init-upload`` takes (at the profile's smallest chunk)."""
    most_chunks = size // max(profile.min_size, 1)
    return size > paged_bytes or most_chunks > protocol.MAX_CHUNKS_PER_FILE // 2


class ScanStopped(Exception):
    """The early scan was stopped before its reader read it to the end."""


@dataclass(frozen=True)
class _Failed:
    error: BaseException


class _End:
    pass


_Item = ChunkRef | _Failed | _End


class EarlyScan:
    """The scan of ``path`` with ``profile`` on a thread of its own from now on (``start``
    decides whether one is worth starting). One reader ``claim``s it and reads ``refs``;
    ``stop`` ends it, claimed or not (idempotent)."""

    def __init__(self, path: Path, profile: ChunkerProfile) -> None:
        self.path = path
        self.profile = profile
        self.whole = hashlib.sha256()
        self.opened: os.stat_result | None = None  # the file the scan read...
        self.ended: os.stat_result | None = None  # ...and the same descriptor at its end
        self._opening = threading.Event()  # set once ``opened`` is known, or cannot be
        self._refs: queue.Queue[_Item] = queue.Queue(max(1, AHEAD_BYTES // profile.avg_size))
        self._stopped = threading.Event()
        self._claimed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._scan, name="dfs-scan", daemon=True)
        self._thread.start()

    @classmethod
    def start(cls, path: Path, profile: ChunkerProfile) -> EarlyScan | None:
        """A scan of ``path`` if it is a regular file that will be uploaded page by page;
        None otherwise (or when it cannot be looked at: the upload reports that)."""
        try:
            st = os.stat(path)
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode) or not wants_pages(st.st_size, profile):
            return None
        return cls(path, profile)

    def _scan(self) -> None:
        try:
            # as the upload opens it: never waiting (a FIFO put at the path since its stat
            # would wait for a writer), a regular file only
            fd = open_to_read(self.path)
            with os.fdopen(fd, "rb", buffering=4 * protocol.MIB) as f:
                self.opened = os.fstat(f.fileno())
                self._opening.set()
                for chunk in hashed_chunks(f, self.profile, self.whole):
                    if self._stopped.is_set():
                        return
                    self._put(ChunkRef(chunk.offset, len(chunk.data), chunk.chunk_id))
                self.ended = os.fstat(f.fileno())
            self._put(_End())
        except BaseException as exc:  # the reader raises it, as its own scan would have
            self._put(_Failed(exc))
        finally:
            self._opening.set()

    def _put(self, item: _Item) -> None:
        """Hand ``item`` to the reader, waiting while the queue is full (``stop`` empties
        the queue, so a scan nobody reads never waits for long)."""
        while not self._stopped.is_set():
            try:
                self._refs.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def claim(self, version: os.stat_result, profile: ChunkerProfile) -> bool:
        """Whether the upload of the file whose stat was ``version`` when it began, cut with
        ``profile``, reads this scan (once; it then calls ``refs``). False stops the scan:
        it read another file, another version of it, or with another chunker."""
        with self._lock:
            taken, self._claimed = self._claimed, True
        ours = not taken and profile == self.profile and self._opening.wait(OPEN_WAIT)
        if ours and self.opened is not None and same_version(self.opened, version):
            return True
        self.stop()
        return False

    def refs(self) -> Iterator[ChunkRef]:
        """The file's chunk refs in order, as the scan cuts them; the scan's error, or
        ``FileChanged`` if the file it read to its end is no longer the version it opened."""
        while True:
            try:
                item = self._refs.get(timeout=0.5)
            except queue.Empty:
                if self._stopped.is_set():  # its reader is being closed: nothing more comes
                    raise ScanStopped() from None
                continue
            if isinstance(item, _Failed):
                raise item.error
            if isinstance(item, _End):
                break
            if self._stopped.is_set():  # the queue was emptied: refs may be missing
                raise ScanStopped()
            yield item
        opened, ended = self.opened, self.ended  # both set before _End
        if opened is None or ended is None or not same_version(opened, ended):
            raise FileChanged()

    def stop(self) -> None:
        """End the scan at its next chunk and wait for its thread (``STOP_WAIT`` at most: a
        daemon, it cannot hold the process at its exit)."""
        self._stopped.set()
        deadline = time.monotonic() + STOP_WAIT
        while self._thread.is_alive() and time.monotonic() < deadline:
            try:
                self._refs.get(timeout=0.05)  # a put waiting for room takes it and returns
            except queue.Empty:
                continue
