"""The metadata port: node registry, chunks and their locations, files and manifests, counters.

``MetadataStore`` is what the API (and, for registration, the nodes) need of a metadata
backend. Implementations: ``SqliteMetadataStore`` (embedded default) and, for clusters that
outgrow one machine, a DynamoDB one. ``tests/contract/test_metadata_store.py`` holds every
implementation to the contract written here.

Records are plain frozen dataclasses; times are Unix seconds (float). Must not import aiohttp,
boto3 or sqlite3.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

FILE_PENDING = "pending"
# Files the API keeps for its own use (the parts of S3 multipart uploads in progress) are
# named with this prefix: no client can name a file so (names never hold NUL), and
# ``list_files`` leaves them out, so they never show as the tenant's files.
HIDDEN_NAME_PREFIX = "\x00"
LISTED_NAMES_FROM = "\x01"  # every name not hidden sorts at or after it (UTF-8 byte order)
FILE_COMPLETE = "complete"
NODE_UP = "up"
NODE_DOWN = "down"


@dataclass(frozen=True, slots=True)
class NodeRecord:
    """A node's registry entry. It is live while ``expires_at > now``.

    ``disk_id`` names the data directory the node serves (a random id written beside its
    chunks at first start, see ``dfs.node.disk_identity``); "" from nodes that predate it.
    A node that comes back with another one lost what it held: repair forgets its copies."""

    node_id: str
    host: str
    port: int
    zone: str = ""
    capacity_bytes: int = 0
    used_bytes: int = 0
    status: str = NODE_UP
    last_heartbeat: float = 0.0
    expires_at: float = 0.0
    disk_id: str = ""
    boot: int = 0
    """With ``seq``: the node call that wrote the entry (its boot number and sequence, as
    ``advance_node_sequence`` takes them). A write of an earlier call never replaces a later
    one's, so a heartbeat overtaken by the node's deregistration cannot bring the entry back
    up. 0 and 0: a write no call orders (a node writing the store itself), which always
    applies."""
    seq: int = 0

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def free_bytes(self) -> int:
        return max(self.capacity_bytes - self.used_bytes, 0)


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """One chunk of a file, in order."""

    offset: int
    size: int
    chunk_id: str


@dataclass(frozen=True, slots=True)
class FileRecord:
    file_id: str
    name: str
    size: int
    sha256: str
    chunker: str
    tenant: str = "default"
    state: str = FILE_PENDING
    created_at: float = 0.0
    chunk_count: int = 0
    # what the uploader's file system said (permission bits, modification time in Unix
    # seconds); None when the upload did not say (older clients, POST /upload)
    mode: int | None = None
    mtime: float | None = None
    # True when the API hashed the file's bytes itself (POST /upload): ``sha256`` is then a
    # fact, not the client's claim (issue 12). Listings may leave it out (False).
    sha256_verified: bool = False
    # Made for an object version its uploader links next (``dfs-client sync``): created
    # marked as ``commit_file(for_object=True)`` marks a file. Written by the creating calls
    # only; records read back leave it False.
    for_object: bool = False


VERIFIED_ENTRY = "verified:"


def sha256_entry(sha256: str, verified: bool) -> str:
    """The key of the per-tenant content entry a complete file goes to: verified files and
    files whose sha256 is only their client's claim have separate entries, so a false claim
    committed first never holds the entry a verified file is looked up by. (Claims keep the
    bare sha256, the key of every entry written before files were marked verified.)"""
    return VERIFIED_ENTRY + sha256 if verified else sha256


@dataclass(frozen=True, slots=True)
class ChunkInfo:
    chunk_id: str
    size: int
    refcount: int
    created_at: float


@dataclass(frozen=True, slots=True)
class Stats:
    """Dedup counters, exact under concurrency.

    ``logical_bytes`` is the sum of committed file sizes; ``stored_bytes`` the bytes of the
    distinct chunks those files reference (one copy, before replication);
    ``duplicates_avoided`` counts manifest entries whose chunk was already referenced when
    they were committed.
    """

    total_files: int = 0
    logical_bytes: int = 0
    stored_bytes: int = 0
    unique_chunks: int = 0
    duplicates_avoided: int = 0

    @property
    def total_bytes_saved(self) -> int:
        return self.logical_bytes - self.stored_bytes


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """An API token, stored by the SHA-256 of its text (the text itself is never stored)."""

    token_hash: str
    tenant: str
    role: str
    label: str = ""
    created_at: float = 0.0


@dataclass(frozen=True, slots=True)
class AccessKeyRecord:
    """An S3 access key of a tenant. SigV4 needs the secret itself on the server, so it is
    kept sealed (``dfs.access_keys``: AES-GCM under a key derived from the API secret, which
    is not in this store): ``sealed_secret`` alone reveals nothing."""

    access_key_id: str
    tenant: str
    sealed_secret: str
    label: str = ""
    created_at: float = 0.0


@dataclass(frozen=True, slots=True)
class ChunkState:
    """A chunk row as repair and garbage collection see it.

    ``zero_since`` is when the refcount last became 0 (its creation time if it was never
    referenced); meaningless while ``refcount > 0``.
    """

    chunk_id: str
    size: int
    refcount: int
    nodes: frozenset[str]
    zero_since: float


@dataclass(frozen=True, slots=True)
class Lease:
    """A named lease held by one owner until ``expires_at``; ``info`` is the holder's note
    (repair writes its progress there, so every API process can show it)."""

    name: str
    owner: str
    expires_at: float
    info: str = ""


@dataclass(frozen=True, slots=True)
class Location:
    """A copy of a chunk on a node."""

    chunk_id: str
    node_id: str
    size: int


class MetadataStore(Protocol):
    """Metadata of a dfs cluster.

    Contract (every implementation, checked by the contract suite):

    Nodes
      - ``upsert_node`` creates or replaces a node's entry (heartbeats call it); True if it
        wrote. An entry written by a later node call (a greater ``(boot, seq)``) is kept and
        the call answers False: a conditional write, so a heartbeat that lost the race with
        the node's deregistration (or a later heartbeat) on another API process changes
        nothing. A record whose ``(boot, seq)`` is ``(0, 0)`` is not ordered: it always writes.
      - ``list_live_nodes(now)`` returns only entries with ``expires_at > now``, sorted by
        node_id, whether or not the backend has deleted expired ones yet.
      - ``remove_node`` deletes an entry; removing an unknown node is a no-op.
      - ``deregister_node(node_id, now)`` (a clean shutdown) keeps the entry as a tombstone
        that is no longer live: ``expires_at`` becomes ``min(expires_at, now)`` and
        ``status`` "down", so repair measures its grace from the deregistration exactly as
        from a last heartbeat. It never creates an entry (conditional write); a heartbeat
        after it (the node restarted) replaces the tombstone. ``boot`` and ``seq``: the
        deregistration's own call, recorded in the tombstone; it changes nothing if a later
        call wrote the entry (0 and 0: not ordered, as for ``upsert_node``).

    Files
      - ``create_file`` stores a pending file with its manifest, atomically: readers never see
        a file without its manifest. Raises Conflict if the file_id exists.
      - ``get_file`` raises FileNotFound for unknown ids, and for files of another tenant
        when ``tenant`` is given.
      - ``get_manifest`` returns entries ordered by offset; FileNotFound for unknown ids.
      - ``get_files(ids, tenant)`` and ``get_manifests(ids)`` are those two for many files
        in one call (a restore plans hundreds of files per request): ``get_files`` leaves
        out the ids ``get_file`` would refuse; ``get_manifests`` raises FileNotFound if
        any id is unknown.
      - ``commit_file`` turns a pending file complete and, in the same atomic step, adds one
        reference per manifest entry to each chunk (creating the chunk row if needed) and
        updates the counters. Committing a complete file again changes nothing and returns
        it. Concurrent commits of the same or identical files leave exact counts.
        ``for_object=True`` (also taken by ``commit_files`` and ``create_and_commit_files``):
        the file is made for an object version whose link is a later write; it is marked
        for that in the same atomic step that makes it complete, so that no lookup by
        content (``find_file_by_sha256`` without ``linked``) ever names it, not even
        between the commit and the link (the object's delete deletes the file: an upload
        answered with it would lose it). The mark goes with the link (DynamoDB) or stays
        (SQLite: a linked file is left out anyway, and its last version's release deletes
        it); a file whose link never comes keeps it (dedup is lost for it, never a file).
      - ``create_files([(rec, manifest), ...])`` is ``create_file`` for many files (directory
        uploads): each file appears with its manifest or not at all. Conflict if any id
        exists; the backend may then have created the files before it (SQLite creates none),
        which stay pending until garbage collection deletes them as stale uploads.
      - ``commit_files(file_ids, now)`` is ``commit_file`` for each id in order, with the same
        exact counts and idempotence (a chunk shared by two files of the batch counts as in
        two commits one after the other); the answer holds, in order, the committed record
        or None for an id that does not exist (where ``commit_file`` raises FileNotFound).
        SQLite commits the whole batch in one transaction; DynamoDB commits file by file.
        ``locations`` (copies the nodes were just found to hold, as ``add_locations`` takes
        them) are recorded before any file is visible complete: SQLite in the same
        transaction (one commit and fsync per finalize, not two), DynamoDB by
        ``add_locations`` first.
      - ``create_and_commit_files([(rec, manifest), ...], now)`` is ``create_files`` then
        ``commit_files`` of those ids in one step, for files whose every chunk the caller
        checked is held already (an unchanged file backed up again): each file appears
        complete, with its references counted exactly as ``commit_files`` would, or not at
        all; no reader sees it pending. Answers the committed records in order. Conflict if
        an id exists (SQLite then creates none; DynamoDB may have created those before it,
        each complete and counted). SQLite: one transaction; DynamoDB: one transaction per
        small file (file item, refcounts, counters, content entry), create then commit for
        bigger ones. ``locations`` (copies the caller knows the nodes hold, as
        ``add_locations`` takes them) are recorded before any file is visible complete:
        SQLite in the same transaction, DynamoDB by ``add_locations`` first.
      - ``pending_uploads(file_ids, tenant)`` is, for each id in order, ``get_file(file_id,
        tenant)`` with the file's manifest (as ``get_manifest``) when the file is pending and
        has its sha256 (created whole, not a paged upload still open), an empty list
        otherwise; None where ``get_file`` raises FileNotFound. Finalize reads a batch with
        it: SQLite in one read, DynamoDB file by file.
      - ``list_files(tenant, limit, after)`` pages complete files by file_id; ``after`` is
        the last file_id of the previous page. Files named with ``HIDDEN_NAME_PREFIX`` are
        left out (a page holds up to ``limit`` listed files all the same).
      - ``commit_file`` also adds the file's references to its tenant's chunk set, so that
        ``owned_chunks(tenant, ids)`` returns the ids some complete file of that tenant
        references (dedup never reveals another tenant's chunks); with ``ever=True`` also
        the ids its files referenced once and no longer do (the tenant had the bytes).
      - ``find_file_by_sha256(tenant, sha256)`` returns the complete file of ``tenant`` whose
        whole-file sha256 is ``sha256``, whose ``sha256_verified`` is True (the API hashed
        its bytes) and that was committed first among those (later identical files never
        replace it; see ``delete_file`` for when that one is deleted), or None: a file whose
        sha256 is only its client's claim is never named, whenever it was committed. With
        ``verified=False`` it names, by the same rule, the first committed file of the
        tenant whose sha256 is only claimed (for callers that verify it themselves). Each
        is exact right after ``commit_file`` returns (no eventually consistent index) and
        never looks at another tenant's files. The entry (one per tenant, sha256 and
        verified, ``sha256_entry``) is written in the same atomic step as the commit.
        It never names a file that an object version links (``dfs.meta.namespace``): the
        release of its last version deletes it, so it is no upload's to be answered with;
        nor one committed ``for_object`` (see ``commit_file``), linked yet or not.
        SQLite then names the first committed file no version links; DynamoDB's entry
        names the first committed file only, so it names none while a version links that
        one (file-level dedup is lost for that content there, never a file). With
        ``linked=True`` a linked file may be named too: for a caller that only reads it
        (a new object's own file record of the same manifest, ``Namespace.link_copy``).
      - ``sha256_verified`` is stored as ``create_file`` was given it and read back by
        ``get_file`` and ``commit_file`` (listings may leave it out).
      - ``mark_sha256_verified(file_id)`` records that an API process found complete file
        ``file_id``'s declared sha256 true by hashing its bytes: in one atomic step the file
        gets ``sha256_verified`` and moves from its claimed content entry (handed on as
        ``delete_file`` hands it on) to the verified one (which it names if no verified file
        does). Returns the record, verified; idempotent; None (and nothing changes) for a
        file that does not exist or is not complete.
      - ``list_chunk_ids(limit, after)`` pages the ids of chunks that complete files reference
        (refcount > 0): at most ``limit`` ids and an opaque cursor for the next page, None
        when there is none. Paging from ``after=None`` until the cursor is None yields each
        such id exactly once; the order is the backend's. A page may hold fewer than
        ``limit`` ids even when more follow.

    Paged manifests (a file too big to plan in one request is planned page by page)
      - ``create_file(rec, [])`` starts one: a pending file whose manifest is then appended
        with ``append_manifest_page(file_id, page, entries)``, pages numbered from 0, each
        page's offsets going on where the one before ended. The same page with the same
        entries again is a no-op (retries, resume); other entries under a number already
        written raise Conflict, as does appending to a file that is not pending;
        FileNotFound for unknown ids. ``get_manifest`` and everything that reads a manifest
        (commit, delete, ``recent_pending_chunks``) see every page appended.
      - ``get_manifest_page(file_id, page)`` returns a page's entries and whether it was
        proven; FileNotFound if the file or the page does not exist.
      - ``mark_page_proven(file_id, page)`` records that the page's chunks were checked
        (receipts and copies); FileNotFound for a missing page, Conflict if the file is not
        pending.
      - ``seal_file(file_id, size, sha256)`` gives a paged file its size, sha256 and
        chunk_count once its pages are whole (numbered 0..n-1 without a gap, each proven,
        each starting where the one before ended, ``size`` bytes in all) and returns the
        record; Conflict otherwise, or if the file is not pending. ``commit_file`` then
        commits it as any other file.

    Tenants and tokens
      - ``create_tenant`` raises Conflict if the tenant exists; ``tenant_exists`` answers.
      - ``put_token`` stores a token record (Conflict if its hash exists); ``get_token``
        returns None for an unknown hash. ``list_tokens(tenant)`` returns the records of
        one tenant (every tenant's for None), oldest first; ``delete_token(hash)`` removes
        one, True if it existed.
      - S3 access keys behave the same: ``put_access_key`` (Conflict if the id exists),
        ``get_access_key`` (None if unknown), ``list_access_keys(tenant)`` (oldest first),
        ``delete_access_key(id)`` (True if it existed).

    Node heartbeat sequences (replay protection, kept apart from NodeRecord)
      - ``advance_node_sequence(node_id, boot, seq)`` records (boot, seq) as the node's last
        accepted heartbeat only if there is none yet (or only one recorded before boots
        were numbered), ``boot`` is greater than the stored one (the node restarted), or
        the boot is the same and ``seq`` is greater than the stored one, checked in the same
        atomic step (a conditional write, so that several API processes agree); True when
        recorded, False for a replay, be it of this boot or of an earlier one. Boots and
        sequences are integers in [0, 2**63).

    Chunks
      - ``add_locations`` records copies (idempotent); ``remove_locations`` forgets copies
        (idempotent).
      - ``get_locations(ids)`` maps each asked id to the node ids recorded for it (an empty
        set for unknown ids).
      - ``get_chunks(ids)`` returns the ChunkInfo of the ids that have a chunk row.

    Delete, garbage collection, repair
      - ``delete_file(file_id, tenant, now)`` removes a file of that tenant (FileNotFound
        otherwise, and for a file already deleted) with its manifest, atomically with
        dropping exactly the references ``commit_file`` added (chunk refcounts, the
        tenant's chunk refcounts, every counter) if it was complete. A chunk whose refcount
        reaches 0 gets ``zero_since = now``. A pending file is removed without touching counts.
        In the same atomic step, a complete file that ``find_file_by_sha256`` named hands
        that entry to another complete file of the tenant with the same sha256 and the same
        ``sha256_verified`` (if any),
        else the entry goes: ``find_file_by_sha256`` never names a deleted file and, on
        SQLite, never misses a complete one (once a big file's delete has begun, it is no
        longer found). DynamoDB keeps at most ``HASH_CANDIDATES`` files to hand the entry
        to (an item is bounded at 400 KB): once those are all deleted, it misses the
        tenant's other files with that content, which costs whole-file dedup only.
        While an object version links the file (``dfs.meta.namespace``) it raises Conflict
        and changes nothing, checked in the same atomic step as the delete: the object goes
        by deleting it, and the namespace deletes the file when its last version goes.
      - ``scan_chunks(limit, after)`` pages through every chunk row (order is the backend's,
        stable; ``after`` is the last chunk_id of the previous page).
      - ``recent_pending_chunks(since)`` returns the chunk ids that files not yet complete,
        created at or after ``since``, reference (uploads in flight rely on them).
      - ``delete_chunk_if_unreferenced(chunk_id, cutoff)`` deletes the chunk row and its
        locations only if its refcount is 0 and ``zero_since < cutoff``, checked in the same
        atomic step (a conditional write); returns the node ids that held copies, or None
        when the condition failed or the row does not exist. A commit must not bring the
        row back over the copies being deleted (its caller found the chunk held before):
        ``commit_file``, ``commit_files``, ``create_and_commit_files`` and the namespace's
        creates raise IncompleteUpload (``missing``: the chunk ids) and commit nothing of
        that file (a big one may be left half-way, read as pending, and resumes) until
        ``add_locations`` records a copy of the chunk again, which makes a new row (created
        then, no reference). The deleted row is remembered for a day (a tombstone: ``TOMBSTONE_TTL`` of
        ``dfs.meta.dynamo.store_chunks`` and of ``dfs.meta.sqlite_chunks``), far longer than a finalize takes from its check to
        its commit; a chunk with no row and no such memory is created as a new one.
      - ``node_chunks(node_id, limit, after)`` pages the chunk ids recorded on one node in
        ascending order (the by-node index: repair lists what a dead or returning node
        held without scanning every chunk); it may include ids removed a moment ago (the
        index is a superset), never miss one that is recorded.
      - ``stale_pending_files(before, limit)`` returns up to ``limit`` files not complete
        (pending, or left half-way by a crashed commit) created before ``before``.
      - ``delete_pending_file(file_id, before, now)`` deletes a file and its manifest only if
        it is still pending and was created before ``before``, in one conditional step; True
        when deleted. A concurrent commit of the same file either wins (the file stays,
        complete) or loses (commit_file raises FileNotFound): never both. With ``now``, a
        file created before ``before`` that a crashed commit or delete left half-way (a
        backend whose big commits and deletes take several writes) is finished and deleted,
        its references counted back exactly.
      - ``acquire_lease(name, owner, now, ttl, info)`` takes or renews the named lease if it
        is free, expired or already ``owner``'s (conditional write); True when held.
        ``get_lease`` returns the lease or None.

    Every method may raise Unavailable when the backend cannot be reached; no other foreign
    exception escapes.
    """

    async def upsert_node(self, node: NodeRecord) -> bool: ...
    async def remove_node(self, node_id: str) -> None: ...
    async def list_live_nodes(self, now: float) -> list[NodeRecord]: ...
    async def list_nodes(self) -> list[NodeRecord]: ...
    async def deregister_node(
        self, node_id: str, now: float, boot: int = 0, seq: int = 0
    ) -> None: ...

    async def create_file(self, rec: FileRecord, manifest: Sequence[ManifestEntry]) -> None: ...
    async def get_file(self, file_id: str, tenant: str | None = None) -> FileRecord: ...
    async def get_manifest(self, file_id: str) -> list[ManifestEntry]: ...
    async def get_files(
        self, file_ids: Sequence[str], tenant: str | None = None
    ) -> dict[str, FileRecord]: ...
    async def get_manifests(self, file_ids: Sequence[str]) -> dict[str, list[ManifestEntry]]: ...
    async def commit_file(
        self, file_id: str, now: float, *, for_object: bool = False
    ) -> FileRecord: ...
    async def append_manifest_page(
        self, file_id: str, page: int, entries: Sequence[ManifestEntry]
    ) -> None: ...
    async def get_manifest_page(
        self, file_id: str, page: int
    ) -> tuple[list[ManifestEntry], bool]: ...
    async def mark_page_proven(self, file_id: str, page: int) -> None: ...
    async def seal_file(self, file_id: str, size: int, sha256: str) -> FileRecord: ...
    async def create_files(
        self, files: Sequence[tuple[FileRecord, Sequence[ManifestEntry]]]
    ) -> None: ...
    async def commit_files(
        self,
        file_ids: Sequence[str],
        now: float,
        *,
        locations: Iterable[Location] = (),
        for_object: bool = False,
    ) -> list[FileRecord | None]: ...
    async def create_and_commit_files(
        self,
        files: Sequence[tuple[FileRecord, Sequence[ManifestEntry]]],
        now: float,
        *,
        locations: Iterable[Location] = (),
        for_object: bool = False,
    ) -> list[FileRecord]: ...
    async def pending_uploads(
        self, file_ids: Sequence[str], tenant: str
    ) -> list[tuple[FileRecord, list[ManifestEntry]] | None]: ...
    async def list_files(
        self, tenant: str, *, limit: int, after: str | None = None, prefix: str = ""
    ) -> list[FileRecord]: ...

    async def owned_chunks(
        self, tenant: str, chunk_ids: Sequence[str], *, ever: bool = False
    ) -> set[str]: ...
    async def find_file_by_sha256(
        self, tenant: str, sha256: str, *, verified: bool = True, linked: bool = False
    ) -> FileRecord | None: ...
    async def mark_sha256_verified(self, file_id: str) -> FileRecord | None: ...
    async def list_chunk_ids(
        self, *, limit: int, after: str | None = None
    ) -> tuple[list[str], str | None]: ...

    async def create_tenant(self, tenant: str, now: float) -> None: ...
    async def tenant_exists(self, tenant: str) -> bool: ...
    async def list_tenants(self) -> list[str]: ...
    async def put_token(self, rec: TokenRecord) -> None: ...
    async def get_token(self, token_hash: str) -> TokenRecord | None: ...
    async def list_tokens(self, tenant: str | None = None) -> list[TokenRecord]: ...
    async def delete_token(self, token_hash: str) -> bool: ...
    async def put_access_key(self, rec: AccessKeyRecord) -> None: ...
    async def get_access_key(self, access_key_id: str) -> AccessKeyRecord | None: ...
    async def list_access_keys(self, tenant: str | None = None) -> list[AccessKeyRecord]: ...
    async def delete_access_key(self, access_key_id: str) -> bool: ...
    async def advance_node_sequence(self, node_id: str, boot: int, seq: int) -> bool: ...

    async def add_locations(self, locations: Iterable[Location], now: float) -> None: ...
    async def remove_locations(self, locations: Iterable[Location]) -> None: ...
    async def remove_surplus_location(self, location: Location, keep: Collection[str]) -> bool:
        """Forget ``location`` only if it is recorded and so is every copy on the nodes in
        ``keep`` (which must not name its node), in one conditional write; whether it did.
        Repair's trim counts the copies it keeps before it deletes one: two trims that
        counted the same copies (a pass stalled past its lease and the one that took over)
        each keep the ones the other deletes, and this lets only one of them go on."""
        ...

    async def get_locations(self, chunk_ids: Sequence[str]) -> dict[str, set[str]]: ...
    async def get_chunks(self, chunk_ids: Sequence[str]) -> dict[str, ChunkInfo]: ...

    async def delete_file(self, file_id: str, tenant: str, now: float) -> FileRecord: ...
    async def scan_chunks(self, *, limit: int, after: str | None = None) -> list[ChunkState]: ...
    async def recent_pending_chunks(self, since: float) -> set[str]: ...
    async def delete_chunk_if_unreferenced(
        self, chunk_id: str, cutoff: float
    ) -> set[str] | None: ...
    async def node_chunks(
        self, node_id: str, *, limit: int, after: str | None = None
    ) -> list[str]: ...
    async def stale_pending_files(self, before: float, *, limit: int) -> list[FileRecord]: ...
    async def delete_pending_file(
        self, file_id: str, before: float, now: float | None = None
    ) -> bool: ...
    async def acquire_lease(
        self, name: str, owner: str, now: float, ttl: float, info: str = ""
    ) -> bool: ...
    async def get_lease(self, name: str) -> Lease | None: ...

    async def get_stats(self) -> Stats: ...
    async def close(self) -> None: ...
