"""The namespace port: buckets, object keys, versions, tags, access and usage counters.

A tenant's files become objects here: an object version is ``(bucket, key, version_id)``
pointing at a complete file record (``file_id``) of the bucket owner's tenant, so every
seed route that takes a file id keeps working for every version. The model follows S3
wherever S3 has semantics (bucket names, keys, versioning states, delete markers, the
``null`` version, listing with prefix/delimiter/continuation), so that the S3 gateway
serves it without translation and the native API, the CLI and the console share it.

``NamespaceStore`` is implemented by both metadata backends, next to ``MetadataStore``
(``dfs.meta.base``); ``tests/contract/test_namespace_store.py`` holds both to the contract
below. Records are frozen dataclasses; times are Unix seconds (float). Must not import
aiohttp, boto3 or sqlite3.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from dfs.errors import BucketNotFound, Conflict, DfsError, EtagMismatch, KeyExists, KeyNotFound
from dfs.meta.base import FileRecord, Location, ManifestEntry
from dfs.namespace_rules import NULL_VERSION as NULL_VERSION

VERSIONING_UNVERSIONED = "unversioned"
VERSIONING_ENABLED = "enabled"
VERSIONING_SUSPENDED = "suspended"
VERSIONING_STATES = (VERSIONING_UNVERSIONED, VERSIONING_ENABLED, VERSIONING_SUSPENDED)

ACCESS_PRIVATE = "private"
ACCESS_PUBLIC_READ = "public-read"
ACCESS_SHARED = "shared"  # objects only: readable by ``shared_with`` tenants
BUCKET_ACCESS = (ACCESS_PRIVATE, ACCESS_PUBLIC_READ)
OBJECT_ACCESS = (ACCESS_PRIVATE, ACCESS_PUBLIC_READ, ACCESS_SHARED)

GRANT_READ = "read"
GRANT_READ_WRITE = "read-write"


MAX_KEY_BYTES = 1024
MAX_TAGS = 10
MAX_USER_METADATA_BYTES = 2048  # S3: user-defined metadata keys + values, UTF-8


@dataclass(frozen=True, slots=True)
class BucketRecord:
    """A bucket. ``name`` is unique across all tenants (S3's rule), owned by ``tenant``.

    ``grants`` maps other tenants to ``GRANT_READ`` or ``GRANT_READ_WRITE``."""

    name: str
    tenant: str
    created_at: float = 0.0
    versioning: str = VERSIONING_UNVERSIONED
    access: str = ACCESS_PRIVATE
    grants: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class ObjectVersion:
    """One version of one key, or a delete marker (``file_id`` "" and size 0).

    ``is_latest`` is true for exactly one version of a key that has any. ``etag`` is what
    S3 clients see (set by whoever writes; the native API derives one from the manifest).
    ``tags``, ``user_metadata`` and ``headers`` (``STORED_HEADERS`` given at write time,
    lower-case names; rows written before they existed read as none) are sorted by key."""

    bucket: str
    key: str
    version_id: str
    file_id: str
    size: int
    created_at: float
    is_latest: bool = True
    is_delete_marker: bool = False
    etag: str = ""
    sha256: str = ""
    content_type: str = "application/octet-stream"
    user_metadata: tuple[tuple[str, str], ...] = ()
    tags: tuple[tuple[str, str], ...] = ()
    access: str = ACCESS_PRIVATE
    shared_with: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class NewObject:
    """What a PUT (upload with a key, copy, restore) asks ``put_object`` to link."""

    bucket: str
    key: str
    file_id: str  # a COMPLETE file record of the bucket's tenant ("" only for size 0)
    size: int
    etag: str = ""
    sha256: str = ""
    content_type: str = "application/octet-stream"
    user_metadata: tuple[tuple[str, str], ...] = ()
    tags: tuple[tuple[str, str], ...] = ()
    access: str = ACCESS_PRIVATE
    shared_with: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    # the tenant the writer read as the bucket's owner ("": not checked): the store refuses
    # the write (BucketNotFound) when the bucket is another tenant's by now (deleted and
    # made again under that name since the writer read it), which the file check cannot
    # catch for an empty object (no file)
    owner: str = ""


def version_of(obj: NewObject, version_id: str, now: float) -> ObjectVersion:
    """The version ``obj`` becomes when linked now as ``version_id``: its fields sorted as
    every record keeps them (``shared_with`` named once)."""
    return ObjectVersion(
        bucket=obj.bucket,
        key=obj.key,
        version_id=version_id,
        file_id=obj.file_id,
        size=obj.size,
        created_at=now,
        etag=obj.etag,
        sha256=obj.sha256,
        content_type=obj.content_type,
        user_metadata=tuple(sorted(obj.user_metadata)),
        tags=tuple(sorted(obj.tags)),
        access=obj.access or ACCESS_PRIVATE,
        shared_with=tuple(sorted(set(obj.shared_with))),
        headers=tuple(sorted(obj.headers)),
    )


def check_owner(obj: NewObject, tenant: str) -> None:
    """BucketNotFound unless ``obj``'s bucket is still the tenant's its writer read."""
    if obj.owner and obj.owner != tenant:
        raise BucketNotFound(f"no bucket {obj.bucket}")


@dataclass(frozen=True, slots=True)
class ObjectListing:
    """A page of a listing: objects (or versions) in key order, then common prefixes.

    ``next_token`` is opaque (resume exactly after the last entry returned, counting a
    common prefix as one entry as S3 does), None on the last page."""

    objects: list[ObjectVersion] = field(default_factory=list)
    common_prefixes: list[str] = field(default_factory=list)
    next_token: str | None = None


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """Filters of ``search_objects``; every given filter must hold (AND)."""

    prefix: str = ""
    contains: str = ""  # substring of the key
    tag: tuple[str, str | None] | None = None  # (key, value) or (key, None) for any value
    content_type: str = ""  # exact, or a "type/" prefix such as "image/"
    min_size: int | None = None  # min_size <= size <= max_size
    max_size: int | None = None
    modified_after: float | None = None  # modified_after <= created_at < modified_before
    modified_before: float | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    """Counters kept at commit time (never computed by scanning on request).

    ``stored_bytes`` counts each distinct chunk once within the scope (a tenant or one of
    its buckets), so ``logical_bytes - stored_bytes`` is what dedup saved there. Other
    tenants' copies never change these numbers."""

    objects: int = 0  # current (latest, not delete-marker) versions
    versions: int = 0  # every stored version, delete markers excluded
    delete_markers: int = 0
    logical_bytes: int = 0  # sum of sizes of every stored version
    stored_bytes: int = 0

    @property
    def saved_bytes(self) -> int:
        return self.logical_bytes - self.stored_bytes


@dataclass(frozen=True, slots=True)
class PutResult:
    """The version ``put_object`` made, and the file it released (unversioned overwrite
    or suspended ``null`` overwrite): that file's chunk references were already dropped
    exactly once by the store, in the same atomic step where the backend allows, else by
    a crash-safe follow-up the store owns (never by the caller)."""

    version: ObjectVersion
    released_file_id: str | None = None
    made: bool = True  # False: ``unless_current`` found the key holding the file already


class NamespaceStore(Protocol):
    """Buckets, keys and versions of a dfs cluster.

    Contract (both backends, checked by the contract suite):

    Buckets
      - ``create_bucket`` raises BucketExists if the name exists for any tenant (the caller
        tells "already yours" from "taken" with ``get_bucket``); names are validated by the
        caller (``dfs.namespace_rules``), not here.
      - ``get_bucket`` raises BucketNotFound for unknown names.
      - ``list_buckets(tenant)`` returns the tenant's buckets by name; with
        ``granted=True`` also the buckets other tenants granted it.
      - ``delete_bucket(name, tenant)`` raises BucketNotEmpty while any
        version or delete marker remains; NotFound for an unknown name or another
        tenant's bucket.
      - ``update_bucket(name, tenant, versioning=, access=, grants=)`` changes what is
        given; versioning cannot go back to "unversioned" once enabled (S3), Conflict.

    Objects and versions (S3's rules)
      - ``put_object`` links a complete file as the new current version of a key, in one
        atomic step: versioning enabled: a new version id (sortable so that newer versions
        of a key sort first) and the previous latest is no longer latest; unversioned or
        suspended: the ``null`` version is replaced (its file released exactly once, see
        PutResult) and a new ``null`` becomes latest. Two concurrent puts to one key in an
        enabled bucket both become versions; in an unversioned bucket one wins and each
        replaced file is released exactly once. Keys are validated by the caller.
        With ``if_absent=True`` it is a conditional create: KeyExists (nothing written)
        when the key's latest version is an object (not a delete marker), checked in the
        same atomic step as the link, so of two concurrent creates exactly one wins.
        With ``if_match=ETAG`` it is a conditional replace, checked in the same atomic step:
        KeyNotFound when the key has no current object (none, or a delete marker),
        EtagMismatch when the current object's ETag is another (``"*"`` matches any).
        With ``unless_current=True`` (checked first, in the same atomic step) nothing is
        written when the key's latest version is an object already linking ``obj``'s
        file with its fields (``holds_already``): the answer is that version, ``made`` False. A link sent
        again after its answer was lost (``dfs.transport.api_client``'s retries) then
        makes no second version, whether or not the first one was written.
      - ``put_objects(objs, now, unless_current=)`` is ``put_object`` of each (no
        conditions but ``unless_current``), each answered on its own: its PutResult, or
        the error that refused it alone. Entries naming one key are linked in order.
        SQLite links them all in order in one transaction (the fresh ones, a key with no
        version to a file linked by none, in one pass of a few statements:
        ``dfs.meta.sqlite_namespace_batch``); DynamoDB writes each key in its own
        transaction, several keys at once (so two entries of different keys that depend
        on each other, one releasing a file the other links, land in either order).
      - ``create_and_put_object(rec, manifest, locations, obj, now, if_absent=, if_match=)``
        is ``MetadataStore.create_and_commit_files([(rec, manifest)], now, locations=)``
        then ``put_object(obj)`` of that file (``obj.file_id == rec.file_id``, the bucket
        owner's tenant), every check of both kept. When the write is refused (a condition,
        ``check_owner``, a missing bucket) no file is left recorded. SQLite does both in
        one transaction (a crash leaves the whole object or nothing). DynamoDB does too
        when file and link fit one TransactWriteItems (an inline manifest, at most about
        40 distinct chunks: a small PUT); a bigger file takes two writes, the file deleted
        when the link is refused, and an intent item put before them: a crash between
        the two leaves a complete unlinked file that ``finish_namespace_jobs`` deletes
        once the intent is older than its grace period (an hour), unless a version links
        it by then. Until it is linked, that file is not found by content
        (``find_file_by_sha256``), so no other upload adopts a file the sweep deletes. The copies (``locations``) are recorded first in either store's own
        writes (a crash there leaves copies of unreferenced chunks, as any upload).
      - ``get_object(bucket, key, version_id=None)``: without a version id, the latest
        version, KeyNotFound if none or if it is a delete marker; with one,
        that version (a delete marker is returned as such; the caller answers 405 as S3).
      - ``delete_object(bucket, key, version_id=None, now)``: without a version id,
        enabled: adds a delete marker (returned); suspended: replaces the ``null`` version
        by a ``null`` delete marker (releasing its file); unversioned: removes the object
        (releasing its file), a missing key is not an error (S3). With a version id:
        removes exactly that version or marker permanently (releasing its file unless
        another version still links it); the next newest becomes latest; an unknown
        version id is not an error (S3). Returns the marker made, or the version removed,
        or None when nothing was there. With ``unless_deleted=True`` (no version id), a key
        with no current object (none, or a delete marker latest) gets no marker: the answer
        is the latest marker, or None; decided in the same atomic step, so a delete sent
        again after its answer was lost adds no second marker. With ``if_latest``, Conflict
        unless the key's latest entry (version or marker) is that version id, decided in
        the same atomic step (a prune removing a delete marker while no write came since
        it looked). With ``if_written=(file_id, created_at)``, Conflict unless the latest
        entry is a version (not a marker) linking that file written at that time, in the
        same step: the write a caller read, also where the id says nothing (``null``,
        which every write of an unversioned or suspended key reuses: a move's delete).
      - A file is released when the last version linking it goes: it is deleted as
        ``MetadataStore.delete_file`` deletes it (chunk references dropped exactly once).
        ``put_object`` may link one file to several versions (same tenant). A linked file
        is the namespace's: ``find_file_by_sha256`` (whole-file dedup) never names it, and
        the writers give an object a new file of its own, never one of the tenant's files
        found by content (``dfs.api.ingest``'s ``reuse``); linking a file by its id hands
        that file to the namespace.
      - ``restore_version(bucket, key, version_id, now)`` makes a copy of that version the
        new current version (S3's "copy the old version over the key"): metadata only; the
        copy keeps the old version's metadata and tags. KeyNotFound for a delete marker.
      - ``copy_object(src_bucket, src_key, src_version, dst: NewObject-like fields, now)``
        links the source's file as a new version of the destination without reading or
        writing a chunk (file, size, etag and sha256 from the source version, everything
        else, ``headers`` included, from ``dst``; KeyNotFound when the source is a delete marker;
        ``expect_file``: the file id of the source version the caller built ``dst``'s fields
        from, SourceChanged (nothing written) when the version copied links another, e.g. a
        PUT of an unversioned source in between); chunk refcounts, the tenant's chunk set and usage stay exact
        (a copy into another tenant's bucket gives that tenant its own file record with
        the same manifest, so each tenant's counters and ``owned_chunks`` stay its own);
        BucketNotFound when ``dst.owner`` is given and the destination is another's by now.
      - ``update_object(bucket, key, version_id, tags=, access=, shared_with=)`` changes
        what is given on one version in place (tags and access are not versioned in S3).
      - ``list_objects(bucket, prefix, delimiter, token, limit)`` lists latest non-marker
        versions in key order (UTF-8 byte order, as S3), rolling keys that contain the
        delimiter after the prefix into common prefixes; pages of at most ``limit``
        entries; an empty "folder" is a zero-size object whose key ends with "/".
      - ``list_versions(bucket, prefix, delimiter, token, limit)`` lists every version and
        delete marker, keys in order and, within a key, newest first; a key's numbered
        version ids sort, as strings, in that order (``version_position``), so a listing
        resumed after a version removed since still knows where that version stood.
      - Both listings take ``start_after``: without a token, only keys after it (UTF-8 byte
        order) are listed (S3's ``marker``, ``start-after`` and ``key-marker``); a key it
        falls inside of a common prefix still rolls up into that prefix. A token wins over it.
      - ``search_objects(bucket, query, token, limit)`` pages the latest versions matching
        every filter of the query, in key order, with a bounded cost per page (indexes
        where the backend needs them; a bounded scan otherwise, documented).

    Usage
      - ``usage(tenant, bucket=None)`` returns the tenant's (or one bucket's) counters;
        ``usage_by_prefix(tenant, bucket)`` the same per top-level prefix (the first
        path segment, "" for keys without "/"); ``usage_by_type(tenant, bucket=None)`` per
        lower-cased file extension ("" when none); ``dfs.namespace_rules.top_prefix`` and
        ``extension`` name the groups. Dedup is counted per tenant and per bucket: the
        prefix and type groups' ``stored_bytes`` is 0. All maintained in the atomic steps
        that change versions.

    Background
      - ``finish_namespace_jobs(now)`` completes the follow-up work a crashed writer left
        (stored-bytes counts and file releases that could not ride in the version change's
        own atomic step, files of ``create_and_put_object`` a crash left unlinked); safe to
        run while writers run; returns how many it finished.
        Garbage collection calls it every pass. SQLite has none (one transaction does all).

    Every method may raise Unavailable when the backend cannot be reached.
    """

    async def create_bucket(self, rec: BucketRecord) -> None: ...
    async def get_bucket(self, name: str) -> BucketRecord: ...
    async def list_buckets(self, tenant: str, *, granted: bool = False) -> list[BucketRecord]: ...
    async def delete_bucket(self, name: str, tenant: str) -> None: ...
    async def update_bucket(
        self,
        name: str,
        tenant: str,
        *,
        versioning: str | None = None,
        access: str | None = None,
        grants: Sequence[tuple[str, str]] | None = None,
    ) -> BucketRecord: ...

    async def put_object(
        self,
        obj: NewObject,
        now: float,
        *,
        if_absent: bool = False,
        if_match: str | None = None,
        unless_current: bool = False,
    ) -> PutResult: ...
    async def put_objects(
        self, objs: Sequence[NewObject], now: float, *, unless_current: bool = False
    ) -> list[PutResult | DfsError]: ...
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
    ) -> PutResult: ...
    async def get_object(
        self, bucket: str, key: str, version_id: str | None = None
    ) -> ObjectVersion: ...
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
    ) -> ObjectVersion | None: ...
    async def restore_version(
        self, bucket: str, key: str, version_id: str, now: float
    ) -> PutResult: ...
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
    ) -> PutResult: ...
    async def update_object(
        self,
        bucket: str,
        key: str,
        version_id: str | None,
        *,
        tags: Sequence[tuple[str, str]] | None = None,
        access: str | None = None,
        shared_with: Sequence[str] | None = None,
    ) -> ObjectVersion: ...
    async def list_objects(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        token: str | None = None,
        limit: int = 1000,
        start_after: str = "",
    ) -> ObjectListing: ...
    async def list_versions(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        token: str | None = None,
        limit: int = 1000,
        start_after: str = "",
    ) -> ObjectListing: ...
    async def search_objects(
        self, bucket: str, query: SearchQuery, *, token: str | None = None, limit: int = 100
    ) -> ObjectListing: ...

    async def usage(self, tenant: str, bucket: str | None = None) -> Usage: ...
    async def usage_by_prefix(self, tenant: str, bucket: str) -> dict[str, Usage]: ...
    async def usage_by_type(self, tenant: str, bucket: str | None = None) -> dict[str, Usage]: ...
    async def finish_namespace_jobs(self, now: float) -> int: ...


_NUMBERED = re.compile(r"[0-9a-f]{24}")


def version_position(version_id: str) -> str | None:
    """Where a numbered version stands among its key's versions: both stores' ids (24
    lowercase hex digits: SQLite's rank, DynamoDB's inverted time, then random digits) sort,
    as strings, newest first, as ``list_versions`` lists them. None for ``null`` (and any
    other id), whose place its id does not tell."""
    return version_id if _NUMBERED.fullmatch(version_id) else None


def check_condition(
    obj: NewObject, current_etag: str | None, if_absent: bool, if_match: str | None
) -> None:
    """``put_object``'s conditions against the key's current object (``current_etag``:
    its ETag, None when there is none or the latest version is a delete marker); each store
    calls this inside its atomic step."""
    if if_absent and current_etag is not None:
        raise KeyExists(f"key {obj.key!r} of bucket {obj.bucket} exists")
    if if_match is None:
        return
    if current_etag is None:
        raise KeyNotFound(f"key {obj.key!r} of bucket {obj.bucket} has no current object")
    if if_match not in ("*", current_etag):
        raise EtagMismatch(f"key {obj.key!r} of bucket {obj.bucket} has another ETag")


def check_latest(
    key: str,
    latest: ObjectVersion | None,
    if_latest: str | None,
    if_written: tuple[str, float] | None,
) -> None:
    """``delete_object``'s conditions against the key's latest entry (None: no version),
    read by each store inside its atomic step: Conflict unless it is version ``if_latest``
    and the version written as ``if_written`` (its file and time)."""
    if if_latest is not None and (latest is None or latest.version_id != if_latest):
        raise Conflict(f"the latest version of {key!r} is no longer {if_latest}")
    if if_written is not None and (
        latest is None
        or latest.is_delete_marker
        or (latest.file_id, latest.created_at) != if_written
    ):
        raise Conflict(f"{key!r} was written since it was read")


def holds_already(obj: NewObject, latest: ObjectVersion | None) -> bool:
    """``put_object(..., unless_current=True)``: the key's latest version is an object
    linking ``obj``'s file with ``obj``'s fields, so the link is not made again."""
    if latest is None or latest.is_delete_marker or latest.file_id != obj.file_id:
        return False
    return same_fields(obj, latest)


def same_fields(obj: NewObject, v: ObjectVersion) -> bool:
    """The fields a link sets, besides its file: content type, metadata, tags, access."""
    fields = (v.content_type, v.user_metadata, v.tags, v.access)
    return fields == (obj.content_type, obj.user_metadata, obj.tags, obj.access)


def encodable_text(value: object) -> bool:
    """A string either store can keep: text without lone surrogates (JSON can spell them),
    as continuation tokens must hold (``decode_token`` of each store)."""
    if not isinstance(value, str):
        return False
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True
