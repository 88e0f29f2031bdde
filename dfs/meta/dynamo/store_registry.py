"""The registry part of the DynamoDB store: single items looked up by key, no reference
counting. Nodes (with a TTL), tenants, tokens and the nodes' heartbeat sequences (one auth
table), leases and the stats counter shards (one counters table).

TTL deletion is late (and moto never does it): live-node reads filter ``expires_at > now``.
"""

from __future__ import annotations

from typing import Any

import dfs.meta.dynamo.codec as codec
from dfs.meta.base import NODE_DOWN, Lease, NodeRecord, Stats, TokenRecord
from dfs.meta.dynamo.codec import COUNTERS, N, S, attr_names
from dfs.meta.dynamo.requests import Item
from dfs.meta.dynamo.store_core import COUNTER_SHARDS, StoreCore

_EARLIER = "#boot < :boot OR (#boot = :boot AND #seq < :seq)"
"""The item's (boot, seq) is an earlier node call's than the one writing."""


class RegistryPart(StoreCore):
    # --- nodes ------------------------------------------------------------------------------

    async def upsert_node(self, node: NodeRecord) -> bool:
        item = codec.node_item(node)
        ordered: dict[str, Any] = {}
        if node.boot or node.seq:
            # replaces only an item an earlier node call (or none, or no call) wrote
            ordered = {
                "ConditionExpression": f"attribute_not_exists(#boot) OR {_EARLIER}",
                "ExpressionAttributeNames": attr_names("boot", "seq"),
                "ExpressionAttributeValues": {":boot": N(node.boot), ":seq": N(node.seq)},
            }
        put = {"TableName": self.tables["nodes"], "Item": item, **ordered}
        return await self._rq.run(lambda: self._rq.call_or_none("put_item", **put)) is not None

    async def remove_node(self, node_id: str) -> None:
        await self._rq.run(
            lambda: self._rq.call(
                "delete_item", TableName=self.tables["nodes"], Key={"node_id": S(node_id)}
            )
        )

    async def deregister_node(self, node_id: str, now: float, boot: int = 0, seq: int = 0) -> None:
        names = attr_names("expires_at", "status", "node_id")
        values = {":now": N(float(now)), ":down": S(NODE_DOWN)}
        # never create a tombstone, never extend an expired entry
        update, live = "SET #expires_at = :now, #status = :down", "#expires_at > :now"
        ordered = ""
        if boot or seq:  # and never overwrite a later node call's write
            update += ", #boot = :boot, #seq = :seq"
            ordered = f" AND (attribute_not_exists(#boot) OR {_EARLIER})"
            names |= attr_names("boot", "seq")
            values |= {":boot": N(boot), ":seq": N(seq)}
        done = await self._deregister(node_id, update, live + ordered, names, values)
        if done is None and ordered:
            # an entry that expired already: recorded down by this call all the same, so a
            # heartbeat of an earlier call written late cannot bring it back up (as SQLite's
            # MIN(expires_at, now) does)
            update = "SET #status = :down, #boot = :boot, #seq = :seq"
            await self._deregister(node_id, update, "#expires_at <= :now" + ordered, names, values)

    async def _deregister(
        self, node_id: str, update: str, condition: str, names: Item, values: Item
    ) -> object:
        return await self._rq.run(
            lambda: self._rq.call_or_none(
                "update_item",
                TableName=self.tables["nodes"],
                Key={"node_id": S(node_id)},
                UpdateExpression=update,
                ConditionExpression=f"attribute_exists(#node_id) AND {condition}",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        )

    async def list_live_nodes(self, now: float) -> list[NodeRecord]:
        def op() -> list[NodeRecord]:
            items = self._rq.paginate(
                "scan",
                TableName=self.tables["nodes"],
                ConsistentRead=True,
                FilterExpression="#expires_at > :now",
                ExpressionAttributeNames=attr_names("expires_at"),
                ExpressionAttributeValues={":now": N(float(now))},
            )
            return sorted((codec.node_record(i) for i in items), key=lambda n: n.node_id)

        return await self._rq.run(op)

    async def list_nodes(self) -> list[NodeRecord]:
        def op() -> list[NodeRecord]:
            items = self._rq.paginate("scan", TableName=self.tables["nodes"], ConsistentRead=True)
            return sorted((codec.node_record(i) for i in items), key=lambda n: n.node_id)

        return await self._rq.run(op)

    # --- tenants and tokens -----------------------------------------------------------------

    async def create_tenant(self, tenant: str, now: float) -> None:
        item = {**codec.auth_key("tenant", tenant), "created_at": N(float(now))}
        await self._rq.run(self._put_new_auth_item, item)

    async def tenant_exists(self, tenant: str) -> bool:
        resp = await self._rq.run(
            lambda: self._rq.call(
                "get_item",
                TableName=self.tables["auth"],
                Key=codec.auth_key("tenant", tenant),
                ConsistentRead=True,
            )
        )
        return "Item" in resp

    async def list_tenants(self) -> list[str]:
        def op() -> list[str]:
            items = self._rq.paginate(
                "query",
                TableName=self.tables["auth"],
                KeyConditionExpression="#kind = :kind",
                ExpressionAttributeNames=attr_names("kind"),
                ExpressionAttributeValues={":kind": S("tenant")},
                ConsistentRead=True,
            )
            return [i["id"]["S"] for i in items]

        return await self._rq.run(op)

    async def put_token(self, rec: TokenRecord) -> None:
        await self._rq.run(self._put_new_auth_item, codec.token_item(rec))

    def _put_new_auth_item(self, item: Item) -> None:
        """Put a tenant or token; a Conflict if it exists (names and tokens are never reused)."""
        self._rq.call(
            "put_item",
            TableName=self.tables["auth"],
            Item=item,
            ConditionExpression="attribute_not_exists(#id)",
            ExpressionAttributeNames=attr_names("id"),
        )

    async def get_token(self, token_hash: str) -> TokenRecord | None:
        resp = await self._rq.run(
            lambda: self._rq.call(
                "get_item",
                TableName=self.tables["auth"],
                Key=codec.auth_key("token", token_hash),
                ConsistentRead=True,
            )
        )
        item = resp.get("Item")
        return None if item is None else codec.token_record(token_hash, item)

    async def list_tokens(self, tenant: str | None = None) -> list[TokenRecord]:
        def op() -> list[TokenRecord]:
            items = self._rq.paginate(
                "query",
                TableName=self.tables["auth"],
                KeyConditionExpression="#kind = :kind",
                ExpressionAttributeNames=attr_names("kind"),
                ExpressionAttributeValues={":kind": S("token")},
                ConsistentRead=True,
            )
            recs = (codec.token_record(i["id"]["S"], i) for i in items)
            mine = [r for r in recs if tenant is None or r.tenant == tenant]
            return sorted(mine, key=lambda r: (r.created_at, r.token_hash))

        return await self._rq.run(op)

    async def delete_token(self, token_hash: str) -> bool:
        resp = await self._rq.run(
            lambda: self._rq.call_or_none(
                "delete_item",
                TableName=self.tables["auth"],
                Key=codec.auth_key("token", token_hash),
                ConditionExpression="attribute_exists(#id)",
                ExpressionAttributeNames=attr_names("id"),
            )
        )
        return resp is not None

    async def advance_node_sequence(self, node_id: str, boot: int, seq: int) -> bool:
        """An item of kind "node_seq" in the auth table: replay protection for heartbeats.
        The boot number is ``boot_no``; an item from before boots were numbered (a nonce in
        ``boot``, a string) counts as none, and loses its ``boot`` on the first write."""
        resp = await self._rq.run(
            lambda: self._rq.call_or_none(
                "update_item",
                TableName=self.tables["auth"],
                Key=codec.auth_key("node_seq", node_id),
                UpdateExpression="SET #boot_no = :boot, #seq = :seq REMOVE #boot",
                ConditionExpression="attribute_not_exists(#boot_no) OR #boot_no < :boot "
                "OR (#boot_no = :boot AND #seq < :seq)",
                ExpressionAttributeNames=attr_names("boot_no", "boot", "seq"),
                ExpressionAttributeValues={":boot": N(boot), ":seq": N(seq)},
            )
        )
        return resp is not None

    # --- leases and stats -------------------------------------------------------------------

    async def acquire_lease(
        self, name: str, owner: str, now: float, ttl: float, info: str = ""
    ) -> bool:
        item = {
            **codec.lease_key(name),
            "owner": S(owner),
            "expires_at": N(float(now + ttl)),
            "info": S(info),
        }
        resp = await self._rq.run(
            lambda: self._rq.call_or_none(
                "put_item",
                TableName=self.tables["counters"],
                Item=item,
                ConditionExpression="attribute_not_exists(#counter) OR #expires_at <= :now "
                "OR #owner = :owner",
                ExpressionAttributeNames=attr_names("counter", "expires_at", "owner"),
                ExpressionAttributeValues={":now": N(float(now)), ":owner": S(owner)},
            )
        )
        return resp is not None

    async def get_lease(self, name: str) -> Lease | None:
        resp = await self._rq.run(
            lambda: self._rq.call(
                "get_item",
                TableName=self.tables["counters"],
                Key=codec.lease_key(name),
                ConsistentRead=True,
            )
        )
        item = resp.get("Item")
        return None if item is None else codec.lease_record(name, item)

    async def get_stats(self) -> Stats:
        """The sum of the counter shards (see ``StoreCore._counter_action``)."""
        keys = [{"counter": S(f"stats#{k:02d}")} for k in range(COUNTER_SHARDS)]
        items = await self._rq.get_many(self.tables["counters"], keys)
        totals = dict.fromkeys(COUNTERS, 0)
        for i in items:
            for name in COUNTERS:
                totals[name] += codec.int_of(i, name)
        return Stats(**totals)
