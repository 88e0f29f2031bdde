"""Buckets in the DynamoDB store: create, read, list, update, delete.

A bucket is one item (``bucket#NAME``) put with ``attribute_not_exists`` in the transaction
that also puts its by-tenant index item, so a name is taken by one tenant only and a
tenant's listing is one Query. Grants are mirrored as by-grantee index items, those that
change written in the same transaction as the bucket, conditional on the grants the change
was computed from: one transaction bounds a bucket's grants (the API takes at most
``dfs.api.namespace_bodies.MAX_GRANTS``; more changes at once are InvalidRequest).

Deleting: the bucket is first marked ``deleting`` (every version write checks that it is
not), then its key heads are queried (strongly consistent): a write that committed before
the mark is seen (BucketNotEmpty, the mark is lifted), one after it is refused (Conflict). A delete that crashed between the
two leaves the mark until delete_bucket is called again, which finishes or lifts it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import dfs.meta.dynamo.store_namespace_codec as nc
from dfs.errors import BucketExists, BucketNotEmpty, BucketNotFound, Conflict, InvalidRequest
from dfs.meta.dynamo.codec import S, attr_names, projection
from dfs.meta.dynamo.requests import BATCH_WRITE_MAX, TX_MAX, Cancelled, Item, chunks_of
from dfs.meta.dynamo.store_core import StoreCore
from dfs.meta.namespace import (
    VERSIONING_STATES,
    VERSIONING_UNVERSIONED,
    BucketRecord,
)

MAX_ROUNDS = 32  # optimistic rounds of one namespace write before giving up (Conflict)


class NsBucketsPart(StoreCore):
    # --- reads (worker threads) -------------------------------------------------------------

    def _ns_get(self, table: str, key: Item) -> Item | None:
        resp = self._rq.call("get_item", TableName=self.tables[table], Key=key, ConsistentRead=True)
        item: Item | None = resp.get("Item")
        return item

    def _ns_query(self, table: str, p: str, limit: int | None = None, **cond: Any) -> list[Item]:
        """Items of partition ``p`` (all, or at most ``limit``), in sort key order."""
        expr = "#p = :p"
        values: Item = {":p": S(p)}
        if "begins" in cond:
            expr += " AND begins_with(#s, :b)"
            values[":b"] = S(cond["begins"])
        params: dict[str, Any] = {
            "TableName": self.tables[table],
            "KeyConditionExpression": expr,
            "ExpressionAttributeNames": attr_names("p", *(["s"] if "begins" in cond else [])),
            "ExpressionAttributeValues": values,
            "ConsistentRead": True,
        }
        if limit is None:
            return list(self._rq.paginate("query", **params))
        return self._rq.up_to("query", limit, params)[0]

    def _get_across(
        self, wanted: Mapping[str, Sequence[Item]], projections: Mapping[str, Sequence[str]]
    ) -> dict[str, list[Item]]:
        """One strongly consistent BatchGetItem across tables (logical name -> at most 100
        keys in all), under the request layer's retry policy; items by logical table."""
        request: Item = {}
        for table, keys in wanted.items():
            if keys:
                request[self.tables[table]] = {"Keys": list(keys), "ConsistentRead": True}
                if table in projections:
                    attrs = projections[table]
                    request[self.tables[table]]["ProjectionExpression"] = projection(attrs)
                    request[self.tables[table]]["ExpressionAttributeNames"] = attr_names(*attrs)
        logical = {self.tables[t]: t for t in wanted}
        out: dict[str, list[Item]] = {t: [] for t in wanted}

        def collect(resp: Item) -> None:
            for name, items in resp.get("Responses", {}).items():
                out[logical[name]].extend(items)

        if request:
            self._rq.until_processed("batch_get_item", request, "UnprocessedKeys", collect)
        return out

    def _bucket_item(self, name: str) -> Item:
        item = self._ns_get("namespace", nc.bucket_key(name))
        if item is None:
            raise BucketNotFound(f"no bucket {name}")
        return item

    def _owned_bucket(self, name: str, tenant: str) -> Item:
        item = self._bucket_item(name)
        if item["tenant"]["S"] != tenant:
            raise BucketNotFound(f"no bucket {name}")
        return item

    # --- the port ---------------------------------------------------------------------------

    async def create_bucket(self, rec: BucketRecord) -> None:
        def op() -> None:
            try:
                self._rq.transact(
                    [
                        {
                            "Put": {
                                "TableName": self.tables["namespace"],
                                "Item": nc.bucket_item(rec),
                                "ConditionExpression": "attribute_not_exists(p)",
                            }
                        },
                        {
                            "Put": {
                                "TableName": self.tables["namespace"],
                                "Item": nc.key_of(f"tenant#{rec.tenant}", rec.name),
                            }
                        },
                        *self._guard_rows(rec.name, versioning=rec.versioning, deleting=False),
                    ],
                    uuid.uuid4().hex,
                )
            except Cancelled:
                # this very write, resent after its answer was lost past the token's window?
                item = self._ns_get("namespace", nc.bucket_key(rec.name))
                if item is None or nc.bucket_record(item) != rec:
                    raise BucketExists(f"bucket {rec.name} exists") from None

        await self._rq.run(op)

    async def get_bucket(self, name: str) -> BucketRecord:
        return nc.bucket_record(await self._rq.run(self._bucket_item, name))

    async def list_buckets(self, tenant: str, *, granted: bool = False) -> list[BucketRecord]:
        def names() -> list[str]:
            parts = ["tenant"] + (["grantee"] if granted else [])
            return [
                i["s"]["S"]
                for part in parts
                for i in self._ns_query("namespace", f"{part}#{tenant}")
            ]

        wanted = sorted(set(await self._rq.run(names)))
        items = await self._rq.get_many(
            self.tables["namespace"], [nc.bucket_key(n) for n in wanted]
        )
        recs = [nc.bucket_record(i) for i in items]
        # an index item outlives its bucket only between the steps of a crashed delete
        keep = [r for r in recs if r.tenant == tenant or (granted and _grants(r, tenant))]
        return sorted(keep, key=lambda r: r.name.encode())

    async def delete_bucket(self, name: str, tenant: str) -> None:
        await self._rq.run(self._delete_bucket, name, tenant)

    def _delete_bucket(self, name: str, tenant: str) -> None:
        rec = nc.bucket_record(self._owned_bucket(name, tenant))
        self._mark_deleting(name, True)
        if self._ns_query("objects", f"head#{name}", 1):
            self._mark_deleting(name, False)
            raise BucketNotEmpty(f"bucket {name} is not empty")
        table = self.tables["namespace"]
        actions: list[Item] = [
            {
                "Delete": {
                    "TableName": table,
                    "Key": nc.bucket_key(name),
                    "ConditionExpression": "attribute_exists(p)",
                }
            },
            {"Delete": {"TableName": table, "Key": nc.key_of(f"tenant#{tenant}", name)}},
        ]
        grantees = [nc.key_of(f"grantee#{grantee}", name) for grantee, _ in rec.grants]
        # a bucket shared before grants were bounded may hold more index items than one
        # transaction takes: the rest go right after it (an index item that outlives its
        # bucket is left out of listings, ``list_buckets``)
        fit = TX_MAX - len(actions)
        actions += [{"Delete": {"TableName": table, "Key": k}} for k in grantees[:fit]]
        try:
            self._rq.transact(actions, uuid.uuid4().hex)
        except Cancelled:
            raise BucketNotFound(f"no bucket {name}") from None
        for part in chunks_of(grantees[fit:], BATCH_WRITE_MAX):
            self._rq.batch_write(table, [{"DeleteRequest": {"Key": k}} for k in part])

    def _mark_deleting(self, name: str, on: bool) -> None:
        """Mark (or unmark) the bucket as being deleted, on its item and its guard rows."""
        mark: Item = {
            "Update": {
                "TableName": self.tables["namespace"],
                "Key": nc.bucket_key(name),
                "UpdateExpression": "SET #deleting = :on" if on else "REMOVE #deleting",
                "ConditionExpression": "attribute_exists(p)",
                "ExpressionAttributeNames": attr_names("deleting"),
                **({"ExpressionAttributeValues": {":on": S("1")}} if on else {}),
            }
        }
        try:
            self._rq.transact([mark, *self._guard_rows(name, deleting=on)])
        except Cancelled:
            raise BucketNotFound(f"no bucket {name}") from None

    def _guard_rows(
        self, name: str, *, versioning: str | None = None, deleting: bool | None = None
    ) -> list[Item]:
        """Updates of the bucket state its usage totals rows mirror (see the codec): every
        version write is conditional on the row it moves, so all rows change together."""
        sets: list[str] = []
        values: Item = {}
        if versioning is not None:
            sets.append("#versioning = :v")
            values[":v"] = S(versioning)
        if deleting:
            sets.append("#deleting = :on")
            values[":on"] = S("1")
        expr = "SET " + ", ".join(sets) if sets else ""
        if deleting is False:
            expr += " REMOVE #deleting"
        names = ["versioning"] * (versioning is not None) + ["deleting"] * (deleting is not None)
        rows = [f"all#{shard:02d}" for shard in range(nc.USAGE_SHARDS)]
        update: Item = {
            "TableName": self.tables["namespace"],
            "UpdateExpression": expr.strip(),  # never empty: callers change something
            "ExpressionAttributeNames": attr_names(*names),
        }
        if values:
            update["ExpressionAttributeValues"] = values
        part = nc.usage_partition(f"b:{name}")
        return [{"Update": {**update, "Key": nc.key_of(part, row)}} for row in rows]

    async def update_bucket(
        self,
        name: str,
        tenant: str,
        *,
        versioning: str | None = None,
        access: str | None = None,
        grants: Sequence[tuple[str, str]] | None = None,
    ) -> BucketRecord:
        if versioning is not None and versioning not in VERSIONING_STATES:
            raise InvalidRequest(f"unknown versioning state {versioning!r}")
        for _ in range(MAX_ROUNDS):
            done = await self._rq.run(self._update_bucket, name, tenant, versioning, access, grants)
            if done is not None:
                return done
        raise Conflict(f"bucket {name} keeps changing; try again")

    def _update_bucket(
        self,
        name: str,
        tenant: str,
        versioning: str | None,
        access: str | None,
        grants: Sequence[tuple[str, str]] | None,
    ) -> BucketRecord | None:
        item = self._owned_bucket(name, tenant)
        old = nc.bucket_record(item)
        if versioning == VERSIONING_UNVERSIONED and old.versioning != VERSIONING_UNVERSIONED:
            raise Conflict("versioning cannot be turned off once enabled; suspend it")
        new = BucketRecord(
            name=old.name,
            tenant=old.tenant,
            created_at=old.created_at,
            versioning=versioning or old.versioning,
            access=access or old.access,
            grants=old.grants if grants is None else tuple(sorted(dict(grants).items())),
        )
        new_item = nc.bucket_item(new)
        if "deleting" in item:
            new_item["deleting"] = item["deleting"]
        table = self.tables["namespace"]
        actions: list[Item] = [
            {
                "Put": {
                    "TableName": table,
                    "Item": new_item,
                    "ConditionExpression": "#grants = :g AND #versioning = :v",
                    "ExpressionAttributeNames": attr_names("grants", "versioning"),
                    "ExpressionAttributeValues": {":g": item["grants"], ":v": item["versioning"]},
                }
            }
        ]
        if new.versioning != old.versioning:
            actions += self._guard_rows(name, versioning=new.versioning)
        # only the index items that change: a bucket's grants need not fit one transaction
        # twice over (and one shared before grants were bounded can still change)
        was_granted, now_granted = dict(old.grants), dict(new.grants)
        for grantee in was_granted.keys() - now_granted.keys():
            key = nc.key_of(f"grantee#{grantee}", name)
            actions.append({"Delete": {"TableName": table, "Key": key}})
        for grantee, grant in now_granted.items():
            if was_granted.get(grantee) != grant:
                key = nc.key_of(f"grantee#{grantee}", name)
                actions.append({"Put": {"TableName": table, "Item": {**key, "grant": S(grant)}}})
        try:
            self._rq.transact(actions)
        except Cancelled:
            return None
        return new


def _grants(rec: BucketRecord, tenant: str) -> bool:
    return any(g == tenant for g, _ in rec.grants)
