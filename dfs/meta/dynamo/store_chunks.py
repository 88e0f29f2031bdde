"""The chunks part of the DynamoDB store: where copies are, what chunks there are, and
deleting unreferenced ones.

``get_locations`` is a BatchGetItem of chunk items (100 ids a call), because each chunk item
carries its copies as a set (authoritative). The location items exist only for the by-node
index: add writes them before the set, remove deletes them after, so the index is a superset
of the truth and repair never misses a copy. (Plain writes, not transactions: both are
idempotent, and moto copies whole tables on every transaction, which made tests quadratic.)

Garbage collection does not delete a chunk item: it replaces it with a tombstone (the key and
``GONE_ATTR``, the wall-clock time), conditional on the refcount and grace as before. No read
returns a tombstone (``get_chunks``, ``scan_chunks``; it has no copies for ``get_locations``
and no refcount for ``list_chunk_ids``), but a commit's refcount increment is conditional on
its absence (``store_refcounts``): DynamoDB's UpdateItem creates a missing item, so without it
a commit that took the chunk as held (finalize saw its copies recorded) could recreate the
item, with no copy, right after garbage collection deleted it and while the nodes delete their
copies. ``add_locations`` records copies on a tombstone as on a new item (created now, no
reference): a copy sent again after the collection makes the chunk whole again. A scan drops
the tombstones older than ``TOMBSTONE_TTL``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Iterable, Sequence
from typing import Any

import dfs.meta.dynamo.codec as codec
from dfs.meta.base import ChunkInfo, ChunkState, Location
from dfs.meta.dynamo.codec import GONE_ATTR, KEEP_ATTR, N, S, attr_names
from dfs.meta.dynamo.requests import Item, Response
from dfs.meta.dynamo.store_core import StoreCore

TOMBSTONE_TTL = 86_400.0
"""Seconds a collected chunk's tombstone is kept at least (wall clock), and the GC grace when
that is longer (``KEEP_ATTR``): longer than a commit can take between the check that found
the chunk held and its write (a paged upload proves a page, then commits up to 0.9 x
DFS_GC_GRACE later)."""


def wall_clock() -> float:
    """The time tombstones are stamped and aged by (here, so that a test can move it)."""
    return time.time()


def _grouped(locations: Iterable[Location]) -> dict[str, tuple[int, list[str]]]:
    """chunk id -> (size, sorted node ids)."""
    groups: dict[str, tuple[int, set[str]]] = {}
    for loc in locations:
        groups.setdefault(loc.chunk_id, (loc.size, set()))[1].add(loc.node_id)
    return {c: (size, sorted(nodes)) for c, (size, nodes) in groups.items()}


class ChunksPart(StoreCore):
    async def add_locations(self, locations: Iterable[Location], now: float) -> None:
        groups = _grouped(locations)
        # The index items first, then the authoritative set on the chunk item: the by-node
        # index is a superset of the truth, so repair never misses a copy.
        puts = [
            {
                "PutRequest": {
                    "Item": {
                        **codec.location_key(chunk_id, node_id),
                        "size": N(size),
                        "created_at": N(float(now)),
                    }
                }
            }
            for chunk_id, (size, nodes) in groups.items()
            for node_id in nodes
        ]
        await self._rq.write_many(self.tables["locations"], puts)
        await asyncio.gather(
            *(
                self._rq.run(self._add_copies, c, size, nodes, now)
                for c, (size, nodes) in groups.items()
            )
        )

    def _add_copies(self, chunk_id: str, size: int, nodes: list[str], now: float) -> None:
        self._rq.call(
            "update_item",
            TableName=self.tables["chunks"],
            Key={"chunk_id": S(chunk_id)},
            UpdateExpression="SET #size = if_not_exists(#size, :s), "
            "#created_at = if_not_exists(#created_at, :t), "
            "#refcount = if_not_exists(#refcount, :zero) REMOVE #gone ADD #nodes :ns",
            # on a tombstone (key and GONE_ATTR only), a new chunk: created now, no reference
            ExpressionAttributeNames=attr_names(
                "size", "created_at", "refcount", GONE_ATTR, "nodes"
            ),
            ExpressionAttributeValues={
                ":s": N(size),
                ":t": N(float(now)),
                ":zero": N(0),
                ":ns": {"SS": nodes},
            },
        )

    async def remove_locations(self, locations: Iterable[Location]) -> None:
        groups = _grouped(locations)
        await asyncio.gather(
            *(self._rq.run(self._remove_copies, c, nodes) for c, (_, nodes) in groups.items())
        )
        deletes = [
            {"DeleteRequest": {"Key": codec.location_key(chunk_id, node_id)}}
            for chunk_id, (_, nodes) in groups.items()
            for node_id in nodes
        ]
        await self._rq.write_many(self.tables["locations"], deletes)

    def _remove_copies(self, chunk_id: str, nodes: list[str]) -> None:
        self._rq.call_or_none(
            "update_item",
            TableName=self.tables["chunks"],
            Key={"chunk_id": S(chunk_id)},
            UpdateExpression="DELETE #nodes :ns",
            # Never create a chunk item just to remove a copy from it (nor touch a tombstone).
            ConditionExpression="attribute_exists(chunk_id) "
            "AND (attribute_not_exists(#gone) OR attribute_exists(#refcount))",
            ExpressionAttributeNames=attr_names("nodes", GONE_ATTR, "refcount"),
            ExpressionAttributeValues={":ns": {"SS": nodes}},
        )

    async def remove_surplus_location(self, location: Location, keep: Collection[str]) -> bool:
        if location.node_id in keep:
            raise ValueError(f"a copy on {location.node_id} cannot be both removed and kept")
        removed = await self._rq.run(self._remove_copy_if, location, sorted(set(keep)))
        if removed is None:
            return False
        key = codec.location_key(location.chunk_id, location.node_id)
        await self._rq.write_many(self.tables["locations"], [{"DeleteRequest": {"Key": key}}])
        return True

    def _remove_copy_if(self, location: Location, kept: list[str]) -> Response | None:
        checks = [f"contains(#nodes, :k{i})" for i in range(len(kept))]
        return self._rq.call_or_none(
            "update_item",
            TableName=self.tables["chunks"],
            Key={"chunk_id": S(location.chunk_id)},
            UpdateExpression="DELETE #nodes :ns",
            # a tombstone has no copies, so it is refused too; a lost answer's resend finds
            # the copy gone and is refused: the trim then leaves the copy on its node,
            # unrecorded (never fewer copies than it counted) but still in the by-node
            # index, so the orphan sweep, not the inventory, records it again
            ConditionExpression=" AND ".join(["contains(#nodes, :n)", *checks]),
            ExpressionAttributeNames=attr_names("nodes"),
            ExpressionAttributeValues={
                ":ns": {"SS": [location.node_id]},
                ":n": S(location.node_id),
                **{f":k{i}": S(n) for i, n in enumerate(kept)},
            },
        )

    async def get_locations(self, chunk_ids: Sequence[str]) -> dict[str, set[str]]:
        ids = list(dict.fromkeys(chunk_ids))
        keys = [{"chunk_id": S(c)} for c in ids]
        items = await self._rq.get_many(self.tables["chunks"], keys, ("chunk_id", "nodes"))
        out: dict[str, set[str]] = {c: set() for c in ids}
        for i in items:
            out[i["chunk_id"]["S"]] = codec.string_set(i, "nodes")
        return out

    async def get_chunks(self, chunk_ids: Sequence[str]) -> dict[str, ChunkInfo]:
        ids = list(dict.fromkeys(chunk_ids))
        keys = [{"chunk_id": S(c)} for c in ids]
        attrs = ("chunk_id", "size", "refcount", "created_at", GONE_ATTR)
        items = await self._rq.get_many(self.tables["chunks"], keys, attrs)
        return {i["chunk_id"]["S"]: codec.chunk_info(i) for i in items if not codec.is_tombstone(i)}

    async def owned_chunks(
        self, tenant: str, chunk_ids: Sequence[str], *, ever: bool = False
    ) -> set[str]:
        ids = list(dict.fromkeys(chunk_ids))
        keys = [{"tenant": S(tenant), "chunk_id": S(c)} for c in ids]
        items = await self._rq.get_many(
            self.tables["tenant_chunks"], keys, ("chunk_id", "refcount")
        )
        floor = -1 if ever else 0
        return {i["chunk_id"]["S"] for i in items if codec.int_of(i, "refcount") > floor}

    async def list_chunk_ids(
        self, *, limit: int, after: str | None = None
    ) -> tuple[list[str], str | None]:
        def op() -> tuple[list[str], str | None]:
            params: dict[str, Any] = {
                "TableName": self.tables["chunks"],
                "ProjectionExpression": "#chunk_id",
                "FilterExpression": "#refcount > :zero",
                "ExpressionAttributeNames": attr_names("chunk_id", "refcount"),
                "ExpressionAttributeValues": {":zero": N(0)},
                "ConsistentRead": True,
            }
            if after is not None:
                params["ExclusiveStartKey"] = {"chunk_id": S(after)}
            items, last = self._rq.up_to("scan", limit, params)
            ids = [i["chunk_id"]["S"] for i in items]
            return ids, None if last is None else str(last["chunk_id"]["S"])

        if limit <= 0:
            return [], after
        return await self._rq.run(op)

    # --- garbage collection and repair --------------------------------------------------------

    async def scan_chunks(self, *, limit: int, after: str | None = None) -> list[ChunkState]:
        def op() -> list[ChunkState]:
            """Up to ``limit`` chunks (fewer only at the end: the caller's paging stops at a
            short page), the tombstones passed over, and dropped once old."""
            out: list[ChunkState] = []
            start: Item | None = None if after is None else {"chunk_id": S(after)}
            while len(out) < limit:
                params: dict[str, Any] = {
                    "TableName": self.tables["chunks"],
                    "ConsistentRead": True,
                }
                if start is not None:
                    params["ExclusiveStartKey"] = start
                items, start = self._rq.up_to("scan", limit - len(out), params)
                for i in items:
                    if codec.is_tombstone(i):
                        self._drop_tombstone(i)
                    else:
                        out.append(codec.chunk_state(i))
                if start is None:
                    break
            return out

        if limit <= 0:
            return []
        return await self._rq.run(op)

    def _drop_tombstone(self, item: Item) -> None:
        """Delete a tombstone older than ``TOMBSTONE_TTL`` (unless a copy recorded since
        made it a chunk again)."""
        gone = item[GONE_ATTR]
        keep = float(item.get(KEEP_ATTR, {"N": TOMBSTONE_TTL})["N"])
        if wall_clock() - float(gone["N"]) <= keep:
            return
        self._rq.call_or_none(
            "delete_item",
            TableName=self.tables["chunks"],
            Key={"chunk_id": item["chunk_id"]},
            ConditionExpression="#gone = :gone AND attribute_not_exists(#refcount)",
            ExpressionAttributeNames=attr_names(GONE_ATTR, "refcount"),
            ExpressionAttributeValues={":gone": gone},
        )

    async def delete_chunk_if_unreferenced(self, chunk_id: str, cutoff: float) -> set[str] | None:
        resp = await self._rq.run(self._delete_unreferenced, chunk_id, cutoff)
        old = resp.get("Attributes") if resp is not None else None
        if not old:
            return None
        nodes = codec.string_set(old, "nodes")
        deletes = [
            {"DeleteRequest": {"Key": codec.location_key(chunk_id, n)}} for n in sorted(nodes)
        ]
        await self._rq.write_many(self.tables["locations"], deletes)
        return nodes

    def _delete_unreferenced(self, chunk_id: str, cutoff: float) -> Response | None:
        """The chunk item replaced by its tombstone, if unreferenced past ``cutoff`` (a
        tombstone has no created_at: never again)."""
        now = wall_clock()
        return self._rq.call_or_none(
            "put_item",
            TableName=self.tables["chunks"],
            Item={
                "chunk_id": S(chunk_id),
                GONE_ATTR: N(now),
                KEEP_ATTR: N(max(TOMBSTONE_TTL, now - cutoff)),  # a grace longer than a day
            },
            ConditionExpression="(attribute_not_exists(#refcount) OR #refcount = :zero) "
            "AND #created_at < :cutoff "
            "AND (attribute_not_exists(#unref_at) OR #unref_at < :cutoff)",
            ExpressionAttributeNames=attr_names("refcount", "created_at", "unref_at"),
            ExpressionAttributeValues={":zero": N(0), ":cutoff": N(float(cutoff))},
            ReturnValues="ALL_OLD",
        )

    async def node_chunks(self, node_id: str, *, limit: int, after: str | None = None) -> list[str]:
        def op() -> list[str]:
            params: dict[str, Any] = {
                "TableName": self.tables["locations"],
                "IndexName": "by-node",
                "KeyConditionExpression": "#node_id = :n",
                "ProjectionExpression": "#chunk_id",
                "ExpressionAttributeNames": attr_names("node_id", "chunk_id"),
                "ExpressionAttributeValues": {":n": S(node_id)},
            }
            if after:  # DynamoDB rejects an empty string in a key condition
                params["KeyConditionExpression"] += " AND #chunk_id > :after"
                params["ExpressionAttributeValues"][":after"] = S(after)
            items, _ = self._rq.up_to("query", limit, params)
            return [i["chunk_id"]["S"] for i in items]

        if limit <= 0:
            return []
        return await self._rq.run(op)
