"""The upload pipeline's send step (``ChunkSender``): a batch's packs and the chunks sent one
by one, re-planned around the nodes that fail, and finalize's rounds for what it finds
short of copies. Kept apart from ``dfs.client.upload``, which drives it for every file."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from dfs import protocol
from dfs.client.connection import Connection, ProgressFn
from dfs.client.file_upload import FileUpload, Pack, Work, planned_packs
from dfs.client.replan import Replanner, blame_forwards, send_chunk, send_replanning
from dfs.errors import FileChanged, IncompleteUpload, IntegrityError, ReplicationError, Unavailable
from dfs.transport.http import FileSlice

FINALIZE_ROUNDS = 3  # finalizes of one upload, each after re-sending what was short of copies

log = logging.getLogger("dfs.client")


class ChunkSender:
    """The send step: the planned chunks of some files, ``concurrency`` requests at a time.

    A write that fails blames its nodes and is sent again with a plan around them (one
    ``Replanner`` per upload, holding its receipts until it is finalized: ``forget``);
    finalize's 409 ``incomplete_upload`` (a node holding copies died after it acknowledged
    them) re-plans, sends the chunks short of copies again and finalizes again, up to
    FINALIZE_ROUNDS times. Proxied chunks: ``concurrency`` over all its sends (body slots).
    """

    def __init__(self, conn: Connection, progress: ProgressFn | None) -> None:
        self.conn = conn
        self.progress = progress
        self._replanners: dict[str, Replanner] = {}
        self._proxied = asyncio.Semaphore(conn.concurrency)  # proxied sends, every send_all

    def replanner(self, upload: FileUpload) -> Replanner:
        found = self._replanners.get(upload.file_id)
        if found is None or found.receipts is not upload.receipts:
            found = upload.new_replanner(self.conn)
            self._replanners[upload.file_id] = found
        return found

    def forget(self, uploads: Iterable[FileUpload]) -> None:
        """Drop the replanners of uploads done with; only their own (the next page of a
        paged file, or another upload of the same content, may be sending still)."""
        for u in uploads:
            found = self._replanners.get(u.file_id)
            if found is not None and found.receipts is u.receipts:
                del self._replanners[u.file_id]

    async def send_all(
        self, uploads: Sequence[FileUpload], packs: Sequence[dict[str, Any]] = ()
    ) -> None:
        """Send every chunk the plans ask for: the API's ``packs`` first (unless through the
        API proxy), one /store-chunks request each, then the rest chunk by chunk."""
        planned, rest = planned_packs(uploads, () if self.conn.proxy else packs)
        if planned:
            await self.conn.run_bounded(self.send_pack, planned)
        await self.conn.run_bounded(self.send_one, rest)

    async def send_one(self, work: Work) -> None:
        upload, item = work
        chunk_id, size = str(item["sha256"]), int(item["size"])
        if upload.changed:  # dropped from its batch already: nothing more of it goes
            return
        conn = self.conn  # below: a file held open is sent from the page cache (sendfile)
        data = upload.held(chunk_id, size) if conn.proxy else upload.body(chunk_id, size)
        try:
            if data is None:
                data = await asyncio.to_thread(upload.read, chunk_id, size)
            if isinstance(data, FileSlice) or not conn.proxy:
                receipt = await send_replanning(conn, self.replanner(upload), data, item)
            else:
                async with self._proxied:  # a big file's and a batch's sends together
                    receipt = await send_chunk(conn, upload.file_id, chunk_id, data, item)
        except IntegrityError as exc:
            # the node (or the API proxy) found that these bytes no longer hash to the id
            # scanned before the plan, or the read found the file shorter or gone: changed
            changed = exc if isinstance(exc, FileChanged) else FileChanged()
            if not upload.droppable:
                raise changed from None
            upload.changed = True  # its batch leaves it out (UploadPipeline.upload_batch)
            upload.failure = changed
            return
        if receipt is None:  # a re-plan found it proven and held already
            if self.progress:
                self.progress(size)
            return
        upload.sent_chunk(chunk_id, receipt, size, self.progress)

    async def send_pack(self, pack: Pack) -> None:
        first = pack.targets
        if {str(t["node_id"]) for t in first} & self.conn.avoid.excluded():
            # a node of this pack just failed the client: chunk by chunk, re-planned around it
            await self.conn.run_bounded(self.send_one, pack.work)
            return
        entries = [{"chunk_id": it["sha256"], "file_id": u.file_id} for u, it in pack.work]
        try:
            body = await pack.body(entries)
        except IntegrityError:  # a file got shorter: chunk by chunk, each file on its own
            await self.conn.run_bounded(self.send_one, pack.work)
            return
        headers = protocol.batch_headers(
            pack.cap, [str(e["chunk_id"]) for e in entries], [u.file_id for u, _ in pack.work]
        )
        write = self.conn.nodes.store_chunks(
            str(first[0]["url"]),
            body,
            headers,
            forward=protocol.forward_header([(t["node_id"], t["url"]) for t in first[1:]]),
        )
        try:
            # given up at once when another write to one of its nodes fails (AvoidList.guard)
            answers = await self.conn.avoid.guard([str(t["node_id"]) for t in first], write)
        except (Unavailable, ReplicationError, IntegrityError) as exc:
            if isinstance(exc, Unavailable) and exc.overtaken_by is None:
                self.conn.avoid.failed(str(first[0]["node_id"]))
            elif isinstance(exc, ReplicationError):
                blame_forwards(self.conn.avoid, [str(t["node_id"]) for t in first[1:]])
            # chunk by chunk, with the usual retries, re-plans and error for a file that
            # changed while it was being uploaded
            await self.conn.run_bounded(self.send_one, pack.work)
            return
        for (u, it), answer in zip(pack.work, answers, strict=True):
            u.sent_chunk(str(it["sha256"]), str(answer["receipt"]), int(it["size"]), self.progress)

    async def finalize(self, upload: FileUpload) -> dict[str, Any]:
        """Finalize one upload, re-sending what finalize finds short of copies."""
        try:
            for round_ in range(1, FINALIZE_ROUNDS + 1):
                try:
                    return await upload.finalize_once(self.conn)
                except IncompleteUpload:
                    self.conn.stats.short_proofs += 1
                    if round_ == FINALIZE_ROUNDS:
                        raise
                    await self._send_again([upload])
            raise AssertionError("unreachable")
        finally:
            self.forget([upload])

    async def finalize_batch(self, uploads: Sequence[FileUpload]) -> list[dict[str, Any]]:
        """Finalize many uploads (answers in order: metadata or ``{"file_id", "error"}``),
        re-sending what finalize finds short of copies. Uploads their plan committed
        already (``FileUpload.committed``) are not asked for again."""
        done: list[dict[str, Any]] = [u.committed or {} for u in uploads]
        todo = [i for i, u in enumerate(uploads) if u.committed is None]
        try:
            if todo:
                answers = await self._finalize_rounds([uploads[i] for i in todo])
                for i, body in zip(todo, answers, strict=True):
                    done[i] = body
        finally:
            self.forget(uploads)
        return done

    async def _finalize_rounds(self, uploads: Sequence[FileUpload]) -> list[dict[str, Any]]:
        done = await self._finalize_many(uploads)
        for _round in range(1, FINALIZE_ROUNDS):
            short = [i for i, body in enumerate(done) if _incomplete(body)]
            if not short:
                break
            self.conn.stats.short_proofs += 1
            await self._send_again([uploads[i] for i in short])
            again = await self._finalize_many([uploads[i] for i in short])
            for i, body in zip(short, again, strict=True):
                done[i] = body
        return done

    async def _finalize_many(self, uploads: Sequence[FileUpload]) -> list[dict[str, Any]]:
        """One ``/finalize-uploads``; the nodes that just failed this client are not asked
        for copies (a hung one would hold the answer for its whole has-chunks deadline)."""
        return await self.conn.api.finalize_uploads(
            [{"file_id": u.file_id, "receipts": u.receipts} for u in uploads],
            self.conn.avoid.excluded(),
        )

    async def _send_again(self, uploads: Sequence[FileUpload]) -> None:
        """Re-plan each upload around the failed nodes and send what the plan asks for."""
        work: list[Work] = []
        for u in uploads:
            work += [(u, item) for item in await self.replanner(u).replan()]
        log.info("finalize found %d chunks short of copies; sending them again", len(work))
        await self.conn.run_bounded(self.send_one, work)


def _incomplete(body: dict[str, Any]) -> bool:
    error = body.get("error")
    return isinstance(error, dict) and error.get("code") == IncompleteUpload.code
