"""Listing, searching and usage reads of the namespace in the DynamoDB store.

- ``list_objects`` queries the bucket's ``list#`` partition (latest live versions only, in
  key order): a flat page of N keys is ONE Query of N+1 items (the extra one tells whether
  there is a next page). With a delimiter, each common prefix ends the Query and the next
  one starts after every key under it (``prefix_end``), so a folder costs one Query however
  many keys it holds.
- ``list_versions`` walks the ``head#`` partition the same way (delete markers included);
  a key with one version is answered from its head, a key with more by a Query of its
  ``ver#`` partition (newest first).
- ``search_objects`` reads, in key order under the prefix, the tag index partition of the
  tag asked for, else the content-type index partition of its major type, else the
  ``list#`` partition, and filters the rest (value, substring, sizes, dates) on the read
  items: a bounded scan of at most SEARCH_BUDGET index items per page, which may return
  fewer matches than asked with a token to go on. Substring, size and date filters are
  never indexed.
- Usage reads sum the USAGE_SHARDS rows of a scope's totals, or of each of its prefix or
  type groups: one Query each, never a scan of objects.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dfs.meta.dynamo.store_namespace_codec as nc
from dfs.errors import BucketNotFound
from dfs.meta.dynamo.codec import S, attr_names
from dfs.meta.dynamo.requests import BATCH_GET_MAX, Item
from dfs.meta.dynamo.store_namespace_buckets import NsBucketsPart
from dfs.meta.namespace import ObjectListing, ObjectVersion, SearchQuery, Usage
from dfs.namespace_rules import prefix_end

SEARCH_BUDGET = 1000  # index items one search page reads at most (a bounded scan)
Entry = tuple[str, Item | None, dict[str, str]]  # (key or common prefix, item, resume state)


def _after(prefix: str, start_after: str) -> dict[str, str]:
    """Where a listing starts without a token: after ``start_after`` when it lies at or past
    the prefix (a key past the prefix's range ends the walk at once), else at the prefix."""
    return {"s": "gt", "k": start_after} if start_after and start_after >= prefix else {}


class NsListPart(NsBucketsPart):
    def _key_query(self, p: str, prefix: str, start: dict[str, str], limit: int) -> Any:
        expr, values = "#p = :p", {":p": S(p)}
        op = {"gt": ">", "ge": ">="}.get(start.get("s", ""))
        if op is not None:
            expr += f" AND #s {op} :k"
            values[":k"] = S(start["k"])
        elif prefix:
            expr += " AND begins_with(#s, :k)"
            values[":k"] = S(prefix)
        names = attr_names("p", *(["s"] if ":k" in values else []))
        return self._rq.call(
            "query",
            TableName=self.tables["objects"],
            KeyConditionExpression=expr,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ConsistentRead=True,
            Limit=limit,
        )

    def _iter_keys(
        self, p: str, prefix: str, delimiter: str, start: dict[str, str], batch: int
    ) -> Iterator[Entry]:
        """Items of partition ``p`` under ``prefix`` from ``start``, keys in order, keys with
        ``delimiter`` after the prefix rolled up into common prefixes (item None)."""
        while True:
            resp = self._key_query(p, prefix, start, batch)
            items = resp.get("Items", [])
            restarted = False
            for item in items:
                key = item["s"]["S"]
                if not key.startswith(prefix):
                    return
                cut = key.find(delimiter, len(prefix)) if delimiter else -1
                if cut < 0:
                    start = {"s": "gt", "k": key}
                    yield key, item, start
                    continue
                cp = key[: cut + len(delimiter)]
                nxt = prefix_end(cp)
                start = {"s": "ge", "k": nxt or ""}
                yield cp, None, start
                if nxt is None:
                    return
                restarted = True
                break
            if not restarted and not resp.get("LastEvaluatedKey"):
                return

    def _page(self, entries: Iterator[Entry], limit: int) -> tuple[list[Entry], str | None]:
        """At most ``limit`` entries, and the token after them if any entry follows."""
        out: list[Entry] = []
        for entry in entries:
            if len(out) == limit:
                return out, nc.encode_token(out[-1][2])
            out.append(entry)
        return out, None

    async def list_objects(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        token: str | None = None,
        limit: int = 1000,
        start_after: str = "",
    ) -> ObjectListing:
        def op() -> ObjectListing:
            start = nc.decode_token(token) if token else _after(prefix, start_after)
            if not token:
                self._bucket_item(bucket)  # BucketNotFound; later pages skip the read
            entries = self._iter_keys(f"list#{bucket}", prefix, delimiter, start, limit + 1)
            page, nxt = self._page(entries, max(limit, 1))
            return _listing(bucket, page, nxt)

        return await self._rq.run(op)

    async def list_versions(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        token: str | None = None,
        limit: int = 1000,
        start_after: str = "",
    ) -> ObjectListing:
        def op() -> ObjectListing:
            start = nc.decode_token(token) if token else _after(prefix, start_after)
            if not token:
                self._bucket_item(bucket)
            page, nxt = self._page(
                self._iter_versions(bucket, prefix, delimiter, start, limit), limit
            )
            return ObjectListing(
                objects=[_version(bucket, i) for _, i, _ in page if i is not None],
                common_prefixes=[k for k, i, _ in page if i is None],
                next_token=nxt,
            )

        return await self._rq.run(op)

    def _iter_versions(
        self, bucket: str, prefix: str, delimiter: str, start: dict[str, str], limit: int
    ) -> Iterator[Entry]:
        if start.get("s") == "in":
            head = self._ns_get("objects", nc.head_key(bucket, start["k"]))
            if head is not None:
                yield from self._versions_of(bucket, head, start["v"], limit)
            start = {"s": "gt", "k": start["k"]}
        for key, head, resume in self._iter_keys(
            f"head#{bucket}", prefix, delimiter, start, limit + 1
        ):
            if head is None:
                yield key, None, resume
            else:
                yield from self._versions_of(bucket, head, None, limit)

    def _versions_of(
        self, bucket: str, head: Item, after: str | None, limit: int
    ) -> Iterator[Entry]:
        """A key's versions newest first (items marked with ``_latest``), after ``after``."""
        key, lsk = head["s"]["S"], nc.latest_vsk(head)
        if after is None and int(head["nv"]["N"]) == 1:
            # its only version: the next page starts at the next key, no GetItem of this one
            yield key, {**head, "_latest": S("1")}, {"s": "gt", "k": key}
            return
        start = {"s": "gt", "k": after} if after else {}
        for vsk, item, _ in self._iter_keys(f"ver#{bucket}/{key}", "", "", start, limit + 1):
            assert item is not None
            if vsk == lsk:
                item = {**item, "_latest": S("1")}
            yield key, item, {"s": "in", "k": key, "v": vsk}

    async def search_objects(
        self, bucket: str, query: SearchQuery, *, token: str | None = None, limit: int = 100
    ) -> ObjectListing:
        def op() -> ObjectListing:
            start = nc.decode_token(token)
            if not start:
                self._bucket_item(bucket)
            if query.tag is not None:
                p = f"tag#{bucket}/{query.tag[0]}"
            elif query.content_type:
                p = nc.ctype_partition(bucket, query.content_type)
            else:
                p = f"list#{bucket}"
            found: list[ObjectVersion] = []
            read, resume = 0, None
            batch = min(SEARCH_BUDGET, max(limit + 1, BATCH_GET_MAX))
            entries = self._iter_keys(p, query.prefix, "", start, batch)
            for group in _groups(entries, BATCH_GET_MAX):
                for v in self._full_versions(bucket, p, group):
                    if len(found) == limit:
                        return ObjectListing(found, [], nc.encode_token(resume or start))
                    if _matches(v, query):
                        found.append(v)
                    resume = {"s": "gt", "k": v.key}
                read += len(group)
                if read >= SEARCH_BUDGET:
                    return ObjectListing(found, [], nc.encode_token(group[-1][2]))
            return ObjectListing(found, [], None)

        return await self._rq.run(op)

    def _full_versions(self, bucket: str, p: str, group: list[Entry]) -> list[ObjectVersion]:
        """The latest versions of a group of index entries, in key order."""
        if p.startswith("list#"):
            return [nc.version_record(bucket, i, True) for _, i, _ in group if i is not None]
        keys = [nc.listed_key(bucket, k) for k, _, _ in group]
        got = {i["s"]["S"]: i for i in self._rq.batch_get(self.tables["objects"], keys)}
        return [nc.version_record(bucket, got[k], True) for k, _, _ in group if k in got]

    # --- usage ------------------------------------------------------------------------------

    def _scope_of(self, tenant: str, bucket: str | None) -> str:
        if bucket is None:
            return f"t:{tenant}"
        if self._bucket_item(bucket)["tenant"]["S"] != tenant:
            raise BucketNotFound(f"no bucket {bucket}")
        return f"b:{bucket}"

    async def usage(self, tenant: str, bucket: str | None = None) -> Usage:
        def op() -> Usage:
            p = nc.usage_partition(self._scope_of(tenant, bucket))
            return nc.usage_of(self._ns_query("namespace", p, begins="all#"))

        return await self._rq.run(op)

    async def usage_by_prefix(self, tenant: str, bucket: str) -> dict[str, Usage]:
        return await self._rq.run(self._usage_rows, tenant, bucket, "prefix")

    async def usage_by_type(self, tenant: str, bucket: str | None = None) -> dict[str, Usage]:
        return await self._rq.run(self._usage_rows, tenant, bucket, "type")

    def _usage_rows(self, tenant: str, bucket: str | None, kind: str) -> dict[str, Usage]:
        p = nc.usage_partition(self._scope_of(tenant, bucket))
        groups: dict[str, list[Item]] = {}
        for item in self._ns_query("namespace", p, begins=f"{kind}#"):
            groups.setdefault(nc.group_of(item["s"]["S"], kind), []).append(item)
        rows = {group: nc.usage_of(items) for group, items in groups.items()}
        return {group: u for group, u in rows.items() if not nc.is_empty(u)}


def _version(bucket: str, item: Item) -> ObjectVersion:
    return nc.version_record(bucket, item, "_latest" in item)


def _listing(bucket: str, page: list[Entry], nxt: str | None) -> ObjectListing:
    return ObjectListing(
        objects=[nc.version_record(bucket, i, True) for _, i, _ in page if i is not None],
        common_prefixes=[k for k, i, _ in page if i is None],
        next_token=nxt,
    )


def _groups(entries: Iterator[Entry], n: int) -> Iterator[list[Entry]]:
    group: list[Entry] = []
    for e in entries:
        group.append(e)
        if len(group) == n:
            yield group
            group = []
    if group:
        yield group


def _matches(v: ObjectVersion, q: SearchQuery) -> bool:
    tags = dict(v.tags)
    ct = v.content_type.lower()
    want_ct = q.content_type.lower()
    return (
        v.key.startswith(q.prefix)
        and q.contains in v.key
        and (q.tag is None or (q.tag[0] in tags and q.tag[1] in (None, tags[q.tag[0]])))
        and (not want_ct or (ct.startswith(want_ct) if want_ct.endswith("/") else ct == want_ct))
        and (q.min_size is None or v.size >= q.min_size)
        and (q.max_size is None or v.size <= q.max_size)
        and (q.modified_after is None or v.created_at >= q.modified_after)
        and (q.modified_before is None or v.created_at < q.modified_before)
    )
