"""The coordinator's file logic: upload plans and commits (one file or many, and resuming),
download plans, chunks through the API, deletes, listings and the cluster's counters.

Every route that touches files calls this, single and batch, proxy and direct alike, so each
rule lives once:

- A chunk is left out of an upload plan only if this tenant already references it and it
  has its copies on live nodes (``held_chunks``): whether another tenant stores it is never
  revealed, and its bytes must be sent (the node then stores nothing new). Plans of more
  than ``PLAN_IN_THREAD`` chunks are built in a worker thread.
- Download plans (one file or many, bounded per request) are ``dfs.api.download_plans``'s.
- Trust: the client's word is never taken for where chunks are. Finalize asks the live
  nodes which chunks they hold (nodes verified each chunk's sha256 before storing it) and
  commits only when every chunk has REPLICATION_FACTOR copies (one with
  REPLICATION_STRATEGY=async) and every chunk the tenant did not already reference comes
  with a receipt proving this upload (this pending file id) sent its bytes. Chunks this
  process sent itself (``dfs.api.ingest``) come with the nodes their 201 said they are
  durable on (``copies``), and are not asked about again.
- Resume keeps that defence: receipts are bound to the pending file id they were minted
  for, and ``get_file(file_id, tenant)`` proves the file is the caller's own.

It knows nothing of aiohttp.web. State lives only in the metadata store, so several API
processes can serve one cluster. Tokens, tenants and the node registry are in
``dfs.api.registry``; whole files through the API in ``dfs.api.ingest``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, TypeVar

from dfs import auth, protocol
from dfs import durability_policy as policy
from dfs.api.bodies import (
    DEFAULT_TENANT,
    UploadRequest,
    distinct_chunks,
    error_entry,
    file_body,
    node_ref,
    rotations,
)
from dfs.api.drain import DrainSet, began_draining
from dfs.api.draining_copies import counted_copies
from dfs.api.finalizing import (
    Finalizing,
    check_copies,
    commit_held_files,
    copy_changes,
    counted,
    excluding,
    has_copies,
    keep_passing,
)
from dfs.api.writable_nodes import STARTUP_GRACE, writable_nodes
from dfs.api.write_failures import RecentFailures
from dfs.config import ApiConfig
from dfs.errors import Conflict, DfsError, FileNotFound, IncompleteUpload, InsufficientStorage
from dfs.ids import new_file_ids
from dfs.meta.base import (
    FILE_COMPLETE,
    HIDDEN_NAME_PREFIX,
    FileRecord,
    Location,
    MetadataStore,
    NodeRecord,
)
from dfs.transport.node_client import NodeClient

log = logging.getLogger("dfs.api")

PLAN_IN_THREAD = 1000
"""Chunks above which a plan (~50 us of placement and HMACs per chunk) is built in a worker
thread, so one upload of 100,000 chunks cannot stall every other request for seconds."""
SCAN_PAGE = 1000
REPAIR_LEASE = "repair"

T = TypeVar("T")
Locations = dict[str, set[str]]  # chunk id -> the nodes recorded holding a copy
Copies = Mapping[str, Collection[str]]  # chunk id -> the nodes a 201 said it is durable on
Receipted = Sequence[tuple[str, Mapping[str, object]]]  # (file id, its receipts by chunk id)


async def _off_loop_if_big(chunks: int, build: Callable[[], T]) -> T:
    return build() if chunks <= PLAN_IN_THREAD else await asyncio.to_thread(build)


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
        self.drains = DrainSet(meta, clock, settle=cfg.drain_settle)
        self.failed_writes = RecentFailures(cfg.heartbeat_timeout)  # dfs.api.chunk_writes
        self.grace = time.monotonic() + min(STARTUP_GRACE, cfg.heartbeat_timeout)

    @property
    def rf(self) -> int:
        return self.cfg.replication_factor

    @property
    def asynchronous(self) -> bool:
        return self.cfg.replication_strategy == "async"

    @property
    def copies_to_commit(self) -> int:  # copies of each chunk a commit needs (async: 1)
        return 1 if self.asynchronous else self.rf

    async def live_nodes(self) -> list[NodeRecord]:
        return await self.meta.list_live_nodes(self.clock())

    async def writable_nodes(self, exclude: Collection[str] = ()) -> list[NodeRecord]:
        """The live nodes but ``exclude`` (those one client's upload failed on) and the
        draining ones (being emptied: no new chunks); Unavailable if fewer than
        REPLICATION_FACTOR are left (``dfs.api.writable_nodes``: after a grace at start)."""
        return await writable_nodes(
            self.live_nodes, self.meta.list_nodes, self.drains.ids, self.rf, exclude, self.grace
        )

    def place(self, chunk_id: str, size: int, live: Sequence[NodeRecord]) -> list[NodeRecord]:
        """The nodes a new chunk goes to: rendezvous over live nodes with room for it."""
        # only nodes whose last heartbeat left room for the chunk plus DFS_MIN_FREE_BYTES
        chosen = policy.place_new(chunk_id, size, live, self.cfg.min_free_bytes, self.rf)
        if len(chosen) < self.rf:
            raise InsufficientStorage(
                f"cluster is full: {len(chosen)} of {len(live)} live node(s) have room for "
                f"chunk {chunk_id[:12]} ({size} bytes + DFS_MIN_FREE_BYTES="
                f"{self.cfg.min_free_bytes}), REPLICATION_FACTOR={self.rf} needs {self.rf}: "
                "free space or add nodes"
            )
        return chosen

    def cap(
        self,
        op: str,
        chunk_id: str,
        node_id: str,
        extra: str = "",
        *,
        ttl: float | None = None,
        now: float | None = None,
    ) -> str:
        life = self.cfg.cap_ttl if ttl is None else ttl  # from now (default: the wall clock)
        return auth.mint(
            self.cfg.cluster_secret, op, chunk_id, node_id, ttl=life, extra=extra, now=now
        )

    def put_caps(self, file_id: str, chunk_id: str, targets: Sequence[NodeRecord]) -> list[str]:
        """One put capability per rotation of ``targets``: caps[i] lets targets[i] act as the
        primary and forward to the others in rotation order."""
        caps = []
        for primary, forward in rotations(targets):
            extra = protocol.put_cap_extra(file_id, forward, asynchronous=self.asynchronous)
            caps.append(self.cap(auth.OP_PUT, chunk_id, primary.node_id, extra))
        return caps

    # --- upload plans ----------------------------------------------------------------------

    async def held_chunks(
        self, tenant: str, chunk_ids: Sequence[str], live: Sequence[NodeRecord]
    ) -> set[str]:
        """The chunks of ``chunk_ids`` an upload need not send: this tenant already
        references them and ``live`` nodes hold their copies."""
        return self._held(await self._owned_locations(tenant, chunk_ids), live)

    async def _owned_locations(self, tenant: str, chunk_ids: Sequence[str]) -> Locations:
        """The recorded copies of the chunks of ``chunk_ids`` this tenant references."""
        owned = await self.meta.owned_chunks(tenant, chunk_ids)
        return await self.meta.get_locations(list(owned)) if owned else {}

    def _held(self, locations: Locations, live: Sequence[NodeRecord]) -> set[str]:
        live_ids = {n.node_id for n in live}
        return {c for c, nodes in locations.items() if len(nodes & live_ids) >= self.rf}

    def _plan(
        self,
        file_id: str,
        chunks: Mapping[str, int],
        skip: Collection[str],
        live: Sequence[NodeRecord],
        packed: bool = False,
    ) -> list[dict[str, Any]]:
        """Where each chunk not in ``skip`` goes, with a put capability per primary.
        ``packed``: chunks of at most ``PACK_CHUNK_MAX`` bytes get none, since their pack's
        capability covers them (``dfs.api.upload_packs``); a client sending one alone asks
        ``/resume-upload`` for a plan with capabilities (an HMAC per rotation saved for
        every small chunk of a batch)."""
        upload = []
        for chunk_id, size in chunks.items():
            if chunk_id in skip:
                continue
            targets = self.place(chunk_id, size, live)
            item: dict[str, Any] = {
                "sha256": chunk_id,
                "size": size,
                "targets": [node_ref(n) for n in targets],
            }
            if not packed or size > protocol.PACK_CHUNK_MAX:
                item["caps"] = self.put_caps(file_id, chunk_id, targets)
            upload.append(item)
        return upload

    def _answer(
        self, file_id: str, total: int, chunks: Mapping[str, int], upload: list[dict[str, Any]]
    ) -> dict[str, Any]:
        return {
            "file_id": file_id,
            "replication_factor": self.rf,
            "chunks_total": total,
            "chunks_distinct": len(chunks),
            "upload": upload,
        }

    async def init_upload(self, req: UploadRequest, tenant: str = DEFAULT_TENANT) -> dict[str, Any]:
        """Create a pending file and plan which chunks to send where."""
        (plan,) = await self.init_uploads([req], tenant)
        return plan

    async def init_uploads(
        self,
        reqs: Sequence[UploadRequest],
        tenant: str = DEFAULT_TENANT,
        *,
        commit_held: bool = False,
        exclude: Collection[str] = (),
    ) -> list[dict[str, Any]]:
        """Pending files and their plans, in order, with one read of the live nodes and of
        the tenant's chunks and one metadata write (one SQLite transaction) for them all.

        ``commit_held`` (``/init-uploads``): a file with nothing to send (every chunk held)
        is recorded complete at once under finalize's own rules (``held_copies``), with
        ``create_and_commit_files``; its plan is then only ``{"file_id", "state": "complete",
        "upload": []}`` and needs no finalize (one would answer its metadata). Its small chunks come without
        per-chunk capabilities (``_plan``'s ``packed``): the packs' carry them. ``exclude``:
        nodes not placed on (``excluding``: the client's failed ones)."""
        live = await self.writable_nodes()
        per_file = [distinct_chunks(r.manifest) for r in reqs]
        union = list({c: None for chunks in per_file for c in chunks})
        recorded = await self._owned_locations(tenant, union)
        held = self._held(recorded, live)
        file_ids = new_file_ids(len(reqs))

        targets = excluding(live, exclude, self.rf)

        def build() -> list[list[dict[str, Any]]]:
            return [
                self._plan(f, chunks, held, targets, packed=commit_held)
                for f, chunks in zip(file_ids, per_file, strict=True)
            ]

        uploads = await _off_loop_if_big(sum(map(len, per_file)), build)
        files = list(zip(file_ids, reqs, strict=True))
        done: dict[str, FileRecord] = {}
        created: set[str] = set()  # recorded pending by a commit that was refused
        if commit_held:
            empty = [(f, c) for f, c, u in zip(file_ids, per_file, uploads, strict=True) if not u]
            ok = await self.held_copies(empty, recorded) if empty else set()
            if ok:
                now = self.clock()
                whole = [(r.record(f, tenant, now), r.manifest) for f, r in files if f in ok]
                done, created = await commit_held_files(self.meta, whole, now)
        pending = [(f, r) for f, r in files if f not in done and f not in created]
        if pending:
            await self.create_uploads(pending, tenant)
        # a committed file's plan is its id and state alone: the client holds the rest of
        # its metadata (it sent it), and a backup of unchanged files is mostly such plans
        return [
            {"file_id": f, "state": "complete", "upload": []}
            if f in done
            else self._answer(f, len(r.manifest), chunks, upload)
            for f, r, chunks, upload in zip(file_ids, reqs, per_file, uploads, strict=True)
        ]

    async def held_copies(
        self, files: Sequence[tuple[str, Mapping[str, int]]], recorded: Locations
    ) -> set[str]:
        """The files just planned with nothing to send that finalize would commit: every
        chunk is one the tenant references (``held_chunks``: no receipt is needed) and the
        live nodes, asked now, hold its copies. One has-chunks round for them all; the
        others are left pending for the client's finalize (``recorded``: their copies' rows)."""
        union = {c: n for _f, chunks in files for c, n in chunks.items()}
        holders = await self.holders(union, await self.live_nodes(), recorded) if union else {}
        ok = set()
        for file_id, chunks in files:
            try:
                check_copies(chunks, holders, self.copies_to_commit)
            except IncompleteUpload:
                continue
            ok.add(file_id)
        return ok

    async def create_uploads(
        self, files: Sequence[tuple[str, UploadRequest]], tenant: str = DEFAULT_TENANT
    ) -> None:
        """Record pending files whose chunks are planned (or, for ingest, already sent)."""
        now = self.clock()
        await self.meta.create_files([(r.record(f, tenant, now), r.manifest) for f, r in files])

    async def resume_upload(
        self,
        file_id: str,
        receipts: Mapping[str, object],
        tenant: str = DEFAULT_TENANT,
        exclude: Collection[str] = (),
    ) -> dict[str, Any]:
        """A fresh plan for the caller's own pending upload ``file_id``: the chunks it has not
        proven (receipt for this file id, or already owned) or whose copies are not on live
        nodes. ``exclude``: nodes this upload failed on, left out of this plan only (neither
        asked for copies nor chosen as targets); other uploads keep placing on them."""
        rec = await self.meta.get_file(file_id, tenant)
        if rec.state == FILE_COMPLETE:
            raise Conflict(f"file {file_id} is already complete")
        manifest = await self.meta.get_manifest(file_id)
        chunks = distinct_chunks(manifest)
        upload = await self.plan_missing(file_id, chunks, receipts, tenant, exclude)
        return {**self._answer(file_id, len(manifest), chunks, upload), "resumed": True}

    async def plan_missing(
        self,
        file_id: str,
        chunks: Mapping[str, int],
        receipts: Mapping[str, object],
        tenant: str,
        exclude: Collection[str] = (),
    ) -> list[dict[str, Any]]:
        """The plan of ``chunks`` of pending upload ``file_id`` that are not proven (by a
        receipt for this file id, or owned already) with their copies on live nodes."""
        owned = await self.meta.owned_chunks(tenant, list(chunks))
        secret = self.cfg.cluster_secret
        proven = {
            c for c in chunks if c in owned or auth.receipt_ok(secret, receipts.get(c), file_id, c)
        }
        live = await self.writable_nodes(exclude)
        held = await self.holders({c: chunks[c] for c in proven}, live) if proven else {}
        done = {c for c in proven if len(held[c]) >= self.rf}
        return await _off_loop_if_big(len(chunks), lambda: self._plan(file_id, chunks, done, live))

    async def finalize_upload(
        self,
        file_id: str,
        receipts: Mapping[str, object],
        tenant: str = DEFAULT_TENANT,
        *,
        copies: Copies | None = None,
        for_object: bool = False,
        exclude: Collection[str] = (),
    ) -> dict[str, Any]:
        """Commit the file if every chunk has its copies and every chunk the tenant did not
        already reference comes with a receipt proving this upload sent its bytes.
        ``copies``: the module's Trust. ``for_object``: see ``MetadataStore.commit_file``.
        ``exclude``: nodes not asked for copies (``finalizing.excluding``)."""
        (done,) = await self._finalize(
            [(file_id, receipts)], tenant, copies or {}, for_object, exclude
        )
        if isinstance(done, DfsError):
            raise done
        return file_body(done)

    async def finalize_uploads(
        self, items: Receipted, tenant: str = DEFAULT_TENANT, exclude: Collection[str] = ()
    ) -> list[dict[str, Any]]:
        """finalize_upload for many files, in order, with one has-chunks round: each entry is
        the file's metadata or ``{"file_id", "error"}``."""
        results = await self._finalize(items, tenant, {}, exclude=exclude)
        return [
            error_entry(file_id, r) if isinstance(r, DfsError) else file_body(r)
            for (file_id, _), r in zip(items, results, strict=True)
        ]

    async def _finalize(
        self,
        items: Receipted,
        tenant: str,
        copies: Copies,
        for_object: bool = False,
        exclude: Collection[str] = (),
    ) -> list[FileRecord | DfsError]:
        """Each file committed (or already complete), or the error that stopped it. The
        checks run cheapest first, so a rejected file costs no has-chunks call."""
        results: list[FileRecord | DfsError | None] = [None] * len(items)
        todo = await self._pending(items, tenant, results)
        todo = keep_passing(todo, results, lambda f: self.check_upload_age(f.rec))
        if todo:
            key = self.cfg.cluster_secret  # only chunks without a receipt need the owned read
            bare = [c for f in todo for c in f.chunks if not f.receipted(key, c)]
            owned = await self.owned_for_finalize(tenant, bare) if bare else set()
            todo = keep_passing(todo, results, lambda f: f.check_receipts(key, owned))
        commit = functools.partial(self.meta.commit_files, for_object=for_object)
        committed: Sequence[FileRecord | DfsError | None] = []
        for _ in range(3):  # counted again: copies GC took, a node that began draining
            new: list[Location] = []  # copies found: recorded in the commit's transaction
            draining = await self.drains.ids()
            if todo:
                union = {c: n for f in todo for c, n in f.chunks.items()}
                holders = await self._copies_of(union, copies, new, exclude, draining)
                todo = keep_passing(todo, results, has_copies(holders, self.copies_to_commit))
            ids = [items[f.index][0] for f in todo]
            if await self.drains.relied_on(draining, (loc.node_id for loc in new)):
                copies, committed = {}, [began_draining()] * len(ids)  # counted again
                continue
            try:
                committed = await commit(ids, self.clock(), locations=new) if ids or new else []
                break
            except IncompleteUpload as exc:  # GC took a row after its copies were found:
                copies, committed = {}, [exc] * len(ids)  # found again once, else refused
        for f, file_id, done in zip(todo, ids, committed, strict=True):
            results[f.index] = done if done else FileNotFound(f"no file {file_id}")
        assert all(r is not None for r in results)  # every file was committed or rejected
        return [r for r in results if r is not None]

    async def _pending(
        self, items: Receipted, tenant: str, results: list[FileRecord | DfsError | None]
    ) -> list[Finalizing]:
        """The files still to commit; the others' results (complete, or an error) set.
        One metadata read for the batch (``pending_uploads``)."""
        todo = []
        found = await self.meta.pending_uploads([file_id for file_id, _ in items], tenant)
        for i, ((file_id, receipts), got) in enumerate(zip(items, found, strict=True)):
            if got is None:
                results[i] = FileNotFound(f"no file {file_id}")
                continue
            rec, manifest = got
            if rec.state == FILE_COMPLETE:
                results[i] = rec
                continue
            if not rec.sha256:  # a paged upload not sealed yet: its size is not known
                results[i] = Conflict(f"upload {file_id} is paged: use /paged-upload/finalize")
                continue
            todo.append(Finalizing(i, rec, distinct_chunks(manifest), receipts))
        return todo

    def check_upload_age(self, rec: FileRecord) -> None:
        if policy.past_commit_window(rec.created_at, self.clock(), self.cfg.gc_grace):
            # past this, garbage collection no longer protects the chunks it relies on
            raise Conflict(
                f"upload {rec.file_id} is older than 0.9 x DFS_GC_GRACE; upload the file again"
            )

    async def owned_for_finalize(self, tenant: str, chunk_ids: Sequence[str]) -> set[str]:
        # ever=True: a chunk the tenant owned at init-upload (and so did not send) may have
        # lost its last reference to a concurrent delete; the tenant had the bytes, and the
        # has-chunks check still demands the copies
        return await self.meta.owned_chunks(tenant, list(dict.fromkeys(chunk_ids)), ever=True)

    async def _copies_of(
        self,
        chunks: dict[str, int],
        copies: Copies,
        new: list[Location],
        exclude: Collection[str],
        draining: frozenset[str],
    ) -> dict[str, set[str]]:
        """Each chunk's holders that count (none on ``draining``), all added to ``new``."""
        need = self.copies_to_commit
        known = {c: set(copies[c]) for c in chunks if len(counted(copies, c, draining)) >= need}
        holders = {}
        if asked := {c: n for c, n in chunks.items() if c not in known}:
            nodes = excluding(await self.live_nodes(), exclude, self.rf)
            holders = await self.holders(asked, nodes, new=new)
        new += [Location(c, n, chunks[c]) for c, nodes in known.items() for n in nodes]
        found = {**holders, **known}  # a client re-planning around nodes sends what is short
        return await counted_copies(self, chunks, found, draining, new, top_up=not exclude)

    async def _ask_holders(
        self, ids: list[str], live: Sequence[NodeRecord], verify: Mapping[str, int] | None = None
    ) -> list[set[str] | BaseException]:
        cap = {n.node_id: self.cap(auth.OP_HAS, auth.ANY_CHUNK, n.node_id) for n in live}
        asks = [self.nodes.has_chunks(n.url, ids, cap=cap[n.node_id], verify=verify) for n in live]
        return await asyncio.gather(*asks, return_exceptions=True)

    async def holders(
        self,
        chunks: dict[str, int],
        live: Sequence[NodeRecord],
        known: Locations | None = None,
        new: list[Location] | None = None,
        verify: bool = False,
    ) -> dict[str, set[str]]:
        """Ask every live node which of ``chunks`` it holds, and record what they answer
        (``known``: the copies recorded for ``chunks``, when the caller has just read them;
        ``new``: copies not recorded yet are added to it, for the caller's own write;
        ``verify``: only copies their nodes read back intact count, as a trim's must).
        A node that does not answer counts for nothing and is blamed (``failed_writes``, so
        ingests send its chunks again); one that answers is cleared; a copy a node no longer
        has is forgotten, so the locations table converges on what the disks really hold."""
        ids = list(chunks)
        holders: dict[str, set[str]] = {c: set() for c in ids}
        answered: set[str] = set()
        asked = await self._ask_holders(ids, live, chunks if verify else None)
        for node, answer in zip(live, asked, strict=True):
            if isinstance(answer, BaseException):
                if not isinstance(answer, DfsError):
                    raise answer
                log.warning("node %s did not answer has-chunks: %s", node.node_id, answer.message)
                self.failed_writes.blame([node.node_id])
                continue
            answered.add(node.node_id)
            for c in answer:
                if c in holders:
                    holders[c].add(node.node_id)
        self.failed_writes.answered(answered)
        await self._record_holders(chunks, holders, answered, known, new)
        return holders

    async def _record_holders(
        self,
        chunks: dict[str, int],
        holders: Locations,
        seen: set[str],
        known: Locations | None,
        out: list[Location] | None,
    ) -> None:
        ids = list(chunks)
        # ``known`` read by the caller just before: a copy recorded or dropped since then is
        # put right by the next has-chunks round of that chunk, as after any race here
        if known is None or any(c not in known for c in ids):
            known = await self.meta.get_locations(ids)
        new, gone = copy_changes(chunks, holders, seen, known)
        if gone:
            log.warning("%d recorded chunk copies were not found on their nodes", len(gone))
            await self.meta.remove_locations(gone)
        if out is not None:
            out += new
        elif new:
            await self.meta.add_locations(new, self.clock())

    # --- files -----------------------------------------------------------------------------

    async def get_complete_file(self, file_id: str, tenant: str = DEFAULT_TENANT) -> FileRecord:
        rec = await self.meta.get_file(file_id, tenant)
        if rec.state != FILE_COMPLETE:
            raise FileNotFound(f"no file {file_id}")  # unfinished files do not exist to readers
        return rec

    async def find_by_sha256(
        self, tenant: str, sha256: str, *, linked: bool = False
    ) -> FileRecord | None:
        """The tenant's complete file declaring this sha256, verified first, else claimed (for
        ``dfs.api.content_check`` to verify); never a hidden one, an object's if ``linked``."""
        find = self.meta.find_file_by_sha256
        found = await find(tenant, sha256, linked=linked)
        found = found or await find(tenant, sha256, verified=False, linked=linked)
        if found is not None and found.name.startswith(HIDDEN_NAME_PREFIX):
            return None  # a multipart part: the upload deletes it, so it is nobody's to reuse
        return found

    async def delete_file(self, file_id: str, tenant: str) -> dict[str, Any]:
        """Drop a file of ``tenant`` (FileNotFound for anyone else's); its chunks' bytes go
        when garbage collection finds them unreferenced past the grace."""
        rec = await self.meta.delete_file(file_id, tenant, self.clock())
        body = file_body(rec)
        body["state"] = "deleted"
        return body

    async def list_files(
        self, limit: int, after: str | None, tenant: str = DEFAULT_TENANT, prefix: str = ""
    ) -> dict[str, Any]:
        files = await self.meta.list_files(tenant, limit=limit, after=after, prefix=prefix)
        next_after = files[-1].file_id if len(files) == limit else None
        return {"files": [file_body(f) for f in files], "next_after": next_after}

    async def chunk_ids_page(self, limit: int, after: str | None) -> tuple[list[str], str | None]:
        """A page of the ids of chunks complete files reference, and the next page's cursor."""
        return await self.meta.list_chunk_ids(limit=limit, after=after)

    # --- status ----------------------------------------------------------------------------

    async def stats(self) -> dict[str, Any]:
        s = await self.meta.get_stats()
        live = await self.live_nodes()
        repair = await self.meta.get_lease(REPAIR_LEASE)
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
            # the last repair pass as its lease holder reported it (dfs.api.repair): its
            # under-replicated chunks and bytes are the replication lag and pending work
            "repair": json.loads(repair.info) if repair is not None and repair.info else None,
        }
