"""A PutObject's new file and its link in the DynamoDB store (``create_and_put_object``).

One transaction when it fits: the file item put complete (its manifest inline) under
``attribute_not_exists(file_id)``, its chunks' refcounts and the tenant's, a counter shard
and the content entry (what ``store_create`` writes for a small file), together with the
key's change (``store_namespace_write``: head, version, listing, index, usage, link counts,
jobs) computed by ``put_object``'s plan, every condition of both kept. The chunks' refcounts
are read in the BatchGetItem that reads the bucket and the head, and the new file has no
links to read, so a small PUT reads once and writes once. A condition the read settled
(If-None-Match, If-Match, the owner, the bucket) refuses before anything is written; a
cancelled transaction (the head moved, a refcount guess went stale, the bucket changed) is
computed again from a fresh read, so a lost race answers as ``put_object`` does (two
concurrent creates: one wins, the other gets KeyExists) and leaves no file.

A file that does not fit (more than ``INLINE_ENTRIES`` entries, more distinct chunks than
one transaction holds beside the change, or over the 4 MB request limit) takes two writes:
``create_and_commit_files``, then ``put_object``; a refused link deletes the file again.
An intent item (``unlinked#NN | FILE``, put first) makes the crash window between them
recoverable: it goes once the link is written or the file deleted, and
``finish_namespace_jobs`` (every GC pass) resolves one older than ``UNLINKED_GRACE``: the
file, unless a version links it by then, is deleted (its references and counters with it).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import dfs.meta.dynamo.codec as codec
import dfs.meta.dynamo.store_namespace_codec as nc
from dfs.errors import Conflict, DfsError, FileNotFound
from dfs.meta.base import FILE_COMPLETE, FileRecord, Location, ManifestEntry
from dfs.meta.dynamo.codec import FILE_COMMITTING, N, Ref, S
from dfs.meta.dynamo.requests import TX_MAX, Cancelled, Item
from dfs.meta.dynamo.store_core import INLINE_ENTRIES
from dfs.meta.dynamo.store_namespace_buckets import MAX_ROUNDS
from dfs.meta.dynamo.store_namespace_objects import NsObjectsPart
from dfs.meta.dynamo.store_namespace_write import Change, KeyState, Plan
from dfs.meta.dynamo.store_refcounts import ADD, CHUNKS_PER_TX, refcount_deltas
from dfs.meta.namespace import NewObject, PutResult

log = logging.getLogger("dfs.meta.dynamo")

UNLINKED_GRACE = 3600.0  # seconds: far beyond any live writer's two writes
TX_BYTES_MAX = 4_000_000  # TransactWriteItems' aggregate size limit (4 MB)
_TOO_BIG = "too big"  # a round's answer when the transaction would not fit


@dataclasses.dataclass(slots=True)
class _NewFile:
    """The file a one-transaction create puts: its item (manifest inline) and references."""

    item: Item
    rec: FileRecord
    refs: list[Ref]


class NsCreatePart(NsObjectsPart):
    if TYPE_CHECKING:  # provided by ChunksPart

        async def add_locations(self, locations: Iterable[Location], now: float) -> None: ...

    async def create_and_put_object(
        self,
        rec: FileRecord,
        manifest: Sequence[ManifestEntry],
        locations: Sequence[Location],
        obj: NewObject,
        now: float,
        *,
        if_absent: bool = False,
        if_match: str | None = None,
    ) -> PutResult:
        locs = list(locations)
        if locs:  # the copies first, in their own writes, as create_and_commit_files does
            await self.add_locations(locs, now)
        entries = list(manifest)
        refs = codec.refs_of(entries)
        if len(entries) <= INLINE_ENTRIES and len(refs) <= CHUNKS_PER_TX:
            item = codec.file_item(rec, FILE_COMPLETE, self._new_manifest_id(rec), len(entries))
            await self._put_manifest(item, entries)  # inline: adds it to the item
            plan = self._put_plan(obj, now, if_absent, if_match)
            got = await self._create_and_link(_NewFile(item, rec, refs), obj, plan, now)
            if got is not None:
                return got
        return await self._create_then_link(rec, entries, obj, now, if_absent, if_match)

    # --- one transaction --------------------------------------------------------------------

    async def _create_and_link(
        self, new: _NewFile, obj: NewObject, plan: Plan, now: float
    ) -> PutResult | None:
        """The file and the key's change in one transaction; None when it does not fit."""
        for _ in range(MAX_ROUNDS):
            got = await self._rq.run(self._create_round, new, obj, plan, now)
            if isinstance(got, str):  # _TOO_BIG
                return None
            if got is None:
                continue
            change, jobs = got
            await self._run_jobs(jobs, now)
            assert change.result is not None
            released = next((j["fid"]["S"] for j in jobs if "rel" in j), None)
            return PutResult(change.result, released)
        raise Conflict(f"key {obj.key} of bucket {obj.bucket} keeps changing; try again")

    def _create_round(
        self, new: _NewFile, obj: NewObject, plan: Plan, now: float
    ) -> tuple[Change, list[Item]] | str | None:
        """One optimistic round: read (key, bucket, refcounts), plan, write. None when the
        transaction lost a race."""
        chunk_keys = [{"chunk_id": S(r.chunk_id)} for r in new.refs]
        st = self._key_state(obj.bucket, obj.key, {"chunks": chunk_keys})
        change = plan(st)
        if new.rec.tenant != st.bucket.tenant:  # what put_object's file check refuses
            raise FileNotFound(f"no complete file {new.rec.file_id} of tenant {st.bucket.tenant}")
        actions, jobs = self._change_actions(st, change, fresh=new.rec.file_id)
        actions = [*self._new_file_actions(new, st, now), *actions]
        if len(actions) > TX_MAX or _size(actions) > TX_BYTES_MAX:
            return _TOO_BIG
        try:
            self._rq.transact(actions)
        except Cancelled as exc:
            if exc.codes[0] != "ConditionalCheckFailed":
                return None  # the head, a link, a refcount or the bucket moved: read again
            # the file id is taken: by this very transaction (a retried request that had
            # succeeded), or by another file
            current = self._get_file_item(new.rec.file_id, ("mid",))
            if current is None or current["mid"]["S"] != new.item["mid"]["S"]:
                raise Conflict(f"metadata write conflicts: file {new.rec.file_id} exists") from None
        return change, jobs

    def _new_file_actions(self, new: _NewFile, st: KeyState, now: float) -> list[Item]:
        """The file put complete with its references, counters and content entry (as
        ``store_create``), each refcount conditional on the count read with the key."""
        counts = {i["chunk_id"]["S"]: codec.int_of(i, "refcount") for i in st.reads["chunks"]}
        shared = {r.chunk_id for r in new.refs if counts.get(r.chunk_id, 0) > 0}
        rec = new.rec
        put = {
            "Put": {
                "TableName": self.tables["files"],
                "Item": new.item,
                "ConditionExpression": "attribute_not_exists(file_id)",
            }
        }
        deltas = {"total_files": 1, "logical_bytes": rec.size}
        deltas.update(refcount_deltas(new.refs, shared, ADD))
        return [
            put,
            *(self._refcount_action(ADD, r, r.chunk_id in shared, now) for r in new.refs),
            *(self._tenant_refcount_action(rec.tenant, r, r.count) for r in new.refs),
            self._counter_action(rec.file_id, deltas),
            self._hash_action(rec),
        ]

    # --- two writes, with an intent item ----------------------------------------------------

    async def _create_then_link(
        self,
        rec: FileRecord,
        entries: Sequence[ManifestEntry],
        obj: NewObject,
        now: float,
        if_absent: bool,
        if_match: str | None,
    ) -> PutResult:
        """Between the two writes the file is visible: another upload of the same bytes may
        link it first, and then the delete is refused (the file stays, linked): the caller
        still gets its own refusal, never the cleanup's error."""
        intent = nc.unlinked_key(rec.file_id)
        await self._rq.run(self._put_intent, intent, rec, now)
        await self.create_and_commit_files([(rec, entries)], now)
        try:
            result = await self.put_object(obj, now, if_absent=if_absent, if_match=if_match)
        except DfsError:
            try:
                await self.delete_file(rec.file_id, rec.tenant, now)
            except DfsError as exc:  # the intent stays: GC resolves it
                log.info("unlinked file %s kept: %s", rec.file_id, exc)
            else:
                await self._rq.run(self._drop_intent, intent)
            raise
        await self._rq.run(self._drop_intent, intent)
        return result

    async def finish_namespace_jobs(self, now: float) -> int:
        done = await super().finish_namespace_jobs(now)
        for shard in range(nc.UNLINKED_SHARDS):
            intents = await self._rq.run(self._ns_query, "namespace", f"unlinked#{shard:02d}")
            for intent in intents:
                if now - float(intent["at"]["N"]) >= UNLINKED_GRACE:
                    done += await self._resolve_unlinked(intent, now)
        return done

    async def _resolve_unlinked(self, intent: Item, now: float) -> int:
        """Delete an abandoned PutObject's file unless a version links it; drop the intent.
        0 (the intent kept for the next pass) when the delete was refused."""
        file_id, tenant = intent["s"]["S"], intent["tenant"]["S"]
        try:
            if not await self._links_of(file_id):
                item = await self._file_item(file_id, ("state",))
                if item["state"]["S"] == FILE_COMMITTING:  # a crashed commit: finish it first
                    await self.commit_file(file_id, now)
                await self.delete_file(file_id, tenant, now)
                log.info("deleted file %s: its PutObject never linked it", file_id)
        except FileNotFound:
            pass  # never recorded, or deleted already
        except Conflict:
            return 0  # linked meanwhile (the next pass drops the intent) or busy
        await self._rq.run(self._drop_intent, nc.key_of(intent["p"]["S"], file_id))
        return 1

    # --- requests (worker threads) ----------------------------------------------------------

    def _put_intent(self, key: Item, rec: FileRecord, now: float) -> None:
        item = {**key, "tenant": S(rec.tenant), "at": N(float(now))}
        self._rq.call("put_item", TableName=self.tables["namespace"], Item=item)

    def _drop_intent(self, key: Item) -> None:
        self._rq.call("delete_item", TableName=self.tables["namespace"], Key=key)


def _size(value: Any) -> int:
    """About the bytes DynamoDB counts for a request's items (names and values)."""
    if isinstance(value, dict):
        return sum(len(k) + _size(v) for k, v in value.items())
    if isinstance(value, list):
        return sum(_size(v) for v in value)
    if isinstance(value, (str, bytes)):
        return len(value.encode() if isinstance(value, str) else value)
    return 8
