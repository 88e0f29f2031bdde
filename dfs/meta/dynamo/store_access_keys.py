"""S3 access keys on DynamoDB: items of kind "s3key" in the auth table, beside tenants and
tokens (so no table, index or IAM grant is added: the API already reads and writes that
table). The items hold sealed secrets only (``dfs.access_keys`` seals and opens them)."""

from __future__ import annotations

from dfs.meta.base import AccessKeyRecord
from dfs.meta.dynamo.codec import N, S, attr_names, auth_key
from dfs.meta.dynamo.requests import Item
from dfs.meta.dynamo.store_core import StoreCore

KIND = "s3key"


def key_item(rec: AccessKeyRecord) -> Item:
    return {
        **auth_key(KIND, rec.access_key_id),
        "tenant": S(rec.tenant),
        "sealed_secret": S(rec.sealed_secret),
        "label": S(rec.label),
        "created_at": N(float(rec.created_at)),
    }


def key_record(item: Item) -> AccessKeyRecord:
    return AccessKeyRecord(
        access_key_id=item["id"]["S"],
        tenant=item["tenant"]["S"],
        sealed_secret=item["sealed_secret"]["S"],
        label=item["label"]["S"],
        created_at=float(item["created_at"]["N"]),
    )


class AccessKeysPart(StoreCore):
    async def put_access_key(self, rec: AccessKeyRecord) -> None:
        await self._rq.run(
            lambda: self._rq.call(
                "put_item",
                TableName=self.tables["auth"],
                Item=key_item(rec),
                ConditionExpression="attribute_not_exists(#id)",
                ExpressionAttributeNames=attr_names("id"),
            )
        )

    async def get_access_key(self, access_key_id: str) -> AccessKeyRecord | None:
        resp = await self._rq.run(
            lambda: self._rq.call(
                "get_item",
                TableName=self.tables["auth"],
                Key=auth_key(KIND, access_key_id),
                ConsistentRead=True,
            )
        )
        item = resp.get("Item")
        return None if item is None else key_record(item)

    async def list_access_keys(self, tenant: str | None = None) -> list[AccessKeyRecord]:
        def op() -> list[AccessKeyRecord]:
            items = self._rq.paginate(
                "query",
                TableName=self.tables["auth"],
                KeyConditionExpression="#kind = :kind",
                ExpressionAttributeNames=attr_names("kind"),
                ExpressionAttributeValues={":kind": S(KIND)},
                ConsistentRead=True,
            )
            recs = (key_record(i) for i in items)
            mine = [r for r in recs if tenant is None or r.tenant == tenant]
            return sorted(mine, key=lambda r: (r.created_at, r.access_key_id))

        return await self._rq.run(op)

    async def delete_access_key(self, access_key_id: str) -> bool:
        resp = await self._rq.run(
            lambda: self._rq.call_or_none(
                "delete_item",
                TableName=self.tables["auth"],
                Key=auth_key(KIND, access_key_id),
                ConditionExpression="attribute_exists(#id)",
                ExpressionAttributeNames=attr_names("id"),
            )
        )
        return resp is not None
