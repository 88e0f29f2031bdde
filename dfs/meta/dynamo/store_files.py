"""The files part of the DynamoDB store: creating files with their manifests, reading and
listing them, finding one by content, and the pending files garbage collection looks at.

Committing and deleting, which move reference counts, live in ``store_commit`` and
``store_delete``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import dfs.meta.dynamo.codec as codec
import dfs.meta.dynamo.store_namespace_codec as nc
from dfs.bounded import gather_bounded
from dfs.errors import Conflict, DfsError, FileNotFound, Unavailable
from dfs.meta.base import (
    FILE_COMPLETE,
    FILE_PENDING,
    LISTED_NAMES_FROM,
    FileRecord,
    ManifestEntry,
    sha256_entry,
)
from dfs.meta.dynamo.codec import FILE_ITEM_ATTRS, UNLINKED_ATTR, N, S, attr_names, projection
from dfs.meta.dynamo.requests import Cancelled, Item
from dfs.meta.dynamo.store_core import BATCH_CONCURRENCY, StoreCore

# what reading a file's manifest needs of its item
T = TypeVar("T")
_MANIFEST_ATTRS = ("file_id", "state", "sha256", "mid", "pages", "mf", "m", "apages")


class FilesPart(StoreCore):
    async def create_file(
        self, rec: FileRecord, manifest: Sequence[ManifestEntry], *, unlinked: bool = False
    ) -> None:
        """``unlinked``: the item carries ``UNLINKED_ATTR`` (see the codec)."""
        entries = list(manifest)
        mid = self._new_manifest_id(rec)
        item = codec.file_item(rec, FILE_PENDING, mid, len(entries))
        if unlinked:
            item[UNLINKED_ATTR] = S("1")
        page_keys = await self._put_manifest(item, entries)
        try:
            await self._rq.run(self._put_file_item, item)
        except Conflict:
            deletes = [{"DeleteRequest": {"Key": k}} for k in page_keys]
            await self._rq.write_many(self.tables["manifests"], deletes)
            raise

    def _put_file_item(self, item: Item) -> None:
        """Put a new file item: a Conflict if the id is taken, unless by this very item."""
        done = self._rq.call_or_none(
            "put_item",
            TableName=self.tables["files"],
            Item=item,
            ConditionExpression="attribute_not_exists(file_id)",
        )
        if done is not None:
            return
        # Ours already, if a retried request had in fact succeeded.
        current = self._get_file_item(item["file_id"]["S"], ("mid",))
        if current is None or current["mid"]["S"] != item["mid"]["S"]:
            raise Conflict(f"metadata write conflicts: file {item['file_id']['S']} exists")

    async def create_files(
        self, files: Sequence[tuple[FileRecord, Sequence[ManifestEntry]]]
    ) -> None:
        # each file is its own conditional put (a transaction could not hold the manifest
        # pages of big files); a few at a time, since every call is a round trip
        sem = asyncio.Semaphore(BATCH_CONCURRENCY)

        async def one(rec: FileRecord, manifest: Sequence[ManifestEntry]) -> None:
            async with sem:
                await self.create_file(rec, manifest)

        try:
            async with asyncio.TaskGroup() as tg:
                for rec, manifest in files:
                    tg.create_task(one(rec, manifest))
        except* DfsError as group:
            raise group.exceptions[0] from None

    async def get_file(self, file_id: str, tenant: str | None = None) -> FileRecord:
        item = await self._file_item(file_id)
        if tenant is not None and item["tenant"]["S"] != tenant:
            raise FileNotFound(f"no file {file_id}")
        return codec.file_record(item)

    async def get_manifest(self, file_id: str) -> list[ManifestEntry]:
        item = await self._file_item(file_id, _MANIFEST_ATTRS)
        return await self._manifest_of(item)

    async def get_files(
        self, file_ids: Sequence[str], tenant: str | None = None
    ) -> dict[str, FileRecord]:
        async def one(file_id: str) -> FileRecord | None:
            try:
                return await self.get_file(file_id, tenant)
            except FileNotFound:
                return None

        got = await _bounded(one, file_ids)
        return {f: r for f, r in zip(file_ids, got, strict=True) if r is not None}

    async def get_manifests(self, file_ids: Sequence[str]) -> dict[str, list[ManifestEntry]]:
        got = await _bounded(self.get_manifest, file_ids)
        return dict(zip(file_ids, got, strict=True))

    async def pending_uploads(
        self, file_ids: Sequence[str], tenant: str
    ) -> list[tuple[FileRecord, list[ManifestEntry]] | None]:
        out: list[tuple[FileRecord, list[ManifestEntry]] | None] = []
        for file_id in file_ids:
            try:
                rec = await self.get_file(file_id, tenant)
            except FileNotFound:
                out.append(None)
                continue
            whole = rec.state != FILE_COMPLETE and bool(rec.sha256)
            out.append((rec, await self.get_manifest(file_id) if whole else []))
        return out

    async def list_files(
        self, tenant: str, *, limit: int, after: str | None = None, prefix: str = ""
    ) -> list[FileRecord]:
        def op() -> list[FileRecord]:
            cond = "#listed_tenant = :t"
            values: Item = {":t": S(tenant), ":listed": S(LISTED_NAMES_FROM)}
            if after is not None:
                cond += " AND #file_id > :after"
                values[":after"] = S(after)
            wanted = "#name >= :listed"  # hidden names sort first
            if prefix:  # a filter of the index walk: spares the answer, not the reads
                wanted += " AND begins_with(#name, :prefix)"
                values[":prefix"] = S(prefix)
            params: dict[str, Any] = {
                "TableName": self.tables["files"],
                "IndexName": "by-tenant",
                "KeyConditionExpression": cond,
                "FilterExpression": wanted,
                "ExpressionAttributeNames": attr_names(
                    "listed_tenant", "name", *(["file_id"] if after else [])
                ),
                "ExpressionAttributeValues": values,
            }
            items, _ = self._rq.up_to("query", limit, params)
            return [codec.file_record(i) for i in items]

        if limit <= 0:
            return []
        return await self._rq.run(op)

    async def find_file_by_sha256(
        self, tenant: str, sha256: str, *, verified: bool = True, linked: bool = False
    ) -> FileRecord | None:
        key = {"tenant": S(tenant), "sha256": S(sha256_entry(sha256, verified))}
        resp = await self._rq.run(
            lambda: self._rq.call(
                "get_item",
                TableName=self.tables["file_hashes"],
                Key=key,
                ConsistentRead=True,
            )
        )
        entry: Item | None = resp.get("Item")
        if entry is None:
            return None
        try:
            item = await self._file_item(entry["file_id"]["S"], (*FILE_ITEM_ATTRS, UNLINKED_ATTR))
        except FileNotFound:
            return None
        if item["tenant"]["S"] != tenant or UNLINKED_ATTR in item:
            return None  # a PutObject's file not linked yet: it may be deleted unlinked
        rec = codec.file_record(item)
        if rec.state != FILE_COMPLETE or rec.sha256_verified != verified:
            return None
        # a file an object version links is the namespace's: the release of its last version
        # deletes it, so it is no upload's answer (dedup is lost for this content, no file)
        return None if not linked and await self._linked(rec.file_id) else rec

    async def _linked(self, file_id: str) -> bool:
        """Whether an object version links the file (its tenant link item exists: the
        namespace writes it in the transaction that links, ``store_namespace_codec``)."""
        resp = await self._rq.run(
            lambda: self._rq.call(
                "get_item",
                TableName=self.tables["namespace"],
                Key=nc.link_key(file_id, "tenant"),
                ConsistentRead=True,
            )
        )
        return "Item" in resp

    # --- what garbage collection asks about files ---------------------------------------------

    async def recent_pending_chunks(self, since: float) -> set[str]:
        def op() -> list[Item]:
            return list(
                self._rq.paginate(
                    "scan",
                    TableName=self.tables["files"],
                    ConsistentRead=True,
                    FilterExpression="#state <> :complete AND #created_at >= :since",
                    ProjectionExpression=projection(_MANIFEST_ATTRS),
                    ExpressionAttributeNames=attr_names("created_at", *_MANIFEST_ATTRS),
                    ExpressionAttributeValues={
                        ":complete": S(FILE_COMPLETE),
                        ":since": N(float(since)),
                    },
                )
            )

        out: set[str] = set()
        for item in await self._rq.run(op):
            try:
                out.update(e.chunk_id for e in await self._manifest_of(item))
            except Unavailable:
                continue  # a manifest deleted under us: the file is gone too
        return out

    async def stale_pending_files(self, before: float, *, limit: int) -> list[FileRecord]:
        def op() -> list[FileRecord]:
            items = self._rq.paginate(
                "scan",
                TableName=self.tables["files"],
                ConsistentRead=True,
                FilterExpression="#state <> :complete AND #created_at < :before",
                ProjectionExpression=projection(FILE_ITEM_ATTRS),
                ExpressionAttributeNames=attr_names(*FILE_ITEM_ATTRS),
                ExpressionAttributeValues={
                    ":complete": S(FILE_COMPLETE),
                    ":before": N(float(before)),
                },
            )
            out: list[FileRecord] = []
            for item in items:
                out.append(codec.file_record(item))
                if len(out) >= limit:
                    break
            return sorted(out, key=lambda f: f.created_at)

        if limit <= 0:
            return []
        return await self._rq.run(op)

    if TYPE_CHECKING:  # provided by DeletePart

        async def finish_stranded(self, file_id: str, before: float, now: float) -> bool: ...

    async def delete_pending_file(
        self, file_id: str, before: float, now: float | None = None
    ) -> bool:
        def op() -> str | None:
            """The file's manifest id if this call deleted it. Read first, then deleted in a
            transaction of one write for its ClientRequestToken: a resend after a lost
            answer is answered as done (a DeleteItem's was refused on its own delete, and
            the manifest it alone knew to drop was left behind for good)."""
            item = self._get_file_item(file_id, ("mid",))
            if item is None:
                return None
            delete = {
                "Delete": {
                    "TableName": self.tables["files"],
                    "Key": {"file_id": S(file_id)},
                    # a commit moves the state off pending first, so one of the two loses
                    "ConditionExpression": "#state = :pending AND #created_at < :before "
                    "AND #mid = :mid",
                    "ExpressionAttributeNames": attr_names("state", "created_at", "mid"),
                    "ExpressionAttributeValues": {
                        ":pending": S(FILE_PENDING),
                        ":before": N(float(before)),
                        ":mid": item["mid"],
                    },
                }
            }
            try:
                self._rq.transact([delete], uuid.uuid4().hex)
            except Cancelled:
                return None
            return str(item["mid"]["S"])

        mid = await self._rq.run(op)
        if mid is None:  # not pending: perhaps left committing or deleting by a crash
            return now is not None and await self.finish_stranded(file_id, before, now)
        await self._rq.run(self._drop_manifest, mid)
        return True


async def _bounded(fn: Callable[[str], Awaitable[T]], ids: Sequence[str]) -> list[T]:
    """``fn`` of every id, at most ``BATCH_CONCURRENCY`` requests at once."""
    return await gather_bounded(fn, ids, BATCH_CONCURRENCY)
