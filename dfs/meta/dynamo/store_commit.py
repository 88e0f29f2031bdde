"""The commit part of the DynamoDB store: making a file complete and counting its references.

The refcount of each distinct chunk is incremented in TransactWriteItems with a condition on
the expected "before" state (``refcount`` absent or 0: first referencer; else ``refcount > 0``).
The expectation comes from a read, but the counted decision is the one the conditional write
checked atomically: a failed condition cancels the transaction, flips that expectation and
retries, so stored_bytes/unique_chunks/duplicates_avoided are exact under any concurrency.

Files with at most ``CHUNKS_PER_TX`` distinct chunks commit in one transaction (pending ->
complete included). Bigger files first move pending -> committing, then apply batches of
``CHUNKS_PER_TX`` chunks, each transaction also putting a marker (mid, "c000123") with
``attribute_not_exists``: a re-run after a crash, or a concurrent commit of the same file,
skips applied batches, so nothing is counted twice. Batches are a pure function of the
manifest, so every runner computes the same ones. Then committing -> complete with
total_files/logical_bytes in one transaction.

The file_hashes item is set with ``if_not_exists`` in the transaction that makes the file
complete, so the first committed file keeps it and ``find_file_by_sha256`` is one strongly
consistent GetItem.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping, Sequence

import dfs.meta.dynamo.codec as codec
from dfs.errors import FileNotFound, Unavailable
from dfs.meta.base import FILE_COMPLETE, FILE_PENDING, FileRecord
from dfs.meta.dynamo.codec import FILE_COMMITTING, N, Ref, S, attr_names
from dfs.meta.dynamo.requests import TX_MAX, Cancelled, Item, chunks_of
from dfs.meta.dynamo.store_core import BATCH_CONCURRENCY, StoreCore

# Each chunk takes two actions (its refcount, its tenant's refcount); the transactions built:
#   _commit_whole: file update + 2 per chunk + counter shard + file_hashes update = 2n + 3
#   _commit_batch / _unref_batch: marker + 2 per chunk + counter shard = 2n + 2
#   small delete (_apply_unrefs with _unhash_actions): file delete + 2 per chunk + counter
#     shard + at most one file_hashes update or delete = 2n + 3
#   _complete: 3; _claim_delete: 2; the big delete's last step: 2
# so n = CHUNKS_PER_TX = 48 keeps every one within TX_MAX (test_dynamodb_store checks it).
CHUNKS_PER_TX = (TX_MAX - 3) // 2
MAX_ROUNDS = 64  # per commit transaction, for flipped refcount expectations


class CommitPart(StoreCore):
    async def commit_file(self, file_id: str, now: float) -> FileRecord:
        item = await self._file_item(file_id, codec.FILE_WITH_MANIFEST_ATTRS)
        rec = codec.file_record(item)
        state = item["state"]["S"]
        if state == FILE_COMPLETE:
            return rec
        refs = codec.refs_of(await self._manifest_of(item))
        if state == FILE_PENDING and len(refs) <= CHUNKS_PER_TX:
            committed = await self._rq.run(self._commit_whole, rec, refs, now)
        else:
            if state == FILE_PENDING:
                state = await self._rq.run(self._claim, file_id)
            if state != FILE_COMPLETE:
                mid = item["mid"]["S"]
                batches = list(chunks_of(refs, CHUNKS_PER_TX))
                await asyncio.gather(
                    *(
                        self._rq.run(self._commit_batch, mid, no, batch, now, rec.tenant)
                        for no, batch in enumerate(batches)
                    )
                )
            committed = state != FILE_COMPLETE and await self._rq.run(self._complete, rec)
        if committed:
            return dataclasses.replace(rec, state=FILE_COMPLETE)
        return codec.file_record(await self._file_item(file_id))

    async def commit_files(self, file_ids: Sequence[str], now: float) -> list[FileRecord | None]:
        # commit_file's conditional writes keep every count exact whatever runs beside them,
        # so files of a batch may commit concurrently (ids are distinct, see dict.fromkeys)
        sem = asyncio.Semaphore(BATCH_CONCURRENCY)

        async def one(file_id: str) -> FileRecord | None:
            async with sem:
                try:
                    return await self.commit_file(file_id, now)
                except FileNotFound:
                    return None

        ids = list(dict.fromkeys(file_ids))
        done = dict(zip(ids, await asyncio.gather(*(one(f) for f in ids)), strict=True))
        return [done[f] for f in file_ids]

    # --- transactions (worker threads) ------------------------------------------------------

    def _expect_referenced(self, refs: Sequence[Ref]) -> set[str]:
        """A first guess of which chunks already have references (checked by the writes)."""
        keys = [{"chunk_id": S(r.chunk_id)} for r in refs]
        items = self._rq.batch_get(self.tables["chunks"], keys, ("chunk_id", "refcount"))
        return {i["chunk_id"]["S"] for i in items if codec.int_of(i, "refcount") > 0}

    def _ref_action(self, r: Ref, referenced: bool, now: float) -> Item:
        """Add ``r``'s references to its chunk, conditional on whether it had any."""
        if referenced:
            update = {
                "UpdateExpression": "ADD #refcount :c",
                "ConditionExpression": "#refcount > :zero",
                "ExpressionAttributeNames": attr_names("refcount"),
                "ExpressionAttributeValues": {":c": N(r.count), ":zero": N(0)},
            }
        else:
            update = {
                "UpdateExpression": "SET #refcount = :c, #size = if_not_exists(#size, :s), "
                "#created_at = if_not_exists(#created_at, :t)",
                "ConditionExpression": "attribute_not_exists(#refcount) OR #refcount = :zero",
                "ExpressionAttributeNames": attr_names("refcount", "size", "created_at"),
                "ExpressionAttributeValues": {
                    ":c": N(r.count),
                    ":s": N(r.size),
                    ":t": N(float(now)),
                    ":zero": N(0),
                },
            }
        key = {"chunk_id": S(r.chunk_id)}
        return {"Update": {"TableName": self.tables["chunks"], "Key": key, **update}}

    def _tenant_ref_action(self, tenant: str, r: Ref, delta: int) -> Item:
        return {
            "Update": {
                "TableName": self.tables["tenant_chunks"],
                "Key": {"tenant": S(tenant), "chunk_id": S(r.chunk_id)},
                "UpdateExpression": "ADD #refcount :c",
                "ExpressionAttributeNames": attr_names("refcount"),
                "ExpressionAttributeValues": {":c": N(delta)},
            }
        }

    def _ref_actions(
        self, refs: Sequence[Ref], referenced: set[str], now: float, tenant: str
    ) -> tuple[list[Item], dict[str, int]]:
        """Conditional refcount updates for ``refs``, then the tenant's refcount updates (in
        that order: cancellation reasons map to ``refs`` by position), and the counter deltas
        they imply."""
        deltas = dict.fromkeys(("stored_bytes", "unique_chunks", "duplicates_avoided"), 0)
        for r in refs:
            if r.chunk_id in referenced:
                deltas["duplicates_avoided"] += r.count
            else:
                deltas["duplicates_avoided"] += r.count - 1
                deltas["stored_bytes"] += r.size
                deltas["unique_chunks"] += 1
        actions = [self._ref_action(r, r.chunk_id in referenced, now) for r in refs]
        tenant_actions = [self._tenant_ref_action(tenant, r, r.count) for r in refs]
        return actions + tenant_actions, deltas

    def _apply_refs(
        self,
        head: Item,
        shard_of: str,
        refs: Sequence[Ref],
        now: float,
        extra: Mapping[str, int],
        tenant: str,
        tail: Sequence[Item] = (),
    ) -> bool:
        """Run [head, refcount updates..., counters, tail...] until the refcount guesses hold.

        Returns False when ``head``'s own condition failed (already done by someone else).
        """
        referenced = self._expect_referenced(refs)
        for _ in range(MAX_ROUNDS):
            actions, deltas = self._ref_actions(refs, referenced, now, tenant)
            counters = self._counter_action(shard_of, {**extra, **deltas})
            try:
                self._rq.transact([head, *actions, counters, *tail])
                return True
            except Cancelled as exc:
                if exc.codes[0] == "ConditionalCheckFailed":
                    return False
                for r, code in zip(refs, exc.codes[1:], strict=False):
                    if code == "ConditionalCheckFailed":
                        referenced ^= {r.chunk_id}
        raise Unavailable("commit kept losing refcount races; try again")

    def _commit_whole(self, rec: FileRecord, refs: Sequence[Ref], now: float) -> bool:
        """A file of few distinct chunks: state, refcounts and counters in one transaction."""
        head = self._complete_action(rec, FILE_PENDING)
        extra = {"total_files": 1, "logical_bytes": rec.size}
        tail = [self._hash_action(rec)]
        return self._apply_refs(head, rec.file_id, refs, now, extra, rec.tenant, tail)

    def _hash_action(self, rec: FileRecord) -> Item:
        """Point (tenant, sha256) at this file unless an earlier complete file holds it, and
        add it to the set of the tenant's complete files with that content (``v`` counts
        changes, so a delete can re-point the entry conditionally)."""
        return {
            "Update": {
                "TableName": self.tables["file_hashes"],
                "Key": self._hash_key(rec),
                "UpdateExpression": "SET #file_id = if_not_exists(#file_id, :f) "
                "ADD #files :fs, #v :one",
                "ExpressionAttributeNames": attr_names("file_id", "files", "v"),
                "ExpressionAttributeValues": {
                    ":f": S(rec.file_id),
                    ":fs": {"SS": [rec.file_id]},
                    ":one": N(1),
                },
            }
        }

    def _complete_action(self, rec: FileRecord, expected_state: str) -> Item:
        return {
            "Update": {
                "TableName": self.tables["files"],
                "Key": {"file_id": S(rec.file_id)},
                "UpdateExpression": "SET #state = :complete, #listed_tenant = #tenant",
                "ConditionExpression": "#state = :expected",
                "ExpressionAttributeNames": attr_names("state", "listed_tenant", "tenant"),
                "ExpressionAttributeValues": {
                    ":complete": S(FILE_COMPLETE),
                    ":expected": S(expected_state),
                },
            }
        }

    def _claim(self, file_id: str) -> str:
        """pending -> committing; returns the state the file is in afterwards."""
        claimed = self._rq.call_or_none(
            "update_item",
            TableName=self.tables["files"],
            Key={"file_id": S(file_id)},
            UpdateExpression="SET #state = :committing",
            ConditionExpression="#state = :pending",
            ExpressionAttributeNames=attr_names("state"),
            ExpressionAttributeValues={
                ":committing": S(FILE_COMMITTING),
                ":pending": S(FILE_PENDING),
            },
        )
        if claimed is not None:
            return FILE_COMMITTING
        item = self._get_file_item(file_id, ("state",))
        if item is None:
            raise FileNotFound(f"no file {file_id}")
        return str(item["state"]["S"])

    def _commit_batch(
        self, mid: str, no: int, refs: Sequence[Ref], now: float, tenant: str
    ) -> None:
        """Apply batch ``no`` of a big file's refcounts once, guarded by its marker item."""
        marker = self._marker_action(mid, "c", no, now)
        self._apply_refs(marker, f"{mid}/{no}", refs, now, {}, tenant)

    def _complete(self, rec: FileRecord) -> bool:
        """committing -> complete, counting the file; False if someone else did it."""
        head = self._complete_action(rec, FILE_COMMITTING)
        counters = self._counter_action(rec.file_id, {"total_files": 1, "logical_bytes": rec.size})
        try:
            self._rq.transact([head, counters, self._hash_action(rec)])
            return True
        except Cancelled:
            return False
