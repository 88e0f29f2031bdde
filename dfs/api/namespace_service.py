"""The namespace's logic behind the bucket and object routes (issue 13).

``Namespace`` joins the ``NamespaceStore`` (buckets, keys, versions) to the Coordinator
(files): it links complete files as object versions, resolves a version to the file record
whose bytes the download machinery streams, copies and moves keys and whole prefixes as
metadata (``dfs.api.namespace_moves``: never a chunk read or written), and asks
``dfs.api.access`` before every step. Route modules stay thin: parse, call one method here,
answer. ``who`` is the caller (None: anonymous).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import cast

from dfs.api import access
from dfs.api.bodies import Principal
from dfs.api.coordinator import Coordinator
from dfs.api.namespace_bodies import ObjectFields
from dfs.api.namespace_moves import COPY_ATTEMPTS, NamespaceMoves
from dfs.api.namespace_records import Resolved as Resolved
from dfs.api.namespace_records import fresh_file, new_object
from dfs.api.namespace_records import namespace_store as namespace_store
from dfs.api.ttl_cache import TtlMap
from dfs.bounded import gather_bounded
from dfs.errors import (
    BucketExists,
    BucketNotFound,
    InvalidRequest,
    KeyNotFound,
    SourceChanged,
    Unavailable,
)
from dfs.ids import new_file_id
from dfs.meta.base import (
    FILE_PENDING,
    FileRecord,
    Location,
    ManifestEntry,
)
from dfs.meta.namespace import (
    ACCESS_SHARED,
    BucketRecord,
    NamespaceStore,
    NewObject,
    ObjectListing,
    ObjectVersion,
    PutResult,
    SearchQuery,
    Usage,
    same_fields,
)

DELETES_AT_ONCE = 64  # keys of one prefix delete in flight (the SQLite store's group size)


class Namespace(NamespaceMoves):
    def __init__(
        self,
        store: NamespaceStore | None,
        coord: Coordinator,
        bucket_ttl: float = 0.0,
        cache_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self.coord = coord
        # buckets as writes read them (``bucket_for_write``), for ``bucket_ttl`` seconds
        self._for_write: TtlMap[str, BucketRecord] = TtlMap(bucket_ttl, clock=cache_clock)

    @property
    def store(self) -> NamespaceStore:
        if self._store is None:
            raise Unavailable("this metadata backend has no namespace")
        return self._store

    # --- buckets ----------------------------------------------------------------------------

    async def bucket(self, name: str) -> BucketRecord:
        """The bucket ``name``; a missing one answers as one the caller may not see."""
        try:
            return await self.store.get_bucket(name)
        except BucketNotFound:
            raise access.no_bucket(name) from None

    async def bucket_for_write(self, name: str) -> BucketRecord:
        """``bucket`` for a write, read at most once per ``bucket_ttl`` seconds (this
        Namespace's own bucket changes drop it at once). Only for writes: the store's write
        checks again, atomically, that the bucket exists, is still the tenant's it was read
        as (``NewObject.owner``) and the linked file is its owner's,
        so a stale record can only delay an ACL, grant or versioning change made elsewhere
        by up to ``bucket_ttl`` seconds, never put a version in another tenant's bucket."""
        return await self._for_write.get(name, lambda: self.bucket(name))

    async def bucket_and_object(
        self, bucket: str, key: str, version: str | None
    ) -> tuple[BucketRecord, ObjectVersion | None]:
        """The bucket (missing: as ``bucket``) and the version of ``key`` (None when
        missing or a delete marker is the latest), in one metadata read where the store
        offers one (SQLite's ``get_bucket_and_object``), else two."""
        fused = getattr(self.store, "get_bucket_and_object", None)
        if fused is not None:
            try:
                return cast(
                    tuple[BucketRecord, ObjectVersion | None], await fused(bucket, key, version)
                )
            except BucketNotFound:
                raise access.no_bucket(bucket) from None
        b = await self.bucket(bucket)
        try:
            return b, await self.store.get_object(bucket, key, version)
        except KeyNotFound:
            return b, None

    async def visible_bucket(self, who: Principal | None, name: str) -> BucketRecord:
        b = await self.bucket(name)
        access.require_list(who, b)
        return b

    async def create_bucket(
        self, who: Principal, name: str, versioning: str | None, bucket_access: str | None
    ) -> BucketRecord:
        rec = BucketRecord(name=name, tenant=who.tenant, created_at=self.coord.clock())
        try:
            await self.store.create_bucket(rec)
        except BucketExists:
            if (await self.store.get_bucket(name)).tenant == who.tenant:
                raise BucketExists(f"you already own bucket {name!r}") from None
            raise
        # a bucket of this name deleted elsewhere may still be cached
        self._for_write.drop(name)
        if versioning is not None or bucket_access is not None:
            try:
                return await self.store.update_bucket(
                    name, who.tenant, versioning=versioning, access=bucket_access
                )
            finally:
                self._for_write.drop(name)  # a write may have read it in between
        return rec

    async def list_buckets(self, who: Principal) -> list[BucketRecord]:
        return await self.store.list_buckets(who.tenant, granted=True)

    async def delete_bucket(self, who: Principal, name: str) -> None:
        access.require_owner(who, await self.bucket(name))
        self._for_write.drop(name)
        try:
            await self.store.delete_bucket(name, who.tenant)
        finally:
            self._for_write.drop(name)  # and again: a write may have read it meanwhile

    async def update_bucket(
        self,
        who: Principal,
        name: str,
        *,
        versioning: str | None,
        bucket_access: str | None,
        grants: Sequence[tuple[str, str]] | None,
    ) -> BucketRecord:
        access.require_owner(who, await self.bucket(name))
        if grants is not None and any(t == who.tenant for t, _ in grants):
            raise InvalidRequest("a bucket's owner needs no grant")
        try:
            return await self.store.update_bucket(
                name, who.tenant, versioning=versioning, access=bucket_access, grants=grants
            )
        finally:
            self._for_write.drop(name)

    # --- objects ----------------------------------------------------------------------------

    async def resolve(
        self, who: Principal | None, bucket: str, key: str, version: str | None
    ) -> Resolved:
        """The version ``who`` may read (KeyNotFound alike for refused and missing)."""
        try:
            b = await self.bucket(bucket)
            v = await self.store.get_object(bucket, key, version)
        except (BucketNotFound, KeyNotFound):
            raise access.no_key(bucket, key) from None
        access.require_read(who, b, v)
        if v.is_delete_marker:  # S3 answers 405 for a marker's version: here as missing
            raise access.no_key(bucket, key)
        return Resolved(b, v)

    async def require_writable(self, who: Principal, bucket: str) -> BucketRecord:
        """Refuse now, before an upload meant for ``bucket`` reads its body; the bucket."""
        b = await self.bucket(bucket)
        access.require_write(who, b)
        return b

    async def link(
        self,
        who: Principal,
        bucket: str,
        key: str,
        file_id: str,
        fields: ObjectFields,
        etag: str | None = None,
        *,
        if_absent: bool = False,
        if_match: str | None = None,
        unless_current: bool = False,
        read: BucketRecord | None = None,
        written: FileRecord | None = None,
    ) -> PutResult:
        """Make the caller's complete file ``file_id`` ("" for an empty object) the new
        current version of ``bucket/key``; ``etag`` defaults to the file's sha256 (the S3
        gateway gives the MD5 of the body, as S3 computes it). ``if_absent``: only if the
        key has no current object (KeyExists otherwise, decided atomically by the store);
        ``if_match``: only if the current object's ETag is this (``put_object``'s rules);
        ``unless_current``: not again when the key's current object links the file with
        these fields already (a grantee's file is cloned into the owner's, so for it: the
        same bytes and fields).
        ``read``: the bucket as this request read it already; ``written``: the file as this
        request created it complete (its id known to no one else yet): neither is read
        again (the store's write still checks, atomically, that both exist and match)."""
        b = read if read is not None and read.name == bucket else await self.bucket(bucket)
        access.require_write(who, b)
        access.require_may_share(who, b, fields.access)
        size, sha256, now = 0, "", self.coord.clock()
        if file_id:
            rec = fresh_file(who, file_id, written) or await self.coord.get_complete_file(
                file_id, who.tenant
            )
            if rec.tenant != b.tenant:  # a read-write grantee's file
                new = new_object(b, key, new_file_id(), rec.size, rec.sha256, fields, etag)
                held = await self._held_by_content(new) if unless_current else None
                if held is not None:
                    return PutResult(held, made=False)
                return await self._link_as_owners(rec, new, now, if_absent, if_match)
            size, sha256 = rec.size, rec.sha256
        new = new_object(b, key, file_id, size, sha256, fields, etag)
        return await self.store.put_object(
            new, now, if_absent=if_absent, if_match=if_match, unless_current=unless_current
        )

    async def link_copy(
        self,
        who: Principal,
        bucket: str,
        key: str,
        rec: FileRecord,
        fields: ObjectFields,
        *,
        read: BucketRecord | None = None,
    ) -> PutResult:
        """A new current version of ``bucket/key`` with the bytes of the caller's complete
        file ``rec`` (found by its content) in a file record of its own with the same
        manifest: ``rec`` stays what it was (a file its owner may delete, or another
        object's, released with its last version), and no chunk is read or written. The
        owner's record is created and linked in one write (a refused link leaves nothing);
        a grantee's file becomes the owner's by ``link`` (``_link_as_owners``). ``read``:
        the bucket as this request read it already (``link``'s)."""
        b = read if read is not None and read.name == bucket else await self.bucket(bucket)
        access.require_write(who, b)
        if b.tenant != who.tenant:
            return await self.link(who, bucket, key, rec.file_id, fields, read=b)
        now = self.coord.clock()
        own, manifest = await self._clone(rec, new_file_id(), who.tenant, now)
        return await self.create_and_link(who, b, key, (own, manifest, ()), fields, None, now)

    async def _clone(
        self, rec: FileRecord, file_id: str, tenant: str, now: float
    ) -> tuple[FileRecord, list[ManifestEntry]]:
        """A new file record ``file_id`` of ``tenant`` with complete file ``rec``'s manifest,
        to be created with its link (its references then counted as any file's: no chunk
        is read or written)."""
        manifest = await self.coord.meta.get_manifest(rec.file_id)
        clone = dataclasses.replace(
            rec, file_id=file_id, tenant=tenant, state=FILE_PENDING, created_at=now
        )
        return clone, manifest

    async def create_and_link(
        self,
        who: Principal,
        b: BucketRecord,
        key: str,
        new_file: tuple[FileRecord, Sequence[ManifestEntry], Sequence[Location]],
        fields: ObjectFields,
        etag: str | None,
        now: float,
        *,
        if_absent: bool = False,
        if_match: str | None = None,
    ) -> PutResult:
        """``link`` of a file not recorded yet, in the same write that records it complete
        (``new_file``: its record, manifest and copies, as ``dfs.api.ingest`` verified
        them): one metadata write per PutObject instead of two, and a refused link (a
        condition, the bucket gone or another tenant's) leaves no file behind. Only for
        the bucket owner's own upload (a grantee's file becomes the owner's by ``link``)."""
        rec, manifest, locations = new_file
        access.require_write(who, b)
        access.require_may_share(who, b, fields.access)
        if not rec.tenant == who.tenant == b.tenant:
            raise InvalidRequest("create_and_link takes the bucket owner's own file")
        new = new_object(b, key, rec.file_id, rec.size, rec.sha256, fields, etag)
        return await self.store.create_and_put_object(
            rec, manifest, locations, new, now, if_absent=if_absent, if_match=if_match
        )

    async def _held_by_content(self, new: NewObject) -> ObjectVersion | None:
        """The key's current object when it holds ``new``'s bytes with its fields already: a
        grantee's link sent again (its first one cloned the file). Read before the write,
        not in it: a repeat racing its own first attempt, still being written, can make a
        second version (the owner's own links are decided in the store's write)."""
        try:
            current = await self.store.get_object(new.bucket, new.key)
        except KeyNotFound:
            return None
        same = current.sha256 == new.sha256 and current.size == new.size
        return current if same and same_fields(new, current) else None

    async def _link_as_owners(
        self, rec: FileRecord, new: NewObject, now: float, if_absent: bool, if_match: str | None
    ) -> PutResult:
        """A read-write grantee's complete file ``rec`` linked as ``new``: a new file record
        of the bucket owner (``new.file_id``, whose file every version links) with the same
        manifest (its references counted as any upload's: the owner's chunk set stays
        exact; no chunk is read or written), as a copy into another tenant's bucket makes
        one. Created and linked in one store write (``create_and_put_object``), so a
        refused link (a condition, the bucket gone or another tenant's) or a crash leaves
        no file of the owner behind."""
        clone, manifest = await self._clone(rec, new.file_id, new.owner, now)
        return await self.store.create_and_put_object(
            clone, manifest, [], new, now, if_absent=if_absent, if_match=if_match
        )

    async def delete(
        self,
        who: Principal,
        bucket: str,
        key: str,
        version: str | None,
        *,
        unless_deleted: bool = False,
        if_latest: str | None = None,
    ) -> ObjectVersion | None:
        """``unless_deleted``: no delete marker for a key with no current object;
        ``if_latest``: Conflict unless the key's latest entry is that version."""
        access.require_write(who, await self.bucket(bucket))
        now = self.coord.clock()
        return await self.store.delete_object(
            bucket, key, version, now, unless_deleted=unless_deleted, if_latest=if_latest
        )

    async def restore(self, who: Principal, bucket: str, key: str, version: str) -> PutResult:
        """A copy of ``version`` (its access and ``shared_with`` too) made current. Only
        the owner restores a version that is not private: a grantee's restore would
        publish again what the owner made private by writing over it (Forbidden, as a
        grantee's write with that access is)."""
        b = await self.bucket(bucket)
        access.require_write(who, b)
        if not access.is_owner(who, b):
            old = await self.store.get_object(bucket, key, version)
            access.require_may_share(who, b, old.access)
        return await self.store.restore_version(bucket, key, version, self.coord.clock())

    async def update_object(
        self,
        who: Principal,
        bucket: str,
        key: str,
        version: str | None,
        fields: ObjectFields,
        shared_with: Sequence[str] | None,
    ) -> ObjectVersion:
        """Tags, access and sharing change in place (tenants named in ``shared_with`` make
        it ``shared`` unless an access is given); content type or metadata by copying the
        version over itself (S3's way: a new version in a versioned bucket), which keeps
        the access and sharing not given (a grantee's copy of an object that is not private
        is refused, as its write with that access is)."""
        b = await self.bucket(bucket)
        if fields.access is not None or shared_with is not None:
            access.require_owner(who, b)
        if shared_with and fields.access is None:  # naming tenants shares it with them
            fields = dataclasses.replace(fields, access=ACCESS_SHARED)
        access.require_write(who, b)
        current = await self.store.get_object(bucket, key, version)
        if fields.content_type is not None or fields.metadata is not None:
            current = await self._copy_over_itself(who, b, current, fields, shared_with)
        return await self.store.update_object(
            bucket,
            key,
            current.version_id,
            tags=fields.tags,
            access=fields.access,
            shared_with=shared_with,
        )

    async def _copy_over_itself(
        self,
        who: Principal,
        b: BucketRecord,
        current: ObjectVersion,
        fields: ObjectFields,
        shared_with: Sequence[str] | None,
    ) -> ObjectVersion:
        """``current`` copied over its key with ``fields``; the access and sharing not given
        are ``current``'s. A write of the key since it was read: read again."""
        for _ in range(COPY_ATTEMPTS):
            kept = dataclasses.replace(fields, access=fields.access or current.access)
            access.require_may_share(who, b, kept.access)
            sharing = current.shared_with if shared_with is None else shared_with
            try:
                made = await self._copy_one(
                    current, b.name, current.key, kept, b.tenant, shared_with=sharing
                )
                return made.version
            except SourceChanged:
                current = await self.store.get_object(b.name, current.key, current.version_id)
        raise Unavailable(f"{current.key!r} kept being written meanwhile; try again")

    async def delete_prefix(self, who: Principal, bucket: str, prefix: str) -> int:
        """Delete every current key under ``prefix`` (markers where versioning is on). A
        key deleted meanwhile gets no second marker, so the request may be sent again."""
        access.require_write(who, await self.bucket(bucket))
        keys = [o.key async for o in self._keys_under(bucket, prefix)]

        async def one(key: str) -> None:
            now = self.coord.clock()
            await self.store.delete_object(bucket, key, None, now, unless_deleted=True)

        # many at once: the SQLite store commits those queued together in one transaction
        await gather_bounded(one, keys, DELETES_AT_ONCE)
        return len(keys)

    async def listing(
        self,
        who: Principal | None,
        bucket: str,
        *,
        prefix: str,
        delimiter: str,
        token: str | None,
        limit: int,
        versions: bool,
        start_after: str = "",
    ) -> ObjectListing:
        await self.visible_bucket(who, bucket)
        lister = self.store.list_versions if versions else self.store.list_objects
        return await lister(
            bucket,
            prefix=prefix,
            delimiter=delimiter,
            token=token,
            limit=limit,
            start_after=start_after,
        )

    async def search(
        self, who: Principal | None, bucket: str, query: SearchQuery, token: str | None, limit: int
    ) -> ObjectListing:
        await self.visible_bucket(who, bucket)
        return await self.store.search_objects(bucket, query, token=token, limit=limit)

    # --- usage ------------------------------------------------------------------------------

    async def usage(self, who: Principal, bucket: str | None, by: str) -> Usage | dict[str, Usage]:
        """The caller's counters (a bucket of its own, or all): totals, ``by`` "prefix"
        (a bucket's ``du``) or "type" (per extension)."""
        if bucket is not None:
            access.require_owner(who, await self.bucket(bucket))
        if by == "prefix":
            if bucket is None:
                raise InvalidRequest("usage by prefix is per bucket")
            return await self.store.usage_by_prefix(who.tenant, bucket)
        if by == "type":
            return await self.store.usage_by_type(who.tenant, bucket)
        return await self.store.usage(who.tenant, bucket)
