"""Huge files, uploaded page by page while they are scanned (issue 19 item 5).

A file is planned through ``/init-upload`` only after it is scanned whole, and one request
holds at most ``protocol.MAX_CHUNKS_PER_FILE`` chunks. A file that may be bigger than that,
or is simply big (``PAGED_BYTES``), goes through the paged upload routes instead
(``dfs.api.routes_paged``):

- a worker thread chunks and hashes the file (``PageScanner``) and hands over pages of
  chunk refs (no bytes), at most ``PAGES_AHEAD`` ahead of the sender, so memory stays
  bounded whatever the file's size: those refs, the plans of the page being sent and of
  the one being proven, and the chunk bytes of the requests in flight (``concurrency`` of
  them, a chunk or a pack of at most ``protocol.PACK_MAX_BYTES`` each, read just before
  they are sent). The first page ends at ``FIRST_PAGE_BYTES`` and each next one may be
  twice as big as the last, up to ``MAX_PAGE_BYTES`` and ``PAGE_CHUNKS`` chunks: the first chunks go
  out after a short scan instead of after a whole page of thousands of chunks (a 1 GiB file
  of 1 MiB chunks was one page, so its scan and its sends did not overlap at all), and a
  huge file still costs few pages (each is two API calls and a wait for its proof);
- each page is appended and planned (``/paged-upload/page``, around the nodes this client's
  writes just failed on: ``AvoidList.excluded``), its chunks sent exactly as a whole
  file's (``ChunkSender``: the small ones in the packs of the page's plan, one
  ``/store-chunks`` each; re-plans around failed nodes, page-scoped), then proven
  (``/paged-upload/prove``, which does not ask the failed nodes for their copies while
  enough others are live; re-sending what it finds short of copies) while the next page
  is planned and sent, and the thread scans the pages after it (hashing each chunk's id
  and the whole file on two threads, ``chunking.hashed_chunks``): the first chunk reaches
  a node long before the scan ends, and no page's sends wait for the proof of the last;
- at the end ``/paged-upload/finalize`` gives the file its size and sha256 and commits it.

Resume: the journal (``dfs.client.resume``) is keyed by the file's size, mtime, ctime, inode
and device (its sha256 is known only at the end) and records the proven pages, each with a
digest of its chunks (``page_digest``: offsets, sizes and ids); a run again skips a proven
page only when the new scan cut the same page, re-sends each other page with the receipts it
has, and finalizes the same pending file. A proven page that no longer matches (the file
changed in place where its stat does not tell, or an older client's line without a digest)
drops the journal and starts a new upload: the pending file is never finished with pages of
two versions under the new scan's sha256 (left to garbage collection instead).

A file that changes during its upload fails with ``CHANGED`` (``FileChanged``): its stat when
the upload begins (the journal's key) must still be the stat of the file the scan opens, and
of the file once the scan ends and just before the finalize. The nodes' hash check alone
would not see a change made during the scan to chunks they already hold (never sent again).

A pipeline ``for_object`` (``dfs-client sync``: the file is linked to an object next) starts
the upload with ``"for_object": true``, so the file is created marked and no lookup by
content names it, before or after its link; its journals are apart from a plain upload's
(``UploadPipeline.journal_key``), so a sync never resumes (and commits) an unmarked file.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any

from dfs import protocol
from dfs.chunking import ChunkerProfile, ChunkRef, FileScan, hashed_chunks
from dfs.client.connection import Connection
from dfs.client.early_scan import PAGED_BYTES, EarlyScan, wants_pages
from dfs.client.file_upload import FileUpload, UploadResult
from dfs.client.local_files import LocalFile, check_unchanged, open_to_read, reopen
from dfs.client.replan import Replanner
from dfs.client.resume import UploadJournal
from dfs.client.upload import FINAL, UploadPipeline
from dfs.errors import FileNotFound, Unavailable

log = logging.getLogger("dfs.client")

FIRST_PAGE_BYTES = 32 << 20
"""Where the first page ends (or at MAX_PAGE_CHUNKS chunks); the next may be twice as big."""
MAX_PAGE_BYTES = 128 << 20
"""Pages stop doubling at this size. The sender can start a page only once it is scanned
whole, so while pages doubled, each page took twice the scan of the last: wherever the scan
ran at less than twice the sending rate (an RF 2 upload on a loaded machine), the nodes
waited at every page boundary, up to ~4 s before a 512 MiB page of a 1 GiB file
(bench/README.md). Same-size pages keep the scan ahead whenever it is faster than the
sends; 128 MiB pages are still few API calls (two per page: ~16 per GiB)."""
PAGES_AHEAD = 2
"""Pages scanned ahead of the one being sent: memory ~ (PAGES_AHEAD + 3) pages of refs
(those waiting, the one being scanned, the one being sent and the one being proven)."""
PAGE_CHUNKS = 1024
"""The most chunks in a page (~1 GiB with the default chunker), below the API's
``protocol.MAX_PAGE_CHUNKS``: a page's refs, plan and sending state are the part of the
client's memory that grows with the page, ~20 MiB more at 4,096 chunks than at 256 (same
CPU; bench/README.md), while a page costs only two API calls and a wait for its proof."""


def page_digest(refs: Iterable[ChunkRef]) -> str:
    """What a proven page is journaled with: the sha256 of its chunks' offsets, sizes and
    ids, so that a resumed run skips it only when its scan cut exactly that page."""
    h = hashlib.sha256()
    for r in refs:
        h.update(f"{r.offset}:{r.size}:{r.chunk_id}\n".encode())
    return h.hexdigest()


class StaleJournal(Exception):
    """A page the journal says is proven is not the file's page now (or names no chunks)."""


class PageScanner:
    """Chunks and hashes a file in a worker thread, handing over pages of chunk refs."""

    def __init__(
        self,
        path: Path,
        profile: ChunkerProfile,
        page_chunks: int,
        first_page_bytes: int = FIRST_PAGE_BYTES,
        max_page_bytes: int = MAX_PAGE_BYTES,
        version: os.stat_result | None = None,
        early: EarlyScan | None = None,
    ) -> None:
        """``version``: the file's stat when its upload began; the scan fails with
        ``FileChanged`` unless the file it opens, and the file once scanned, is still that.
        ``early``: the scan of that version begun by the command line (claimed: its refs
        are read instead of scanning the file again)."""
        self.path = path
        self.early = early
        self.version = version
        self.profile = profile
        self.page_chunks = page_chunks
        self.first_page_bytes = first_page_bytes
        self.max_page_bytes = max(max_page_bytes, first_page_bytes)
        self.size = 0
        self._whole = early.whole if early is not None else hashlib.sha256()
        self._pages: asyncio.Queue[list[ChunkRef] | None] = asyncio.Queue(PAGES_AHEAD)
        self._loop = asyncio.get_running_loop()
        self._stop = threading.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def sha256(self) -> str:
        return self._whole.hexdigest()

    def _put(self, page: list[ChunkRef] | None) -> None:
        """Hand a page to the event loop, waiting while PAGES_AHEAD are waiting there."""
        if not self._stop.is_set():
            asyncio.run_coroutine_threadsafe(self._pages.put(page), self._loop).result()

    def _scan(self) -> None:
        """Pages of at most ``page_chunks`` chunks, the first ending at ``first_page_bytes``
        and each next at twice the bytes of the last, up to ``max_page_bytes``: a function of
        the file's chunks only, so a resumed upload cuts the same pages."""
        page: list[ChunkRef] = []
        page_bytes = 0
        page_limit = self.first_page_bytes
        try:
            for ref in self._refs():
                if self._stop.is_set():
                    return
                page.append(ref)
                self.size += ref.size
                page_bytes += ref.size
                if len(page) >= self.page_chunks or page_bytes >= page_limit:
                    self._put(page)
                    page, page_bytes = [], 0
                    page_limit = min(2 * page_limit, self.max_page_bytes)
            if page:
                self._put(page)
        finally:
            self._put(None)  # the end, or the error the task holds

    def _refs(self) -> Iterator[ChunkRef]:
        """The file's chunks: the early scan's, or cut and hashed here (``hashed_chunks``:
        the whole file's SHA-256 too), checked to be the version the upload began with."""
        if self.early is not None:
            yield from self.early.refs()  # checked there the same way
            return
        with open(self.path, "rb", buffering=4 * protocol.MIB) as f:
            self._check(f.fileno())  # the file the upload began with
            for chunk in hashed_chunks(f, self.profile, self._whole):
                yield ChunkRef(chunk.offset, len(chunk.data), chunk.chunk_id)
            self._check(f.fileno())  # and not changed while it was read

    def _check(self, fd: int) -> None:
        if self.version is not None:
            check_unchanged(fd, self.version)

    async def pages(self) -> AsyncIterator[list[ChunkRef]]:
        """The file's pages in order; raises what the scan raised."""
        self._task = asyncio.create_task(asyncio.to_thread(self._scan))
        while (page := await self._pages.get()) is not None:
            yield page
        await self._task

    async def close(self) -> None:
        """Stop the scan (drain what it waits to hand over) and wait for its thread."""
        self._stop.set()
        if self.early is not None:  # its thread may wait to hand over a ref nobody reads
            await asyncio.to_thread(self.early.stop)
        while self._task is not None and not self._task.done():
            with contextlib.suppress(asyncio.QueueEmpty):
                self._pages.get_nowait()
            await asyncio.sleep(0.01)
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task


class PageReplanner(Replanner):
    """Re-plans of one page: the page's own plan around the failed nodes."""

    def __init__(self, conn: Connection, page: PageUpload) -> None:
        super().__init__(conn, page.file_id, page.receipts)
        self.page = page
        # the page was planned around these already (PagedUpload._plan_page)
        self._excluded, self._refused = page.excluded, page.refused

    async def _ask(self, exclude: frozenset[str]) -> dict[str, Any]:
        return await self.page.plan(self.conn, sorted(exclude))


class PageUpload(FileUpload):
    """One page of a paged upload, sent as a file of its own chunks; its "finalize" is the
    page's proof."""

    def __init__(
        self, path: Path, name: str, no: int, refs: list[ChunkRef], journal: UploadJournal | None
    ) -> None:
        size = sum(r.size for r in refs)
        super().__init__(path, name, FileScan(size=size, sha256="", chunks=refs), journal)
        self.no = no
        self.offset = refs[0].offset if refs else 0
        self.excluded: frozenset[str] = frozenset()  # the nodes its plan left out
        self.refused: frozenset[str] = frozenset()  # nodes the API could not plan it around

    async def plan(self, conn: Connection, exclude: list[str] | None = None) -> dict[str, Any]:
        chunks = [{"sha256": c.chunk_id, "size": c.size} for c in self.scan.chunks]
        return await conn.api.upload_page(
            self.file_id, self.no, self.offset, chunks, dict(self.receipts), exclude or ()
        )

    def new_replanner(self, conn: Connection) -> Replanner:
        return PageReplanner(conn, self)

    async def finalize_once(self, conn: Connection) -> dict[str, Any]:
        # the nodes this client's writes just failed on are not asked for copies: a hung
        # one would hold every proof for its whole deadline (the API asks them anyway when
        # too few nodes are left without them)
        avoid = conn.avoid.excluded()
        return await conn.api.prove_page(self.file_id, self.no, self.receipts, avoid)


class PagedUpload:
    """One huge file through the paged routes; see the module docstring."""

    def __init__(
        self,
        pipeline: UploadPipeline,
        path: Path,
        name: str,
        keep_attrs: bool,
        early: EarlyScan | None = None,
    ) -> None:
        self.pipe = pipeline
        self.early = early  # the command line's scan of the file, if it began one
        self.conn = pipeline.conn
        self.path = path
        self.name = name
        self.keep_attrs = keep_attrs
        self.journal: UploadJournal | None = None
        self.file_id = ""
        self.chunks = self.new_chunks = self.sent = 0
        self.refused: frozenset[str] = frozenset()  # nodes the API could not plan pages around
        self.resumed = False  # the upload is the one its resume journal named

    async def _start(self, st: os.stat_result | None = None) -> None:
        """The pending file: the journal's (resumed), else a new one. ``st``: the file's
        stat now (the file open for the upload's), which keys the journal."""
        if st is None:
            st = await asyncio.to_thread(os.stat, self.path)
        if self.conn.resume:
            await asyncio.to_thread(UploadJournal.sweep)
            # "paged5": pages cut by FIRST_PAGE_BYTES, MAX_PAGE_BYTES and PAGE_CHUNKS, proven
            # pages journaled with their digest, keyed by the ctime and device too; a journal
            # of "paged" (pages of MAX_PAGE_CHUNKS chunks), "paged2" (growing up to
            # MAX_PAGE_CHUNKS), "paged3" (growing up to PAGE_CHUNKS) or "paged4" (keyed by
            # size, mtime and inode only: a file changed in place by ``cp -p``, ``rsync
            # --inplace -t`` or ``touch -r`` kept its key) is never resumed with these
            key = f"paged5:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}:{st.st_dev}"
            self.journal = UploadJournal.for_upload(
                self.conn.api_url,
                self.conn.token,
                self.pipe.journal_key(key),
                str(self.pipe.profile),
                self.name,
            )
            if self.journal.file_id:
                self.file_id = self.journal.file_id
                self.resumed = True
                self.pipe.named([{"file_id": self.file_id}])
                return
        body: dict[str, Any] = {"name": self.name, "chunker": str(self.pipe.profile)}
        if self.pipe.for_object:  # linked next: created marked, as /init-upload's
            body["for_object"] = True
        if self.keep_attrs:
            body.update(mode=st.st_mode & 0o7777, mtime=st.st_mtime_ns / 1_000_000_000)
        self.file_id = str((await self.conn.api.paged_upload(body))["file_id"])
        self.pipe.named([{"file_id": self.file_id}])
        if self.journal is not None:
            await asyncio.to_thread(self.journal.start, self.file_id)

    async def _send_page(self, no: int, refs: list[ChunkRef], fd: int) -> PageUpload:
        """Plan one page and send what its plan asks for."""
        page = PageUpload(self.path, self.name, no, refs, self.journal)
        page.file_id = self.file_id
        known = self.journal.receipts if self.journal is not None else {}
        # .get: the proof of the page before may drop receipts from the journal meanwhile
        mine: dict[str, str] = {
            r.chunk_id: rc for r in refs if (rc := known.get(r.chunk_id)) is not None
        }
        page.receipts = mine
        plan = await self._plan_page(page)
        page.planned(plan, mine, self.pipe.progress)
        page.fd = fd
        # the page's small chunks in the packs the API planned: a /store-chunks each
        await self.pipe.sender.send_all([page], plan.get("packs", []))
        return page

    async def _plan_page(self, page: PageUpload) -> dict[str, Any]:
        """The page's plan around the nodes this client's writes just failed on (none of its
        chunks then waits for a re-plan around them); over every live node when too few
        are left without them (the API's Unavailable, remembered for the next pages)."""
        exclude = frozenset(self.conn.avoid.excluded())
        if exclude and not exclude <= self.refused:
            try:
                plan = await page.plan(self.conn, sorted(exclude))
            except Unavailable as exc:
                log.warning("cannot plan page %d around %s: %s", page.no, sorted(exclude), exc)
                self.refused = page.refused = exclude
            else:
                page.excluded = exclude
                return plan
        page.refused = self.refused
        return await page.plan(self.conn)

    async def _prove(self, page: PageUpload) -> None:
        """Prove a sent page (re-sending what the proof finds short) and journal it."""
        await self.pipe.sender.finalize(page)
        if self.journal is not None:
            refs = page.scan.chunks
            digest = page_digest(refs)
            chunk_ids = [r.chunk_id for r in refs]
            await asyncio.to_thread(self.journal.page_proven, page.no, digest, chunk_ids)
        self.new_chunks += len(page.todo)
        self.sent += page.sent

    async def _pages(self, scanner: PageScanner, fd: int) -> None:
        """Send every page not proven yet, proving page n while page n+1 is planned and
        sent: the proof (the API checks every chunk's copies) does not stall the sends.
        One proof at a time, in page order."""
        proving: asyncio.Task[None] | None = None
        proven = self.journal.pages if self.journal is not None else {}
        try:
            no = 0
            async for refs in scanner.pages():
                self.chunks += len(refs)
                if no not in proven:
                    page = await self._send_page(no, refs, fd)
                    if proving is not None:
                        await proving
                    proving = asyncio.create_task(self._prove(page))
                elif proven[no] != page_digest(refs):  # None (an older client's) never is
                    await self._stale(no)
                elif self.pipe.progress:
                    self.pipe.progress(sum(r.size for r in refs))
                no += 1
            if proving is not None:
                await proving
        finally:  # after an error: stop the proof, and take its own error if it had one
            if proving is not None:
                proving.cancel()
                await asyncio.gather(proving, return_exceptions=True)

    async def _stale(self, no: int) -> None:
        """Page ``no`` of the file is not the page its journal has proven: the journal goes
        and ``StaleJournal`` starts a new upload (``run``)."""
        log.info(
            "%s: page %d is not the one upload %s proved (the file changed); starting afresh",
            self.path,
            no,
            self.file_id,
        )
        if self.journal is not None:
            await asyncio.to_thread(self.journal.finish)
        raise StaleJournal(no)

    async def run(self) -> UploadResult:
        try:
            return await self._run()
        except (FileNotFound, StaleJournal):
            if not self.resumed:
                raise
            # the upload its journal named is gone (collected, or deleted complete as a
            # killed run's unlinked file: ``dfs.client.link_journal``), or the file is not
            # the one it proved pages of; the journal was finished with the error, so this
            # run starts afresh, once
            log.info("paged upload %s not resumed; starting afresh", self.file_id)
            self.chunks = self.new_chunks = self.sent = 0
            return await self._run()

    async def _run(self) -> UploadResult:
        self.resumed = False
        # gone since it was listed: FileChanged, reported by a pipeline that goes on
        fd = await asyncio.to_thread(reopen, open_to_read, self.path, self.pipe.failed is not None)
        try:
            return await self._upload(fd, os.fstat(fd))
        finally:
            os.close(fd)
            if self.journal is not None:  # kept on disk (resume), its handle let go
                self.journal.close()

    async def _upload(self, fd: int, st: os.stat_result) -> UploadResult:
        """The upload of the file open at ``fd``, whose stat was ``st`` when it began."""
        started = time.monotonic()
        await self._start(st)
        early, self.early = self.early, None  # read once: a second run scans for itself
        if early is not None and not await asyncio.to_thread(early.claim, st, self.pipe.profile):
            early = None  # another version of the file, or another chunker
        scanner = PageScanner(self.path, self.pipe.profile, PAGE_CHUNKS, version=st, early=early)
        try:
            await self._pages(scanner, fd)
            await asyncio.to_thread(check_unchanged, fd, st)  # still the version scanned
            done = await self.conn.api.finalize_paged(self.file_id, scanner.size, scanner.sha256)
        except FINAL:
            if self.journal is not None:  # nothing can resume this upload
                await asyncio.to_thread(self.journal.finish)
            raise
        finally:
            await scanner.close()
        if self.journal is not None:
            await asyncio.to_thread(self.journal.finish)
        return UploadResult(
            file_id=str(done["file_id"]),
            name=str(done["name"]),
            size=int(done["size"]),
            sha256=str(done["sha256"]),
            chunks=self.chunks,
            new_chunks=self.new_chunks,
            bytes_sent=self.sent,
            seconds=time.monotonic() - started,
        )


class StreamingUploadPipeline(UploadPipeline):
    """``UploadPipeline`` that sends huge files page by page (``wants_pages``)."""

    paged_bytes = PAGED_BYTES
    early_scan: EarlyScan | None = None
    """A scan the command line began before the library loaded (``dfs.client.early_scan``):
    given to the paged upload of the first file, which reads it if it scanned that file."""

    async def upload_file(
        self, path: Path, name: str, *, keep_attrs: bool = True, listed: LocalFile | None = None
    ) -> UploadResult:
        size = (await asyncio.to_thread(reopen, os.stat, path, self.failed is not None)).st_size
        if wants_pages(size, self.profile, self.paged_bytes):
            # not remembered: a file of pages has more chunks than the files cache keeps
            early, self.early_scan = self.early_scan, None
            return await PagedUpload(self, path, name, keep_attrs, early).run()
        return await super().upload_file(path, name, keep_attrs=keep_attrs, listed=listed)
