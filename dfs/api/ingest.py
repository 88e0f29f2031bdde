"""Bytes through the API, for clients that cannot chunk or talk to nodes themselves (curl,
browsers, clients behind a firewall): chunks (``/proxy-chunk-*``) and whole files (the
seed's ``POST /upload`` and signed download URLs).

- ``proxy_put``/``proxy_get`` store and read one chunk on the client's behalf: the body is
  hashed here too, the read is verified before it is returned; ``put_to_nodes``
  (``dfs.api.chunk_writes``) sends a chunk to its placement, placed again around the nodes
  that fail it, as a client would.

- ``ingest`` chunks a streamed body with ``dfs.chunking`` in a worker thread (the body is read
  from the event loop as the chunker asks for it), sends each chunk the tenant does not already
  own to its placement exactly as a client would (the nodes verify and sign a receipt), then
  creates and finalizes the file through the Coordinator (``create_uploads``,
  ``finalize_upload``), so the upload meets the same checks as any other. When this process sent
  every chunk itself (a receipt for this file id each) and the primaries' 201s named enough
  copies, those checks already hold on what it has in hand: the file is recorded complete, its
  copies with it, in one metadata write (``_commit_sent``). It answers "already stored" only for
  a file whose manifest is the one computed here, never on a sha256 a client declared
  (``_stored_already``), and never for a file an object version links (the store's lookup leaves
  those out: deleting the object deletes the file); a caller making an object's file passes
  ``reuse=False`` (a new file of its own). It counts the bytes that were new to the tenant
  (``Ingested.new_bytes``: chunks no complete file of the tenant referenced, each counted once),
  relative to the tenant's own chunks only (``owned_chunks``), never to what other tenants store.
  Memory: the chunker's buffer, the chunks of one hand-over from its thread (``CUT_BATCH_BYTES``)
  and ``INGEST_WINDOW`` chunks in flight. The chunker's thread waits for the client's bytes, so
  it is one of ``CHUNKER_THREADS`` of its own, never one of the event loop's default executor:
  six stalled uploads held all of that one (on two cores), and every other request that needed a
  thread (a JSON body, a verified read, any other tenant's upload) waited for them. Callers bound
  how many run at once (``dfs.api.body_slots.STREAM_TOTAL``).
- the GC grace: until the commit, the chunks sent have no chunk row and no pending file (both are
  written at the end), so nothing protects them from the orphan sweep but their age
  (``dfs.api.gc.sweep_node`` deletes copies without a row once they are older than DFS_GC_GRACE),
  and the commit trusts the copies the nodes acknowledged when the chunks were sent (it does not
  ask them again). So, as finalize refuses a client's upload older than 0.9 x DFS_GC_GRACE
  (``Coordinator.check_upload_age``), ``commit_ingested`` refuses (``RequestTimeout``,
  ``check_sent_age``; not 409, which ``POST /upload`` answers for content already stored) an
  ingest whose first chunk was offered to the nodes (``ChunkSender.since``: before the ownership
  query that may skip a chunk the tenant held then) longer ago than that: nothing is written, the
  client must send the body again, and the chunks sent are orphans for GC. A body that streams
  for most of the grace (an hour by default) is refused, never answered complete with chunks GC
  may have deleted.
- the verified reads of a complete file's chunks (``read_verified``, hedged and failed over,
  unverified bytes never returned) are ``dfs.api.verified_reads``'.

Knows nothing of aiohttp.web: handlers pass an ``async read(n) -> bytes`` function.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import (
    Awaitable,
    Callable,
    Collection,
    Coroutine,
    Iterator,
    Mapping,
    Sequence,
    Set,
)
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from dfs import auth, protocol
from dfs.api.bodies import (
    UploadRequest,
    distinct_chunks,
    file_body,
    node_ref,
    parse_name,
)
from dfs.api.body_slots import STREAM_TOTAL
from dfs.api.chunk_writes import put_to_nodes
from dfs.api.coordinator import Coordinator
from dfs.api.finalizing import check_copies, counted
from dfs.api.verified_reads import first_good_pieces, joined
from dfs.chunking import Chunk, ChunkerProfile
from dfs.durability_policy import past_commit_window, rank_nodes
from dfs.errors import (
    ChunkNotFound,
    Conflict,
    IncompleteUpload,
    IntegrityError,
    PayloadTooLarge,
    RequestTimeout,
)
from dfs.ids import new_file_id, sha256_hex
from dfs.meta.base import FILE_COMPLETE, FileRecord, Location, ManifestEntry, NodeRecord

INGEST_WINDOW = 4
_READ_BUFFER = 4 * protocol.MIB

ReadFn = Callable[[int], Coroutine[Any, Any, bytes]]
CommitFn = Callable[
    [FileRecord, Sequence[ManifestEntry], Sequence[Location], float], Awaitable[FileRecord]
]
"""Records a file complete with its copies in one write (``_commit_sent``); a caller may
give one that also links the file in the same write (the S3 gateway's PutObject)."""


class _LoopReader(io.RawIOBase):
    """A blocking file object, for a worker thread, over an async ``read(n)`` on ``loop``;
    it counts what passes through and hashes it (unless ``hashed``: the caller's reader
    hashes the same bytes already, so one SHA-256 pass serves both)."""

    def __init__(
        self,
        read: ReadFn,
        loop: asyncio.AbstractEventLoop,
        limit: int,
        hashed: bool,
        head: bytes = b"",
    ) -> None:
        self._read = read
        self._loop = loop
        self._limit = limit
        self._head = head  # read already (``read_head``): served first
        self.size = 0
        self.whole = None if hashed else hashlib.sha256()

    def readable(self) -> bool:
        return True

    async def _fill(self, view: memoryview) -> int:
        """Fill ``view`` from ``read`` (on the loop) up to the body's end. A socket read
        gives tens of KiB; one thread hop per buffer instead of per read saves most of the
        hops' CPU (each wakes the loop and the worker)."""
        got = 0
        if self._head:  # read already (``read_head``): served first
            got = min(len(self._head), len(view))
            view[:got], self._head = self._head[:got], self._head[got:]
        while got < len(view):
            data = await self._read(len(view) - got)
            if not data:
                break
            view[got : got + len(data)] = data
            got += len(data)
            if self.size + got > self._limit:
                break
        return got

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        n: int = asyncio.run_coroutine_threadsafe(self._fill(view), self._loop).result()
        self.size += n
        if self.size > self._limit:
            raise PayloadTooLarge(f"body exceeds {self._limit} bytes")
        if self.whole is not None:
            self.whole.update(view[:n])
        return n

    def hexdigest(self) -> str:
        assert self.whole is not None, "hashed by the caller"
        return self.whole.hexdigest()


CHUNKER_THREADS = STREAM_TOTAL + 8
"""Threads for the chunkers of streamed bodies: one per stream the slots admit, and a few
for the ingests no client feeds (a multipart object chunked again from its parts)."""
_CHUNKERS = ThreadPoolExecutor(max_workers=CHUNKER_THREADS, thread_name_prefix="dfs-chunker")

CUT_BATCH_BYTES = 4 * protocol.MIB
"""Bytes of chunks the chunker's thread hands the event loop at once (at least one chunk): a
hop and an ownership query per chunk cost more CPU than hashing a small chunk."""


def _next_chunks(chunks: Iterator[Chunk]) -> list[tuple[int, bytes, str]]:
    """The next chunks, about ``CUT_BATCH_BYTES`` of them (none at the end of the body)."""
    out: list[tuple[int, bytes, str]] = []
    got = 0
    while got < CUT_BATCH_BYTES:
        chunk = next(chunks, None)
        if chunk is None:
            break
        data = bytes(chunk.data)  # copy: the chunker reuses its buffer
        out.append((chunk.offset, data, chunk.chunk_id))
        got += len(data)
    return out


def check_name(name: object) -> str:
    return parse_name(name, "filename")


@dataclass(frozen=True)
class Ingested:
    """What ``ingest`` did: ``created`` is False when the tenant already stored the content
    (``body`` is then the existing file's metadata); ``new_bytes`` is how many of the
    file's bytes were in chunks the tenant did not reference before (0 when not created);
    ``record``: the file created complete here, when it was recorded in one write."""

    created: bool
    body: dict[str, Any]
    new_bytes: int = 0
    record: FileRecord | None = None
    manifest: Sequence[ManifestEntry] = ()
    """The file's chunks as ``ingest`` cut them (when it cut them)."""


class ChunkSender:
    """Sends an ingest's (or a spliced multipart object's) new chunks to their placements,
    ``INGEST_WINDOW`` at once, and keeps the nodes' receipts."""

    def __init__(
        self, coord: Coordinator, tenant: str, file_id: str, live: Sequence[NodeRecord]
    ) -> None:
        self.coord = coord
        self.tenant = tenant
        self.file_id = file_id
        self.live = live
        self._live_ids = {n.node_id for n in live}
        self.receipts: dict[str, str] = {}
        self.copies: dict[str, set[str]] = {}
        """The nodes each sent chunk is durable on, as the primary's 201 answered: finalize
        need not ask the nodes again (``Coordinator.finalize_upload``'s ``copies``)."""
        self.new_bytes = 0
        """Bytes of chunks no complete file of the tenant referenced (the console's "N% new")."""
        self.since: float | None = None
        """When (``coord.clock()``) the first chunk was offered (asked about, then sent): no
        copy or ownership this sender relies on is older. None: none was."""
        self._inflight: set[asyncio.Task[None]] = set()

    async def _put(self, chunk_id: str, data: bytes) -> None:
        answer = await put_to_nodes(self.coord, chunk_id, data, self.file_id, self.live)
        self.receipts[chunk_id] = str(answer["receipt"])
        said = answer.get("replicas")
        if isinstance(said, list):  # only the live nodes this upload could place on count
            self.copies[chunk_id] = {n for n in said if n in self._live_ids}

    async def _room(self) -> None:
        """Wait until fewer than ``INGEST_WINDOW`` sends are in flight."""
        while len(self._inflight) >= INGEST_WINDOW:
            done, self._inflight = await asyncio.wait(
                self._inflight, return_when=asyncio.FIRST_COMPLETED
            )
            for t in done:
                t.result()

    async def send(self, chunk_id: str, data: bytes) -> None:
        await self.send_many([(chunk_id, data)])

    async def send_many(self, chunks: Sequence[tuple[str, bytes]]) -> None:
        """Send ``chunks`` (distinct ids) but those the tenant references with their copies
        on live nodes: one ownership query for them all, not one per chunk."""
        if not chunks:
            return
        if self.since is None:
            self.since = self.coord.clock()
        else:  # nodes that started draining since the last batch get no new chunk
            draining = await self.coord.drains.ids()  # cached: no read per batch
            if any(n.node_id in draining for n in self.live):
                self.live = [n for n in self.live if n.node_id not in draining]
        ids = [chunk_id for chunk_id, _ in chunks]
        owned = await self.coord.meta.owned_chunks(self.tenant, ids)
        # copies on a node a write or a has-chunks of this process just failed on count for
        # nothing: a node killed is live until its heartbeat expires, and a commit resting on
        # its copies fails its has-chunks round (IncompleteUpload) however often it is retried
        blamed = self.coord.failed_writes.blamed()
        answering = [n for n in self.live if n.node_id not in blamed]
        held = (
            await self.coord.held_chunks(self.tenant, [c for c in ids if c in owned], answering)
            if owned
            else set()
        )
        for chunk_id, data in chunks:
            if chunk_id not in owned:
                self.new_bytes += len(data)  # new to this tenant (other tenants never count)
            elif chunk_id in held:
                continue  # the tenant's own chunk, with its copies: nothing to send
            await self._room()
            self._inflight.add(asyncio.create_task(self._put(chunk_id, data)))

    async def drain(self) -> None:
        if self._inflight:
            await asyncio.gather(*self._inflight)
            self._inflight.clear()

    async def cancel(self) -> None:
        for t in self._inflight:
            t.cancel()
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)


async def _chunk_and_send(chunks: Iterator[Chunk], sender: ChunkSender) -> list[ManifestEntry]:
    """Chunk the body (in a worker thread) and hand each chunk not seen before to ``sender``;
    returns the manifest."""
    manifest: list[ManifestEntry] = []
    seen: set[str] = set()
    while True:
        got = await asyncio.get_running_loop().run_in_executor(_CHUNKERS, _next_chunks, chunks)
        if not got:
            return manifest
        fresh: list[tuple[str, bytes]] = []
        for offset, data, chunk_id in got:
            manifest.append(ManifestEntry(offset, len(data), chunk_id))
            if chunk_id not in seen:
                seen.add(chunk_id)
                fresh.append((chunk_id, data))
        if len(manifest) > protocol.MAX_CHUNKS_PER_FILE:
            raise PayloadTooLarge(f"more than {protocol.MAX_CHUNKS_PER_FILE} chunks")
        await sender.send_many(fresh)


async def ingest(
    coord: Coordinator,
    tenant: str,
    name: str,
    read: ReadFn,
    profile: ChunkerProfile,
    limit: int,
    *,
    reuse: bool = True,
    body_sha256: Callable[[], str] | None = None,
    commit: CommitFn | None = None,
    loose_head: bool = False,
) -> Ingested:
    """Store the body ``read`` yields as a new file of ``tenant`` named ``name``, unless the
    tenant already has a complete file with the same bytes (``reuse=False``: a new file
    anyway, for a caller that must own and later delete the file it gets).
    ``body_sha256``: the SHA-256 (hex) of every byte ``read`` returned, kept by the caller's
    reader as it hands them out (asked once ``read`` has returned the end), so the body is
    not hashed twice. ``commit``: what records the file when one write can (``CommitFn``).
    ``loose_head``: the first chunk cut as ``ChunkerProfile.split_loose_head`` cuts it (a
    multipart part that does not start its object). ``RequestTimeout``, nothing stored, if
    the body took longer than GC's grace protects its first chunks (``check_sent_age``)."""
    live = await coord.writable_nodes()
    sender = ChunkSender(coord, tenant, new_file_id(), live)
    head = await read_head(read, profile.min_size + 1)
    try:
        if len(head) <= profile.min_size:  # the whole body, shorter than any cut: one chunk
            size, whole, manifest = await _send_one(head, sender, limit)
        else:
            hashed = body_sha256 is not None
            raw = _LoopReader(read, asyncio.get_running_loop(), limit, hashed, head)
            split = profile.split_loose_head if loose_head else profile.split
            chunks = split(io.BufferedReader(raw, _READ_BUFFER))
            manifest = await _chunk_and_send(chunks, sender)
            size = raw.size
            whole = body_sha256() if body_sha256 is not None else raw.hexdigest()
        await sender.drain()
    finally:
        await sender.cancel()
    # the sha256 is what this process computed from the bytes: a fact, not a claim
    # a loose first chunk is recorded as such: not the cut ``split`` gives (a Complete that
    # would take it for one must re-chunk instead, ``ChunkerProfile.loose_head_label``)
    label = profile.loose_head_label() if loose_head and size > profile.min_size else str(profile)
    req = UploadRequest(name, size, whole, label, manifest, sha256_verified=True)
    fresh = sender.new_bytes == size  # every chunk new to the tenant: it stores no such file
    done = await commit_ingested(
        coord,
        tenant,
        sender.file_id,
        req,
        sender.receipts,
        reuse,
        copies=sender.copies,
        fresh=fresh,
        commit=commit,
        sent_at=sender.since,
    )
    new_bytes = sender.new_bytes if done.created else 0
    return Ingested(done.created, done.body, new_bytes, done.record, manifest)


async def read_head(read: ReadFn, n: int) -> bytes:
    """Up to ``n`` bytes of the body: fewer only when it ends first."""
    parts: list[bytes] = []
    got = 0
    while got < n:
        data = await read(n - got)
        if not data:
            break
        parts.append(data)
        got += len(data)
    return b"".join(parts)


async def _send_one(
    body: bytes, sender: ChunkSender, limit: int
) -> tuple[int, str, list[ManifestEntry]]:
    """A body no longer than the chunker's minimum is one chunk whose id is the body's
    sha256: hashed once, on the event loop (it is small), no chunker thread. (size, sha256,
    manifest)"""
    if len(body) > limit:
        raise PayloadTooLarge(f"body exceeds {limit} bytes")
    digest = sha256_hex(body)
    if not body:
        return 0, digest, []  # an empty file has no chunk
    await sender.send(digest, body)
    return len(body), digest, [ManifestEntry(0, len(body), digest)]


async def same_manifest(
    coord: Coordinator, rec: FileRecord, manifest: Sequence[ManifestEntry]
) -> bool:
    """Whether complete file ``rec`` is made of exactly the chunks of ``manifest`` (chunk ids
    are hashes the nodes verified: the same bytes, whatever sha256 ``rec`` declared)."""
    if rec.size != sum(e.size for e in manifest) or rec.chunk_count != len(manifest):
        return False
    return await coord.meta.get_manifest(rec.file_id) == list(manifest)


async def _stored_already(coord: Coordinator, tenant: str, req: UploadRequest) -> FileRecord | None:
    """The tenant's complete file holding the bytes just chunked: found by their sha256
    (computed here), but taken only if its manifest is the one computed here. A file whose
    declared sha256 was a client's false claim is never answered for these bytes: they are
    stored as a new file instead (see dfs.api.content_check)."""
    existing = await coord.find_by_sha256(tenant, req.sha256)
    if existing is None or not await same_manifest(coord, existing, req.manifest):
        return None
    if not existing.sha256_verified:
        # the bytes hashed here are its bytes (the same verified chunk ids): its claim holds
        return await coord.meta.mark_sha256_verified(existing.file_id) or existing
    return existing


async def commit_ingested(
    coord: Coordinator,
    tenant: str,
    file_id: str,
    req: UploadRequest,
    receipts: Mapping[str, object],
    reuse: bool = True,
    *,
    copies: Mapping[str, Collection[str]] | None = None,
    fresh: bool = False,
    commit: CommitFn | None = None,
    sent_at: float | None = None,
) -> Ingested:
    """Create and finalize the file ``req`` describes, whose new chunks were sent with
    ``receipts`` and are durable on ``copies`` (a ``ChunkSender``'s), unless (``reuse``) the
    tenant has it already. ``sent_at``: when the first of them was offered to the nodes
    (``ChunkSender.since``); past 0.9 x DFS_GC_GRACE nothing is written (``check_sent_age``).
    ``fresh``: none of its chunks was the tenant's when they were sent, so no complete file
    of the tenant held these bytes then: only the check just before the commit (for a
    concurrent identical upload) is made. A file made anyway
    (``reuse=False``: the caller links it to an object version, whose release deletes it)
    is committed ``for_object``: no lookup by content names it, even before its link."""
    existing = await _stored_already(coord, tenant, req) if reuse and not fresh else None
    if existing is not None:
        return Ingested(False, file_body(existing))
    check_sent_age(coord, sent_at)  # before anything is written: no pending file left behind
    draining = await coord.drains.ids()
    fast = copies is not None and _sent_here(coord, file_id, req, receipts, copies, draining)
    # unless a node it counted a copy on began draining since: the general path counts again
    if fast and copies is not None and not await coord.drains.relied_on(draining, copies):
        return await _commit_sent(coord, tenant, file_id, req, copies, reuse, commit)
    await coord.create_uploads([(file_id, req)], tenant)
    # Checked again just before the commit: a concurrent identical upload that committed
    # meanwhile wins, and this file stays pending (invisible) instead of duplicating it.
    existing = await _stored_already(coord, tenant, req) if reuse else None
    if existing is not None:
        return Ingested(False, file_body(existing))
    done = await coord.finalize_upload(
        file_id, receipts, tenant, copies=copies, for_object=not reuse
    )
    return Ingested(True, done)


def sent_too_long_ago(coord: Coordinator, since: float | None) -> bool:
    """Whether chunks first offered to the nodes at ``since`` (``ChunkSender.since``) may
    have lost copies to garbage collection since: past 0.9 x DFS_GC_GRACE, as
    ``Coordinator.check_upload_age`` judges a client's upload (the orphan sweep deletes
    copies no row names once they are older than the grace)."""
    return since is not None and past_commit_window(since, coord.clock(), coord.cfg.gc_grace)


def check_sent_age(coord: Coordinator, since: float | None) -> None:
    """``RequestTimeout`` if ``sent_too_long_ago``: the acknowledgements in hand may name
    copies GC has deleted, so nothing is committed on them; the chunks sent are left to GC."""
    if sent_too_long_ago(coord, since):
        raise RequestTimeout(
            "the upload took longer than 0.9 x DFS_GC_GRACE allows (garbage collection may"
            " have deleted the chunks sent first): nothing was stored; send it again"
        )


def _sent_here(
    coord: Coordinator,
    file_id: str,
    req: UploadRequest,
    receipts: Mapping[str, object],
    copies: Mapping[str, Collection[str]],
    draining: Set[str],
) -> bool:
    """Whether finalize's checks pass on what this process holds, with no metadata read:
    every chunk of the file comes with a node's receipt for ``file_id`` (this process sent
    its bytes: nothing rests on what the tenant owned) and its copies, as the primaries'
    201s named them, are enough (``dfs.api.finalizing.check_copies``; those on ``draining``
    nodes do not count, ``dfs.api.finalizing.counting``). The upload's age is
    checked before (``check_sent_age``): those 201s hold only while GC's grace protects the
    copies they name."""
    key = coord.cfg.cluster_secret
    chunks = distinct_chunks(req.manifest)
    if not all(auth.receipt_ok(key, receipts.get(c), file_id, c) for c in chunks):
        return False
    try:
        check_copies(
            chunks, {c: counted(copies, c, draining) for c in chunks}, coord.copies_to_commit
        )
    except IncompleteUpload:
        return False
    return True


async def _commit_sent(
    coord: Coordinator,
    tenant: str,
    file_id: str,
    req: UploadRequest,
    copies: Mapping[str, Collection[str]],
    reuse: bool,
    commit: CommitFn | None = None,
) -> Ingested:
    """The file recorded complete in one metadata write (``create_and_commit_files``, its
    chunks' copies with it) once ``_sent_here`` holds: the pending row, the locations write
    and finalize's reads and commit of the general path are not needed. The check for a
    concurrent identical upload runs just before that write, as the general path's runs
    just before its commit."""
    existing = await _stored_already(coord, tenant, req) if reuse else None
    if existing is not None:
        return Ingested(False, file_body(existing))
    now = coord.clock()
    chunks = distinct_chunks(req.manifest)
    locs = [Location(c, n, size) for c, size in chunks.items() for n in copies[c]]
    rec = req.record(file_id, tenant, now)
    if commit is not None:
        rec = await commit(rec, req.manifest, locs, now)
    else:
        (rec,) = await coord.meta.create_and_commit_files(
            [(rec, req.manifest)], now, locations=locs, for_object=not reuse
        )
    return Ingested(True, file_body(rec), record=rec)


def _name_extra(name: str | None) -> str:
    """A download URL's ``name`` as its signature binds it ("" for none): its SHA-256, so a
    name with a line break (a key may hold one) never reaches the MAC's message."""
    if name is None:
        return ""
    return "name:" + hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()


def download_cap(
    coord: Coordinator, file_id: str, tenant: str, ttl: float, name: str | None = None
) -> str:
    """The signature of a download URL: file id, tenant and the ``name`` it answers with
    (None: the file's own) bound, expiring in ``ttl`` s."""
    extra = _name_extra(name)
    return auth.mint(coord.cfg.api_secret, auth.OP_DOWNLOAD, file_id, tenant, ttl=ttl, extra=extra)


def check_download_cap(
    coord: Coordinator, file_id: str, tenant: str, sig: str | None, name: str | None = None
) -> None:
    extra = _name_extra(name)
    auth.check(coord.cfg.api_secret, sig, auth.OP_DOWNLOAD, file_id, tenant, extra=extra)


# --- chunks through the API ---------------------------------------------------------------


async def pending_upload(coord: Coordinator, file_id: str, tenant: str) -> None:
    """Refuse a file that is not one of the tenant's pending uploads: FileNotFound (another
    tenant's, unknown), Conflict (complete)."""
    rec = await coord.meta.get_file(file_id, tenant)
    if rec.state == FILE_COMPLETE:
        raise Conflict(f"file {file_id} is already complete")


async def proxy_put(
    coord: Coordinator, chunk_id: str, data: bytes | bytearray, file_id: str, tenant: str
) -> dict[str, Any]:
    """Store a chunk of one of the tenant's pending uploads through the API."""
    await pending_upload(coord, file_id, tenant)  # again: it may have completed meanwhile
    digest = await asyncio.to_thread(sha256_hex, data)
    if digest != chunk_id:
        raise IntegrityError(f"body does not hash to chunk {chunk_id}")
    return await put_to_nodes(coord, chunk_id, data, file_id, await coord.writable_nodes())


async def proxy_get(coord: Coordinator, chunk_id: str, tenant: str) -> bytes:
    """A verified chunk, for a tenant one of whose files references it."""
    if chunk_id not in await coord.meta.owned_chunks(tenant, [chunk_id]):
        raise ChunkNotFound(f"no chunk {chunk_id}")
    live = {n.node_id: n for n in await coord.live_nodes()}
    holders = (await coord.meta.get_locations([chunk_id]))[chunk_id]
    replicas = [
        {**node_ref(n), "cap": coord.cap(auth.OP_GET, chunk_id, n.node_id)}
        for n in rank_nodes(chunk_id, [live[h] for h in holders if h in live])
    ]
    pieces = await first_good_pieces(coord, chunk_id, replicas, None)
    if pieces is None:
        raise ChunkNotFound(f"no live node could serve chunk {chunk_id}")
    return joined(pieces)
