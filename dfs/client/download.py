"""The download pipeline: plan, fetch in a window, verify, write, commit; one file or many.

One file (``DownloadPipeline.download_file``): fetch its chunks in parallel within a window
of ``concurrency`` pieces, in order (``_pieces``: a run of consecutive chunks under
``RUN_CHUNK_MAX`` in one ``/get-chunks`` request, so that a file of 100,000 tiny chunks pays
no round trip per chunk, or one bigger chunk alone; ``dfs.client.chunk_fetch``: a replica
that fails or returns bad bytes is skipped for the next one, then for the API proxy, and a
slow one is hedged), write them into a temp file beside the target (``PartFile``: a run in
one write), check the whole-file sha256, fsync and rename. Small chunks are verified as they
arrive; a big chunk only by the whole-file sha256 (``deferred``), and when that does not
match, the chunks that were wrong are found on disk and fetched again, verified
(``dfs.client.part_mend``), before the file is named. To standard output every chunk is
verified before it is written.
Memory is bounded by ``concurrency`` pieces (runs of at most ``RUN_BYTES``), or
``concurrency * SLOT_BYTES`` when more pieces than that are in flight; and across all the
files one pipeline downloads at once by one ``ByteBudget`` (``concurrency * WINDOW_BYTES``):
a file adds a piece to its window only while the pieces fetched ahead by all
of them fit, or while its own window is empty. So ``concurrency`` big files at once (twice
that while two batches overlap) hold the budget plus a piece each, not ``concurrency``
windows of ``concurrency`` pieces; and no file ever waits for another's bytes, only for its
own first piece, so the budget cannot deadlock.

Many files (``download_files``): ``/download-plans`` for up to ``BATCH_FILES`` files per
request instead of a round trip each (``dfs.client.plans``), pipelined: the next batch's
plans are fetched while this batch transfers and the one before finishes. In a batch,
files up to ``SMALL_FILE`` have no round trip of their own (``_read_small``): their chunks
come in ``/get-chunks`` batches per node (``dfs.client.batch_read``: verified as they
arrive, with fail-over and hedging) and the files are written in groups
(``dfs.client.file_writer``: temp names, one sync, renames) by one ``GroupWriter`` for the
whole download, so no batch waits for the writes, syncs and renames of another, only for
the read bytes waiting in memory to fall under ``WRITE_BEHIND_BYTES``. Bigger files go
``concurrency`` at once, each through the one-file pipeline.

Resume (``dfs.client.resume``): with ``resume`` the temp file has a fixed name and a sidecar
of the chunks written, both kept when a download is interrupted; the next run re-verifies
those chunks and fetches only the rest (a small file of a group is fetched whole again).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dfs import protocol
from dfs.client.batch_read import BATCH_CHUNKS, BatchReader
from dfs.client.chunk_fetch import ChunkFetcher
from dfs.client.connection import Connection, ProgressFn
from dfs.client.file_names import Overwrite
from dfs.client.file_writer import GroupWriter, SmallFile, small_groups
from dfs.client.local_files import local_path
from dfs.client.part_file import STDOUT, PartFile, Pieces, StdoutPart
from dfs.client.part_mend import mend
from dfs.client.plans import PlanAhead, laid_out, retimed
from dfs.client.target_dirs import TargetDirs

log = logging.getLogger("dfs.client")

BATCH_FILES = 500
"""Files per ``/download-plans`` request. 1,000 (the API's limit) was tried at stop 59:
restores of 7,733 files no faster in three alternating runs (+4%, -2%, -5%;
bench/README.md)."""
SMALL_FILE = protocol.BATCHED_FILE_MAX
"""Files up to this size are restored together (batched reads)."""
WRITE_BEHIND_BYTES = 16 * 1024 * 1024
"""Bytes of read small files a restore lets wait for the writer before it reads more."""
RUN_CHUNK_MAX = 256 * 1024
"""Chunks of one file smaller than this are fetched in runs (``/get-chunks``), not alone."""
RUN_BYTES = 1024 * 1024
"""Bytes of one run at most (and BATCH_CHUNKS chunks): the window holds ``concurrency``."""
SLOT_BYTES = 4 * 1024 * 1024
"""A file's window holds ``concurrency`` pieces, up to twice as many while they add up to
less than ``concurrency * SLOT_BYTES``: the memory of ``concurrency`` of the largest chunks,
twice the reads in flight for average ones (~6% faster for 1 GiB: bench/README.md)."""
WINDOW_BYTES = max(2 * SLOT_BYTES, protocol.MAX_CHUNK_SIZE)
"""All the windows of one download together hold ``concurrency * WINDOW_BYTES`` (and a piece
per file beyond it): one file's whole window twice over, or ``concurrency`` of the largest
chunks any profile cuts, so that one file alone is never held back by it."""


@dataclass(frozen=True)
class DownloadResult:
    file_id: str
    name: str
    path: str
    size: int
    sha256: str
    chunks: int
    failovers: int
    seconds: float
    hedges: int = 0  # reads that also asked a second replica because the first was slow


class ByteBudget:
    """Bytes of the pieces fetched ahead and not yet written, across all of a download's
    files (see the module's docstring); ``peak``: the most it held."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.peak = 0

    def fits(self, size: int) -> bool:
        return self.used + size <= self.limit

    def take(self, size: int) -> None:
        self.used += size
        self.peak = max(self.peak, self.used)

    def give(self, size: int) -> None:
        self.used -= size


Piece = tuple[list[dict[str, Any]], bool]  # chunks in file order; a run (or one chunk alone)
# pieces, their planned bytes and their fetches
Window = collections.deque[tuple[Piece, int, asyncio.Task[Pieces]]]


class DownloadPipeline:
    """Download files through plan, windowed fetch, write and commit; see the docstring."""

    def __init__(
        self, conn: Connection, progress: ProgressFn | None, window_bytes: int | None = None
    ) -> None:
        self.conn = conn
        self.progress = progress
        # the pieces fetched ahead by all the files at once (``window_bytes``: another limit)
        limit = conn.concurrency * WINDOW_BYTES
        self.budget = ByteBudget(limit if window_bytes is None else window_bytes)
        self.overwrite: Overwrite = conn.overwrite  # a bucket restore's asks per target
        # a target's mtime where it is not its file's (a bucket restore: the object's
        # mtime metadata), set on the file before it gets its name (``plans.retimed``)
        self.mtimes: Mapping[Path, float] = {}
        self.root: Path | None = None  # where the targets are (``dfs.client.target_dirs``)
        # verified chunk bytes read before the download started (``dfs.client.early_reads``),
        # by chunk id: each taken by the first small file that needs it, the rest dropped
        self._ready: dict[str, bytes] = {}

    async def download_files(
        self,
        files: Sequence[tuple[str, Path]],
        plans: Mapping[str, dict[str, Any]] | None = None,
        chunks: dict[str, bytes] | None = None,
    ) -> list[DownloadResult]:
        """Download (file_id, target path) pairs in batches of BATCH_FILES, pipelined: the
        plans of the next batch are asked for while this one transfers, and the small files
        of every batch go to one ``GroupWriter``, so a batch's transfer never waits for the
        writes, syncs and renames of the ones before (only for their bytes to leave memory,
        ``WRITE_BEHIND_BYTES``). ``plans`` the caller already holds (by file id) are not
        asked for again, nor small files' ``chunks`` (verified bytes by chunk id; taken)."""
        self._ready = chunks if chunks is not None else {}
        parts = [list(files[i : i + BATCH_FILES]) for i in range(0, len(files), BATCH_FILES)]
        ahead = PlanAhead(self.conn, parts, plans or {})
        done: dict[int, DownloadResult] = {}
        writer = GroupWriter(self.overwrite, self.conn.resume, self._written(done), self.root)
        out: list[DownloadResult | SmallFile] = []
        running: list[asyncio.Task[list[DownloadResult | SmallFile]]] = []  # at most two
        try:
            for n, part in enumerate(parts):
                batch = await ahead.take(n)
                running.append(asyncio.create_task(self._download_batch(part, batch, writer)))
                if len(running) > 1:
                    out += await running.pop(0)
            if running:
                out += await running.pop(0)
        except BaseException:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            await writer.abandon()  # what was written is verified: committed
            raise
        finally:
            self._ready = {}
            await ahead.close()
        await writer.close()
        return [done[id(r)] if isinstance(r, SmallFile) else r for r in out]

    def _written(self, done: dict[int, DownloadResult]) -> Callable[[SmallFile], None]:
        """What a ``GroupWriter`` calls for each small file renamed into place."""

        def written(f: SmallFile) -> None:
            done[id(f)] = _result(f)
            if self.progress:
                self.progress(f.size)

        return written

    async def _download_batch(
        self,
        part: list[tuple[str, Path]],
        plans: Mapping[str, dict[str, Any]],
        writer: GroupWriter,
    ) -> list[DownloadResult | SmallFile]:
        """One batch: its small files read together and handed to ``writer``
        (``_read_small``), the others ``concurrency`` at a time each through
        ``download_file``; in order, a small file standing for its result until ``writer``
        has renamed it into place."""
        results: dict[int, DownloadResult | SmallFile] = {}
        part, plans = retimed(part, plans, self.mtimes)
        small = [
            (n, plans[f], target)
            for n, (f, target) in enumerate(part)
            if not self.conn.proxy and int(plans[f]["size"]) <= SMALL_FILE
        ]
        sem = asyncio.Semaphore(self.conn.concurrency)

        async def one(n: int, plan: dict[str, Any], target: Path) -> None:
            async with sem:
                # exact: a directory (or a link to one) at the target is no place to write
                # into; the caller has looked at what stands there (local_files.existing)
                results[n] = await self.download_file(
                    str(plan["file_id"]), target, plan=plan, exact=True
                )

        async def smalls() -> None:
            for group in small_groups(small):
                await writer.drain(WRITE_BEHIND_BYTES)
                read = await self._read_small([(p, t) for _n, p, t in group], writer)
                results.update(zip((n for n, _p, _t in group), read, strict=True))

        batched = {n for n, _p, _t in small}
        large = [one(n, plans[f], t) for n, (f, t) in enumerate(part) if n not in batched]
        await asyncio.gather(smalls(), *large)
        return [results[n] for n in range(len(part))]

    async def restore_small(
        self, items: Sequence[tuple[dict[str, Any], Path]]
    ) -> list[DownloadResult]:
        """Small files (plan, target) together: their chunks in /get-chunks batches per node
        (``BatchReader``), each file written once all its chunks are here, in groups
        (``GroupWriter``: temp names, one sync, renames)."""
        done: dict[int, DownloadResult] = {}
        writer = GroupWriter(self.overwrite, self.conn.resume, self._written(done), self.root)
        try:
            files = await self._read_small(items, writer)
        except BaseException:
            await writer.abandon()
            raise
        await writer.close()
        return [done[id(f)] for f in files]

    async def _read_small(
        self, items: Sequence[tuple[dict[str, Any], Path]], writer: GroupWriter
    ) -> list[SmallFile]:
        """Read the chunks of small files (plan, target), each file handed to ``writer``
        once all its chunks are here and verified."""
        files = [SmallFile(plan, target) for plan, target in items]
        need: dict[str, list[tuple[SmallFile, int]]] = {}
        chunks: dict[str, dict[str, Any]] = {}
        for f in files:
            for pos, c in enumerate(f.plan["chunks"]):
                need.setdefault(str(c["sha256"]), []).append((f, pos))
                chunks.setdefault(str(c["sha256"]), c)

        def deliver(chunk: dict[str, Any], data: bytes, failed: int) -> None:
            for f, pos in need.pop(str(chunk["sha256"])):
                f.parts[pos] = data
                f.failovers += failed
                f.missing -= 1
                if not f.missing:
                    writer.add(f)

        for f in files:
            if not f.missing:
                writer.add(f)
        for chunk_id in [c for c in chunks if c in self._ready]:
            deliver(chunks.pop(chunk_id), self._ready.pop(chunk_id), 0)
        await BatchReader(self.conn, deliver).read(list(chunks.values()))
        return files

    async def download_file(
        self, file_id: str, out: Path, *, plan: dict[str, Any] | None = None, exact: bool = False
    ) -> DownloadResult:
        """One file to ``out`` (a directory: under its stored name there, unless ``exact``:
        then ``out`` is the target, whatever stands there)."""
        started = time.monotonic()
        plan = laid_out(plan or await self.conn.api.download_plan(file_id), file_id)
        target = out
        if not exact and await asyncio.to_thread(target.is_dir):
            target = local_path(target, str(plan["name"]))
        # into a temp file, big chunks are checked by the whole-file sha256 (``part_mend``);
        # to standard output each chunk is checked before it is written, as it cannot be undone
        deferred = out != STDOUT
        fetcher = ChunkFetcher(self.conn, deferred=deferred)
        if out == STDOUT:
            part: PartFile = StdoutPart()
        else:  # its folder, made and opened from root (``dfs.client.target_dirs``)
            folder = await TargetDirs(self.root).open_async(str(target.parent))
            part = PartFile(target, file_id, self.conn.resume, folder)
        await self._to_part(plan, fetcher, part, deferred)  # its folder closed if it fails
        await part.commit(target, file_id, str(plan["sha256"]), self.overwrite)
        return DownloadResult(
            file_id=file_id,
            name=str(plan["name"]),
            path=str(target),
            size=int(plan["size"]),
            sha256=str(plan["sha256"]),
            chunks=len(plan["chunks"]),
            failovers=fetcher.failovers,
            seconds=time.monotonic() - started,
            hedges=fetcher.hedges,
        )

    async def _to_part(
        self, plan: dict[str, Any], fetcher: ChunkFetcher, part: PartFile, deferred: bool
    ) -> None:
        """The file's bytes into ``part``, checked whole (mended where they were not),
        with its size, mode and mtime, durable; ``part`` abandoned on a failure."""
        await part.open()
        try:
            try:
                await self._fetch_in_order(plan["chunks"], fetcher, part)
            finally:
                await part.settle()
            if deferred and part.whole.hexdigest() != plan["sha256"]:
                mending = ChunkFetcher(self.conn)
                what = f"file {plan['file_id']}"
                part.whole = await mend(part.fd, plan["chunks"], mending, what)
                fetcher.failovers += mending.failovers
            await part.end(int(plan["size"]), plan)  # after any mend: its mtime is the last
            await part.fsync()
        except BaseException:
            part.abandon()
            raise

    async def _fetch_in_order(
        self, chunks: list[dict[str, Any]], fetcher: ChunkFetcher, part: PartFile
    ) -> None:
        """Fetch pieces ahead (``_pieces``: a run of small chunks, or one chunk): up to
        ``concurrency``, and up to twice as many within ``concurrency * SLOT_BYTES``, while
        the download's ``budget`` has room or the window is empty; write them in file order."""
        window: Window = collections.deque()
        most, own = self.conn.concurrency, self.conn.concurrency * SLOT_BYTES
        held = 0  # bytes of the pieces in this file's window
        try:
            for piece in _pieces(chunks, batched=not self.conn.proxy):
                size = sum(int(c["size"]) for c in piece[0])
                while window and (
                    len(window) >= 2 * most
                    or (len(window) >= most and held + size > own)
                    or not self.budget.fits(size)
                ):
                    held -= await self._write_first(window, part)
                fetch = asyncio.create_task(_piece_bytes(piece, fetcher, part))
                window.append((piece, size, fetch))
                self.budget.take(size)
                held += size
            while window:
                await self._write_first(window, part)
        finally:
            self.budget.give(sum(size for _p, size, _t in window))
            for _piece, _size, task in window:
                task.cancel()
            if window:
                await asyncio.gather(*(t for _p, _s, t in window), return_exceptions=True)

    async def _write_first(self, window: Window, part: PartFile) -> int:
        """Write the window's first piece when it has arrived; returns its planned bytes,
        given back to the budget as it leaves the window."""
        (chunks, run), size, task = window[0]
        data = await task
        window.popleft()
        self.budget.give(size)
        offsets = [int(c["offset"]) for c in chunks] if run else []
        await part.write(int(chunks[0]["offset"]), data, offsets)
        if self.progress:
            self.progress(sum(len(p) for p in data))
        return size


def _pieces(chunks: Sequence[dict[str, Any]], batched: bool) -> Iterator[Piece]:
    """A file's chunks in the pieces its download fetches: runs of consecutive chunks under
    RUN_CHUNK_MAX (one ``/get-chunks`` request each, up to BATCH_CHUNKS and RUN_BYTES), and
    each bigger chunk alone (streamed, hedged on its own); without ``batched``, all alone."""
    run: list[dict[str, Any]] = []
    size = 0
    for chunk in chunks:
        n = int(chunk["size"])
        if run and (n >= RUN_CHUNK_MAX or len(run) >= BATCH_CHUNKS or size + n > RUN_BYTES):
            yield run, True
            run, size = [], 0
        if not batched or n >= RUN_CHUNK_MAX:
            yield [chunk], False
            continue
        run.append(chunk)
        size += n
    if run:
        yield run, True


async def _piece_bytes(piece: Piece, fetcher: ChunkFetcher, part: PartFile) -> Pieces:
    """A piece's verified bytes: what an earlier run left on disk (resume), the rest fetched
    (a chunk alone in the pieces it arrived in)."""
    chunks, run = piece
    if not run:
        local = await part.written_before(chunks[0])
        return [local] if local is not None else await fetcher.fetch(chunks[0])
    have = [await part.written_before(c) for c in chunks]  # reads the disk only to resume
    need = [c for c, data in zip(chunks, have, strict=True) if data is None]
    got = await fetcher.fetch_run(need) if need else {}
    return [
        data if data is not None else got[str(c["sha256"])]
        for c, data in zip(chunks, have, strict=True)
    ]


def _result(f: SmallFile) -> DownloadResult:
    plan = f.plan
    return DownloadResult(
        file_id=str(plan["file_id"]),
        name=str(plan["name"]),
        path=str(f.target),
        size=f.size,
        sha256=str(plan["sha256"]),
        chunks=len(plan["chunks"]),
        failovers=f.failovers,
        seconds=time.monotonic() - f.started,
    )
