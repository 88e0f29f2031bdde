"""A PutObject's new file and its link in the DynamoDB store (``create_and_put_object``);
also the path of every other new file a version links at once: a copy's own file in
another tenant's bucket (``copy_object``), a read-write grantee's file made the owner's.

One transaction when it fits: the file item put complete (its manifest inline) under
``attribute_not_exists(file_id)``, its chunks' refcounts and the tenant's, a counter shard
and the content entry (what ``store_create`` writes for a small file), together with the
key's change (``store_namespace_write``: head, version, listing, index, usage, link counts,
jobs) computed by ``put_object``'s plan, every condition of both kept. The chunks' refcounts
are read in the BatchGetItem that reads the bucket and the head, and the new file has no
links to read, so a small PUT reads once and writes once. A condition the read settled
(If-None-Match, If-Match, the owner, the bucket) refuses before anything is written; a
cancelled transaction (the head moved, a refcount guess went stale, the bucket changed), or
a link count read that is already stale when the change is built, is computed again from a
fresh read, so a lost race answers as ``put_object`` does (two concurrent creates: one
wins, the other gets KeyExists; two overwrites of an unversioned key: both succeed, the
later one stays) and leaves no file. Rounds that run out answer Conflict, or Unavailable
when they lost only refcount guesses (as ``commit_file``). Each round's transaction carries
its own ClientRequestToken, so the retry policy's resend of one whose answer was lost is
not applied twice (a resend after a refusal takes a new token: ``requests``); past DynamoDB's 10-minute window the resend is cancelled, and the file
item being ours (its manifest id) says it had succeeded.

A file that does not fit (more than ``INLINE_ENTRIES`` entries, more distinct chunks than
one transaction holds beside the change, or over the 4 MB request limit) takes two writes:
the file created complete, then ``put_object``; a refused link deletes the file again.
An intent item (``unlinked#NN | FILE``, put first) makes the crash window between them
recoverable, and the file item carries ``UNLINKED_ATTR`` from its first write, so no
lookup by content (``find_file_by_sha256``: another upload of the same bytes) adopts a file
that may yet be deleted. Linked, the file loses the mark, then the intent goes; refused,
the file is deleted, then the intent goes. A failure of that cleanup is logged, never
answered in place of the PUT's own outcome. ``finish_namespace_jobs`` (every GC pass)
resolves an intent older than ``UNLINKED_GRACE`` (at most ``INTENTS_PER_PASS`` per shard
and pass, each pass going on after the last intent the previous one read, so young intents
never starve older ones; one that fails kept for the next without holding up the others): a
linked file
loses its mark; a file being released (its tenant link item at 0 with ``rel``) is left to
its release, which deletes it with its tenant's and bucket's chunk counts; any other is
deleted (its references and counters with it); then the intent is dropped.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import dfs.meta.dynamo.codec as codec
import dfs.meta.dynamo.store_namespace_codec as nc
from dfs.errors import Conflict, DfsError, FileNotFound, Unavailable
from dfs.meta.base import FILE_COMPLETE, FileRecord, Location, ManifestEntry
from dfs.meta.dynamo.codec import FILE_COMMITTING, N, Ref, S
from dfs.meta.dynamo.requests import TX_MAX, Cancelled, Item
from dfs.meta.dynamo.store_core import INLINE_ENTRIES
from dfs.meta.dynamo.store_namespace_buckets import MAX_ROUNDS
from dfs.meta.dynamo.store_namespace_objects import NsObjectsPart
from dfs.meta.dynamo.store_namespace_write import Change, KeyState, Plan
from dfs.meta.dynamo.store_refcounts import ADD, CHUNKS_PER_TX, collected, refcount_deltas
from dfs.meta.namespace import NewObject, PutResult

log = logging.getLogger("dfs.meta.dynamo")

UNLINKED_GRACE = 3600.0  # seconds: far beyond any live writer's two writes
TX_BYTES_MAX = 4_000_000  # TransactWriteItems' aggregate size limit (4 MB)
INTENTS_PER_PASS = 256  # per shard: what one sweep reads of the intents (the next reads on)
# a round's answers when it wrote nothing: the transaction would not fit; it lost a race on
# the key (head, links, bucket) or a stale read; it lost only refcount guesses
_TOO_BIG, _LOST_KEY, _LOST_REFS = "too big", "lost key", "lost refs"


@dataclasses.dataclass(slots=True)
class _NewFile:
    """The file a one-transaction create puts: its item (manifest inline) and references."""

    item: Item
    rec: FileRecord
    refs: list[Ref]


class NsCreatePart(NsObjectsPart):
    if TYPE_CHECKING:  # provided by ChunksPart and CreatePart

        async def add_locations(self, locations: Iterable[Location], now: float) -> None: ...
        async def _create_committed(
            self,
            rec: FileRecord,
            manifest: Sequence[ManifestEntry],
            now: float,
            *,
            unlinked: bool = False,
        ) -> FileRecord: ...

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
        assert obj.file_id == rec.file_id, "the object links the file created with it"
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
        """The file and the key's change in one transaction; None when it does not fit.
        Rounds run out: Unavailable when the last ones lost only refcount guesses (as
        ``_apply_refs``), else Conflict (the key kept changing, as ``put_object``)."""
        lost = _LOST_KEY
        for attempt in range(MAX_ROUNDS):
            got = await self._rq.run(self._create_round, new, obj, plan, now, attempt > 0)
            if got == _TOO_BIG:
                return None
            if isinstance(got, str):
                lost = got
                continue
            change, jobs = got
            await self._run_jobs(jobs, now)
            assert change.result is not None
            released = next((j["fid"]["S"] for j in jobs if "rel" in j), None)
            return PutResult(change.result, released)
        if lost == _LOST_REFS:
            raise Unavailable(f"create of file {new.rec.file_id} kept losing refcount races")
        raise Conflict(f"key {obj.key} of bucket {obj.bucket} keeps changing; try again")

    def _create_round(
        self, new: _NewFile, obj: NewObject, plan: Plan, now: float, again: bool
    ) -> tuple[Change, list[Item]] | str:
        """One optimistic round: read (key, bucket, refcounts), plan, write. A string when
        it wrote nothing: ``_TOO_BIG``, or how the transaction lost a race (read again;
        ``again``: the content entry too, whose set may have been full)."""
        chunk_keys = [{"chunk_id": S(r.chunk_id)} for r in new.refs]
        st = self._key_state(obj.bucket, obj.key, {"chunks": chunk_keys})
        change = plan(st)
        if new.rec.tenant != st.bucket.tenant:  # what put_object's file check refuses
            raise FileNotFound(f"no complete file {new.rec.file_id} of tenant {st.bucket.tenant}")
        try:
            # building the change may find its reads stale too (a link count below 0):
            # Cancelled, like a transaction that lost, and so another round
            actions, jobs = self._change_actions(st, change, fresh=new.rec.file_id)
            actions = [*self._new_file_actions(new, st, now, again), *actions]
            if len(actions) > TX_MAX or _size(actions) > TX_BYTES_MAX:
                return _TOO_BIG
            # one token per round: the retry policy's resend of a transaction whose answer
            # was lost is then not applied again (within DynamoDB's 10 minutes)
            self._rq.transact(actions, token=uuid.uuid4().hex)
        except Cancelled as exc:
            if exc.codes[0] != "ConditionalCheckFailed":
                return _lost(exc.codes, len(new.refs))
            # the file id is taken: by this very transaction (a resend that had succeeded,
            # past the token's window), or by another file
            current = self._get_file_item(new.rec.file_id, ("mid",))
            if current is None or current["mid"]["S"] != new.item["mid"]["S"]:
                raise Conflict(f"metadata write conflicts: file {new.rec.file_id} exists") from None
        return change, jobs

    def _new_file_actions(
        self, new: _NewFile, st: KeyState, now: float, read: bool = False
    ) -> list[Item]:
        """The file put complete with its references, counters and content entry (as
        ``store_create``), each refcount conditional on the count read with the key.
        IncompleteUpload for chunks garbage collection deleted (``store_refcounts``; one
        deleted since the read cancels the transaction, and the next round's read sees it)."""
        reads = st.reads["chunks"]
        tombstones = {i["chunk_id"]["S"] for i in reads if codec.is_tombstone(i)}
        if gone := [r.chunk_id for r in new.refs if r.chunk_id in tombstones]:
            raise collected(gone)
        counts = {i["chunk_id"]["S"]: codec.int_of(i, "refcount") for i in reads}
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
            self._hash_action(rec, read=read),
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
        """The file is recorded ``UNLINKED_ATTR`` (no lookup by content hands it out) under
        an intent; linked, it loses the mark (in the link's transaction) and then the
        intent; refused, it is deleted
        and the caller gets its own refusal. A failure of that cleanup is only logged: the
        caller gets the real outcome, and the sweep resolves the intent left."""
        intent = nc.unlinked_key(rec.file_id)
        await self._rq.run(self._put_intent, intent, rec, now)
        await self._create_committed(rec, entries, now, unlinked=True)
        try:
            result = await self.put_object(obj, now, if_absent=if_absent, if_match=if_match)
        except DfsError:
            try:
                await self.delete_file(rec.file_id, rec.tenant, now)
                await self._rq.run(self._drop_intent, intent)
            except DfsError as exc:  # the intent stays: the sweep resolves it
                log.warning("refused PutObject's file %s left to the sweep: %s", rec.file_id, exc)
            raise
        try:
            await self._settle_linked(rec.file_id, intent)
        except DfsError as exc:  # the intent stays: the sweep settles it
            log.warning("linked file %s left to the sweep: %s", rec.file_id, exc)
        return result

    async def _settle_linked(self, file_id: str, intent: Item) -> None:
        """A linked file: its link cleared its mark in the same transaction, so only its
        intent is left to drop (a linked file is not found by content either:
        ``find_file_by_sha256`` leaves out what a version links)."""
        await self._rq.run(self._drop_intent, intent)

    async def finish_namespace_jobs(self, now: float) -> int:
        """The jobs, then the intents older than ``UNLINKED_GRACE``: at most
        ``INTENTS_PER_PASS`` per shard and pass (the next pass takes the rest); one that
        fails is logged and kept for the next pass, so it holds up no other."""
        done = await super().finish_namespace_jobs(now)
        for shard in range(nc.UNLINKED_SHARDS):
            intents = await self._rq.run(self._intents_page, f"unlinked#{shard:02d}")
            for intent in intents:
                if now - float(intent["at"]["N"]) < UNLINKED_GRACE:
                    continue
                try:
                    done += await self._resolve_unlinked(intent, now)
                except DfsError as exc:
                    log.warning("intent of file %s kept: %s", intent["s"]["S"], exc)
        return done

    async def _resolve_unlinked(self, intent: Item, now: float) -> int:
        """An abandoned PutObject's file: deleted unless a version links it (then it loses
        its mark) or it is being released (then the release deletes it, with its scopes'
        counts); the intent dropped. 0 (the intent kept for the next pass) when the delete
        was refused."""
        file_id, tenant = intent["s"]["S"], intent["tenant"]["S"]
        try:
            link = await self._link_item(file_id)
            if link is not None and "rel" not in link:  # linked (its mark went with the link;
                await self._rq.run(self._clear_unlinked, file_id)  # cleared again: harmless)
            elif link is None:
                item = await self._file_item(file_id, ("state",))
                if item["state"]["S"] == FILE_COMMITTING:  # a crashed commit: finish it first
                    await self._finish_commit(file_id, now, False)
                await self.delete_file(file_id, tenant, now)
                log.info("deleted file %s: its PutObject never linked it", file_id)
        except FileNotFound:
            pass  # never recorded, or deleted already
        except Conflict:
            return 0  # linked meanwhile (the next pass settles it) or busy
        await self._rq.run(self._drop_intent, nc.key_of(intent["p"]["S"], file_id))
        return 1

    # --- requests (worker threads) ----------------------------------------------------------

    def _intents_page(self, p: str) -> list[Item]:
        """The next ``INTENTS_PER_PASS`` intents of partition ``p``: after the last one the
        previous pass of this process read (from the head once the end was reached), so
        that intents still in their grace period, however many, never hide older ones."""
        params: Item = {
            "TableName": self.tables["namespace"],
            "KeyConditionExpression": "#p = :p",
            "ExpressionAttributeNames": {"#p": "p"},
            "ExpressionAttributeValues": {":p": S(p)},
            "ConsistentRead": True,
        }
        after = self.sweep_cursors.pop(p, None)
        if after is not None:
            params["ExclusiveStartKey"] = after
        items, last = self._rq.up_to("query", INTENTS_PER_PASS, params)
        if last is not None:
            self.sweep_cursors[p] = last
        return items

    def _put_intent(self, key: Item, rec: FileRecord, now: float) -> None:
        item = {**key, "tenant": S(rec.tenant), "at": N(float(now))}
        self._rq.call("put_item", TableName=self.tables["namespace"], Item=item)

    def _drop_intent(self, key: Item) -> None:
        self._rq.call("delete_item", TableName=self.tables["namespace"], Key=key)


def _lost(codes: Sequence[str], refs: int) -> str:
    """How a cancelled create lost: ``_LOST_REFS`` when only refcount guesses failed (the
    chunks' actions come right after the file's put), else ``_LOST_KEY``."""
    failed = {i for i, code in enumerate(codes) if code == "ConditionalCheckFailed"}
    return _LOST_REFS if failed and failed <= set(range(1, 1 + refs)) else _LOST_KEY


def _size(value: Any) -> int:
    """About the bytes DynamoDB counts for a request's items (names and values)."""
    if isinstance(value, dict):
        return sum(len(k) + _size(v) for k, v in value.items())
    if isinstance(value, list):
        return sum(_size(v) for v in value)
    if isinstance(value, (str, bytes)):
        return len(value.encode() if isinstance(value, str) else value)
    return 8
