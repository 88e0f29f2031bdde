"""The namespace (buckets, keys, versions, usage) of the SQLite metadata store.

``SqliteNamespaceMixin`` gives ``SqliteMetadataStore`` the ``NamespaceStore`` methods
(``dfs.meta.namespace``), on the store's one connection and worker thread. Every change runs
in one ``BEGIN IMMEDIATE`` transaction, which holds SQLite's write lock from its first read:
the check and the act of each operation (is the name free, which version is latest, is the
bucket empty, how many versions link a file) cannot interleave with another writer, in this
process or another one on the same file. Reads that take several statements run in one
deferred transaction, so they see one snapshot.

How versions share files: an object version links a complete file record of its bucket's
tenant; ``ns_file_links`` counts the links. A copy or restore within a tenant adds a link
(one row, no chunk touched); a copy into another tenant's bucket gives that tenant a new
file record with the same manifest, committed as any file (so refcounts, ``owned_chunks``
and the tenant's numbers stay its own). When a version goes (overwrite, permanent delete,
suspended delete) its link goes, and the last link deletes the file exactly as
``delete_file`` does, in the same transaction: the chunks are released once.

The parts: ``sqlite_namespace_schema`` (tables, rows → records, tokens),
``sqlite_namespace_writes`` (S3's version rules), ``sqlite_namespace_usage`` (links and
counters), ``sqlite_namespace_files`` (the store's files as the namespace sees them),
``sqlite_namespace_listing`` (pages and search).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, TypeVar

from dfs.errors import (
    BucketExists,
    BucketNotEmpty,
    BucketNotFound,
    Conflict,
    DfsError,
    KeyNotFound,
)
from dfs.meta.base import FileRecord, Location, ManifestEntry
from dfs.meta.namespace import (
    VERSIONING_UNVERSIONED,
    BucketRecord,
    NamespaceStore,
    NewObject,
    ObjectListing,
    ObjectVersion,
    PutResult,
    SearchQuery,
    Usage,
)
from dfs.meta.sqlite_codec import Labels
from dfs.meta.sqlite_group import GroupCommit
from dfs.meta.sqlite_namespace_batch import put_many
from dfs.meta.sqlite_namespace_files import StoreFiles
from dfs.meta.sqlite_namespace_listing import (
    list_objects,
    list_versions,
    search,
    start_after_token,
)
from dfs.meta.sqlite_namespace_schema import bucket_record, version_record
from dfs.meta.sqlite_namespace_usage import read_usage, read_usage_groups
from dfs.meta.sqlite_namespace_writes import (
    copy,
    delete,
    is_latest,
    load_bucket,
    put,
    readable_version,
    restore,
    update,
)

T = TypeVar("T")
# list_objects or list_versions of dfs.meta.sqlite_namespace_listing
Lister = Callable[[sqlite3.Connection, str, str, str, str | None, int], ObjectListing]


def _grants(db: sqlite3.Connection, bucket: str) -> list[tuple[str, str]]:
    rows = db.execute("SELECT grantee, grant FROM ns_grants WHERE bucket=?", (bucket,))
    return [(r[0], r[1]) for r in rows]


def _bucket(db: sqlite3.Connection, row: sqlite3.Row) -> BucketRecord:
    return bucket_record(row, _grants(db, row["name"]))


def _own_bucket(db: sqlite3.Connection, name: str, tenant: str) -> sqlite3.Row:
    row = load_bucket(db, name)
    if row["tenant"] != tenant:  # another tenant's bucket: as if missing
        raise BucketNotFound(f"no bucket {name}")
    return row


class SqliteNamespaceMixin:
    """NamespaceStore on the SQLite store's connection (see the module docstring)."""

    if TYPE_CHECKING:  # provided by SqliteMetadataStore

        @property
        def _db(self) -> sqlite3.Connection: ...
        def _tx(
            self, conn: sqlite3.Connection | None = None
        ) -> AbstractContextManager[sqlite3.Connection]: ...
        async def _run(self, fn: Callable[[], T]) -> T: ...
        async def _run_on_loop(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...
        async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

        _labels: Labels
        _group: GroupCommit

    def _write(self, fn: Callable[[sqlite3.Connection], T]) -> Callable[[], T]:
        def op() -> T:
            with self._tx() as db:
                return fn(db)

        return op

    def _change(self, fn: Callable[[StoreFiles], T]) -> Callable[[], T]:
        """A version change: one write transaction, with the store's files at hand."""

        def op() -> T:
            with self._tx() as db:
                return fn(StoreFiles(db, self._labels))

        return op

    # --- buckets ----------------------------------------------------------------------------

    async def create_bucket(self, rec: BucketRecord) -> None:
        def op(db: sqlite3.Connection) -> None:
            if db.execute("SELECT 1 FROM ns_buckets WHERE name=?", (rec.name,)).fetchone():
                raise BucketExists(f"bucket {rec.name} exists")
            db.execute(
                "INSERT INTO ns_buckets VALUES (?,?,?,?,?)",
                (rec.name, rec.tenant, rec.created_at, rec.versioning, rec.access),
            )
            db.executemany(
                "INSERT INTO ns_grants VALUES (?,?,?)", ((g, rec.name, k) for g, k in rec.grants)
            )

        await self._run(self._write(op))

    async def get_bucket(self, name: str) -> BucketRecord:
        return await self._run_on_loop(lambda db: _bucket(db, load_bucket(db, name)))

    async def list_buckets(self, tenant: str, *, granted: bool = False) -> list[BucketRecord]:
        def op(db: sqlite3.Connection) -> list[BucketRecord]:
            rows = db.execute("SELECT * FROM ns_buckets WHERE tenant=? ORDER BY name", (tenant,))
            out = [_bucket(db, r) for r in rows.fetchall()]
            if granted:
                rows = db.execute(
                    "SELECT b.* FROM ns_grants g JOIN ns_buckets b ON b.name = g.bucket "
                    "WHERE g.grantee=? AND b.tenant != ?",
                    (tenant, tenant),
                )
                out += [_bucket(db, r) for r in rows.fetchall()]
            return sorted(out, key=lambda b: b.name)

        return await self._read(op)

    async def delete_bucket(self, name: str, tenant: str) -> None:
        def op(db: sqlite3.Connection) -> None:
            _own_bucket(db, name, tenant)
            if db.execute("SELECT 1 FROM ns_versions WHERE bucket=? LIMIT 1", (name,)).fetchone():
                raise BucketNotEmpty(f"bucket {name} holds versions or delete markers")
            db.execute("DELETE FROM ns_grants WHERE bucket=?", (name,))
            db.execute("DELETE FROM ns_usage WHERE tenant=? AND bucket=?", (tenant, name))
            db.execute("DELETE FROM ns_buckets WHERE name=?", (name,))

        await self._run(self._write(op))

    async def update_bucket(
        self,
        name: str,
        tenant: str,
        *,
        versioning: str | None = None,
        access: str | None = None,
        grants: Sequence[tuple[str, str]] | None = None,
    ) -> BucketRecord:
        def op(db: sqlite3.Connection) -> BucketRecord:
            row = _own_bucket(db, name, tenant)
            if versioning is not None and versioning != row["versioning"]:
                if versioning == VERSIONING_UNVERSIONED:
                    raise Conflict("versioning cannot be turned off once enabled, only suspended")
                db.execute("UPDATE ns_buckets SET versioning=? WHERE name=?", (versioning, name))
            if access is not None:
                db.execute("UPDATE ns_buckets SET access=? WHERE name=?", (access, name))
            if grants is not None:
                db.execute("DELETE FROM ns_grants WHERE bucket=?", (name,))
                db.executemany(
                    "INSERT OR REPLACE INTO ns_grants VALUES (?,?,?)",
                    ((g, name, k) for g, k in grants),
                )
            return _bucket(db, load_bucket(db, name))

        return await self._run(self._write(op))

    # --- objects ----------------------------------------------------------------------------

    async def put_object(
        self,
        obj: NewObject,
        now: float,
        *,
        if_absent: bool = False,
        if_match: str | None = None,
        unless_current: bool = False,
    ) -> PutResult:
        """In the next group commit (``dfs.meta.sqlite_group``): links sent at once (a
        batch of ``POST /objects-link``, concurrent PutObjects) share one fsync."""

        def op(db: sqlite3.Connection) -> PutResult:
            files = StoreFiles(db, self._labels, self._group.usage)
            return put(files, obj, now, if_absent, if_match, unless_current)

        return await self._group.run(self._run, lambda: self._db, op)

    async def put_objects(
        self, objs: Sequence[NewObject], now: float, *, unless_current: bool = False
    ) -> list[PutResult | DfsError]:
        """One write of the next group commit: the fresh links in one pass, the others by
        ``put`` in savepoints of their own (``dfs.meta.sqlite_namespace_batch``)."""

        def op(db: sqlite3.Connection) -> list[PutResult | DfsError]:
            files = StoreFiles(db, self._labels, self._group.usage)
            return put_many(files, objs, now, unless_current)

        return await self._group.run(self._run, lambda: self._db, op)

    async def create_and_put_object(
        self,
        rec: FileRecord,
        manifest: Sequence[ManifestEntry],
        locations: Sequence[Location],
        obj: NewObject,
        now: float,
        *,
        if_absent: bool = False,
        if_match: str | None = None,
    ) -> PutResult:
        """One write (one fsync instead of two, shared by the writes queued meanwhile:
        ``dfs.meta.sqlite_group``): the file created complete with its copies, then linked
        by ``put``'s checks and rules; a refusal rolls both back."""

        def op(db: sqlite3.Connection) -> PutResult:
            files = StoreFiles(db, self._labels, self._group.usage)
            files.create_committed(rec, manifest, locations, now)
            return put(files, obj, now, if_absent, if_match)

        return await self._group.run(self._run, lambda: self._db, op)

    async def get_object(
        self, bucket: str, key: str, version_id: str | None = None
    ) -> ObjectVersion:
        def op(db: sqlite3.Connection) -> ObjectVersion:
            row = readable_version(db, bucket, key, version_id)
            return version_record(row, version_id is None or is_latest(db, row))

        return await self._read(op)

    async def get_bucket_and_object(
        self, bucket: str, key: str, version_id: str | None = None
    ) -> tuple[BucketRecord, ObjectVersion | None]:
        """``get_bucket`` and ``get_object`` (None instead of KeyNotFound) in one read of
        one snapshot, on the event loop's thread (``_run_on_loop``): a GetObject's or
        HeadObject's metadata without a hop to the store's worker thread."""

        def op(db: sqlite3.Connection) -> tuple[BucketRecord, ObjectVersion | None]:
            b = _bucket(db, load_bucket(db, bucket))
            try:
                row = readable_version(db, bucket, key, version_id)
            except KeyNotFound:
                return b, None
            return b, version_record(row, version_id is None or is_latest(db, row))

        return await self._run_on_loop(op)

    async def delete_object(
        self,
        bucket: str,
        key: str,
        version_id: str | None,
        now: float,
        *,
        unless_deleted: bool = False,
        if_latest: str | None = None,
        if_written: tuple[str, float] | None = None,
    ) -> ObjectVersion | None:
        """In the next group commit, as ``put_object``: deletes sent at once (a prune's,
        concurrent DeleteObjects) share one fsync."""
        conditions = (if_latest, if_written)

        def op(db: sqlite3.Connection) -> ObjectVersion | None:
            files = StoreFiles(db, self._labels, self._group.usage)
            return delete(files, bucket, key, version_id, now, unless_deleted, conditions)

        return await self._group.run(self._run, lambda: self._db, op)

    async def restore_version(
        self, bucket: str, key: str, version_id: str, now: float
    ) -> PutResult:
        return await self._run(
            self._change(lambda files: restore(files, bucket, key, version_id, now))
        )

    async def copy_object(
        self,
        src_bucket: str,
        src_key: str,
        src_version: str | None,
        dst: NewObject,
        now: float,
        *,
        if_absent: bool = False,
        if_match: str | None = None,
        expect_file: str | None = None,
    ) -> PutResult:
        src = (src_bucket, src_key, src_version)
        conditions = (if_absent, if_match)
        return await self._run(
            self._change(lambda files: copy(files, src, dst, now, conditions, expect_file))
        )

    async def update_object(
        self,
        bucket: str,
        key: str,
        version_id: str | None,
        *,
        tags: Sequence[tuple[str, str]] | None = None,
        access: str | None = None,
        shared_with: Sequence[str] | None = None,
    ) -> ObjectVersion:
        target = (bucket, key, version_id)
        return await self._run(
            self._write(lambda db: update(db, target, tags, access, shared_with))
        )

    async def list_objects(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        token: str | None = None,
        limit: int = 1000,
        start_after: str = "",
    ) -> ObjectListing:
        token = token or start_after_token(start_after)
        return await self._page(list_objects, bucket, prefix, delimiter, token, limit)

    async def list_versions(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        token: str | None = None,
        limit: int = 1000,
        start_after: str = "",
    ) -> ObjectListing:
        token = token or start_after_token(start_after)
        return await self._page(list_versions, bucket, prefix, delimiter, token, limit)

    async def _page(
        self, walk: Lister, bucket: str, prefix: str, delimiter: str, token: str | None, limit: int
    ) -> ObjectListing:
        def op(db: sqlite3.Connection) -> ObjectListing:
            load_bucket(db, bucket)
            return walk(db, bucket, prefix, delimiter, token, max(limit, 1))

        return await self._read(op)

    async def search_objects(
        self, bucket: str, query: SearchQuery, *, token: str | None = None, limit: int = 100
    ) -> ObjectListing:
        def op(db: sqlite3.Connection) -> ObjectListing:
            load_bucket(db, bucket)
            return search(db, bucket, query, token, max(limit, 1))

        return await self._read(op)

    # --- usage ------------------------------------------------------------------------------

    async def usage(self, tenant: str, bucket: str | None = None) -> Usage:
        return await self._read(lambda db: read_usage(db, tenant, bucket))

    async def usage_by_prefix(self, tenant: str, bucket: str) -> dict[str, Usage]:
        return await self._read(lambda db: read_usage_groups(db, tenant, bucket, "prefix"))

    async def usage_by_type(self, tenant: str, bucket: str | None = None) -> dict[str, Usage]:
        return await self._read(lambda db: read_usage_groups(db, tenant, bucket, "type"))

    async def finish_namespace_jobs(self, now: float) -> int:
        """Nothing to finish: every change is one transaction here."""
        return 0


if TYPE_CHECKING:
    _: type[NamespaceStore] = SqliteNamespaceMixin
