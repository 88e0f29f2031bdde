"""Resume state of the client: what an interrupted upload or download already achieved.

Uploads: a journal per (API, token, content, chunker, name) under the cache directory
(``DFS_CACHE_DIR``, else ``$XDG_CACHE_HOME/dfs``, else ``~/.cache/dfs``), at
``uploads/<key>.jsonl``: a first line ``{"file_id": ...}`` naming the pending upload, then
one ``{"c": chunk_id, "r": receipt}`` line per chunk a node acknowledged, and for a paged
upload (``dfs.client.paged_upload``) one ``{"p": page, "d": digest}`` line per page the API
proved, ``digest`` naming the page's chunks (their offsets, sizes and ids): a run again skips
a proven page only if the file's page is still that one. Lines are appended
and flushed as receipts arrive, so a killed client loses at most the chunks in flight; a torn
last line is ignored. The journal is removed once the file is complete. Receipts are only
good for that pending file id and tenant (the API checks), so the journal grants nothing to
anyone else; the file is created 0600 all the same.

A journal nobody can resume any more goes: the upload pipeline removes it when the upload
failed for good (the file changed, the API refused it), and ``sweep`` removes journals left
untouched for longer than the API keeps a pending upload (``JOURNAL_MAX_AGE``).

Downloads: beside the temp file ``.NAME.FILE_ID.dfs-part`` a sidecar ``...dfs-part.done``
lists the offsets of chunks written (one per line, appended after each write). A resumed
download re-reads and re-hashes those chunks from the temp file instead of fetching them,
so the sidecar is only a hint: a chunk that does not verify is fetched again. Both names are
predictable, so both are opened with ``open_own``: never through a symbolic link, and only
when they are regular files of this user with one link (anything else someone may have
planted there is not ours to write).

Standard library only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

from dfs.protocol import DEFAULT_GC_GRACE

# the API deletes a pending upload 2 x DFS_GC_GRACE after it began (dfs.api.gc); a journal
# untouched for longer (at the default grace) names an upload that is gone
JOURNAL_MAX_AGE = 2 * DEFAULT_GC_GRACE
RECEIPTS_KEPT = 65536  # receipts of a paged upload's proven pages kept in memory (~16 MiB)


def open_own(
    path: Path | str, flags: int, mode: int = 0o600, dir_fd: int | None = None
) -> int | None:
    """Open a file at a predictable path (in ``dir_fd``) for writing, never through a
    symbolic link; None when something that is not our own plain file lies there. ``flags``
    may add O_CREAT (then O_EXCL applies when nothing is there yet: a file created here is
    ours)."""
    base = flags & ~(os.O_CREAT | os.O_EXCL)
    try:
        fd = os.open(path, base | os.O_NOFOLLOW, dir_fd=dir_fd)
    except FileNotFoundError:
        if not flags & os.O_CREAT:
            return None
        try:
            return os.open(path, base | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode, dir_fd=dir_fd)
        except FileExistsError:
            return None  # raced by someone else's file
    except OSError:  # ELOOP: a symbolic link
        return None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_nlink != 1:
        os.close(fd)
        return None
    return fd


def cache_dir() -> Path:
    explicit = os.environ.get("DFS_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "dfs"


class UploadJournal:
    """The journal of one upload; see the module docstring."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file_id: str | None = None
        self.receipts: dict[str, str] = {}
        # pages of a paged upload proven already: the digest of each one's chunks (None: a
        # line of an older client, which named none; such a page is never taken as proven)
        self.pages: dict[int, str | None] = {}
        # the journal's lines are appended through one unbuffered handle (each line one
        # ``write`` of O_APPEND, as an open-append-close per line did), opened at the first
        # line: an upload adds one per chunk sent, on the event loop
        self._out: BinaryIO | None = None

    @classmethod
    def for_upload(
        cls, api_url: str, token: str | None, sha256: str, chunker: str, name: str
    ) -> UploadJournal:
        who = hashlib.sha256((token or "").encode()).hexdigest()
        key = hashlib.sha256(
            "\n".join((api_url.rstrip("/"), who, sha256, chunker, name)).encode()
        ).hexdigest()[:40]
        journal = cls(cache_dir() / "uploads" / f"{key}.jsonl")
        journal._load()
        return journal

    def _load(self) -> None:
        try:
            lines = self.path.read_text().splitlines()
        except (FileNotFoundError, UnicodeDecodeError):
            return
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a torn last line
            if not isinstance(entry, dict):
                continue
            if "file_id" in entry:
                self.file_id = str(entry["file_id"])
                self.receipts = {}
                self.pages = {}
            elif self.file_id and isinstance(entry.get("c"), str):
                self.receipts[entry["c"]] = str(entry.get("r", ""))
            elif self.file_id and isinstance(entry.get("p"), int):
                digest = entry.get("d")
                self.pages[entry["p"]] = digest if isinstance(digest, str) else None

    def _append(self, entry: dict[str, Any]) -> None:
        if self._out is None:
            self._out = open(self.path, "ab", buffering=0)  # noqa: SIM115 (kept open)
        self._out.write(json.dumps(entry).encode() + b"\n")

    def close(self) -> None:
        """Let go of the journal's handle (the journal stays on disk)."""
        if self._out is not None:
            self._out.close()
            self._out = None

    def start(self, file_id: str) -> None:
        self.close()
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps({"file_id": file_id}) + "\n")
        self.file_id = file_id
        self.receipts = {}
        self.pages = {}

    def add(self, chunk_id: str, receipt: str) -> None:
        self.receipts[chunk_id] = receipt
        self._append({"c": chunk_id, "r": receipt})

    def page_proven(self, page: int, digest: str, chunk_ids: Iterable[str]) -> None:
        """A page of a paged upload is proven: noted with the ``digest`` of its chunks (a
        resumed run skips it while the file's page has that digest). Its receipts
        stay in memory, so a chunk repeated on a later page is not sent again, up to
        RECEIPTS_KEPT receipts: past that a proven page's leave (memory stays bounded; a
        chunk repeated later is then sent again, which costs only its bytes)."""
        self.pages[page] = digest
        if len(self.receipts) > RECEIPTS_KEPT:
            for c in chunk_ids:
                self.receipts.pop(c, None)
        self._append({"p": page, "d": digest})

    def finish(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)
        self.file_id = None
        self.receipts = {}
        self.pages = {}

    @staticmethod
    def sweep(max_age: float = JOURNAL_MAX_AGE, now: float | None = None) -> int:
        """Remove journals untouched for ``max_age`` seconds; returns how many went."""
        now = time.time() if now is None else now
        removed = 0
        with contextlib.suppress(FileNotFoundError):
            for path in (cache_dir() / "uploads").glob("*.jsonl"):
                with contextlib.suppress(FileNotFoundError):
                    if now - path.stat().st_mtime > max_age:
                        path.unlink()
                        removed += 1
        return removed


class DownloadSidecar:
    """Offsets of the chunks already written into a download's temp file."""

    def __init__(self, part: Path, dir_fd: int | None = None) -> None:
        self.path = part.with_name(part.name + ".done")
        # in the part's folder open at dir_fd, by its name (``dfs.client.part_file``)
        self.dir_fd = dir_fd
        self._at: str | Path = self.path.name if dir_fd is not None else self.path
        self.offsets: set[int] = set()

    def load(self) -> None:
        """Read the offsets an earlier run wrote; a sidecar that is not ours is removed."""
        fd = open_own(self._at, os.O_RDONLY, dir_fd=self.dir_fd)
        if fd is None:
            with contextlib.suppress(OSError):  # e.g. someone else's link in a sticky dir
                self.remove()
            return
        with os.fdopen(fd, "rb") as f:
            for line in f.read().decode(errors="replace").splitlines():
                if line.strip().isdigit():
                    self.offsets.add(int(line))

    def add(self, *offsets: int) -> None:
        """Record chunks written (a run of them in one append)."""
        fd = open_own(self._at, os.O_WRONLY | os.O_APPEND | os.O_CREAT, dir_fd=self.dir_fd)
        if fd is None:
            return  # only a hint: the chunk is fetched again next time
        with os.fdopen(fd, "a") as f:
            f.write("".join(f"{offset}\n" for offset in offsets))

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._at, dir_fd=self.dir_fd)
