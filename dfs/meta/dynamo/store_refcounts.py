"""Reference counting in the DynamoDB store: the conditional transactions that commit
(references added) and delete (references dropped) share, and the counter shards they move.

Each distinct chunk's refcount changes in TransactWriteItems under a condition on what the
store expects it to be: before an increment, absent or 0 (the first referencer, which counts
the chunk as stored) or > 0 (a duplicate avoided); before a decrement, > count (others still
reference it) or = count (it reaches 0 and gets ``unref_at``, which garbage collection waits
on). The expectation comes from a read, but the decision counted is the one the conditional
write checked atomically: a failed condition cancels the transaction, flips that expectation
and runs it again, so stored_bytes/unique_chunks/duplicates_avoided stay exact under any
concurrency. The tenant's own refcount (``owned_chunks``) moves in the same transaction.
Each round is sent with its own ClientRequestToken: a resend of a round whose answer was lost
is answered as done instead of failing on its own success (``requests``).

A big file's batch (``_commit_batch``, ``_unref_batch``) is applied once thanks to its marker
item, and only while the file item is still in the state, with the manifest, the batch was
computed from (``_batch_guard``): the runner that finishes the file deletes the markers after
the file item, so a runner that read the file before that must find the batch done, never a
missing marker that would let it count the batch again.

An increment is also conditional on the chunk not being a tombstone (garbage collection
deleted it: ``store_chunks``). The caller took the chunk as held (finalize found its copies
recorded, a backup's plan its tenant's reference), and DynamoDB's UpdateItem would otherwise
recreate the item, with no copy, over the copies the nodes are deleting: a complete file
whose chunk is gone. Such a commit is refused with IncompleteUpload naming the chunks, before
it writes anything (a tombstone seen by the read) or after its transaction was cancelled (one
made since), so the file stays pending and the client sends them again; ``add_locations``
then records the new copies on a new item. Only a commit finished in order to be deleted at
once (``revive``: GC's sweep of a crashed commit) counts such a chunk on a new item instead.
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence

import dfs.meta.dynamo.codec as codec
from dfs.errors import IncompleteUpload, Unavailable
from dfs.meta.dynamo.codec import GONE_ATTR, N, Ref, S, attr_names
from dfs.meta.dynamo.requests import TX_MAX, Cancelled, Item
from dfs.meta.dynamo.store_core import COUNTER_SHARDS, StoreCore

# Each chunk takes two actions (its refcount, its tenant's refcount); the transactions built:
#   _commit_whole: file update + 2 per chunk + counter shard + file_hashes update = 2n + 3
#   _commit_batch / _unref_batch: marker + the file check + 2 per chunk + counter shard = 2n + 3
#   small delete (_delete_whole with _link_guard and _unhash_actions): file delete + 2 per
#     chunk + counter shard + the link check + at most one file_hashes update = 2n + 4
#   _complete: 3; _claim_delete: 3; the big delete's last step: 2
# so n = CHUNKS_PER_TX = 48 keeps every one within TX_MAX (test_dynamodb_store checks it).
CHUNKS_PER_TX = (TX_MAX - 3) // 2
MAX_ROUNDS = 64  # per refcount transaction, for flipped refcount expectations
ADD, DROP = 1, -1  # the sign of a refcount transaction: commit adds references, delete drops


class RefcountsPart(StoreCore):
    def _apply_refs(
        self,
        sign: int,
        head: Item,
        shard_of: str,
        refs: Sequence[Ref],
        now: float,
        extra: Mapping[str, int],
        tenant: str,
        tail: Callable[[], Sequence[Item]] = tuple,
        *,
        revive: bool = False,
        guard: Item | None = None,
    ) -> bool:
        """Run [head, guard, refcount updates..., the tenant's, counters, *tail()] until the
        guesses of which chunks have other references hold.

        The chunks' updates come right after the head (and ``guard``), in order, so a
        cancellation reason maps to a ref by position. ``tail`` is called again for every
        attempt (its conditions may change too). Returns False when ``head``'s own condition
        or ``guard``'s failed (someone else did it already, or the work is over).
        Adding references to chunks garbage collection deleted raises IncompleteUpload
        (nothing written), unless ``revive`` (see the module).
        """
        counts, gone = self._refcounts(refs)
        guarded = sign == ADD and not revive
        if guarded and gone:
            raise collected(gone)
        floor = {r.chunk_id: 0 if sign == ADD else r.count for r in refs}
        shared = {c for c, n in counts.items() if n > floor[c]}
        heads = [head] if guard is None else [head, guard]
        for _ in range(MAX_ROUNDS):
            deltas = refcount_deltas(refs, shared, sign)
            actions = [
                *(self._refcount_action(sign, r, r.chunk_id in shared, now, revive) for r in refs),
                *(self._tenant_refcount_action(tenant, r, sign * r.count) for r in refs),
                self._counter_action(shard_of, {**extra, **deltas}),
            ]
            try:
                self._rq.transact([*heads, *actions, *tail()], token=uuid.uuid4().hex)
                return True
            except Cancelled as exc:
                if "ConditionalCheckFailed" in exc.codes[: len(heads)]:
                    return False
                lost = [
                    r
                    for r, code in zip(refs, exc.codes[len(heads) :], strict=False)
                    if code == "ConditionalCheckFailed"
                ]
                # a first reference refused: perhaps collected since the read (a tombstone
                # fails the "> 0" guess too, which then flips to this one)
                first = [r for r in lost if r.chunk_id not in shared]
                if guarded and first and (gone := self._refcounts(first)[1]):
                    raise collected(gone) from None
                shared ^= {r.chunk_id for r in lost}
        what = "commit" if sign == ADD else "delete"
        raise Unavailable(f"{what} kept losing refcount races; try again")

    def _batch_guard(self, file_id: str, state: str, mid: str) -> Item:
        """A condition that file ``file_id`` is still ``state`` with manifest ``mid``: a big
        file's batch counts only while the commit or delete it belongs to is unfinished."""
        return {
            "ConditionCheck": {
                "TableName": self.tables["files"],
                "Key": {"file_id": S(file_id)},
                "ConditionExpression": "#state = :state AND #mid = :mid",
                "ExpressionAttributeNames": attr_names("state", "mid"),
                "ExpressionAttributeValues": {":state": S(state), ":mid": S(mid)},
            }
        }

    def _refcounts(self, refs: Sequence[Ref]) -> tuple[dict[str, int], list[str]]:
        """The chunks' refcounts now (the first guess of a refcount transaction), and those
        of them garbage collection deleted (tombstones), in ``refs``' order."""
        keys = [{"chunk_id": S(r.chunk_id)} for r in refs]
        attrs = ("chunk_id", "refcount", GONE_ATTR)
        items = self._rq.batch_get(self.tables["chunks"], keys, attrs)
        gone = {i["chunk_id"]["S"] for i in items if codec.is_tombstone(i)}
        counts = {i["chunk_id"]["S"]: codec.int_of(i, "refcount") for i in items}
        return counts, [r.chunk_id for r in refs if r.chunk_id in gone]

    def _refcount_action(
        self, sign: int, r: Ref, shared: bool, now: float, revive: bool = False
    ) -> Item:
        """Add (``sign`` 1) or drop (-1) ``r``'s references, conditional on ``shared``:
        whether the chunk has references besides these; ``revive``: see the module."""
        add = sign == ADD
        update = _increment(r, shared, now, revive) if add else _decrement(r, shared, now)
        key = {"chunk_id": S(r.chunk_id)}
        return {"Update": {"TableName": self.tables["chunks"], "Key": key, **update}}

    def _tenant_refcount_action(self, tenant: str, r: Ref, delta: int) -> Item:
        """The tenant's own refcount of a chunk (what ``owned_chunks`` reads)."""
        return {
            "Update": {
                "TableName": self.tables["tenant_chunks"],
                "Key": {"tenant": S(tenant), "chunk_id": S(r.chunk_id)},
                "UpdateExpression": "ADD #refcount :c",
                "ExpressionAttributeNames": attr_names("refcount"),
                "ExpressionAttributeValues": {":c": N(delta)},
            }
        }

    def _counter_action(self, shard_of: str, deltas: Mapping[str, int]) -> Item:
        """Add ``deltas`` to the Stats fields on one counter shard, chosen by ``shard_of``:
        sharded so that concurrent commits don't all conflict on one item."""
        shard = zlib.crc32(shard_of.encode()) % COUNTER_SHARDS
        names = list(deltas)
        return {
            "Update": {
                "TableName": self.tables["counters"],
                "Key": {"counter": S(f"stats#{shard:02d}")},
                "UpdateExpression": "ADD " + ", ".join(f"#{n} :{n}" for n in names),
                "ExpressionAttributeNames": attr_names(*names),
                "ExpressionAttributeValues": {f":{n}": N(v) for n, v in deltas.items()},
            }
        }


def collected(chunk_ids: Sequence[str]) -> IncompleteUpload:
    """The refusal of references to chunks garbage collection deleted: their copies are
    being deleted, so the client must send them again."""
    return IncompleteUpload(
        f"{len(chunk_ids)} chunk(s) were garbage collected after this upload found them "
        "held; send them and finalize again",
        missing=list(chunk_ids[:100]),
    )


def _increment(r: Ref, referenced: bool, now: float, revive: bool = False) -> Item:
    if referenced:  # a tombstone has no refcount: it fails this condition too
        return {
            "UpdateExpression": "ADD #refcount :c",
            "ConditionExpression": "#refcount > :zero",
            "ExpressionAttributeNames": attr_names("refcount"),
            "ExpressionAttributeValues": {":c": N(r.count), ":zero": N(0)},
        }
    update = (
        "SET #refcount = :c, #size = if_not_exists(#size, :s), "
        "#created_at = if_not_exists(#created_at, :t)"
    )
    condition = "attribute_not_exists(#refcount) OR #refcount = :zero"
    if revive:  # a tombstone made a chunk again, created now (it kept no created_at)
        update += " REMOVE #gone"
    else:  # absent (a chunk new to the store) or unreferenced, but not collected
        condition = (
            f"({condition}) AND (attribute_not_exists(#gone) OR attribute_exists(#refcount))"
        )
    return {
        "UpdateExpression": update,
        "ConditionExpression": condition,
        "ExpressionAttributeNames": attr_names("refcount", "size", "created_at", GONE_ATTR),
        "ExpressionAttributeValues": {
            ":c": N(r.count),
            ":s": N(r.size),
            ":t": N(float(now)),
            ":zero": N(0),
        },
    }


def _decrement(r: Ref, staying: bool, now: float) -> Item:
    if staying:
        return {
            "UpdateExpression": "ADD #refcount :neg",
            "ConditionExpression": "#refcount > :c",
            "ExpressionAttributeNames": attr_names("refcount"),
            "ExpressionAttributeValues": {":c": N(r.count), ":neg": N(-r.count)},
        }
    return {
        "UpdateExpression": "SET #unref_at = :t ADD #refcount :neg",
        "ConditionExpression": "#refcount = :c",
        "ExpressionAttributeNames": attr_names("refcount", "unref_at"),
        "ExpressionAttributeValues": {":c": N(r.count), ":neg": N(-r.count), ":t": N(float(now))},
    }


def refcount_deltas(refs: Iterable[Ref], shared: set[str], sign: int) -> dict[str, int]:
    """What adding (``sign`` 1) or dropping (-1) the references of ``refs`` does to the chunk
    counters, given which of the chunks have references besides these (``shared``)."""
    deltas = dict.fromkeys(("stored_bytes", "unique_chunks", "duplicates_avoided"), 0)
    for r in refs:
        if r.chunk_id in shared:
            deltas["duplicates_avoided"] += sign * r.count
        else:
            deltas["duplicates_avoided"] += sign * (r.count - 1)
            deltas["stored_bytes"] += sign * r.size
            deltas["unique_chunks"] += sign
    return deltas
