"""``SqliteMetadataStore``: the embedded default metadata backend (one SQLite file, WAL mode).

Several processes on one machine (the API and the nodes) share the file: WAL lets readers run
beside the one writer, ``busy_timeout`` makes writers queue instead of failing, and every
read-modify-write runs inside ``BEGIN IMMEDIATE`` so it holds the write lock from its first
read. ``synchronous=FULL``: a committed file survives a power cut, not only a crash.

One connection per store for its writes, used from one worker thread: the event loop never
waits on disk. Reads go there too, each in one read transaction, unless the worker is held
(``dfs.meta.sqlite_reads``: a write waiting for another process's lock), and never wait long
behind it. ``sqlite3`` errors are translated here only. Tables: ``sqlite_schema``; files and
manifests: ``sqlite_manifests``; chunks and copies: ``sqlite_chunks``; commit/delete refcounts:
``sqlite_refcounts``; namespace: ``sqlite_namespace``; S3 keys: ``sqlite_access_keys``;
bucket configuration documents (CORS): ``sqlite_bucket_config``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from dfs.errors import Conflict, Unavailable
from dfs.meta.base import (
    LISTED_NAMES_FROM,
    ChunkInfo,
    ChunkState,
    FileRecord,
    Lease,
    Location,
    ManifestEntry,
    MetadataStore,
    Stats,
)
from dfs.meta.bucket_config import BucketConfigStore
from dfs.meta.multipart import MultipartStore
from dfs.meta.sqlite_access_keys import SqliteAccessKeysMixin
from dfs.meta.sqlite_bucket_config import SqliteBucketConfigMixin
from dfs.meta.sqlite_chunks import (
    NewChunks,
    add_locations,
    chunk_states,
    chunks_of_node,
    delete_if_unreferenced,
    node_names,
    owned_of,
    remove_locations,
    remove_surplus_location,
)
from dfs.meta.sqlite_codec import Labels, pack_file_id, pack_hex, unpack_file_id, unpack_hex
from dfs.meta.sqlite_group import GroupCommit
from dfs.meta.sqlite_manifests import (
    append_page,
    drop_manifest,
    get_page,
    get_record,
    get_records,
    insert_file,
    insert_files,
    manifest,
    manifest_pages,
    manifests,
    mark_proven,
    pending,
    seal,
)
from dfs.meta.sqlite_migrate import connect
from dfs.meta.sqlite_multipart import SqliteMultipartMixin
from dfs.meta.sqlite_namespace import SqliteNamespaceMixin
from dfs.meta.sqlite_namespace_files import delete_unlinked
from dfs.meta.sqlite_nodes import SqliteNodesMixin
from dfs.meta.sqlite_reads import WORKER_HELD, LoopReads, ReaderThreads, in_snapshot
from dfs.meta.sqlite_refcounts import commit_many, commit_one, create_committed, mark_verified
from dfs.meta.sqlite_schema import (
    FILE_COLUMNS,
    FIND_BY_HASH,
    file_record,
)
from dfs.meta.sqlite_tokens import SqliteTokensMixin
from dfs.meta.sqlite_usage_history import SqliteUsageHistoryMixin

T = TypeVar("T")

_IN_BATCH = 500  # stay far below SQLite's bound on host parameters
LOOP_READ_MAX_IDS = 16  # chunk ids one read on the event loop's thread may look up
_COUNTERS = ("total_files", "logical_bytes", "stored_bytes", "unique_chunks", "duplicates_avoided")


class _Skipped:
    """What the worker answers for a read a reader thread took over (``_read``)."""


SKIPPED = _Skipped()


def _retrieved(done: asyncio.Future[Any]) -> None:
    """Collect a read's outcome no one awaits (its worker turn, taken over): not logged."""
    if not done.cancelled():
        done.exception()


def path_from_url(url: str) -> Path:
    """``sqlite:///abs/path.db`` -> ``/abs/path.db``; ``sqlite://rel/path.db`` -> relative."""
    if not url.startswith("sqlite://") or len(url) <= len("sqlite://"):
        raise ValueError(f"not a sqlite URL: {url!r}")
    return Path(url[len("sqlite://") :])


def _batches(items: Sequence[T], n: int = _IN_BATCH) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


class SqliteMetadataStore(
    SqliteNodesMixin,
    SqliteNamespaceMixin,
    SqliteAccessKeysMixin,
    SqliteMultipartMixin,
    SqliteUsageHistoryMixin,
    SqliteBucketConfigMixin,
    SqliteTokensMixin,
):
    """MetadataStore on one SQLite file; see the module docstring for the schema."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._conn: sqlite3.Connection | None = None
        self._loop_reads = LoopReads(path)
        self._readers = ReaderThreads(path)
        self._busy_since: float | None = None  # when the worker's operation began, if one runs
        # the labels reads learn (on the loop, the worker or the reader threads): committed ones
        self._read_labels = Labels()
        self._labels = Labels()
        self._group = GroupCommit(self._labels)  # the writes that may share a commit
        self.calls = 0  # operations run on the connection (each one transaction at most)

    @classmethod
    async def open(cls, url: str) -> SqliteMetadataStore:
        store = cls(path_from_url(url))
        await store._run(store._connect)
        return store

    def _connect(self) -> None:
        self._conn = connect(self._path)

    @contextmanager
    def _tx(self, conn: sqlite3.Connection | None = None) -> Iterator[sqlite3.Connection]:
        """A write transaction holding the lock from its first statement."""
        c = conn or self._db
        c.execute("BEGIN IMMEDIATE")
        try:
            yield c
        except BaseException:
            # the labels first: some errors (a full disk, an I/O error) end the whole
            # transaction in SQLite itself, and the ROLLBACK below then fails; labels kept
            # from it would name ids SQLite hands to the next new labels (another tenant's)
            self._labels.settle(committed=False)
            if c.in_transaction:
                with suppress(sqlite3.Error):  # the error raised is the one that happened
                    c.execute("ROLLBACK")
            raise
        try:
            c.execute("COMMIT")
        except BaseException:
            self._labels.settle(committed=False)
            raise
        self._labels.settle(committed=True)

    async def _in_tx(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` in one write transaction on the worker."""

        def op() -> T:
            with self._tx() as db:
                return fn(db)

        return await self._run(op)

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise Unavailable("metadata store is closed")
        return self._conn

    async def _run(self, fn: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        self.calls += 1

        def timed() -> T:  # on the worker: how long it has been held (``_read``)
            self._busy_since = time.monotonic()
            try:
                return fn()
            finally:
                self._busy_since = None

        try:
            return await loop.run_in_executor(self._executor, timed)
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"metadata write conflicts: {exc}") from None
        except sqlite3.OperationalError as exc:
            raise Unavailable(f"sqlite metadata store {self._path}: {exc}") from None

    async def _run_on_loop(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """A short read on the event loop's thread (``dfs.meta.sqlite_reads``); on a reader
        thread when the database is busy."""
        if self._conn is not None:
            with suppress(sqlite3.OperationalError):  # busy: a reader thread reads it
                got = self._loop_reads.run(fn)
                self.calls += 1
                return got
        return await self._read(fn)

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` in one read transaction (``dfs.meta.sqlite_reads``): on the worker, whose
        page cache the store's own writes keep warm, unless the worker has not started it
        within ``WORKER_HELD`` (busy with a write waiting for another process's lock, or
        with writes queued behind one): then on a reader thread, never queued behind them.
        It learns labels in ``_read_labels``."""
        since = self._busy_since
        if since is not None and time.monotonic() - since >= WORKER_HELD:
            return await self._on_readers(fn)
        claim = threading.Lock()  # taken once, by whichever thread runs ``fn``

        def on_worker() -> T | _Skipped:
            if not claim.acquire(blocking=False):
                return SKIPPED  # a reader thread took it over
            return in_snapshot(self._db, fn)

        queued = asyncio.ensure_future(self._run(on_worker))
        done, _ = await asyncio.wait({queued}, timeout=WORKER_HELD)
        if not done and claim.acquire(blocking=False):  # not started: the worker will skip it
            queued.add_done_callback(_retrieved)
            return await self._on_readers(fn)
        got = await queued
        assert not isinstance(got, _Skipped)
        return got

    async def _on_readers(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        self.calls += 1
        try:
            return await self._readers.run(fn)
        except sqlite3.OperationalError as exc:
            raise Unavailable(f"sqlite metadata store {self._path}: {exc}") from None

    # --- files ----------------------------------------------------------------------------

    async def create_file(self, rec: FileRecord, manifest: Sequence[ManifestEntry]) -> None:
        def op() -> None:
            with self._tx() as db:
                insert_file(db, self._labels, rec, manifest)

        await self._run(op)

    async def create_files(
        self, files: Sequence[tuple[FileRecord, Sequence[ManifestEntry]]]
    ) -> None:
        # one transaction (one WAL fsync) for the whole batch: all or nothing
        def op() -> None:
            with self._tx() as db:
                insert_files(db, self._labels, files)

        await self._run(op)

    async def get_file(self, file_id: str, tenant: str | None = None) -> FileRecord:
        return await self._run_on_loop(
            lambda db: get_record(db, self._read_labels, file_id, tenant)
        )

    async def get_manifest(self, file_id: str) -> list[ManifestEntry]:
        return await self._read(lambda db: manifest(db, file_id))

    async def get_files(
        self, file_ids: Sequence[str], tenant: str | None = None
    ) -> dict[str, FileRecord]:
        return await self._read(lambda db: get_records(db, self._read_labels, file_ids, tenant))

    async def get_manifests(self, file_ids: Sequence[str]) -> dict[str, list[ManifestEntry]]:
        return await self._read(lambda db: manifests(db, file_ids))

    async def pending_uploads(
        self, file_ids: Sequence[str], tenant: str
    ) -> list[tuple[FileRecord, list[ManifestEntry]] | None]:
        return await self._read(lambda db: pending(db, self._read_labels, file_ids, tenant))

    async def append_manifest_page(
        self, file_id: str, page: int, entries: Sequence[ManifestEntry]
    ) -> None:
        await self._in_tx(lambda db: append_page(db, file_id, page, entries))

    async def get_manifest_page(self, file_id: str, page: int) -> tuple[list[ManifestEntry], bool]:
        return await self._read(lambda db: get_page(db, file_id, page))

    async def mark_page_proven(self, file_id: str, page: int) -> None:
        await self._in_tx(lambda db: mark_proven(db, file_id, page))

    async def seal_file(self, file_id: str, size: int, sha256: str) -> FileRecord:
        return await self._in_tx(lambda db: seal(db, self._labels, file_id, size, sha256))

    async def commit_file(
        self, file_id: str, now: float, *, for_object: bool = False
    ) -> FileRecord:
        return await self._in_tx(lambda db: commit_one(db, self._labels, file_id, now, for_object))

    async def mark_sha256_verified(self, file_id: str) -> FileRecord | None:
        return await self._in_tx(lambda db: mark_verified(db, self._labels, file_id))

    async def commit_files(
        self,
        file_ids: Sequence[str],
        now: float,
        *,
        locations: Iterable[Location] = (),
        for_object: bool = False,
    ) -> list[FileRecord | None]:
        # one transaction (one fsync) for the batch and its copies; each file's refcounts
        # read inside it, so files sharing a chunk count exactly as commits one after another
        locs = list(locations)

        def op(db: sqlite3.Connection) -> list[FileRecord | None]:
            fresh: NewChunks = {}  # new chunks' rows, written with their first reference
            add_locations(db, self._labels, locs, now, fresh)
            return commit_many(db, self._labels, file_ids, now, for_object, fresh)

        return await self._in_tx(op)

    async def create_and_commit_files(
        self,
        files: Sequence[tuple[FileRecord, Sequence[ManifestEntry]]],
        now: float,
        *,
        locations: Iterable[Location] = (),
        for_object: bool = False,
    ) -> list[FileRecord]:
        locs = list(locations)

        # one transaction: copies recorded, files inserted and counted together, no row read
        # back (a failure leaves none of it)
        def op(db: sqlite3.Connection) -> list[FileRecord]:
            add_locations(db, self._labels, locs, now)
            return create_committed(db, self._labels, files, now, for_object)

        return await self._in_tx(op)

    async def list_files(
        self, tenant: str, *, limit: int, after: str | None = None, prefix: str = ""
    ) -> list[FileRecord]:
        def op(db: sqlite3.Connection) -> list[FileRecord]:
            tid = self._read_labels.find(db, tenant)
            if tid is None:
                return []
            # the files_by_tenant index; BINARY: hidden names sort first. The prefix is a
            # filter of that walk (no name index): it spares the answer, not the scan.
            rows = db.execute(
                f"SELECT {FILE_COLUMNS} FROM files WHERE tenant=? AND state = 1 AND file_id > ? "
                "AND name >= ? AND substr(name, 1, ?) = ? ORDER BY file_id LIMIT ?",
                (
                    tid,
                    pack_file_id(after) if after else "",
                    LISTED_NAMES_FROM,
                    len(prefix),
                    prefix,
                    limit,
                ),
            )
            return [file_record(db, self._read_labels, r) for r in rows]

        return await self._read(op)

    async def owned_chunks(
        self, tenant: str, chunk_ids: Sequence[str], *, ever: bool = False
    ) -> set[str]:
        def op(db: sqlite3.Connection, labels: Labels) -> set[str]:
            tid = labels.find(db, tenant)
            if tid is None:
                return set()
            ids = [pack_hex(c) for c in dict.fromkeys(chunk_ids)]
            return {c for b in _batches(ids) for c in owned_of(db, tid, b, ever=ever)}

        if len(chunk_ids) <= LOOP_READ_MAX_IDS:  # a small object's: a few point lookups
            return await self._run_on_loop(lambda db: op(db, self._read_labels))
        return await self._read(lambda db: op(db, self._read_labels))

    async def find_file_by_sha256(
        self, tenant: str, sha256: str, *, verified: bool = True, linked: bool = False
    ) -> FileRecord | None:
        labels = self._read_labels

        def op(db: sqlite3.Connection) -> FileRecord | None:
            tid = labels.find(db, tenant)
            if tid is None:
                return None
            key = pack_hex(sha256)
            args = (tid, int(verified), key[:8], key)
            row = db.execute(FIND_BY_HASH[linked], args).fetchone()
            return None if row is None else file_record(db, labels, row)

        return await self._run_on_loop(op)

    async def list_chunk_ids(
        self, *, limit: int, after: str | None = None
    ) -> tuple[list[str], str | None]:
        def op(db: sqlite3.Connection) -> tuple[list[str], str | None]:
            rows = db.execute(
                "SELECT chunk_id FROM chunks WHERE chunk_id > ? AND refcount > 0 "
                "ORDER BY chunk_id LIMIT ?",
                (pack_hex(after) if after else "", limit),
            ).fetchall()
            ids = [unpack_hex(r[0]) for r in rows]
            return ids, (ids[-1] if len(ids) == limit else None)

        if limit <= 0:
            return [], after
        return await self._read(op)

    # --- chunks (dfs.meta.sqlite_chunks) ---------------------------------------------------

    async def add_locations(self, locations: Iterable[Location], now: float) -> None:
        if locs := list(locations):
            await self._in_tx(lambda db: add_locations(db, self._labels, locs, now))

    async def remove_locations(self, locations: Iterable[Location]) -> None:
        if locs := list(locations):
            await self._in_tx(lambda db: remove_locations(db, self._labels, locs))

    async def remove_surplus_location(self, location: Location, keep: Collection[str]) -> bool:
        return await self._in_tx(
            lambda db: remove_surplus_location(db, self._labels, location, keep)
        )

    def _chunk_rows(
        self, ids: Sequence[str], columns: str, db: sqlite3.Connection | None = None
    ) -> Iterator[sqlite3.Row]:
        keys = [pack_hex(c) for c in ids]
        for batch in _batches(keys):
            marks = ",".join("?" * len(batch))
            yield from (db or self._db).execute(
                f"SELECT chunk_id, {columns} FROM chunks WHERE chunk_id IN ({marks})",
                tuple(batch),
            )

    async def get_locations(self, chunk_ids: Sequence[str]) -> dict[str, set[str]]:
        ids = list(dict.fromkeys(chunk_ids))

        def op(db: sqlite3.Connection, labels: Labels) -> dict[str, set[str]]:
            out: dict[str, set[str]] = {cid: set() for cid in ids}
            for r in self._chunk_rows(ids, "nodes", db):
                out[unpack_hex(r[0])] = node_names(db, labels, r[1])
            return out

        if len(ids) <= LOOP_READ_MAX_IDS:  # a small file's: a few point lookups
            return await self._run_on_loop(lambda db: op(db, self._read_labels))
        return await self._read(lambda db: op(db, self._read_labels))

    async def get_chunks(self, chunk_ids: Sequence[str]) -> dict[str, ChunkInfo]:
        ids = list(dict.fromkeys(chunk_ids))

        def op(db: sqlite3.Connection) -> dict[str, ChunkInfo]:
            out: dict[str, ChunkInfo] = {}
            for r in self._chunk_rows(ids, "size, refcount, created_at", db):
                out[unpack_hex(r[0])] = ChunkInfo(unpack_hex(r[0]), r[1], r[2], r[3])
            return out

        return await self._read(op)

    # --- delete, garbage collection, leases --------------------------------------------------

    async def delete_file(self, file_id: str, tenant: str, now: float) -> FileRecord:
        def op() -> FileRecord:
            with self._tx() as db:
                return delete_unlinked(db, self._labels, file_id, tenant, now)

        return await self._run(op)

    async def scan_chunks(self, *, limit: int, after: str | None = None) -> list[ChunkState]:
        return await self._read(lambda db: chunk_states(db, self._read_labels, limit, after))

    async def recent_pending_chunks(self, since: float) -> set[str]:
        def op(db: sqlite3.Connection) -> set[str]:
            ids = [
                unpack_file_id(r[0])
                for r in db.execute(
                    "SELECT file_id FROM files WHERE state != 1 AND created_at >= ?", (since,)
                ).fetchall()
            ]
            out: set[str] = set()
            for file_id in ids:
                for page in manifest_pages(db, file_id):
                    out.update(e.chunk_id for e in page)
            return out

        return await self._read(op)

    async def delete_chunk_if_unreferenced(self, chunk_id: str, cutoff: float) -> set[str] | None:
        def op() -> set[str] | None:
            with self._tx() as db:
                return delete_if_unreferenced(db, self._labels, chunk_id, cutoff)

        return await self._run(op)

    async def node_chunks(self, node_id: str, *, limit: int, after: str | None = None) -> list[str]:
        return await self._read(
            lambda db: chunks_of_node(db, self._read_labels, node_id, limit, after)
        )

    async def stale_pending_files(self, before: float, *, limit: int) -> list[FileRecord]:
        def op(db: sqlite3.Connection) -> list[FileRecord]:
            rows = db.execute(
                f"SELECT {FILE_COLUMNS} FROM files WHERE state != 1 AND created_at < ? "
                "ORDER BY created_at LIMIT ?",
                (before, limit),
            )
            return [file_record(db, self._read_labels, r) for r in rows]

        return await self._read(op)

    async def delete_pending_file(
        self, file_id: str, before: float, now: float | None = None
    ) -> bool:  # ``now``: unused (a commit or delete here is one transaction: never stranded)
        def op() -> bool:
            key = pack_file_id(file_id)
            with self._tx() as db:
                gone = db.execute(
                    "DELETE FROM files WHERE file_id=? AND state = 0 AND created_at < ?",
                    (key, before),
                ).rowcount
                if gone:
                    drop_manifest(db, key)
                return bool(gone)

        return await self._run(op)

    async def acquire_lease(
        self, name: str, owner: str, now: float, ttl: float, info: str = ""
    ) -> bool:
        def op() -> bool:
            with self._tx() as db:
                row = db.execute(
                    "SELECT owner, expires_at FROM leases WHERE name=?", (name,)
                ).fetchone()
                if row is not None and row[0] != owner and row[1] > now:
                    return False
                db.execute(
                    "INSERT OR REPLACE INTO leases VALUES (?,?,?,?)", (name, owner, now + ttl, info)
                )
                return True

        return await self._run(op)

    async def get_lease(self, name: str) -> Lease | None:
        def op(db: sqlite3.Connection) -> Lease | None:
            row = db.execute(
                "SELECT owner, expires_at, info FROM leases WHERE name=?", (name,)
            ).fetchone()
            return None if row is None else Lease(name, row[0], row[1], row[2])

        return await self._read(op)

    async def get_stats(self) -> Stats:
        def op(db: sqlite3.Connection) -> Stats:
            rows = dict(db.execute("SELECT name, value FROM counters").fetchall())
            return Stats(**{name: int(rows.get(name, 0)) for name in _COUNTERS})

        return await self._read(op)

    async def close(self) -> None:
        self._loop_reads.close()
        await asyncio.to_thread(self._readers.close)  # the reads in progress end first

        def op() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await self._run(op)
        self._executor.shutdown(wait=True)


if TYPE_CHECKING:
    _: type[MetadataStore] = SqliteMetadataStore
    _bc: type[BucketConfigStore] = SqliteMetadataStore
    _mp: type[MultipartStore] = SqliteMetadataStore
