"""The usage history (``dfs.meta.usage_history``) on DynamoDB: items ``history#T | AT`` in
the namespace table (``AT`` the Unix second, zero-padded to 12 digits so it sorts), beside
the usage counters they sample; no table, index or IAM grant is added."""

from __future__ import annotations

from collections.abc import Sequence

from dfs.meta.dynamo.codec import N, S, attr_names
from dfs.meta.dynamo.requests import BATCH_WRITE_MAX, Item
from dfs.meta.dynamo.store_core import StoreCore
from dfs.meta.usage_history import UsageSample

PREFIX = "history#"


def _key(tenant: str, at: int) -> Item:
    return {"p": S(PREFIX + tenant), "s": S(f"{at:012d}")}


def _item(s: UsageSample) -> Item:
    return {
        **_key(s.tenant, s.at),
        "o": N(s.objects),
        "l": N(s.logical_bytes),
        "st": N(s.stored_bytes),
    }


def _sample(item: Item) -> UsageSample:
    return UsageSample(
        tenant=item["p"]["S"].removeprefix(PREFIX),
        at=int(item["s"]["S"]),
        objects=int(item["o"]["N"]),
        logical_bytes=int(item["l"]["N"]),
        stored_bytes=int(item["st"]["N"]),
    )


class UsageHistoryPart(StoreCore):
    async def add_usage_samples(self, samples: Sequence[UsageSample]) -> None:
        unique = {(s.tenant, s.at): s for s in samples}  # one request may not repeat a key
        puts = [{"PutRequest": {"Item": _item(s)}} for s in unique.values()]
        table = self.tables["namespace"]
        for i in range(0, len(puts), BATCH_WRITE_MAX):
            part = puts[i : i + BATCH_WRITE_MAX]
            await self._rq.run(self._rq.batch_write, table, part)

    async def usage_samples(self, tenant: str, since: float, limit: int) -> list[UsageSample]:
        params = {
            "TableName": self.tables["namespace"],
            "KeyConditionExpression": "#p = :p AND #s >= :s",
            "ExpressionAttributeNames": attr_names("p", "s"),
            "ExpressionAttributeValues": {
                ":p": S(PREFIX + tenant),
                ":s": S(f"{max(0, int(-(-since // 1))):012d}"),
            },
            "ScanIndexForward": False,
            "ConsistentRead": True,
        }
        items, _ = await self._rq.run(self._rq.up_to, "query", limit, params)
        return [_sample(i) for i in reversed(items)]

    async def prune_usage_samples(self, tenant: str, before: float) -> int:
        def old() -> list[Item]:
            return list(
                self._rq.paginate(
                    "query",
                    TableName=self.tables["namespace"],
                    KeyConditionExpression="#p = :p AND #s < :s",
                    ExpressionAttributeNames=attr_names("p", "s"),
                    ExpressionAttributeValues={
                        ":p": S(PREFIX + tenant),
                        ":s": S(f"{max(0, int(-(-before // 1))):012d}"),
                    },
                    ProjectionExpression="#p, #s",
                    ConsistentRead=True,
                )
            )

        items = await self._rq.run(old)
        deletes = [{"DeleteRequest": {"Key": {"p": i["p"], "s": i["s"]}}} for i in items]
        table = self.tables["namespace"]
        for i in range(0, len(deletes), BATCH_WRITE_MAX):
            await self._rq.run(self._rq.batch_write, table, deletes[i : i + BATCH_WRITE_MAX])
        return len(deletes)
