"""The upload pipeline: scan, plan, send, finalize; for one file and for many small ones.

Every file goes through the same four steps, held as a ``FileUpload``:

1. scan: chunk and hash the file in a worker thread (one pass, bounded memory);
2. plan: ask the API which chunks to send where;
3. send: the missing chunks in parallel straight to their primary node (which forwards to
   the other replicas), or through the API with ``proxy``;
4. finalize with the receipts the nodes returned.

Files are grouped before they enter it. A big file (over ``SMALL_FILE``) goes alone: its scan
hashes on several threads, its plan comes from ``/init-upload`` and it keeps a resume journal
(``dfs.client.resume``), so running the upload again asks ``/resume-upload`` for only the
chunks not yet proven; one the files cache lists unchanged is planned from its cached scan
first, and read only if the servers lack some chunk. Small files go in batches
(``dfs.client.batch_scan``): one ``/init-uploads`` and one ``/finalize-uploads`` per batch,
their small chunks sent in the ``/store-chunks`` packs the API planned (``dfs.api.upload_packs``:
one capability per pack, which the node checks before reading the body; a packed chunk's
plan entry has no capability of its own, so one sent alone after its pack failed goes with
the entry of a ``/resume-upload`` plan, ``dfs.client.replan``), and the next batch scanned
while this one is sent, so hashing overlaps the network.

A small file of a batch is read once: its scan keeps its bytes (up to ``HOLD_BYTES`` a batch,
``dfs.client.batch_scan``) and its chunks are sent from them. Any other chunk is re-read just
before it is sent (from a file held open: by the kernel, with ``sendfile``, see
``FileSlice``) and the node hashes it against the id from the scan before storing it, so a
file that changes during the upload fails instead of storing a mix of versions. A change
during the scan itself is caught on the client (the chunks the servers already hold are not
sent, so no node sees them): a file's stat once scanned, and a big file's again just before
its finalize, must be the stat it had before (a small file: when it was opened). Either fails with
``FileChanged`` (``CHANGED``); with ``UploadPipeline.failed`` set (``dfs-client upload``
of several paths) the file is reported there and the others go on, else the upload fails;
so does a file removed or made unreadable since it was listed (``local_files.reopen``).
Memory is bounded by ``concurrency`` chunks (or packs) in flight, and the batches' held
bytes. ``FileUpload`` and the packs are in ``dfs.client.file_upload``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from dfs.chunking import ChunkerProfile, FileScan, scan_file_threaded
from dfs.client.batch_scan import (
    BATCH_FILES,
    FIRST_BATCH_FILES,
    PLANS_AT_ONCE,
    SMALL_FILE,
    Batch,
    ScanAhead,
    Scanned,
    cacheable,
    remember,
    rescan,
)
from dfs.client.chunk_sender import ChunkSender
from dfs.client.connection import Connection, ProgressFn
from dfs.client.early_batches import PlannedBatch, Taken
from dfs.client.file_cache import FileCache
from dfs.client.file_upload import FileUpload, UploadResult
from dfs.client.local_files import (
    LocalFile,
    check_unchanged,
    open_to_read,
    reopen,
    scanned_unchanged,
    vanished,
)
from dfs.client.resume import UploadJournal
from dfs.client.walk_ahead import WalkAhead
from dfs.errors import (
    AuthError,
    Conflict,
    DfsError,
    FileChanged,
    FileNotFound,
    IntegrityError,
    InvalidRequest,
    NotFound,
    from_body,
)

PIPELINE_DEPTH = PLANS_AT_ONCE + 2  # batches in flight: those planning, one sending, one finalizing

log = logging.getLogger("dfs.client")

# errors after which running the upload again cannot resume it (the file changed, the API
# refused the request, the file or the token is gone): its journal goes. The others
# (unavailable, replication failed, full, interrupted) keep it for the next run.
FINAL = (IntegrityError, Conflict, InvalidRequest, NotFound, AuthError)


class UploadPipeline:
    """Upload files through scan, plan, send and finalize; see the module docstring."""

    def __init__(
        self,
        conn: Connection,
        profile: ChunkerProfile,
        progress: ProgressFn | None,
        cache: FileCache | None = None,
        *,
        for_object: bool = False,
    ) -> None:
        """``cache``: the destination's files cache (``dfs.client.file_cache``), for
        small files' batches; None reads every file. ``for_object``: every file is linked
        to an object next (``FileUpload.init_body``)."""
        self.for_object = for_object
        # told the file ids of the uploads as their plans name them (``dfs-client upload
        # DIR bucket/``'s ``dfs.client.link_journal``)
        self.planned: Callable[[list[str]], None] | None = None
        # told each file that changed while it was being uploaded (``FileChanged``), which
        # is then left out and the others go on; None: the upload fails with it
        self.failed: Callable[[LocalFile, DfsError], None] | None = None
        self.conn = conn
        self.profile = profile
        self.progress = progress
        self.cache = cache
        self.sender = ChunkSender(conn, progress)

    def _known(self) -> Callable[[LocalFile], bool] | None:
        """Whether the files cache knows a listed file unchanged (``batches`` sizes the
        batches by it); None without a cache."""
        cache = self.cache
        if cache is None:
            return None
        return lambda f: f.st is not None and cacheable(f) and cache.knows(f.path, f.st)

    def journal_key(self, key: str) -> str:
        """The resume journal's ``key`` for this pipeline: an upload ``for_object`` resumes
        only a pending file created marked (its init body said so), never a plain one,
        which its commit would leave for any lookup by content to hand out."""
        return f"{key}:for_object" if self.for_object else key

    async def upload_files(
        self,
        files: Iterable[LocalFile],
        listed: Callable[[int], None] | None = None,
        done: Callable[[int, UploadResult], None] | None = None,
        early: Taken | None = None,
    ) -> list[UploadResult]:
        """Upload ``files`` (a list, or a listing still running: ``dfs.client.walk_ahead``
        takes it on a thread): big ones alone, one after the other, beside the small ones
        in batches (so a big file no longer holds every batch back); results in order, but
        for the files told to ``failed`` (changed while they were uploaded).
        ``listed(n)``: the bytes of files listed, as they are; ``done(n, result)``: the
        ``n``-th file is complete, as each is (``dfs-client sync`` links it then).
        ``early``: the listing's first batches planned already (``dfs.client.early_batches``),
        which go first; ``files`` then lists the files after them."""
        results: dict[int, UploadResult] = {}
        first, big_first = (early.count, early.big) if early is not None else (0, [])
        if listed is not None and early is not None:
            listed(sum(f.size for p in early.planned for _n, f in p.batch))
        # after batches taken early the pipeline is going already: full batches at once
        ramp = BATCH_FILES if first else FIRST_BATCH_FILES
        walk = WalkAhead(files, SMALL_FILE, listed, first, big_first, ramp, self._known())

        def record(pairs: Iterable[tuple[int, UploadResult]]) -> None:
            for n, result in pairs:
                results[n] = result
                if done is not None:
                    done(n, result)

        async def big() -> None:
            while (item := await walk.next_big()) is not None:
                n, f = item
                try:
                    result = await self._upload_big(f)
                except FileChanged as exc:
                    self._changed(f, exc)
                    continue
                record([(n, result)])

        try:
            async with asyncio.TaskGroup() as tg:  # a failure of either cancels the other
                tg.create_task(big())
                tg.create_task(self._pipeline(walk, record, early.planned if early else []))
        except* Exception as group:  # callers expect the error itself, not a group
            raise group.exceptions[0] from None
        finally:
            await walk.close()
        return [results[n] for n in range(walk.count) if n in results]

    def _changed(self, f: LocalFile, exc: FileChanged) -> None:
        """``f`` changed while it was being uploaded: told to ``failed``, else raised."""
        if self.failed is None:
            raise exc
        log.warning("%s: %s", f.path, exc.message)
        self.failed(f, exc)

    async def _pipeline(
        self,
        walk: WalkAhead,
        record: Callable[[Iterable[tuple[int, UploadResult]]], None],
        early: Sequence[PlannedBatch] = (),
    ) -> None:
        """Batches through scan, plan, send and finalize, pipelined: while batch ``n`` is
        sent, batch ``n + 1`` is planned (and the one after scanned) and batch ``n - 1``
        finalizes. Up to ``PLANS_AT_ONCE`` batches are planned at once, then sent one at a
        time, in the order their plans came (FIFO). ``early``: batches planned already,
        sent first."""
        scans = ScanAhead(walk.next_batch, self.profile, self.cache)
        stages = (asyncio.Semaphore(PLANS_AT_ONCE), asyncio.Lock())  # plan, send
        flight: collections.deque[asyncio.Task[None]] = collections.deque()

        async def one(batch: Batch, scanned: list[Scanned], planned: PlannedBatch | None) -> None:
            files = [f for _n, f in batch]
            done = await self.upload_batch(files, scanned, stages, planned)
            record((n, r) for (n, _f), r in zip(batch, done, strict=True) if r is not None)

        try:
            for p in early:
                flight.append(asyncio.create_task(one(p.batch, p.scans, p)))
            while (got := await scans.take()) is not None:
                flight.append(asyncio.create_task(one(*got, None)))
                while len(flight) >= PIPELINE_DEPTH or (flight and flight[0].done()):
                    await flight.popleft()
            while flight:
                await flight.popleft()
        finally:
            await scans.close()
            for task in flight:
                task.cancel()
            await asyncio.gather(*flight, return_exceptions=True)

    async def _upload_big(self, f: LocalFile) -> UploadResult:
        """A big file alone. Listed unchanged in the files cache, it is first planned from
        the cached scan: when the servers hold every chunk it is finalized without reading a
        byte (as a batch's cached files are); else it is read and sent as any big file (that
        first pending upload is left to garbage collection)."""
        cache = self.cache
        if cache is not None and f.st is not None and cacheable(f):
            scan = await asyncio.to_thread(cache.lookup, f.path, f.st)
            if scan is not None:
                held = await self._upload_held(f, scan)
                if held is not None:
                    return held
        return await self.upload_file(f.path, f.name, keep_attrs=f.keep_attrs, listed=f)

    def named(self, plans: Sequence[Mapping[str, Any]]) -> None:
        """``planned`` told the files these plans name."""
        if self.planned is not None:
            self.planned([str(p["file_id"]) for p in plans])

    def _init_body(self, upload: FileUpload) -> dict[str, Any]:
        return upload.init_body(str(self.profile), self.for_object)

    async def _upload_held(self, f: LocalFile, scan: FileScan) -> UploadResult | None:
        """The file committed from its cached ``scan`` if its plan asks for nothing, or None."""
        started = time.monotonic()
        upload = FileUpload(f.path, f.name, scan, keep_attrs=f.keep_attrs)
        plan = await self.conn.api.init_upload(**self._init_body(upload))
        upload.planned(plan, {}, None)
        if upload.todo:  # its pending upload is left to collection
            log.info("%s: the servers lack chunks of its cached scan; reading it", f.path)
            return None
        self.named([plan])
        if self.progress:
            self.progress(scan.size)
        done = await self.sender.finalize(upload)
        remember(self.cache, [f], [scan])
        return upload.result(done, time.monotonic() - started)

    async def upload_file(
        self, path: Path, name: str, *, keep_attrs: bool = True, listed: LocalFile | None = None
    ) -> UploadResult:
        """One file alone: threaded scan, its own plan, resume journal (``keep_attrs``:
        send its mode and mtime). ``listed``: its listing, for the files cache to remember
        what it was stored as. ``FileChanged`` when the file once scanned, or before its
        finalize, is not the version it was when its scan began."""
        started = time.monotonic()
        fd = await asyncio.to_thread(reopen, open_to_read, path, self.failed is not None)
        try:
            st = os.fstat(fd)
            scan = await asyncio.to_thread(scan_file_threaded, path, self.profile)
            await asyncio.to_thread(scanned_unchanged, fd, st, path)
            journal = await self._journal(scan, name)
            upload = FileUpload(path, name, scan, journal, keep_attrs, st=st)
            upload.fd = fd  # its chunks are sent from it (sendfile)
            done = await self._send_alone(upload, st)
        finally:
            os.close(fd)
        if listed is not None:
            remember(self.cache, [listed], [scan])
        return upload.result(done, time.monotonic() - started)

    async def _journal(self, scan: FileScan, name: str) -> UploadJournal | None:
        """The resume journal of a file alone (None without resume)."""
        if not self.conn.resume:
            return None
        await asyncio.to_thread(UploadJournal.sweep)
        return UploadJournal.for_upload(
            self.conn.api_url,
            self.conn.token,
            self.journal_key(scan.sha256),
            str(self.profile),
            name,
        )

    async def _send_alone(self, upload: FileUpload, st: os.stat_result) -> dict[str, Any]:
        """Plan, send and finalize a file alone held open (``upload.fd``), whose stat was
        ``st`` when its scan began; its journal goes once it is complete, or failed for good."""
        journal = upload.journal
        assert upload.fd is not None
        try:
            await self._plan_alone(upload)
            await self.sender.send_all([upload])
            await asyncio.to_thread(check_unchanged, upload.fd, st)  # still the version scanned
            done = await self.sender.finalize(upload)
        except FINAL:
            # nothing can resume this upload: its journal would only be litter
            if journal is not None:
                await asyncio.to_thread(journal.finish)
            raise
        finally:
            self.sender.forget([upload])  # finalized, or given up (changed: reported)
            if journal is not None:  # kept on disk (resume), its handle let go
                journal.close()
        if journal is not None:
            await asyncio.to_thread(journal.finish)
        return done

    async def _plan_alone(self, upload: FileUpload) -> None:
        journal = upload.journal
        if journal is not None and journal.file_id:  # named before it is asked about
            self.named([{"file_id": journal.file_id}])
        plan = await self._resume_plan(journal)
        if plan is None:
            plan = await self.conn.api.init_upload(**self._init_body(upload))
            if journal is not None:
                await asyncio.to_thread(journal.start, str(plan["file_id"]))
        self.named([plan])
        upload.planned(plan, journal.receipts if journal else {}, self.progress)

    async def _resume_plan(self, journal: UploadJournal | None) -> dict[str, Any] | None:
        """A plan for the journal's pending upload (only chunks it has not proven), or None
        to start afresh."""
        if journal is None or journal.file_id is None:
            return None
        try:
            return await self.conn.api.resume_upload(journal.file_id, journal.receipts)
        except Conflict:
            # finalized already (the journal outlived it): finalize again returns the file
            return {"file_id": journal.file_id, "upload": []}
        except FileNotFound:
            log.info("pending upload %s is gone; starting afresh", journal.file_id)
            return None

    async def upload_batch(
        self,
        files: Sequence[LocalFile],
        scans: Sequence[Scanned | FileScan],
        stages: tuple[asyncio.Semaphore, asyncio.Lock] | None = None,
        early: PlannedBatch | None = None,
    ) -> list[UploadResult | None]:
        """Small files already scanned: one plan, packed sends, one finalize for all.
        ``stages``: the plan slots and the send lock batches in flight take turns at. A file
        that changed while it was read (``Scanned.changed``) or sent is left out (None in
        its place) and told to ``failed``; without it, the batch fails with ``FileChanged``.
        ``early``: the batch's plan, asked for already (``dfs.client.early_batches``)."""
        plan_stage, send_stage = stages or (asyncio.Semaphore(1), asyncio.Lock())
        started = time.monotonic()
        scanned = [s if isinstance(s, Scanned) else Scanned(s) for s in scans]
        if self.failed is None and (changed := next((s for s in scanned if s.changed), None)):
            raise changed.error or FileChanged()
        uploads = [
            FileUpload(f.path, f.name, s.scan, keep_attrs=f.keep_attrs, st=f.st, data=s.take())
            for f, s in zip(files, scanned, strict=True)
        ]
        for u, s in zip(uploads, scanned, strict=True):
            u.changed, u.droppable = s.changed, self.failed is not None
            u.failure = vanished(s.error) if s.error is not None else None
        async with plan_stage:
            live = [u for u in uploads if not u.changed]
            if early is not None:  # asked for before the pipeline ran: its answer first
                await asyncio.to_thread(early.answered.wait)
            if early is not None and early.plans is not None:
                packs = self._planned(live, early.plans, early.packs)
            else:
                packs = await self._plan_batch(live) if live else []
            # a cached scan with chunks to send: the servers do not hold that content (any
            # more) for this tenant; read the file before sending a byte of it
            unsure = [i for i, s in enumerate(scanned) if s.cached and uploads[i].todo]
            if unsure:
                packs += await self._recheck([files[i] for i in unsure], unsure, uploads)
        async with send_stage:
            await self.sender.send_all(uploads, packs)
        for u in uploads:  # sent: the batch no longer holds its files' bytes
            u.data = None
        return await self._finalize_batch(files, uploads, started)

    async def _finalize_batch(
        self, files: Sequence[LocalFile], uploads: Sequence[FileUpload], started: float
    ) -> list[UploadResult | None]:
        """Finalize a batch's uploads but those that changed (reported: ``_changed``)."""
        live = [i for i, u in enumerate(uploads) if not u.changed]
        self.sender.forget(u for u in uploads if u.changed)  # not finalized: done with
        done = await self.sender.finalize_batch([uploads[i] for i in live])
        seconds = time.monotonic() - started
        for body in done:
            if "error" in body:
                raise from_body(409, body)
        remember(self.cache, [files[i] for i in live], [uploads[i].scan for i in live])
        out: list[UploadResult | None] = [None] * len(uploads)
        for i, body in zip(live, done, strict=True):
            out[i] = uploads[i].result(body, seconds)
        for f, u in zip(files, uploads, strict=True):
            if u.changed:
                self._changed(f, u.failure or FileChanged())
        return out

    async def _plan_batch(self, uploads: Sequence[FileUpload]) -> list[dict[str, Any]]:
        """Plan ``uploads`` in one ``/init-uploads``; the plan's packs."""
        chunker = str(self.profile)
        if all(u.st is not None for u in uploads):  # listed files: no stat left to make
            bodies = [u.init_body(chunker, self.for_object) for u in uploads]
        else:
            bodies = await asyncio.to_thread(
                lambda: [u.init_body(chunker, self.for_object) for u in uploads]
            )
        # planned around the nodes that just failed this client: no pack waits on a hung one
        excluded = self.conn.avoid.excluded()
        plans, packs = await self.conn.api.plan_uploads(bodies, excluded)
        return self._planned(uploads, plans, packs)

    def _planned(
        self,
        uploads: Sequence[FileUpload],
        plans: Sequence[dict[str, Any]],
        packs: list[dict[str, Any]],
    ) -> list[dict[str, Any]]:
        """The uploads take their plans (in order); the plans' packs."""
        self.named(plans)
        for upload, plan in zip(uploads, plans, strict=True):
            upload.planned(plan, {}, self.progress)
        return packs

    async def _recheck(
        self, files: Sequence[LocalFile], where: Sequence[int], uploads: list[FileUpload]
    ) -> list[dict[str, Any]]:
        """Files planned from a cached scan that the servers did not confirm: each read and
        scanned again. Those that still match keep their plan (their chunks are sent as any
        new file's); the others are planned afresh (their first pending upload is left to
        garbage collection). The new plans' packs."""
        assert self.cache is not None  # only a cached scan is checked again
        fresh = await asyncio.to_thread(rescan, files, self.profile, self.cache)
        again = []
        for f, i, s in zip(files, where, fresh, strict=True):
            if s.changed:  # changed while it was read again (or gone): left out, as any such
                if self.failed is None:
                    raise s.error or FileChanged()
                uploads[i].changed, uploads[i].todo = True, []
                uploads[i].failure = vanished(s.error) if s.error is not None else None
                continue
            if s.scan != uploads[i].scan:
                log.info("%s changed since the files cache saw it; planning it again", f.path)
                uploads[i] = FileUpload(f.path, f.name, s.scan, keep_attrs=f.keep_attrs)
                uploads[i].droppable = self.failed is not None
                again.append(uploads[i])
            uploads[i].data = s.take()
        return await self._plan_batch(again) if again else []
