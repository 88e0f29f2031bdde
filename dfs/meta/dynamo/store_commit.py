"""The commit part of the DynamoDB store: making a file complete and counting its references.

Every distinct chunk's refcount is incremented by a conditional transaction of
``store_refcounts``, which keeps the counters exact under any concurrency.

Files with at most ``CHUNKS_PER_TX`` distinct chunks commit in one transaction (pending ->
complete included). Bigger files first move pending -> committing, then apply batches of
``CHUNKS_PER_TX`` chunks, each transaction also putting a marker (mid, "c000123") with
``attribute_not_exists``: a re-run after a crash, or a concurrent commit of the same file,
skips applied batches, so nothing is counted twice. Batches are a pure function of the
manifest, so every runner computes the same ones; each is also conditional on the file
being committing with that manifest, so a runner that read the file before another finished
(and a delete then dropped the markers) counts nothing. Then committing -> complete with
total_files/logical_bytes in one transaction.

The file_hashes item is set with ``if_not_exists`` in the transaction that makes the file
complete, so the first committed file keeps it and ``find_file_by_sha256`` is one strongly
consistent GetItem. Its set of the tenant's complete files with that content (the files a
delete of the named one hands the entry to) holds at most ``HASH_CANDIDATES`` ids: one
item is at most 400 KB, and a tenant may store the same bytes as tens of thousands of
objects. A file committed while the set is full is in no set: if every file of the set is
deleted before it, the entry goes and the lookup misses it (the upload stores the chunks
again, found by chunk dedup), but it never names a deleted file.

A commit refuses a chunk garbage collection deleted (IncompleteUpload, ``store_refcounts``):
a small file stays pending; a big one stays committing (read as pending) with the batches
applied so far, and the next commit_file, once the chunk's copies are recorded again, goes
on from there. ``_finish_commit`` (a crashed commit finished only to be deleted) counts such
a chunk on a new item instead, so that the delete that follows can take it back.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

import dfs.meta.dynamo.codec as codec
from dfs.errors import FileNotFound, Unavailable
from dfs.meta.base import FILE_COMPLETE, FILE_PENDING, FileRecord, Location
from dfs.meta.dynamo.codec import FILE_COMMITTING, UNLINKED_ATTR, N, Ref, S, attr_names
from dfs.meta.dynamo.requests import Cancelled, Item, chunks_of
from dfs.meta.dynamo.store_core import BATCH_CONCURRENCY
from dfs.meta.dynamo.store_refcounts import ADD, CHUNKS_PER_TX, MAX_ROUNDS, RefcountsPart

# ids kept in a content entry's set of complete files (36-character uuids: about 8 KB)
HASH_CANDIDATES = 200


class CommitPart(RefcountsPart):
    if TYPE_CHECKING:  # provided by ChunksPart

        async def add_locations(self, locations: Iterable[Location], now: float) -> None: ...

    async def commit_file(
        self, file_id: str, now: float, *, for_object: bool = False
    ) -> FileRecord:
        return await self._commit(file_id, now, for_object, revive=False)

    async def _finish_commit(self, file_id: str, now: float, for_object: bool) -> FileRecord:
        """``commit_file`` of a file left committing by a crash, which the caller deletes
        next: a chunk garbage collection deleted since is counted on a new item (the delete
        takes it back) rather than refused, so the file can go."""
        return await self._commit(file_id, now, for_object, revive=True)

    async def _commit(self, file_id: str, now: float, for_object: bool, revive: bool) -> FileRecord:
        item = await self._file_item(file_id, codec.FILE_WITH_MANIFEST_ATTRS)
        rec = codec.file_record(item)
        state = item["state"]["S"]
        if state == FILE_COMPLETE:
            return rec
        refs = codec.refs_of(await self._manifest_of(item))
        if state == FILE_PENDING and len(refs) <= CHUNKS_PER_TX:
            committed = await self._rq.run(self._commit_whole, rec, refs, now, for_object, revive)
        else:
            if state == FILE_PENDING:
                state = await self._rq.run(self._claim, file_id)
            if state != FILE_COMPLETE:
                mid = item["mid"]["S"]
                batches = list(chunks_of(refs, CHUNKS_PER_TX))
                await asyncio.gather(
                    *(
                        self._rq.run(
                            self._commit_batch, mid, no, batch, now, rec.tenant, file_id, revive
                        )
                        for no, batch in enumerate(batches)
                    )
                )
            done = state == FILE_COMPLETE
            committed = not done and await self._rq.run(self._complete, rec, for_object)
        if committed:
            return dataclasses.replace(rec, state=FILE_COMPLETE)
        return codec.file_record(await self._file_item(file_id))

    async def commit_files(
        self,
        file_ids: Sequence[str],
        now: float,
        *,
        locations: Iterable[Location] = (),
        for_object: bool = False,
    ) -> list[FileRecord | None]:
        locs = list(locations)
        if locs:  # the copies first, in their own writes: no file is complete without them
            await self.add_locations(locs, now)
        # commit_file's conditional writes keep every count exact whatever runs beside them,
        # so files of a batch may commit concurrently (ids are distinct, see dict.fromkeys)
        sem = asyncio.Semaphore(BATCH_CONCURRENCY)

        async def one(file_id: str) -> FileRecord | None:
            async with sem:
                try:
                    return await self.commit_file(file_id, now, for_object=for_object)
                except FileNotFound:
                    return None

        ids = list(dict.fromkeys(file_ids))
        done = dict(zip(ids, await asyncio.gather(*(one(f) for f in ids)), strict=True))
        return [done[f] for f in file_ids]

    # --- transactions (worker threads) ------------------------------------------------------

    def _commit_whole(
        self,
        rec: FileRecord,
        refs: Sequence[Ref],
        now: float,
        for_object: bool,
        revive: bool = False,
    ) -> bool:
        """A file of few distinct chunks: state, refcounts and counters in one transaction."""
        head = self._complete_action(rec, FILE_PENDING, for_object)
        extra = {"total_files": 1, "logical_bytes": rec.size}
        return self._apply_refs(
            ADD,
            head,
            rec.file_id,
            refs,
            now,
            extra,
            rec.tenant,
            self._hash_tail(rec),
            revive=revive,
        )

    def _hash_tail(self, rec: FileRecord) -> Callable[[], list[Item]]:
        """``_apply_refs``' tail of a commit: the content entry's update, read first on
        every attempt after the first (a cancellation may have been the set's bound)."""
        attempts = itertools.count()
        return lambda: [self._hash_action(rec, read=next(attempts) > 0)]

    def _hash_action(self, rec: FileRecord, *, read: bool = False) -> Item:
        """Point (tenant, sha256) at this file unless an earlier complete file holds it, and
        add it to the set of the tenant's complete files with that content (``v`` counts
        changes, so a delete can re-point the entry conditionally) while the set holds
        fewer than ``HASH_CANDIDATES``: conditional, so a full set cancels the transaction,
        and the next attempt (``read``) sees it full and leaves the entry as it is."""
        key = self._hash_key(rec)
        if read:
            got = self._rq.call(
                "get_item", TableName=self.tables["file_hashes"], Key=key, ConsistentRead=True
            ).get("Item")
            if got is not None and len(codec.string_set(got, "files")) >= HASH_CANDIDATES:
                return {
                    "Update": {
                        "TableName": self.tables["file_hashes"],
                        "Key": key,
                        "UpdateExpression": "SET #file_id = if_not_exists(#file_id, :f)",
                        "ExpressionAttributeNames": attr_names("file_id"),
                        "ExpressionAttributeValues": {":f": S(rec.file_id)},
                    }
                }
        return {
            "Update": {
                "TableName": self.tables["file_hashes"],
                "Key": key,
                "UpdateExpression": "SET #file_id = if_not_exists(#file_id, :f) "
                "ADD #files :fs, #v :one",
                "ConditionExpression": "attribute_not_exists(#files) OR size(#files) < :cap",
                "ExpressionAttributeNames": attr_names("file_id", "files", "v"),
                "ExpressionAttributeValues": {
                    ":f": S(rec.file_id),
                    ":fs": {"SS": [rec.file_id]},
                    ":one": N(1),
                    ":cap": N(HASH_CANDIDATES),
                },
            }
        }

    def _complete_action(
        self, rec: FileRecord, expected_state: str, for_object: bool = False
    ) -> Item:
        """The file made complete; ``for_object``: marked ``UNLINKED_ATTR`` in the same
        write (``commit_file``'s contract: the lookup by content never names it, and the
        write that links it takes the mark off)."""
        names = attr_names("state", "listed_tenant", "tenant")
        values = {":complete": S(FILE_COMPLETE), ":expected": S(expected_state)}
        update = "SET #state = :complete, #listed_tenant = #tenant"
        if for_object:
            update += f", #{UNLINKED_ATTR} = :unl"
            names[f"#{UNLINKED_ATTR}"] = UNLINKED_ATTR
            values[":unl"] = S("1")
        return {
            "Update": {
                "TableName": self.tables["files"],
                "Key": {"file_id": S(rec.file_id)},
                "UpdateExpression": update,
                "ConditionExpression": "#state = :expected",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
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
        self,
        mid: str,
        no: int,
        refs: Sequence[Ref],
        now: float,
        tenant: str,
        file_id: str,
        revive: bool = False,
    ) -> None:
        """Apply batch ``no`` of a big file's refcounts once, guarded by its marker item and
        by the file being committing with manifest ``mid`` still: once the file is complete
        and deleted its markers go, and a runner that read it before must not count the
        batch again (``store_refcounts``)."""
        marker = self._marker_action(mid, "c", no, now)
        guard = self._batch_guard(file_id, FILE_COMMITTING, mid)
        self._apply_refs(
            ADD, marker, f"{mid}/{no}", refs, now, {}, tenant, revive=revive, guard=guard
        )

    def _complete(self, rec: FileRecord, for_object: bool) -> bool:
        """committing -> complete, counting the file; False if someone else did it."""
        head = self._complete_action(rec, FILE_COMMITTING, for_object)
        counters = self._counter_action(rec.file_id, {"total_files": 1, "logical_bytes": rec.size})
        for attempt in range(MAX_ROUNDS):
            try:
                content = self._hash_action(rec, read=attempt > 0)
                self._rq.transact([head, counters, content], uuid.uuid4().hex)
                return True
            except Cancelled as exc:
                if exc.codes[0] == "ConditionalCheckFailed":
                    return False
                # the content entry's set was full: read it and leave it so
        raise Unavailable(f"commit of file {rec.file_id} kept losing races on its content entry")
