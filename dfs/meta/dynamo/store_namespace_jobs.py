"""The namespace's pending jobs in the DynamoDB store: stored bytes after dedup, and
releasing files no version links any more.

A job item (``jobs#NN | FILE#ID``) is put in the same transaction as a version change when
a file's link count in a scope (its tenant, one bucket) crossed 0 (``store_namespace_write``).
Running it:

1. For each scope it names, add (or drop) the file's references to the scope's per-chunk
   counts (``chunks#t:T`` / ``chunks#b:B``), and move the scope's ``stored_bytes`` by the
   bytes of the chunks whose count left (or reached) 0. In batches, each one transaction
   that also puts the batch's done mark (``attribute_not_exists``), so a batch is applied
   once whoever runs it; the per-chunk writes are conditional on the counts read, and a
   cancelled batch flips the expectations that failed and runs again (as
   ``store_refcounts`` does for the cluster-wide counts). ``JOB_BATCHES_AT_ONCE`` batches
   run at once.

   A job of one batch (a small file's: most of them) marks it on the job item (``d0``), as
   its one transaction's one more write. A job of more batches marks each with an item of
   its own (``jobdone#``): DynamoDB cancels a transaction that writes an item another
   running transaction writes (TransactionConflict), so batches that all updated the job
   item cancelled one another, and a job of many batches (a large file's release) could
   exhaust its retries on every run, never finishing (moto does not reproduce it). Such a
   mark lives as long as its job, and ``JOB_MARK_TTL`` after it (``_expire_marks`` sets its
   ``expires`` once the job item is deleted; the table's TTL then deletes it): a runner that
   read the job before another finished it finds the marks of the batches it would apply
   again. A runner paused for longer than that could apply a batch twice. A batch marked on
   the job item (``d1``, ... by a version that marked every batch there) is skipped; but a
   runner of that version and one of this one, on one job of several batches at once, do
   not see each other's marks (docs/OPERATIONS.md: GC off while both run).
2. If the file's last link went (``rel``): finish the file's other jobs (they need its
   manifest), then ``delete_file`` (the store's own exactly-once reference release), then
   delete the tenant link item and the job in one transaction. While the link item carries
   ``rel`` no version may link the file (the write's condition), so nothing can link a file
   being released.
3. Otherwise delete the job item.

The writer runs its jobs before it returns, so counters are exact when a write returns;
a writer that crashed leaves its jobs, which ``finish_namespace_jobs`` (a sweep over the
JOB_SHARDS partitions, a bounded scan for background loops) completes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence

import dfs.meta.dynamo.codec as codec
import dfs.meta.dynamo.store_namespace_codec as nc
from dfs.errors import DfsError, FileNotFound, Unavailable
from dfs.meta.dynamo.codec import N, Ref, attr_names
from dfs.meta.dynamo.requests import BATCH_WRITE_MAX, TX_MAX, Cancelled, Item, chunks_of
from dfs.meta.dynamo.store_delete import DeletePart
from dfs.meta.dynamo.store_namespace_write import NsWritePart

log = logging.getLogger("dfs.meta")

MAX_ROUNDS = 64
JOB_BATCHES_AT_ONCE = nc.USAGE_SHARDS
"""Transactions of one job in flight: a large file's release is thousands of batches. Batch
``no`` moves the scopes' usage row ``no`` after the job's own (``usage_shard_after``), so
batches started in order seldom meet on a usage row (a conflict, retried), which random
rows did for most of them."""
JOB_MARK_TTL = 7 * 86400.0
"""Seconds a batch's done mark item is kept after its job finished (``expires``)."""
Op = tuple[str, int]  # (scope "t:T" / "b:B", +1 add or -1 drop)


class NsJobsPart(NsWritePart, DeletePart):
    async def finish_namespace_jobs(self, now: float) -> int:
        """Run every pending namespace job (those a crashed writer left); returns how many
        finished. A job that fails (a batch kept losing races) is left for the next sweep
        and the others still run: one job must not hold back every other."""
        done = 0
        for shard in range(nc.JOB_SHARDS):
            jobs = await self._rq.run(self._ns_query, "namespace", f"jobs#{shard:02d}")
            for job in jobs:
                try:
                    await self._run_job(job, now)
                except DfsError as exc:
                    log.warning("namespace job %s left for the next sweep: %s", job["s"]["S"], exc)
                    continue
                done += 1
        return done

    async def _run_jobs(self, jobs: Sequence[Item], now: float) -> None:
        for job in jobs:
            await self._run_job(job, now)

    async def _run_job(self, job: Item, now: float) -> None:
        ops: list[Op] = [(str(s), int(d)) for s, d in json.loads(job["ops"]["S"])]
        try:
            item = await self._file_item(job["fid"]["S"], codec.FILE_WITH_MANIFEST_ATTRS)
            refs = codec.refs_of(await self._manifest_of(item))
        except FileNotFound:
            refs = []  # deleted by file id while linked: no manifest left to count
        per_tx = (TX_MAX - 1 - len(ops)) // len(ops)
        room = asyncio.Semaphore(JOB_BATCHES_AT_ONCE)

        batches = list(chunks_of(refs, per_tx))
        apart = len(batches) > 1  # marks of their own (see the module)

        async def batch(no: int, refs: Sequence[Ref]) -> None:
            if f"d{no}" in job:
                return  # marked on the job item: applied
            async with room:
                await self._rq.run(self._job_batch, job, no, refs, ops, apart)

        # every batch ends before the job's run does, failed or not: none left running on
        # behind the caller (a sweep would start the job again beside it)
        ran = await asyncio.gather(
            *(batch(no, b) for no, b in enumerate(batches)), return_exceptions=True
        )
        if failed := next((r for r in ran if isinstance(r, BaseException)), None):
            raise failed
        if "rel" in job:
            await self._release(job, now)
        else:
            await self._rq.run(self._delete_job, job)
        if apart:
            await self._rq.run(self._expire_marks, job, len(batches), now)

    async def _release(self, job: Item, now: float) -> None:
        file_id = job["fid"]["S"]
        others = await self._rq.run(
            lambda: self._ns_query("namespace", job["p"]["S"], begins=f"{file_id}#")
        )
        for other in others:
            if other["s"] != job["s"] and "rel" not in other:
                await self._run_job(other, now)
        # FileNotFound: released already (a concurrent runner of this job) or deleted by id
        with contextlib.suppress(FileNotFound):
            await self.delete_file(file_id, job["tenant"]["S"], now)
        await self._rq.run(self._finish_release, job)

    # --- transactions (worker threads) ------------------------------------------------------

    def _delete_job(self, job: Item) -> None:
        key = {"p": job["p"], "s": job["s"]}
        self._rq.call("delete_item", TableName=self.tables["namespace"], Key=key)

    def _expire_marks(self, job: Item, batches: int, now: float) -> None:
        """Once ``job`` is gone, give its ``batches`` marks their ``expires``: a mark lives as
        long as its job and ``JOB_MARK_TTL`` after it, never less (a job left pending for
        longer must still find its applied batches). A crash before this leaves them
        unexpired."""
        expires = N(int(now + JOB_MARK_TTL))
        marks = [nc.job_batch_done_key(job["s"]["S"], no) for no in range(batches)]
        puts = [{"PutRequest": {"Item": {**m, nc.TTL_ATTRIBUTE: expires}}} for m in marks]
        for part in chunks_of(puts, BATCH_WRITE_MAX):
            self._rq.batch_write(self.tables["namespace"], part)

    def _finish_release(self, job: Item) -> None:
        table = self.tables["namespace"]
        link = nc.link_key(job["fid"]["S"], "tenant")
        try:
            self._rq.transact(
                [
                    {
                        "Delete": {
                            "TableName": table,
                            "Key": link,
                            "ConditionExpression": "attribute_exists(#rel)",
                            "ExpressionAttributeNames": attr_names("rel"),
                        }
                    },
                    {"Delete": {"TableName": table, "Key": {"p": job["p"], "s": job["s"]}}},
                ]
            )
        except Cancelled:
            self._delete_job(job)  # a concurrent runner finished it first

    def _job_batch(
        self, job: Item, no: int, refs: Sequence[Ref], ops: Sequence[Op], apart: bool
    ) -> None:
        """Apply batch ``no`` of a job once (its done mark: ``apart``, an item of its own),
        with exact stored bytes."""
        pairs = [(scope, sign, r) for scope, sign in ops for r in refs]
        keys = [nc.key_of(f"chunks#{scope}", r.chunk_id) for scope, _, r in pairs]
        got = self._rq.batch_get(self.tables["namespace"], keys)
        counts = {(i["p"]["S"][len("chunks#") :], i["s"]["S"]): codec.int_of(i, "n") for i in got}
        shared = {
            (scope, r.chunk_id)
            for scope, sign, r in pairs
            if counts.get((scope, r.chunk_id), 0) > (0 if sign > 0 else r.count)
        }
        mark = self._done_mark(job, no, apart)
        for _ in range(MAX_ROUNDS):
            stored = dict.fromkeys((scope for scope, _ in ops), 0)
            actions = [mark]
            for scope, sign, r in pairs:
                is_shared = (scope, r.chunk_id) in shared
                actions.append(self._scope_chunk_action(scope, sign, r, is_shared))
                stored[scope] += 0 if is_shared else sign * r.size
            row = nc.usage_shard_after(job["s"]["S"], no)
            actions += [
                self._usage_update(scope, row, {"stored_bytes": delta})
                for scope, delta in stored.items()
                if delta
            ]
            try:
                self._rq.transact(actions)
                return
            except Cancelled as exc:
                if exc.codes[0] == "ConditionalCheckFailed":
                    return  # applied already, or the whole job is finished
                for (scope, _, r), code in zip(pairs, exc.codes[1:], strict=False):
                    if code == "ConditionalCheckFailed":
                        shared ^= {(scope, r.chunk_id)}
        raise Unavailable("stored-bytes accounting kept losing races; try again")

    def _done_mark(self, job: Item, no: int, apart: bool) -> Item:
        if apart:
            return {
                "Put": {
                    "TableName": self.tables["namespace"],
                    "Item": nc.job_batch_done_key(job["s"]["S"], no),  # expires with the job
                    "ConditionExpression": "attribute_not_exists(p)",
                }
            }
        return {  # the job's one batch: on the job item, which it outlives by nothing
            "Update": {
                "TableName": self.tables["namespace"],
                "Key": {"p": job["p"], "s": job["s"]},
                "UpdateExpression": f"SET #d{no} = :one",
                "ConditionExpression": f"attribute_exists(p) AND attribute_not_exists(#d{no})",
                "ExpressionAttributeNames": {f"#d{no}": f"d{no}"},
                "ExpressionAttributeValues": {":one": N(1)},
            }
        }

    def _scope_chunk_action(self, scope: str, sign: int, r: Ref, shared: bool) -> Item:
        """A scope's count of one chunk: ``shared`` is whether it has references besides
        these (an add then costs no stored bytes, a drop frees none)."""
        base: Item = {
            "TableName": self.tables["namespace"],
            "Key": nc.key_of(f"chunks#{scope}", r.chunk_id),
            "ExpressionAttributeNames": attr_names("n"),
        }
        if sign > 0 and shared:
            expr = {"UpdateExpression": "ADD #n :c", "ConditionExpression": "#n > :zero"}
            values = {":c": N(r.count), ":zero": N(0)}
        elif sign > 0:
            expr = {
                "UpdateExpression": "SET #n = :c",
                "ConditionExpression": "attribute_not_exists(#n)",
            }
            values = {":c": N(r.count)}
        elif shared:
            expr = {"UpdateExpression": "ADD #n :neg", "ConditionExpression": "#n > :c"}
            values = {":c": N(r.count), ":neg": N(-r.count)}
        else:
            values = {":c": N(r.count)}
            return {
                "Delete": {
                    **base,
                    "ConditionExpression": "#n = :c",
                    "ExpressionAttributeValues": values,
                }
            }
        return {"Update": {**base, **expr, "ExpressionAttributeValues": values}}
