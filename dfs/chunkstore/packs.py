"""``PackSet``: small chunks appended to pack files, one write and one fsync per batch.

The small-chunk half of ``PackChunkStore`` (``dfs.chunkstore.pack``), on a directory of
``pack-<seq>.pack`` files. Each pack is a sequence of records (``dfs.chunkstore.record``):
chunks, and tombstones that name a record (pack, offset) as dead. Only the newest pack (the
active one) is appended to; one ``write`` of every record of a batch and one ``fsync`` make
the batch durable before any of it is visible. A pack is never written again once a newer one
is active, except that compaction deletes it whole. Batches queued while one is being
written are committed together (group commit), so concurrent single-chunk writes share
fsyncs too. A pack that stops taking appends is sealed: its index file
(``dfs.chunkstore.packindex``) is written from the entries noted as its records were
appended (never by reading the pack back), after the append lock is released, so appends to
the next pack do not wait for the index's fsyncs; the thread that started the next pack (or
another change finishing first) writes it before returning. Until then the pack is not compacted, and a crash before it
leaves the pack without an index: the next open reads it whole, as the active one.

What is stored is rebuilt on open from the sealed packs' index files and by reading the
others in order: a record is the chunk's copy unless a tombstone of that chunk names it or a
later record of it exists (that one is then tombstoned, so no later delete revives it). A
torn tail (a crash mid-append) fails its length or CRC check: it is cut off the file and
never indexed, so never served; a record in the middle whose payload does not check is rot:
quarantined and tombstoned (``quarantine``: never the tombstone first). After a bad spot only chunk records hashing to their id are read
(``record.scan``: no tombstone). Each open starts a fresh active pack.

A put of a chunk already held appends a fresh record and a tombstone for the old one in the
same write (the same durable work as a new write; the copy held is the bytes just verified,
and its age restarts). A delete appends a tombstone. Compaction copies the live records of a
pack with a high dead fraction (verified on the way, each under a freshly encoded header:
the old one is not trusted) into the active pack, then deletes it;
it holds the append lock from choosing what is live to publishing the new places, so a put
or delete of a chunk being moved waits and then sees the moved copy: nothing re-referenced
is lost, nothing deleted comes back. Tombstones are carried along while the pack they name
still exists.

Three locks: ``_append`` serializes every change (appends, tombstones, compaction); ``_lock``
guards the in-memory index and counters for the short moments they change or are read;
``_sealing`` serializes index writes (taken after ``_append`` if both, never before).
Everything here is blocking and runs on worker threads.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from dfs.chunkstore import packindex, quarantine, record
from dfs.chunkstore.pack_state import Loc, Pack, Tomb, pack_name, pack_seq
from dfs.chunkstore.record import HEADER_SIZE, KIND_TOMBSTONE, Header
from dfs.config import DEFAULT_PACK_SIZE
from dfs.errors import ChunkNotFound, DfsError, InsufficientStorage, Unavailable
from dfs.fsutil import fsync_dir, make_dirs, write_all
from dfs.ids import ChunkId, sha256_hex

DEFAULT_MAX_PACK = DEFAULT_PACK_SIZE
"""A pack stops taking appends past this size (a batch may overshoot it once)."""
COMPACT_DEAD_FRACTION = 0.5
"""Compaction rewrites a pack once at least this fraction of its bytes is dead."""

Buffer = bytes | bytearray | memoryview
_Rot = tuple[int, int, ChunkId, bytes]  # a rotten record: pack, offset, id, payload
_Good = dict[tuple[ChunkId, int], bool | None]  # checked: moved as they are; None: rot
log = logging.getLogger("dfs.chunkstore")


@dataclass
class _Batch:
    """One caller's chunks waiting for a group commit, then its answers or error."""

    items: Sequence[tuple[ChunkId, Buffer]]
    counted: Callable[[], None] | None = None
    result: list[bool] | None = None
    error: Exception | None = None


class PackSet:
    """Small chunks in pack files under ``directory``; see the module docstring."""

    def __init__(self, directory: Path, quarantine: Path, max_pack: int = DEFAULT_MAX_PACK):
        self._dir = directory
        self._quarantine = quarantine
        self._max_pack = max_pack
        self._index: dict[ChunkId, Loc] = {}
        self._packs: dict[int, Pack] = {}
        self._active: Pack | None = None
        self._fd = -1
        self._used = 0
        self._sorted: list[ChunkId] | None = None
        self._queue: list[_Batch] = []  # batches waiting for the next group commit
        self._unsealed: list[Pack] = []  # packs that stopped taking appends, index unwritten
        self._append = threading.Lock()
        self._lock = threading.Lock()
        self._sealing = threading.Lock()
        self._compacting = threading.Lock()

    # --- state ----------------------------------------------------------------------------

    @property
    def used_bytes(self) -> int:
        return self._used

    def accounting(self) -> threading.Lock:  # the lock under which used_bytes changes
        return self._lock

    @property
    def chunk_count(self) -> int:
        return len(self._index)

    @property
    def directory(self) -> Path:
        return self._dir

    def lookup(self, chunk_id: ChunkId) -> Loc | None:
        with self._lock:
            return self._index.get(chunk_id)

    def held(self, chunk_ids: Sequence[ChunkId]) -> set[ChunkId]:
        with self._lock:
            return {c for c in chunk_ids if c in self._index}

    def ids(self) -> list[ChunkId]:
        with self._lock:
            return list(self._index)

    def sorted_ids(self) -> list[ChunkId]:
        """Every held id, ascending (cached until the set of ids changes)."""
        with self._lock:
            if self._sorted is None:
                self._sorted = sorted(self._index)
            return self._sorted

    def path(self, seq: int) -> Path:
        return self._dir / pack_name(seq)

    def _set(self, chunk_id: ChunkId, loc: Loc) -> Loc | None:
        """Make ``loc`` the chunk's live record (under ``_lock``); returns the one it replaced."""
        old = self._index.get(chunk_id)
        if old is None:
            self._sorted = None  # a new id: the sorted listing changes
        else:
            self._account(chunk_id, old, -1)
        self._index[chunk_id] = loc
        self._account(chunk_id, loc, +1)
        return old

    def _drop(self, chunk_id: ChunkId) -> Loc | None:
        """Forget the chunk's live record (under ``_lock``); returns it."""
        loc = self._index.pop(chunk_id, None)
        if loc is not None:
            self._account(chunk_id, loc, -1)
            self._sorted = None
        return loc

    def _account(self, chunk_id: ChunkId, loc: Loc, sign: int) -> None:
        """Count a live record in (+1) or out (-1) of its pack and the store's bytes."""
        pack = self._packs[loc.pack]
        if sign > 0:
            pack.ids.add(chunk_id)
        else:
            pack.ids.discard(chunk_id)
        pack.live += sign * (HEADER_SIZE + loc.length)
        self._used += sign * loc.length

    # --- open -----------------------------------------------------------------------------

    def load(self) -> None:
        """Rebuild the index from the packs (dropping torn tails), then start an active pack.
        Rot found in the middle of a pack is quarantined and tombstoned; so is a record a
        later one of the same chunk superseded without a tombstone (a crash inside a
        compaction), which a later delete would otherwise bring back."""
        make_dirs(os.fspath(self._dir))
        make_dirs(os.fspath(self._quarantine))
        seqs = sorted(s for s in map(pack_seq, os.listdir(self._dir)) if s is not None)
        killed: set[tuple[int, int, ChunkId]] = set()  # (pack, offset, id) a tombstone names
        chunks: list[tuple[int, int, Header]] = []
        rotten: list[_Rot] = []
        for seq in seqs:
            rotten += self._load_pack(seq, killed, chunks)
        now = time.time()
        dead: list[Tomb] = []
        with self._lock:
            for seq, off, head in chunks:
                if (seq, off, head.chunk_id) not in killed:  # a later record of it wins
                    loc = Loc(seq, off, head.length, head.written_ms / 1000)
                    old = self._set(head.chunk_id, loc)
                    if old is not None:
                        dead.append(Tomb(head.chunk_id, old.pack, old.offset, now))
        self._start_pack(max(seqs, default=0) + 1)
        fresh = [r for r in rotten if r[:3] not in killed]
        # one not quarantined stays untombstoned: the next open indexes it and a read finds it
        kept = [r for r in fresh if quarantine.keep(self._quarantine, r[2], r[3])]
        dead += [Tomb(c, s, o, now) for s, o, c, _ in kept]
        try:  # on a full disk the store opens all the same: the next open finds them again
            if dead:
                self._append_tombs(dead)
        except (OSError, InsufficientStorage) as exc:
            log.warning("%d tombstone(s) not written at open (%s)", len(dead), exc)
        self._seal_pending()

    def _load_pack(
        self, seq: int, killed: set[tuple[int, int, ChunkId]], chunks: list[tuple[int, int, Header]]
    ) -> list[_Rot]:
        """Index one pack from its index file, or else by reading it (``_scan_pack``): note
        its chunk records (into ``chunks``) and what its tombstones kill (into ``killed``, a
        place and the chunk id it kills there); returns its rotten records (``_Rot``)."""
        path = self.path(seq)
        entries = packindex.read(path, path.stat().st_size)
        rotten: list[_Rot] = []
        if entries is None:
            entries, rotten = self._scan_pack(seq)
        pack = Pack(seq, path, path.stat().st_size)
        self._packs[seq] = pack
        bad = {(s, o) for s, o, _, _ in rotten}
        for e in entries:
            head = e.header
            if head.kind == KIND_TOMBSTONE:
                killed.add((*e.target, head.chunk_id))
                written = head.written_ms / 1000
                pack.tombs.append(Tomb(head.chunk_id, *e.target, written))
            elif (seq, e.offset) not in bad:
                chunks.append((seq, e.offset, head))
        return rotten

    def _scan_pack(self, seq: int) -> tuple[list[packindex.Entry], list[_Rot]]:
        """Read a whole pack (``packindex.rebuild``: torn tail cut off, index written).
        Returns the entries and the rotten chunk records as (pack, offset, id, payload)."""
        entries, rotten = packindex.rebuild(self.path(seq))
        return entries, [(seq, off, cid, payload) for off, cid, payload in rotten]

    def _start_pack(self, seq: int) -> None:
        """Create pack ``seq`` and make it the one appended to; the one that was active is
        left for ``_seal_pending``."""
        old = self._active
        if old is not None and old.path.exists():
            with self._lock:
                self._unsealed.append(old)
        path = self.path(seq)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        fsync_dir(self._dir)
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = fd
        pack = Pack(seq, path, 0, index=packindex.Builder())
        with self._lock:
            self._packs[seq] = pack
            self._active = pack

    def close(self) -> None:
        """Seal the active pack (write its index, so a clean restart reads no pack) and
        close it, after any seal in flight; no append is taken after this."""
        with self._append:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
                if self._active is not None:
                    with self._lock:
                        self._unsealed.append(self._active)
            self._seal_pending(wait=True)

    @contextlib.contextmanager
    def _appending(self) -> Iterator[None]:
        """Hold ``_append`` for a change, then seal any pack it filled (without it)."""
        try:
            with self._append:
                yield
        finally:
            self._seal_pending()

    def _seal_pending(self, wait: bool = False) -> None:
        """Write the index of every pack that stopped taking appends from its noted entries.
        A failed write leaves the pack without an index (the next open reads it whole); a
        pack forgotten meanwhile (its folder wiped) gets none. ``wait``: also wait for a
        seal another thread is writing."""
        with self._lock:
            if not self._unsealed and not wait:
                return  # nothing of ours: never wait for another thread's seal
        with self._sealing:
            with self._lock:
                todo, self._unsealed = self._unsealed, []
            for pack in todo:
                with self._lock:
                    index, known = pack.index, self._packs.get(pack.seq) is pack
                if index is not None and known:
                    with contextlib.suppress(OSError):
                        packindex.write_encoded(pack.path, index.encode(pack.size))
                with self._lock:
                    pack.index = None

    def forget_missing(self) -> int:
        """Forget the chunks of packs whose files are gone (the chunk folder was wiped while
        the node ran), so they are neither listed nor counted; a new active pack is started
        if its own is gone. Returns how many packs were forgotten."""
        with self._append:
            return self._forget_missing()

    def _forget_missing(self) -> int:
        with self._lock:
            gone = [p for p in self._packs.values() if not p.path.exists()]
            for pack in gone:
                for chunk_id in list(pack.ids):
                    self._drop(chunk_id)
                del self._packs[pack.seq]
        active = self._active
        if active is not None and self._fd >= 0 and any(p is active for p in gone):
            make_dirs(os.fspath(self._dir))
            self._start_pack(active.seq + 1)
        return len(gone)

    # --- appends --------------------------------------------------------------------------

    def _write(self, parts: Sequence[Buffer]) -> tuple[Pack, int]:
        """Append records (``parts``: header and payload alternately) to the active pack (a
        new one first if it is full) in one ``writev`` (no joined copy) and fsync it; under
        ``_append``. Returns the pack written and the bytes; they start at its old size. A
        failed write is cut off again, so the pack never holds a half-written batch we know
        of; the index entries are encoded first, so nothing fails once the write is done
        (a size left stale would misplace every later record)."""
        if self._fd < 0:
            raise OSError(errno.EBADF, "the pack store is closed")
        if os.fstat(self._fd).st_nlink == 0:  # the folder was wiped under us
            self._forget_missing()
        active = self._active
        assert active is not None
        if active.size >= self._max_pack:
            self._start_pack(active.seq + 1)
            active = self._active
            assert active is not None
        assert active.index is not None  # the active pack's index is not written yet
        entries = packindex.encode_parts(active.size, parts)
        try:
            written = write_all(self._fd, parts)
            os.fsync(self._fd)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, active.size)
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise InsufficientStorage(f"node disk is full: {exc.strerror}") from None
            raise
        active.index.add_encoded(*entries)
        return active, written

    def _append_tombs(self, tombs: Sequence[Tomb]) -> None:
        """Append tombstones in one durable write (under ``_append``)."""
        parts = [
            part
            for t in tombs
            for part in record.tombstone_parts(t.chunk_id, t.target, t.target_offset, t.written)
        ]
        pack, written = self._write(parts)
        with self._lock:
            pack.size += written
            pack.tombs.extend(tombs)

    def append(
        self, items: Sequence[tuple[ChunkId, Buffer]], counted: Callable[[], None] | None = None
    ) -> list[bool]:
        """Store verified chunks durably: a record each, a tombstone for any record each
        replaces; True per chunk not held. Concurrent callers commit together: the first to
        take the append lock writes every batch queued by then in one write and one fsync
        (``counted`` of each runs under ``accounting`` as its records count as used)."""
        batch = _Batch(items, counted)
        with self._lock:
            self._queue.append(batch)
        with self._appending():
            if batch.result is None and batch.error is None:
                with self._lock:
                    group, self._queue = self._queue, []
                self._commit(group)
        if batch.error is not None:
            raise batch.error
        assert batch.result is not None
        return batch.result

    def _commit(self, group: list[_Batch]) -> None:
        """Write the batches of ``group`` in one write and one fsync (under ``_append``) and
        hand each its answers, or the error."""
        try:
            new = self._append_records(group)
        except Exception as exc:
            for b in group:
                b.error = exc
            return
        start = 0
        for b in group:
            b.result = new[start : start + len(b.items)]
            start += len(b.items)

    def _append_records(self, group: list[_Batch]) -> list[bool]:
        """One record per distinct chunk (a chunk sent twice at once is written once: a
        second record would outlive a later delete), tombstones for the records replaced."""
        now, items = time.time(), [item for b in group for item in b.items]
        with self._lock:
            held = {c: self._index.get(c) for c, _ in items}
        parts: list[Buffer] = []
        placed: dict[ChunkId, tuple[int, int]] = {}
        tombs = [Tomb(c, old.pack, old.offset, now) for c, old in held.items() if old is not None]
        pos = 0
        for chunk_id, data in items:
            if chunk_id not in placed:
                parts += record.chunk_parts(chunk_id, data, now)
                placed[chunk_id] = (pos, len(data))
                pos += HEADER_SIZE + len(data)
        for t in tombs:
            parts += record.tombstone_parts(t.chunk_id, t.target, t.target_offset, now)
        pack, written = self._write(parts)
        base = pack.size
        with self._lock:
            pack.size += written
            pack.tombs.extend(tombs)
            for cid, (rel, size) in placed.items():
                self._set(cid, Loc(pack.seq, base + rel, size, now))
            for b in group:
                if b.counted is not None:
                    b.counted()
        first = {c: i for i, (c, _) in reversed(list(enumerate(items)))}
        return [held[c] is None and first[c] == i for i, (c, _) in enumerate(items)]

    def remove(self, chunk_id: ChunkId, min_age: float = 0.0, at: Loc | None = None) -> bool:
        """Delete the chunk's record with a durable tombstone, unless it was written in the
        last ``min_age`` seconds (or, given ``at``, unless its record is no longer that one).
        True if it was deleted."""
        with self._appending():
            with self._lock:
                loc = self._index.get(chunk_id)
                if loc is None or (at is not None and loc != at):
                    return False
                if time.time() - loc.written < min_age:
                    return False
                self._drop(chunk_id)
            try:
                self._append_tombs([Tomb(chunk_id, loc.pack, loc.offset, time.time())])
            except BaseException:
                with self._lock:
                    if chunk_id not in self._index:
                        self._set(chunk_id, loc)  # not durable: still held after a restart
                raise
            return True

    # --- reads ----------------------------------------------------------------------------

    def read(self, chunk_id: ChunkId) -> bytes | None:
        """The chunk's verified bytes, None if no record of it is here; a record that fails
        verification, or that the disk cannot read (EIO under it), is quarantined
        (ChunkNotFound: ``_condemn``); another read error is Unavailable."""
        for _ in range(8):  # a compaction may move the record between lookup and open
            loc = self.lookup(chunk_id)
            if loc is None:
                break
            try:
                with open(self.path(loc.pack), "rb", buffering=0) as f:
                    raw = os.pread(f.fileno(), HEADER_SIZE + loc.length, loc.offset)
            except FileNotFoundError:
                continue
            except OSError as exc:
                if exc.errno not in quarantine.MEDIUM_ERRORS:  # nothing known of the copy
                    raise Unavailable(f"chunk {chunk_id} not read: {exc.strerror}") from None
                self._condemn(chunk_id, loc, None, f"could not be read ({exc.strerror})")
            head = record.decode_header(raw, 0)
            payload = raw[HEADER_SIZE:]
            if head is not None and head.chunk_id == chunk_id and not head.readable:
                raise ChunkNotFound(f"chunk {chunk_id} is stored in an encoding this node lacks")
            if head is not None and head.chunk_id == chunk_id and sha256_hex(payload) == chunk_id:
                return payload
            self._condemn(chunk_id, loc, payload, "failed verification")
        return None

    def _condemn(self, chunk_id: ChunkId, loc: Loc, payload: bytes | None, what: str) -> NoReturn:
        """Quarantine a copy that cannot be served (``quarantine.keep``), then tombstone it,
        so ``/quarantined`` lists it and repair copies it back; ChunkNotFound either way. Not
        quarantined, it is not tombstoned either: forgotten without a trace, the copy's loss
        would reach no one (it stays held, and the next read or scrub tries again)."""
        if not quarantine.keep(self._quarantine, chunk_id, payload):
            raise ChunkNotFound(f"chunk {chunk_id} {what} and could not be quarantined")
        try:
            self.remove(chunk_id, at=loc)
        except (DfsError, OSError) as exc:  # still held: the next read tries again
            log.warning("chunk %s: quarantined, but its tombstone failed: %s", chunk_id, exc)
        raise ChunkNotFound(f"chunk {chunk_id} {what} and was quarantined")

    # --- compaction -----------------------------------------------------------------------

    def candidates(self, fraction: float = COMPACT_DEAD_FRACTION) -> list[int]:
        """Packs (not the active one) whose dead bytes are at least ``fraction`` of the file,
        those with the fewest live bytes first: a wholly dead pack needs no write, so it is
        removed even on a full disk, and frees the most for the others."""
        with self._lock:
            active = self._active.seq if self._active is not None else -1
            out: list[tuple[int, int]] = []
            for seq, pack in sorted(self._packs.items()):
                live = pack.live + sum(
                    record.HEADER_SIZE + record.TOMBSTONE_LENGTH
                    for t in pack.tombs
                    if t.target in self._packs and t.target != seq
                )
                sealed = seq != active and pack.index is None
                if sealed and pack.size - live >= fraction * pack.size:
                    out.append((live, seq))
            return [seq for _live, seq in sorted(out)]

    def compact(self, fraction: float = COMPACT_DEAD_FRACTION) -> int:
        """Rewrite every pack whose dead fraction is at least ``fraction`` (``candidates``
        order); returns how many packs were removed. A pack that cannot be rewritten now (a
        full disk, a read error) is left for the next run, and the others go on."""
        done = 0
        with self._compacting:  # the periodic compaction and a scrub's may overlap
            for seq in self.candidates(fraction):
                try:
                    data, good = self._prepare(seq)
                    done += self._move(seq, data, good)
                except (DfsError, OSError) as exc:
                    log.warning("compaction of %s skipped: %s", pack_name(seq), exc)
        return done

    def _prepare(self, seq: int) -> tuple[bytes, _Good]:
        """Read a pack to compact and verify the records live in it now (before taking the
        append lock: the pack is immutable). Returns its bytes and every record checked: those
        hashing to their id (moved under a fresh header), intact ones in an encoding this
        version lacks (kept as they are, never served: ``record``), and rot (None):
        quarantined, it goes with the pack (OSError, and the pack stays, if it cannot be)."""
        with self._lock:
            pack = self._packs.get(seq)
            live = [(c, self._index[c]) for c in pack.ids] if pack is not None else []
        try:
            data = self.path(seq).read_bytes()
        except FileNotFoundError:
            return b"", {(c, loc.offset): None for c, loc in live}  # wiped: all forgotten
        good: _Good = {}
        for chunk_id, loc in live:
            payload = data[loc.offset + HEADER_SIZE : loc.offset + HEADER_SIZE + loc.length]
            if len(payload) == loc.length and sha256_hex(payload) == chunk_id:
                good[(chunk_id, loc.offset)] = False
            elif record.kept_encoded(data, loc.offset, chunk_id, loc.length):
                good[(chunk_id, loc.offset)] = True
            elif quarantine.keep(self._quarantine, chunk_id, payload):
                good[(chunk_id, loc.offset)] = None
            else:
                raise OSError(errno.EIO, f"bad record of chunk {chunk_id} not quarantined")
        return data, good

    def _move(self, seq: int, data: bytes, good: _Good) -> bool:
        """Copy what is still live in pack ``seq`` into the active pack, publish the new
        places and delete the pack, all under ``_append`` (no put or delete interleaves).
        False if the pack was forgotten, or is left for the next run (a record live now that
        ``_prepare`` did not check: a delete whose tombstone failed put it back)."""
        with self._appending():
            with self._lock:
                pack = self._packs.get(seq)
                if pack is None:
                    return False
                live = sorted(((c, self._index[c]) for c in pack.ids), key=lambda x: x[1].offset)
                tombs = [t for t in pack.tombs if t.target in self._packs and t.target != seq]
            if any((c, loc.offset) not in good for c, loc in live):
                return False
            parts: list[Buffer] = []
            moved: list[tuple[ChunkId, int, Loc]] = []
            pos = 0
            view = memoryview(data)
            for chunk_id, loc in live:
                as_is = good[(chunk_id, loc.offset)]
                if as_is is None:
                    continue  # rotten: quarantined by _prepare, goes with the pack
                start = loc.offset + HEADER_SIZE
                payload = view[start : start + loc.length]
                if as_is:  # its header checked (CRC) in _prepare
                    parts += (view[loc.offset : start], payload)
                else:
                    parts += record.chunk_parts(chunk_id, payload, loc.written)
                moved.append((chunk_id, pos, loc))
                pos += HEADER_SIZE + loc.length
            for t in tombs:
                parts += record.tombstone_parts(t.chunk_id, t.target, t.target_offset, t.written)
            target, written = self._write(parts) if parts else (None, 0)
            with self._lock:
                for chunk_id, _loc in live:
                    self._drop(chunk_id)
                if target is not None:
                    base = target.size
                    target.size += written
                    target.tombs.extend(tombs)
                    for chunk_id, rel, loc in moved:
                        self._set(chunk_id, Loc(target.seq, base + rel, loc.length, loc.written))
                del self._packs[seq]
            self.path(seq).unlink(missing_ok=True)
            packindex.index_path(self.path(seq)).unlink(missing_ok=True)
            fsync_dir(self._dir)
        return True

    # --- test hooks -----------------------------------------------------------------------

    def backdate(self, chunk_id: ChunkId, seconds: float) -> None:
        """Make a chunk look written ``seconds`` ago (in memory only)."""
        with self._lock:
            self._index[chunk_id].written = time.time() - seconds
