"""One file's way through the upload pipeline (``FileUpload``), what it ends with
(``UploadResult``) and the packs its chunks travel in (``Pack``, ``planned_packs``); the
pipeline that drives them is ``dfs.client.upload``.

A chunk's bytes come from one of three places, cheapest first: the file's bytes held in
memory since its scan (a small file of a batch, read once: ``dfs.client.batch_scan``), a
slice of the file held open for the whole upload (sent with ``sendfile``), or the file
opened and read again just before the send. Bytes held since the scan are the bytes that
were hashed, so what is stored is one version of the file even if it changes afterwards;
bytes read again are checked by the node against the scan's chunk id (a file that changed
fails with ``CHANGED`` instead of storing a mix of versions).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dfs import protocol
from dfs.chunking import FileScan
from dfs.client.batch_scan import upload_entry
from dfs.client.connection import Connection, ProgressFn
from dfs.client.local_files import GONE, open_to_read, read_chunk, vanished
from dfs.client.replan import Replanner
from dfs.client.resume import UploadJournal
from dfs.errors import FileChanged
from dfs.transport.http import FileSlice


@dataclass(frozen=True)
class UploadResult:
    file_id: str
    name: str
    size: int
    sha256: str
    chunks: int
    new_chunks: int
    bytes_sent: int
    seconds: float


class FileUpload:
    """One file's way through the pipeline: its scan, its plan, the receipts and bytes sent."""

    def __init__(
        self,
        path: Path,
        name: str,
        scan: FileScan,
        journal: UploadJournal | None = None,
        keep_attrs: bool = True,
        st: os.stat_result | None = None,  # as listed, for init_body (None: stat it then)
        data: bytes | None = None,  # the file's bytes the scan hashed, when it kept them
    ) -> None:
        self.path = path
        self.keep_attrs = keep_attrs
        self.st = st
        self.name = name
        self.scan = scan
        self.journal = journal
        self.file_id = ""
        self.todo: list[dict[str, Any]] = []  # the plan's chunks to send, with their targets
        self.receipts: dict[str, str] = {}
        self.committed: dict[str, Any] | None = None
        self.sent = 0
        # changed while it was read or sent (``FileChanged``): nothing more of it is sent and
        # its batch leaves it out; only a file ``droppable`` (its pipeline reports such files
        # and goes on) is marked so, any other fails its upload
        self.changed = False
        self.droppable = False
        self.failure: FileChanged | None = None  # why, when not the usual ``FileChanged()``
        # open for the whole upload of a file sent alone; a batch opens a file per read,
        # since holding hundreds of files open could run out of descriptors
        self.fd: int | None = None
        # a small file's bytes, held from its scan until its chunks are sent (then dropped)
        self.data = data
        self._offsets: dict[str, int] = {}
        for c in scan.chunks:
            self._offsets.setdefault(c.chunk_id, c.offset)  # one read serves repeated chunks

    def init_body(self, chunker: str, for_object: bool = False) -> dict[str, Any]:
        """The body ``/init-upload`` takes (``batch_scan.upload_entry``), with the file's
        mode and mtime unless ``keep_attrs`` is off (its stat as listed, else as it is now)."""
        st = self.st
        if self.keep_attrs and st is None:
            try:
                st = os.stat(self.path)
            except OSError:  # gone since the scan: reading its chunks will say so
                st = None
        return upload_entry(
            self.name, self.scan, chunker, st if self.keep_attrs else None, for_object
        )

    def planned(
        self, plan: dict[str, Any], receipts: dict[str, str], progress: ProgressFn | None
    ) -> None:
        """Take the API's plan; the chunks it does not ask for count as done at once."""
        self.file_id = str(plan["file_id"])
        self.todo = plan["upload"]
        self.receipts = dict(receipts)
        # committed by the plan itself (nothing to send): the plan is only the file's id and
        # state, so what finalize would answer is made of what this upload sent
        self.committed = None
        if plan.get("state") == "complete" and not self.todo:
            self.committed = {
                "file_id": self.file_id,
                "name": self.name,
                "size": self.scan.size,
                "sha256": self.scan.sha256,
                "state": "complete",
            }
        if progress:
            progress(self.scan.size - sum(int(i["size"]) for i in self.todo))

    def new_replanner(self, conn: Connection) -> Replanner:
        """How a send of this upload asks for a plan around failed nodes."""
        return Replanner(conn, self.file_id, self.receipts)

    async def finalize_once(self, conn: Connection) -> dict[str, Any]:
        """Finalize this upload once (409 ``incomplete_upload`` when chunks are short)."""
        excluded = conn.avoid.excluded()  # a hung node would hold the answer
        return await conn.api.finalize_upload(self.file_id, self.receipts, excluded)

    def held(self, chunk_id: str, size: int) -> bytes | None:
        """The chunk's bytes from those the scan hashed and kept (no read), or None."""
        data = self.data
        if data is None:
            return None
        offset = self._offsets[chunk_id]
        if offset == 0 and size == len(data):  # the usual small file: one chunk, no copy
            return data
        return data[offset : offset + size]

    def body(self, chunk_id: str, size: int) -> bytes | FileSlice | None:
        """The chunk from the bytes held since the scan, else as a slice of the file held
        open for this upload (sent with sendfile); None when neither (read it instead)."""
        held = self.held(chunk_id, size)
        if held is not None:
            return held
        return None if self.fd is None else FileSlice(self.fd, self._offsets[chunk_id], size)

    def read(self, chunk_id: str, size: int) -> bytes:
        """The chunk's bytes: held since the scan, else as they are now (see
        ``read_chunk``); blocking."""
        held = self.held(chunk_id, size)
        if held is not None:
            return held
        if self.fd is not None:
            return read_chunk(self.fd, self._offsets[chunk_id], size)
        try:
            fd = open_to_read(self.path)
        except GONE as exc:  # removed or made unreadable since its scan: it changed
            raise vanished(exc) from None
        try:
            return read_chunk(fd, self._offsets[chunk_id], size)
        finally:
            os.close(fd)

    def sent_chunk(
        self, chunk_id: str, receipt: str, size: int, progress: ProgressFn | None
    ) -> None:
        self.receipts[chunk_id] = receipt
        if self.journal is not None:
            self.journal.add(chunk_id, receipt)
        self.sent += size
        if progress:
            progress(size)

    def result(self, done: dict[str, Any], seconds: float) -> UploadResult:
        return UploadResult(
            file_id=str(done["file_id"]),
            name=str(done["name"]),
            size=int(done["size"]),
            sha256=str(done["sha256"]),
            chunks=len(self.scan.chunks),
            new_chunks=len(self.todo),
            bytes_sent=self.sent,
            seconds=seconds,
        )


Work = tuple[FileUpload, dict[str, Any]]  # a chunk to send: its file and its plan entry


@dataclass
class Pack:
    """One ``/store-chunks`` request the API planned: its chunks, their targets (the first is
    the primary) and the one capability the primary checks before reading the body."""

    work: list[Work]
    targets: list[dict[str, Any]]
    cap: str

    async def body(self, entries: list[dict[str, Any]]) -> list[bytes | FileSlice]:
        """The /store-chunks body as parts: the chunks held in memory since their scan, or
        slices of their files held open (sent with sendfile); the others read in a thread
        (a batch's files whose bytes were not kept)."""
        work = [(u, str(it["sha256"]), int(it["size"])) for u, it in self.work]
        parts = [u.body(c, n) for u, c, n in work]
        missing = [i for i, p in enumerate(parts) if p is None]
        if missing:
            read = await asyncio.to_thread(
                lambda: [work[i][0].read(work[i][1], work[i][2]) for i in missing]
            )
            for i, data in zip(missing, read, strict=True):
                parts[i] = data
        return [protocol.pack_index(entries, [n for _, _, n in work]), *_present(parts)]


def planned_packs(
    uploads: Sequence[FileUpload], plan: Sequence[dict[str, Any]]
) -> tuple[list[Pack], list[Work]]:
    """The API's packs (``ApiClient.plan_uploads``) as work, and the rest of the uploads'
    chunks to send one by one; a pack naming a chunk no plan asks for is sent chunk by chunk."""
    todo: dict[tuple[str, str], Work] = {}
    for u in uploads:
        for item in u.todo:
            todo.setdefault((u.file_id, str(item["sha256"])), (u, item))
    out: list[Pack] = []
    for p in plan:
        keys = [(str(c["file_id"]), str(c["sha256"])) for c in p["chunks"]]
        if keys and all(k in todo for k in keys):
            out.append(Pack([todo[k] for k in keys], p["targets"], str(p["cap"])))
    packed = {id(w[1]) for pk in out for w in pk.work}
    rest = [(u, item) for u in uploads for item in u.todo if id(item) not in packed]
    return out, rest


def _present(parts: list[bytes | FileSlice | None]) -> list[bytes | FileSlice]:
    out = [p for p in parts if p is not None]
    assert len(out) == len(parts)
    return out
