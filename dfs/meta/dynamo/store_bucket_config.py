"""Bucket-configuration documents (``dfs.meta.bucket_config``) on DynamoDB: items
``bcfg#BUCKET | KIND`` in the namespace table (attributes ``gen``, ``doc``), beside the
bucket's own item, so no table, index or IAM action is added."""

from __future__ import annotations

from dfs.meta.dynamo.codec import S
from dfs.meta.dynamo.requests import Item
from dfs.meta.dynamo.store_core import StoreCore


def config_key(bucket: str, kind: str) -> Item:
    return {"p": S(f"bcfg#{bucket}"), "s": S(kind)}


class BucketConfigPart(StoreCore):
    async def put_bucket_config(
        self, bucket: str, generation: str, kind: str, document: str
    ) -> None:
        item = {**config_key(bucket, kind), "gen": S(generation), "doc": S(document)}
        await self._rq.run(
            lambda: self._rq.call("put_item", TableName=self.tables["namespace"], Item=item)
        )

    async def get_bucket_config(self, bucket: str, generation: str, kind: str) -> str | None:
        resp = await self._rq.run(
            lambda: self._rq.call(
                "get_item",
                TableName=self.tables["namespace"],
                Key=config_key(bucket, kind),
                ConsistentRead=True,
            )
        )
        item = resp.get("Item")
        if item is None or item["gen"]["S"] != generation:
            return None
        return str(item["doc"]["S"])

    async def delete_bucket_config(self, bucket: str, kind: str) -> None:
        await self._rq.run(
            lambda: self._rq.call(
                "delete_item", TableName=self.tables["namespace"], Key=config_key(bucket, kind)
            )
        )
