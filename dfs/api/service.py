"""The coordinator's logic: upload plans, finalize, download plans, proxying, statistics.

Handlers parse HTTP and call this; it knows nothing of aiohttp.web. State lives only in the
metadata store, so several API processes can serve one cluster.

Trust: the client's word is never taken for where chunks are. ``finalize`` asks the live
nodes which chunks they hold (nodes verified each chunk's sha256 before storing it) and
commits only when every chunk has REPLICATION_FACTOR copies.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dfs import auth, placement, protocol
from dfs.chunking import ChunkerProfile
from dfs.config import ApiConfig
from dfs.errors import (
    AuthError,
    ChunkNotFound,
    Conflict,
    DfsError,
    FileNotFound,
    IncompleteUpload,
    InsufficientStorage,
    IntegrityError,
    InvalidRequest,
    NotFound,
    Unavailable,
)
from dfs.ids import new_file_id, parse_chunk_id, parse_sha256, sha256_hex
from dfs.meta.base import (
    FILE_COMPLETE,
    FileRecord,
    Location,
    ManifestEntry,
    MetadataStore,
    NodeRecord,
    TokenRecord,
)
from dfs.transport.node_client import NodeClient

log = logging.getLogger("dfs.api")

DEFAULT_TENANT = "default"
ADMIN_TENANT = "admin"
TOKEN_CACHE_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a tenant and a role."""

    tenant: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == auth.ROLE_ADMIN


@dataclass(frozen=True, slots=True)
class UploadRequest:
    name: str
    size: int
    sha256: str
    chunker: str
    manifest: list[ManifestEntry]

    @classmethod
    def parse(cls, body: dict[str, Any]) -> UploadRequest:
        name = body.get("name")
        if not isinstance(name, str) or not 0 < len(name) <= protocol.MAX_FILE_NAME:
            raise InvalidRequest(f"name must be a string of 1-{protocol.MAX_FILE_NAME} characters")
        if "\x00" in name:
            raise InvalidRequest("name must not contain NUL")
        size = body.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidRequest("size must be a non-negative integer")
        sha256 = parse_sha256(body.get("sha256"))
        chunker = str(ChunkerProfile.parse(str(body.get("chunker", ""))))
        chunks = body.get("chunks")
        if not isinstance(chunks, list) or len(chunks) > protocol.MAX_CHUNKS_PER_FILE:
            raise InvalidRequest(f"chunks must be a list of at most {protocol.MAX_CHUNKS_PER_FILE}")
        manifest: list[ManifestEntry] = []
        offset = 0
        for i, c in enumerate(chunks):
            if not isinstance(c, dict):
                raise InvalidRequest(f"chunks[{i}] must be an object")
            chunk_id = parse_chunk_id(c.get("sha256"), f"chunks[{i}].sha256")
            n = c.get("size")
            if (
                not isinstance(n, int)
                or isinstance(n, bool)
                or not 0 < n <= protocol.MAX_CHUNK_SIZE
            ):
                raise InvalidRequest(
                    f"chunks[{i}].size must be an integer in [1, {protocol.MAX_CHUNK_SIZE}]"
                )
            manifest.append(ManifestEntry(offset, n, chunk_id))
            offset += n
        if offset != size:
            raise InvalidRequest(f"chunk sizes add up to {offset}, not the file size {size}")
        return cls(name, size, sha256, chunker, manifest)


def distinct_chunks(manifest: Sequence[ManifestEntry]) -> dict[str, int]:
    """chunk id -> size, in first-seen order."""
    out: dict[str, int] = {}
    for e in manifest:
        out.setdefault(e.chunk_id, e.size)
    return out


def node_ref(node: NodeRecord) -> dict[str, str]:
    return {"node_id": node.node_id, "url": node.url}


def _candidates(nodes: Sequence[NodeRecord]) -> list[placement.Candidate]:
    return [placement.Candidate(n.node_id, n.zone, n.free_bytes) for n in nodes]


class Coordinator:
    def __init__(
        self,
        cfg: ApiConfig,
        meta: MetadataStore,
        nodes: NodeClient,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cfg = cfg
        self.meta = meta
        self.nodes = nodes
        self.clock = clock
        self.admin_token_hash = cfg.admin_token_hash
        self._token_cache: dict[str, tuple[float, Principal]] = {}

    # --- authentication -------------------------------------------------------------------

    async def authenticate(self, token: str | None) -> Principal:
        """The principal a bearer token names; AuthError for a missing or unknown token."""
        if not token:
            raise AuthError("missing bearer token (Authorization: Bearer <token>)")
        digest = auth.hash_token(token)
        if self.admin_token_hash and auth.tokens_equal(digest, self.admin_token_hash):
            return Principal(ADMIN_TENANT, auth.ROLE_ADMIN)
        now = self.clock()
        cached = self._token_cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        rec = await self.meta.get_token(digest)
        if rec is None:
            raise AuthError("invalid token")
        principal = Principal(rec.tenant, rec.role)
        if len(self._token_cache) > 10_000:
            self._token_cache.clear()
        self._token_cache[digest] = (now + TOKEN_CACHE_SECONDS, principal)
        return principal

    def check_node(self, cap: str | None, node_id: str) -> None:
        """A node's registry calls carry a capability minted with the cluster secret."""
        auth.check(self.cfg.cluster_secret, cap, auth.OP_HEARTBEAT, auth.ANY_CHUNK, node_id)

    async def create_tenant(self, tenant: str) -> dict[str, Any]:
        if tenant == ADMIN_TENANT:
            raise Conflict(f"tenant name {tenant!r} is reserved")
        await self.meta.create_tenant(tenant, self.clock())
        return {"tenant": tenant}

    async def create_token(self, tenant: str, role: str, label: str) -> dict[str, Any]:
        """A new token for an existing tenant; its text is returned once and never stored."""
        if role not in auth.ROLES:
            raise InvalidRequest(f"role must be one of {', '.join(auth.ROLES)}")
        if not await self.meta.tenant_exists(tenant):
            raise NotFound(f"no tenant {tenant}")
        token = auth.new_token()
        await self.meta.put_token(
            TokenRecord(auth.hash_token(token), tenant, role, label, self.clock())
        )
        return {"token": token, "tenant": tenant, "role": role, "label": label}

    @property
    def rf(self) -> int:
        return self.cfg.replication_factor

    @property
    def asynchronous(self) -> bool:
        return self.cfg.replication_strategy == "async"

    async def live_nodes(self) -> list[NodeRecord]:
        return await self.meta.list_live_nodes(self.clock())

    async def writable_nodes(self) -> list[NodeRecord]:
        return await self._writable_nodes()

    async def _writable_nodes(self) -> list[NodeRecord]:
        live = await self.live_nodes()
        if len(live) < self.rf:
            raise Unavailable(
                f"only {len(live)} live storage node(s), REPLICATION_FACTOR={self.rf} needs "
                f"{self.rf}: start more nodes or lower REPLICATION_FACTOR"
            )
        return live

    def place(self, chunk_id: str, size: int, live: Sequence[NodeRecord]) -> list[NodeRecord]:
        """The nodes a new chunk goes to: rendezvous over live nodes with room for it."""
        by_id = {n.node_id: n for n in live}
        # a node short of space is never chosen (its free bytes, as last heartbeated, must
        # cover the chunk plus DFS_MIN_FREE_BYTES): uploads go to the others
        roomy = [n for n in live if n.free_bytes >= size + self.cfg.min_free_bytes]
        chosen = placement.choose(chunk_id, _candidates(roomy), self.rf)
        if len(chosen) < self.rf:
            raise InsufficientStorage(
                f"cluster is full: {len(chosen)} of {len(live)} live node(s) have room for "
                f"chunk {chunk_id[:12]} ({size} bytes + DFS_MIN_FREE_BYTES="
                f"{self.cfg.min_free_bytes}), REPLICATION_FACTOR={self.rf} needs {self.rf}: "
                "free space or add nodes"
            )
        return [by_id[c.node_id] for c in chosen]

    # --- upload ---------------------------------------------------------------------------

    def cap(self, op: str, chunk_id: str, node_id: str, extra: str = "") -> str:
        return auth.mint(
            self.cfg.cluster_secret, op, chunk_id, node_id, ttl=self.cfg.cap_ttl, extra=extra
        )

    def put_caps(self, file_id: str, chunk_id: str, targets: Sequence[NodeRecord]) -> list[str]:
        """One put capability per rotation of ``targets``: caps[i] lets targets[i] act as the
        primary and forward to the others in rotation order."""
        caps = []
        for i in range(len(targets)):
            order = [*targets[i:], *targets[:i]]
            forward = protocol.forward_header([(n.node_id, n.url) for n in order[1:]])
            extra = protocol.put_cap_extra(file_id, forward, asynchronous=self.asynchronous)
            caps.append(self.cap(auth.OP_PUT, chunk_id, order[0].node_id, extra))
        return caps

    async def init_upload(self, req: UploadRequest, tenant: str = DEFAULT_TENANT) -> dict[str, Any]:
        """Create a pending file and plan which chunks to send where.

        A chunk is skipped only if this tenant already references it and it has its copies
        on live nodes: whether another tenant stores it is never revealed, and its bytes
        must be sent (the node then stores nothing new).
        """
        live = await self._writable_nodes()
        live_ids = {n.node_id for n in live}
        chunks = distinct_chunks(req.manifest)
        owned = await self.meta.owned_chunks(tenant, list(chunks))
        locations = await self.meta.get_locations(list(owned)) if owned else {}
        file_id = new_file_id()

        def plan() -> list[dict[str, Any]]:
            upload = []
            for chunk_id, size in chunks.items():
                if chunk_id in owned and len(locations[chunk_id] & live_ids) >= self.rf:
                    continue
                targets = self.place(chunk_id, size, live)
                upload.append(
                    {
                        "sha256": chunk_id,
                        "size": size,
                        "targets": [node_ref(n) for n in targets],
                        "caps": self.put_caps(file_id, chunk_id, targets),
                    }
                )
            return upload

        # ~50 us of placement and HMACs per chunk: big manifests are planned in a worker
        # thread, so one upload of 100,000 chunks cannot stall every other request for seconds
        upload = plan() if len(chunks) <= 1000 else await asyncio.to_thread(plan)
        rec = FileRecord(
            file_id=file_id,
            name=req.name,
            size=req.size,
            sha256=req.sha256,
            chunker=req.chunker,
            tenant=tenant,
            created_at=self.clock(),
            chunk_count=len(req.manifest),
        )
        await self.meta.create_file(rec, req.manifest)
        return {
            "file_id": file_id,
            "replication_factor": self.rf,
            "chunks_total": len(req.manifest),
            "chunks_distinct": len(chunks),
            "upload": upload,
        }

    async def finalize_upload(
        self, file_id: str, receipts: Mapping[str, object], tenant: str = DEFAULT_TENANT
    ) -> dict[str, Any]:
        """Commit the file if every chunk has its copies and every chunk the tenant did not
        already reference comes with a receipt proving this upload sent its bytes."""
        rec = await self.meta.get_file(file_id, tenant)
        if rec.state != FILE_COMPLETE:
            chunks = distinct_chunks(await self.meta.get_manifest(file_id))
            self.check_upload_age(rec)
            owned = await self.owned_for_finalize(tenant, list(chunks))
            self.check_receipts(rec, chunks, receipts, owned)
            holders = await self.holders(chunks, await self.live_nodes())
            self.check_copies(chunks, holders)
            rec = await self.meta.commit_file(file_id, self.clock())
        return file_body(rec)

    # The rules of finalize, shared by finalize-upload and finalize-uploads (dfs.api.batch).

    def check_upload_age(self, rec: FileRecord) -> None:
        if self.clock() - rec.created_at > 0.9 * self.cfg.gc_grace:
            # past this, garbage collection no longer protects the chunks it relies on
            raise Conflict(
                f"upload {rec.file_id} is older than 0.9 x DFS_GC_GRACE; upload the file again"
            )

    async def owned_for_finalize(self, tenant: str, chunk_ids: Sequence[str]) -> set[str]:
        # ever=True: a chunk the tenant owned at init-upload (and so did not send) may have
        # lost its last reference to a concurrent delete; the tenant had the bytes, and the
        # has-chunks check still demands the copies
        return await self.meta.owned_chunks(tenant, chunk_ids, ever=True)

    def check_receipts(
        self,
        rec: FileRecord,
        chunks: Mapping[str, int],
        receipts: Mapping[str, object],
        owned: set[str],
    ) -> None:
        secret = self.cfg.cluster_secret
        unproven = [
            c
            for c in chunks
            if c not in owned and not auth.receipt_ok(secret, receipts.get(c), rec.file_id, c)
        ]
        if unproven:
            raise IncompleteUpload(
                f"{len(unproven)} of {len(chunks)} chunks were not sent by this upload; "
                "send them and finalize again",
                missing=unproven[:100],
            )

    def check_copies(self, chunks: Mapping[str, int], holders: Mapping[str, set[str]]) -> None:
        # async: one durable copy commits; repair brings every chunk to the factor
        need = 1 if self.asynchronous else self.rf
        missing = [c for c in chunks if len(holders.get(c, ())) < need]
        if missing:
            raise IncompleteUpload(
                f"{len(missing)} of {len(chunks)} chunks have fewer than "
                f"{need} copies; send them and finalize again",
                missing=missing[:100],
            )

    async def holders(
        self, chunks: dict[str, int], live: Sequence[NodeRecord]
    ) -> dict[str, set[str]]:
        """Ask every live node which of ``chunks`` it holds, and record what they answer.

        A node that does not answer counts for nothing; a copy a node no longer has is
        forgotten, so the locations table converges on what the disks really hold.
        """
        ids = list(chunks)
        answers = await asyncio.gather(
            *(
                self.nodes.has_chunks(
                    n.url, ids, cap=self.cap(auth.OP_HAS, auth.ANY_CHUNK, n.node_id)
                )
                for n in live
            ),
            return_exceptions=True,
        )
        holders: dict[str, set[str]] = {c: set() for c in ids}
        answered: set[str] = set()
        for node, answer in zip(live, answers, strict=True):
            if isinstance(answer, BaseException):
                if not isinstance(answer, DfsError):
                    raise answer
                log.warning("node %s did not answer has-chunks: %s", node.node_id, answer.message)
                continue
            answered.add(node.node_id)
            for c in answer:
                if c in holders:
                    holders[c].add(node.node_id)
        known = await self.meta.get_locations(ids)
        new = [Location(c, node_id, chunks[c]) for c in ids for node_id in holders[c] - known[c]]
        gone = [
            Location(c, node_id, chunks[c])
            for c in ids
            for node_id in (known[c] - holders[c]) & answered
        ]
        if gone:
            log.warning("%d recorded chunk copies were not found on their nodes", len(gone))
            await self.meta.remove_locations(gone)
        if new:
            await self.meta.add_locations(new, self.clock())
        return holders

    # --- download -------------------------------------------------------------------------

    async def get_complete_file(self, file_id: str, tenant: str = DEFAULT_TENANT) -> FileRecord:
        rec = await self.meta.get_file(file_id, tenant)
        if rec.state != FILE_COMPLETE:
            raise FileNotFound(f"no file {file_id}")  # unfinished files do not exist to readers
        return rec

    async def download_plan(self, file_id: str, tenant: str = DEFAULT_TENANT) -> dict[str, Any]:
        rec = await self.get_complete_file(file_id, tenant)
        manifest = await self.meta.get_manifest(file_id)
        live = {n.node_id: n for n in await self.live_nodes()}
        locations = await self.meta.get_locations(list(distinct_chunks(manifest)))
        replicas: dict[str, list[dict[str, str]]] = {}
        for chunk_id, holders in locations.items():
            up = [live[h] for h in holders if h in live]
            if not up:
                raise Unavailable(
                    f"chunk {chunk_id[:12]} of file {file_id} has no live replica right now"
                )
            ranked = placement.rank(chunk_id, _candidates(up))
            replicas[chunk_id] = [
                {**node_ref(live[c.node_id]), "cap": self.cap(auth.OP_GET, chunk_id, c.node_id)}
                for c in ranked
            ]
        body = file_body(rec)
        body["replication_factor"] = self.rf
        body["chunks"] = [
            {
                "offset": e.offset,
                "size": e.size,
                "sha256": e.chunk_id,
                "replicas": replicas[e.chunk_id],
            }
            for e in manifest
        ]
        return body

    # --- proxy ----------------------------------------------------------------------------

    async def proxy_put(
        self, chunk_id: str, data: bytearray, file_id: str, tenant: str = DEFAULT_TENANT
    ) -> dict[str, Any]:
        """Store a chunk of one of the tenant's pending uploads through the API."""
        rec = await self.meta.get_file(file_id, tenant)
        if rec.state == FILE_COMPLETE:
            raise Conflict(f"file {file_id} is already complete")
        digest = await asyncio.to_thread(sha256_hex, data)
        if digest != chunk_id:
            raise IntegrityError(f"body does not hash to chunk {chunk_id}")
        return await self.put_to_nodes(chunk_id, data, file_id, await self._writable_nodes())

    async def put_to_nodes(
        self, chunk_id: str, data: bytes | bytearray, file_id: str, live: Sequence[NodeRecord]
    ) -> dict[str, Any]:
        """Store a chunk of pending upload ``file_id`` on its placement (the API acting as the
        client); the answer carries the node's receipt."""
        targets = self.place(chunk_id, len(data), live)
        caps = self.put_caps(file_id, chunk_id, targets)
        last: DfsError | None = None
        for i in range(len(targets)):  # rotate the primary on failure
            order = [*targets[i:], *targets[:i]]
            forward = protocol.forward_header([(n.node_id, n.url) for n in order[1:]])
            try:
                return await self.nodes.put_chunk(
                    order[0].url,
                    chunk_id,
                    data,
                    cap=caps[i],
                    file_id=file_id,
                    forward=forward,
                    timeout=self.cfg.replication_timeout,
                )
            except DfsError as exc:
                if isinstance(exc, IntegrityError | InvalidRequest):
                    raise
                last = exc
        assert last is not None
        raise last

    async def proxy_get(self, chunk_id: str, tenant: str = DEFAULT_TENANT) -> bytes:
        """A verified chunk, for a tenant one of whose files references it."""
        if chunk_id not in await self.meta.owned_chunks(tenant, [chunk_id]):
            raise ChunkNotFound(f"no chunk {chunk_id}")
        live = {n.node_id: n for n in await self.live_nodes()}
        holders = (await self.meta.get_locations([chunk_id]))[chunk_id]
        up = [live[h] for h in holders if h in live]
        for cand in placement.rank(chunk_id, _candidates(up)):
            try:
                data = await self.nodes.get_chunk(
                    live[cand.node_id].url,
                    chunk_id,
                    cap=self.cap(auth.OP_GET, chunk_id, cand.node_id),
                )
            except DfsError as exc:
                log.warning("proxy read of %s from %s failed: %s", chunk_id[:12], cand.node_id, exc)
                continue
            digest = await asyncio.to_thread(sha256_hex, data)
            if digest == chunk_id:
                return data
            log.error("node %s returned bad bytes for chunk %s", cand.node_id, chunk_id[:12])
        raise ChunkNotFound(f"no live node could serve chunk {chunk_id}")

    # --- status ---------------------------------------------------------------------------

    async def stats(self) -> dict[str, Any]:
        s = await self.meta.get_stats()
        live = await self.live_nodes()
        return {
            "total_files": s.total_files,
            "logical_bytes": s.logical_bytes,
            "stored_bytes": s.stored_bytes,
            "unique_chunks": s.unique_chunks,
            "duplicates_avoided": s.duplicates_avoided,
            "total_bytes_saved": s.total_bytes_saved,
            "total_s3_size_saved": s.total_bytes_saved,  # the dedup-service seed's name
            "dedup_ratio": round(s.logical_bytes / s.stored_bytes, 4) if s.stored_bytes else 1.0,
            "replicated_bytes": sum(n.used_bytes for n in live),
            "live_nodes": len(live),
            "replication_factor": self.rf,
            "replication_strategy": self.cfg.replication_strategy,
            "repair": await self._repair_progress(),
        }

    async def _repair_progress(self) -> dict[str, Any] | None:
        """The last repair pass as its lease holder reported it (see dfs.api.maintenance):
        under-replicated chunks and bytes are the replication lag and pending work."""
        lease = await self.meta.get_lease("repair")
        if lease is None or not lease.info:
            return None
        progress: dict[str, Any] = json.loads(lease.info)
        return progress

    async def node_list(self) -> dict[str, Any]:
        now = self.clock()
        nodes = await self.meta.list_nodes()
        return {
            "replication_factor": self.rf,
            "live": sum(1 for n in nodes if n.expires_at > now),
            "nodes": [
                {
                    "node_id": n.node_id,
                    "url": n.url,
                    "zone": n.zone,
                    "capacity_bytes": n.capacity_bytes,
                    "used_bytes": n.used_bytes,
                    "status": n.status if n.expires_at > now else "down",
                    "live": n.expires_at > now,
                    "last_heartbeat": n.last_heartbeat,
                }
                for n in nodes
            ],
        }

    async def list_files(
        self, limit: int, after: str | None, tenant: str = DEFAULT_TENANT
    ) -> dict[str, Any]:
        files = await self.meta.list_files(tenant, limit=limit, after=after)
        return {
            "files": [file_body(f) for f in files],
            "next_after": files[-1].file_id if len(files) == limit else None,
        }


def file_body(rec: FileRecord) -> dict[str, Any]:
    return {
        "file_id": rec.file_id,
        "name": rec.name,
        "size": rec.size,
        "sha256": rec.sha256,
        "chunker": rec.chunker,
        "chunks": rec.chunk_count,
        "state": rec.state,
        "created_at": rec.created_at,
    }
