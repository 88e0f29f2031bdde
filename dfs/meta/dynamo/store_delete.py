"""The delete part of the DynamoDB store: ``delete_file``, commit_file backwards.

Refcounts are decremented by the conditional transactions of ``store_refcounts``. A complete
file of at most ``CHUNKS_PER_TX`` distinct chunks goes in one transaction. Bigger ones go
complete -> deleting (invisible, unlisted), apply batches guarded by "d000123" markers and
by the file item being deleting still, then delete the file item with the file counters in
one transaction, then the manifest and markers. A crashed delete is finished by calling it
again, and GC's sweep of stale uploads does so (``finish_stranded``) for a delete or a commit
a crashed API process left half-way. Runners may overlap (a client's retried DELETE, GC's
sweep beside a slow writer): the one whose claim lost stops, and one that read the file
deleting finds every batch done once the file item is gone (the markers go only after it),
so each reference is dropped exactly once.

Deleting a complete file also moves its file_hashes entry on: the file leaves the entry's set
of the tenant's complete files with that content and, if the entry names it, the entry names
another member or is deleted, conditional on ``v`` (re-read and retried on cancellation), in
the transaction that deletes the file (small files) or makes it invisible (``_claim_delete``).
That write is also conditional on the file's verified flag being as read: the entry handed
on is the one of that flag, and ``mark_sha256_verified`` moves a file to the other entry;
a delete refused so reads the file again.

A file that an object version links is refused (Conflict) in that same transaction: a
ConditionCheck on the file's tenant link item (``store_namespace_codec.link_key``) wants it
absent or carrying ``rel`` (the namespace's own release, ``store_namespace_jobs``, deletes the
file while the item still exists with ``rel``, and nothing may link a file then). A version
write links only complete files, conditional on the file item, so the two cannot interleave;
a pending or deleting file cannot be linked. The guard (``_link_guard``) reads the item first,
so a lost race is refused on the retry that the cancelled transaction runs anyway.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

import dfs.meta.dynamo.codec as codec
import dfs.meta.dynamo.store_namespace_codec as nc
from dfs.errors import Conflict, FileNotFound, Unavailable
from dfs.meta.base import FILE_COMPLETE, FILE_PENDING, FileRecord
from dfs.meta.dynamo.codec import FILE_COMMITTING, FILE_DELETING, N, Ref, S, attr_names
from dfs.meta.dynamo.requests import Cancelled, Item, chunks_of
from dfs.meta.dynamo.store_refcounts import CHUNKS_PER_TX, DROP, MAX_ROUNDS, RefcountsPart

CLAIM_ATTR = "dc"  # on a deleting file item: the token of the delete_file call that claimed it


class DeletePart(RefcountsPart):
    if TYPE_CHECKING:  # provided by CommitPart

        async def _finish_commit(
            self, file_id: str, now: float, for_object: bool
        ) -> FileRecord: ...

    async def finish_stranded(self, file_id: str, before: float, now: float) -> bool:
        """Delete a file that a crashed commit or delete left half-way (committing, deleting:
        nothing but that call's own retry would ever finish it, and a finalize is refused
        that long after) and that was created before ``before``: a commit is finished first
        (its batches are idempotent) so that the delete takes back exactly the references
        it counted (a chunk garbage collection deleted since is counted on a new item, which
        the delete takes back: ``_finish_commit``). Committed ``for_object``, so no lookup by
        content hands it to an upload meanwhile. True when deleted."""
        try:
            item = await self._file_item(file_id)
        except FileNotFound:
            return False
        state, created = item["state"]["S"], float(item["created_at"]["N"])
        if state not in (FILE_COMMITTING, FILE_DELETING) or created >= before:
            return False
        if state == FILE_COMMITTING:
            await self._finish_commit(file_id, now, True)
        await self.delete_file(file_id, item["tenant"]["S"], now)
        return True

    async def delete_file(self, file_id: str, tenant: str, now: float) -> FileRecord:
        for _ in range(MAX_ROUNDS):
            item = await self._file_item(file_id, codec.FILE_WITH_MANIFEST_ATTRS)
            if item["tenant"]["S"] != tenant:
                raise FileNotFound(f"no file {file_id}")
            rec = codec.file_record(item)
            if await self._delete_read(item, rec, now):
                await self._rq.run(self._drop_manifest, item["mid"]["S"])
                return rec
        raise Unavailable(f"delete of file {file_id} kept losing races on its content entry")

    async def _delete_read(self, item: Item, rec: FileRecord, now: float) -> bool:
        """Delete the file as read (``item``); False if it was marked verified meanwhile:
        its content entry moved, so the caller reads it again (see ``_delete_file_action``)."""
        state = item["state"]["S"]
        if state == FILE_COMMITTING:
            raise Conflict(f"file {rec.file_id} is being committed; try again")
        if state == FILE_PENDING:
            await self._rq.run(self._delete_file_item, rec.file_id, FILE_PENDING)
            return True
        refs = codec.refs_of(await self._manifest_of(item))
        if state == FILE_COMPLETE and len(refs) <= CHUNKS_PER_TX:
            return await self._delete_whole(rec, refs, now)
        return await self._delete_in_batches(rec, state, item["mid"]["S"], refs, now)

    async def _delete_whole(self, rec: FileRecord, refs: Sequence[Ref], now: float) -> bool:
        """A complete file of few distinct chunks: gone, unreferenced and uncounted at once;
        False if it was marked verified since ``rec`` was read."""
        head = self._delete_file_action(rec.file_id, FILE_COMPLETE, rec.sha256_verified)
        extra = {"total_files": -1, "logical_bytes": -rec.size}

        def tail() -> list[Item]:
            return [*self._link_guard(rec.file_id), *self._unhash_actions(rec)]

        done = await self._rq.run(
            self._apply_refs, DROP, head, rec.file_id, refs, now, extra, rec.tenant, tail
        )
        if not done and not await self._rq.run(self._flag_moved, rec):
            raise FileNotFound(f"no file {rec.file_id}")
        return done

    async def _delete_in_batches(
        self, rec: FileRecord, state: str, mid: str, refs: Sequence[Ref], now: float
    ) -> bool:
        """complete -> deleting, each batch's references dropped once, then the file item;
        False if the file was marked verified before it was claimed."""
        if state == FILE_COMPLETE and not await self._rq.run(self._claim_delete, rec):
            return False
        batches = list(chunks_of(refs, CHUNKS_PER_TX))
        await asyncio.gather(
            *(
                self._rq.run(self._unref_batch, rec.file_id, mid, no, batch, now, rec.tenant)
                for no, batch in enumerate(batches)
            )
        )
        head = self._delete_file_action(rec.file_id, FILE_DELETING)
        counters = self._counter_action(
            rec.file_id, {"total_files": -1, "logical_bytes": -rec.size}
        )
        try:
            await self._rq.run(self._rq.transact, [head, counters], uuid.uuid4().hex)
        except Conflict:
            raise FileNotFound(f"no file {rec.file_id}") from None
        return True

    # --- transactions (worker threads) ------------------------------------------------------

    def _delete_file_action(
        self, file_id: str, expected_state: str, verified: bool | None = None
    ) -> Item:
        """The file item deleted if in ``expected_state`` and, for a complete file, still
        ``verified`` as read: the content entry a delete hands on is the one of the flag it
        read (``_unhash_actions``), and ``mark_sha256_verified`` moves the file to the
        other entry; a delete that went through after that left the verified entry naming
        the deleted file, and every later commit of those bytes kept it (``if_not_exists``)."""
        cond = "#state = :expected"
        names = attr_names("state")
        values: Item = {":expected": S(expected_state)}
        if verified is not None:
            cond, names, values = _as_read(cond, names, values, verified)
        return {
            "Delete": {
                "TableName": self.tables["files"],
                "Key": {"file_id": S(file_id)},
                "ConditionExpression": cond,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }

    def _flag_moved(self, rec: FileRecord) -> bool:
        """Whether complete file ``rec`` is still complete, its verified flag changed."""
        item = self._get_file_item(rec.file_id, ("state", "sha256_verified"))
        if item is None or item["state"]["S"] != FILE_COMPLETE:
            return False
        return bool(item.get("sha256_verified", {}).get("BOOL", False)) != rec.sha256_verified

    def _delete_file_item(self, file_id: str, expected_state: str) -> None:
        """A transaction of one write for its ClientRequestToken: a resend after a lost
        answer is answered as done, where a DeleteItem's is refused on its own delete (a
        FileNotFound, and the manifest left behind for good)."""
        try:
            self._rq.transact([self._delete_file_action(file_id, expected_state)], uuid.uuid4().hex)
        except Cancelled:
            raise FileNotFound(f"no file {file_id}") from None

    def _link_guard(self, file_id: str) -> list[Item]:
        """Conflict if a version links the file now (a strongly consistent read); else the
        check that keeps it so in the deleting transaction: no tenant link item, or one that
        carries ``rel`` (the namespace releasing the file, which calls delete_file)."""
        key = nc.link_key(file_id, "tenant")
        table = self.tables["namespace"]
        item = self._rq.call("get_item", TableName=table, Key=key, ConsistentRead=True).get("Item")
        if item is not None and "rel" not in item:
            raise Conflict(
                f"file {file_id} is linked by an object version; delete the object instead"
            )
        return [
            {
                "ConditionCheck": {
                    "TableName": table,
                    "Key": key,
                    "ConditionExpression": "attribute_not_exists(p) OR attribute_exists(#rel)",
                    "ExpressionAttributeNames": attr_names("rel"),
                }
            }
        ]

    def _unhash_actions(self, rec: FileRecord) -> list[Item]:
        """What deleting complete file ``rec`` does to its file_hashes entry: drop it from the
        set and, if the entry names it, name another file of the set or delete the entry.
        Conditional on the entry being unchanged since this (strongly consistent) read; a
        cancelled transaction calls this again."""
        item = self._rq.call(
            "get_item",
            TableName=self.tables["file_hashes"],
            Key=self._hash_key(rec),
            ConsistentRead=True,
        ).get("Item")
        if item is None:
            return []
        current = item["file_id"]["S"]
        files = codec.string_set(item, "files") | {current}
        if rec.file_id not in files and current != rec.file_id:
            return []
        names = attr_names("file_id", "v")
        values: Item = {":cur": S(current)}
        if "v" in item:
            cond = "#v = :v AND #file_id = :cur"
            values[":v"] = item["v"]
        else:  # an entry written before the set existed
            cond = "attribute_not_exists(#v) AND #file_id = :cur"
        base = {
            "TableName": self.tables["file_hashes"],
            "Key": self._hash_key(rec),
            "ConditionExpression": cond,
            "ExpressionAttributeNames": names,
        }
        rest = sorted(files - {rec.file_id})
        if not rest:
            return [{"Delete": {**base, "ExpressionAttributeValues": values}}]
        values[":f"] = S(current if current != rec.file_id else rest[0])
        values[":one"] = N(1)
        update = "SET #file_id = :f ADD #v :one"
        if "files" in item:
            update += " DELETE #files :me"
            names["#files"] = "files"
            values[":me"] = {"SS": [rec.file_id]}
        return [
            {"Update": {**base, "UpdateExpression": update, "ExpressionAttributeValues": values}}
        ]

    def _claim_delete(self, rec: FileRecord) -> bool:
        """complete -> deleting: the file vanishes for readers and listings at once, and
        its file_hashes entry moves on in the same transaction. The claim carries its own
        mark (``CLAIM_ATTR``): a runner that finds the file claimed by another stops
        (FileNotFound, as when that one has finished), one that finds its own claim (a
        resend whose first answer was lost) goes on. False: the file was marked verified
        since ``rec`` was read (its entry moved: see ``_delete_file_action``)."""
        file_id = rec.file_id
        mine = uuid.uuid4().hex
        cond, names, values = _as_read(
            "#state = :complete",
            attr_names("state", "listed_tenant", CLAIM_ATTR),
            {":deleting": S(FILE_DELETING), ":complete": S(FILE_COMPLETE), ":mine": S(mine)},
            rec.sha256_verified,
        )
        claim = {
            "Update": {
                "TableName": self.tables["files"],
                "Key": {"file_id": S(file_id)},
                "UpdateExpression": "SET #state = :deleting, #dc = :mine REMOVE #listed_tenant",
                "ConditionExpression": cond,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }
        for _ in range(MAX_ROUNDS):
            try:
                guard = self._link_guard(file_id)
                self._rq.transact([claim, *guard, *self._unhash_actions(rec)], uuid.uuid4().hex)
                return True
            except Cancelled as exc:
                if exc.codes[0] == "ConditionalCheckFailed":
                    break
                # the hash entry changed since it was read: read it again
        else:
            raise Unavailable("delete kept losing races on its content entry; try again")
        item = self._get_file_item(file_id, ("state", CLAIM_ATTR))
        if item is not None and item.get(CLAIM_ATTR, {}).get("S") == mine:
            return True
        if self._flag_moved(rec):
            return False
        # another runner claimed it: it finishes the delete (or, if it died, a later
        # delete_file or GC's sweep does); running beside it would only race it
        raise FileNotFound(f"no file {file_id}") from None

    def _unref_batch(
        self, file_id: str, mid: str, no: int, refs: Sequence[Ref], now: float, tenant: str
    ) -> None:
        """Drop batch ``no`` of a big file's references once: guarded by its marker item and
        by the file being deleting with manifest ``mid`` still (``store_refcounts``)."""
        marker = self._marker_action(mid, "d", no, now)
        guard = self._batch_guard(file_id, FILE_DELETING, mid)
        self._apply_refs(DROP, marker, f"{mid}/d{no}", refs, now, {}, tenant, guard=guard)


def _as_read(cond: str, names: Item, values: Item, verified: bool) -> tuple[str, Item, Item]:
    """``cond`` and its names and values, with the file's verified flag as it was read."""
    names = {**names, "#ver": "sha256_verified"}
    if not verified:
        return f"{cond} AND attribute_not_exists(#ver)", names, values
    return f"{cond} AND #ver = :true", names, {**values, ":true": {"BOOL": True}}
