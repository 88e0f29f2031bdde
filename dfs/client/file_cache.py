"""The files cache: what each local file was stored as, so that an unchanged file costs no
read and no chunking on the next upload (issue 19; restic's and borg's "files cache").

One cache per destination (API URL, tenant, bucket, chunker profile) under the cache
directory (``dfs.client.resume.cache_dir``), at ``files/<key>.json``: for each local path
(absolute) the file's size, mtime, ctime, inode and device when it was listed, and the scan
it was stored with (whole-file sha256 and its chunks). A later upload that lists the path
with the same five values takes that scan instead of reading the file.

It is only a hint, never a proof:

- the API plans a file from the cache like any other: a chunk is left out only if this
  tenant references it and live nodes hold its copies, and finalize asks the nodes again
  (``dfs.api.coordinator``). A chunk the servers no longer hold is asked for; the pipeline
  then reads the file again and sends it in full (``dfs.client.upload``), so a cache naming
  content that is gone costs a normal upload, and one naming other bytes than the file's
  never stores them: the node hashes every chunk it receives against its id;
- a file whose mtime or ctime is within ``RACY_NS`` of the moment the run began is not
  remembered (git's "racily clean" files): a write within the file system's timestamp
  granularity after it was read could leave all five values unchanged;
- an edit that restores size and mtime (``touch -d``) still changes the ctime, and a file
  replaced by another (rename over it) changes the inode: both are read again;
- a cache that cannot be read or parsed, of another version, or with an entry of the wrong
  shape is ignored (entry by entry where possible) and rewritten at the end of the run.

Written once per run, atomically (a temp file in the same folder, fsync, rename), mode 0600
in a 0700 folder. Bounded: an entry not seen for ``MAX_AGE`` runs goes, and at most
``MAX_ENTRIES`` entries are kept (the most recently seen first). Files of more than
``MAX_CHUNKS`` chunks are not cached (they go through the paged upload).

Encoded and decoded by orjson (``dfs.jsonio.json_bytes``): for 7,733 entries (1.5 MB)
the standard library took ~20 ms to encode and ~13 ms to decode, orjson ~3 and ~10, on every
run. A path that is not UTF-8 (a file name's undecodable bytes, held as lone surrogates)
is refused by orjson both ways; the standard library's codec writes and reads it escaped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any

from dfs.chunking import ChunkRef, FileScan
from dfs.client.resume import cache_dir
from dfs.ids import ChunkId
from dfs.jsonio import json_bytes, parse_json

VERSION = 1
MAX_ENTRIES = 1_000_000
MAX_AGE = 20  # runs, as borg's BORG_FILES_CACHE_TTL
MAX_CHUNKS = 4096
RACY_NS = 2_000_000_000  # 2 s: FAT's mtime granularity; 1 s on ext3, HFS+, many NFS servers

_HEX64 = re.compile(r"[0-9a-f]{64}")

Entry = list[Any]  # [size, mtime_ns, ctime_ns, ino, dev, sha256, chunks, age]


def stat_key(st: os.stat_result) -> list[int]:
    """The five values an unchanged file keeps: size, mtime, ctime, inode, device."""
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def cache_path(api_url: str, tenant: str, bucket: str, chunker: str) -> Path:
    key = "\n".join((api_url.rstrip("/"), tenant, bucket, chunker))
    return cache_dir() / "files" / f"{hashlib.sha256(key.encode()).hexdigest()[:40]}.json"


def _encode_chunks(scan: FileScan) -> list[Any] | None:
    """None when the file is empty or one chunk whose id is its sha256 (most small files);
    else [size, id, size, id, ...]."""
    if not scan.chunks or (len(scan.chunks) == 1 and scan.chunks[0].chunk_id == scan.sha256):
        return None
    flat: list[Any] = []
    for c in scan.chunks:
        flat += [c.size, c.chunk_id]
    return flat


def _decode(entry: Entry) -> FileScan | None:
    """The scan an entry holds, or None when it is malformed."""
    size, sha256, flat = entry[0], entry[5], entry[6]
    if not isinstance(sha256, str) or not _HEX64.fullmatch(sha256):
        return None
    if flat is None:
        chunks = [ChunkRef(0, size, ChunkId(sha256))] if size else []
        return FileScan(size=size, sha256=sha256, chunks=chunks)
    if not isinstance(flat, list) or len(flat) % 2 or len(flat) > 2 * MAX_CHUNKS:
        return None
    chunks, offset = [], 0
    for n, chunk_id in zip(flat[::2], flat[1::2], strict=True):
        if type(n) is not int or n <= 0 or not isinstance(chunk_id, str):
            return None
        if not _HEX64.fullmatch(chunk_id):
            return None
        chunks.append(ChunkRef(offset, n, ChunkId(chunk_id)))
        offset += n
    return FileScan(size=size, sha256=sha256, chunks=chunks) if offset == size else None


def _well_formed(entry: object) -> bool:
    return (
        isinstance(entry, list)
        and len(entry) == 8
        and all(type(v) is int and v >= 0 for v in (*entry[:5], entry[7]))
    )


def _decode_json(raw: bytes) -> Any:
    """The cache's document; one written escaped by the standard library (a path that is not
    UTF-8) is read back by it too. ValueError when it is not JSON."""
    try:
        return parse_json(raw)
    except ValueError:
        return json.loads(raw)


class FileCache:
    """One destination's files cache; see the module docstring. The pipeline's scan thread
    looks files up while the event loop remembers those of an earlier batch: each call is a
    few single dict and set operations (atomic under the GIL) on different paths."""

    def __init__(self, path: Path, entries: dict[str, Entry] | None = None) -> None:
        self.path = path
        self._entries: dict[str, Entry] = entries or {}
        self._seen: set[str] = set()
        self.started_ns = time.time_ns()
        self.hits = self.misses = 0

    @classmethod
    def load(cls, path: Path) -> FileCache:
        """The cache at ``path``; an empty one when it is missing, unreadable or corrupt."""
        try:
            doc = _decode_json(path.read_bytes())
        except (OSError, ValueError):
            return cls(path)
        if not isinstance(doc, dict) or doc.get("version") != VERSION:
            return cls(path)
        entries = doc.get("entries")
        if not isinstance(entries, dict):
            return cls(path)
        return cls(path, {k: v for k, v in entries.items() if _well_formed(v)})

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, path: Path, st: os.stat_result) -> FileScan | None:
        """The scan ``path`` was stored with, if it is listed with the same size, mtime,
        ctime, inode and device as then; None otherwise (read the file)."""
        key = os.path.abspath(path)
        entry = self._entries.get(key)
        scan = None
        if entry is not None and entry[:5] == stat_key(st):
            scan = _decode(entry)
        if scan is None:
            self.misses += 1
            return None
        self.hits += 1
        self._seen.add(key)
        return scan

    def knows(self, path: Path, st: os.stat_result) -> bool:
        """Whether ``lookup`` would answer for ``path`` listed as ``st``, counting and
        decoding nothing (the upload's listing thread sizes its batches by it)."""
        entry = self._entries.get(os.path.abspath(path))
        return entry is not None and entry[:5] == stat_key(st)

    def remember(self, path: Path, st: os.stat_result, scan: FileScan) -> None:
        """``path``, listed as ``st`` before it was read, was stored as ``scan``. Not
        remembered when its times are too close to this run's start to be trusted, or when
        it has too many chunks."""
        key = os.path.abspath(path)
        entry = self._entries.get(key)
        if entry is not None and key in self._seen and entry[:6] == [*stat_key(st), scan.sha256]:
            return  # a hit of this run (``lookup``), stored again as it was: nothing to redo
        racy = self.started_ns - RACY_NS
        if st.st_mtime_ns >= racy or st.st_ctime_ns >= racy or len(scan.chunks) > MAX_CHUNKS:
            self._entries.pop(key, None)
            return
        if scan.size != st.st_size:  # changed between its listing and its scan
            self._entries.pop(key, None)
            return
        self._entries[key] = [*stat_key(st), scan.sha256, _encode_chunks(scan), 0]
        self._seen.add(key)

    def forget(self, path: Path) -> None:
        key = os.path.abspath(path)
        self._entries.pop(key, None)
        self._seen.discard(key)

    def _kept(self) -> dict[str, Entry]:
        """Entries aged by this run (seen ones back to 0), the stale and the surplus gone."""
        kept: list[tuple[int, str, Entry]] = []
        for key, entry in self._entries.items():
            age = 0 if key in self._seen else entry[7] + 1
            if age <= MAX_AGE:
                kept.append((age, key, [*entry[:7], age]))
        if len(kept) > MAX_ENTRIES:
            kept.sort(key=lambda t: t[0])
            del kept[MAX_ENTRIES:]
        return {key: entry for _age, key, entry in kept}

    def save(self) -> None:
        """Write the cache atomically (temp file, fsync, rename); errors are not fatal: the
        cache is only an optimization."""
        doc = {"version": VERSION, "entries": self._kept()}
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(json_bytes(doc))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
