"""What every part of the DynamoDB store shares: its request layer, its table names, and the
reads and writes more than one part needs (a file's item, its manifest).

``DynamoMetadataStore`` (``store.py``) is assembled from parts that each implement one area
of the metadata port on top of this class; they reach each other only through it (commit and
delete also through ``store_refcounts``), so each part can be read on its own.
"""

from __future__ import annotations

import base64
import itertools
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import dfs.meta.dynamo.codec as codec
from dfs.errors import FileNotFound, Unavailable
from dfs.meta.base import FILE_COMPLETE, FileRecord, ManifestEntry, sha256_entry
from dfs.meta.dynamo.codec import FILE_ITEM_ATTRS, N, S, attr_names, projection
from dfs.meta.dynamo.requests import ATTEMPTS, BATCH_WRITE_MAX, Item, Requests, chunks_of
from dfs.meta.dynamo.tables import create_tables

PAGE_ENTRIES = 4096  # 4096 * 48 B = 192 KiB per manifest page, well under the 400 KB item limit
INLINE_ENTRIES = 256  # manifests up to this size live in the file item (12 KiB)
COUNTER_SHARDS = 16
BATCH_CONCURRENCY = 8  # files of create_files/commit_files in flight at once


class StoreCore:
    """The shared state and helpers of the DynamoDB store's parts.

    ``calls`` counts DynamoDB requests made by this store (``calls_by_operation`` per API
    operation), for benchmarks of metadata calls per GiB.
    """

    def __init__(self, client: Any, tables: Mapping[str, str], *, attempts: int = ATTEMPTS) -> None:
        self._rq = Requests(client, attempts=attempts)
        self.tables = dict(tables)
        # a bounded sweep's place per partition (where its next pass goes on), in memory:
        # a restart only starts that sweep over from the head
        self.sweep_cursors: dict[str, Item] = {}

    @property
    def calls(self) -> int:
        return self._rq.calls

    @property
    def calls_by_operation(self) -> Mapping[str, int]:
        return self._rq.calls_by_operation

    async def create_tables(self, wait_seconds: float = 120.0) -> None:
        """Create every table of the schema (idempotent), wait until ACTIVE, enable TTL."""
        await self._rq.run(create_tables, self._rq, self.tables, wait_seconds)

    async def close(self) -> None:
        await self._rq.close()

    # --- file items and manifests -------------------------------------------------------------

    def _get_file_item(self, file_id: str, attrs: Sequence[str] = FILE_ITEM_ATTRS) -> Item | None:
        resp = self._rq.call(
            "get_item",
            TableName=self.tables["files"],
            Key={"file_id": S(file_id)},
            ConsistentRead=True,
            ProjectionExpression=projection(attrs),
            ExpressionAttributeNames=attr_names(*attrs),
        )
        item: Item | None = resp.get("Item")
        return item

    async def _file_item(self, file_id: str, attrs: Sequence[str] = FILE_ITEM_ATTRS) -> Item:
        item = await self._rq.run(self._get_file_item, file_id, attrs)
        if item is None:
            raise FileNotFound(f"no file {file_id}")
        return item

    @staticmethod
    def _new_manifest_id(rec: FileRecord) -> str:
        """A fresh partition per create_file: a losing create never touches the winner's.
        A random UUID's 16 bytes in base64url (22 characters): unique without the file id
        (items written before keep their longer ``file_id/suffix`` ids)."""
        return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")

    async def _put_manifest(self, item: Item, entries: Sequence[ManifestEntry]) -> list[Item]:
        """Put ``entries`` inline in the file ``item`` or as pages under its ``mid``; returns
        the keys of the pages written."""
        if len(entries) <= INLINE_ENTRIES:
            # no "pages" attribute: absent reads as 0 (inline), one attribute less per file
            fmt, data = codec.encode_entries(entries, item["sha256"]["S"])
            item.update(mf=S(fmt), m={"B": data})
            return []
        mid = item["mid"]["S"]
        keys: list[Item] = []
        puts: list[Item] = []
        for no, page in enumerate(chunks_of(entries, PAGE_ENTRIES)):
            fmt, data = codec.encode_entries(page)
            keys.append(codec.page_key(mid, no))
            puts.append({"PutRequest": {"Item": {**keys[-1], "f": S(fmt), "e": {"B": data}}}})
        item["pages"] = N(len(puts))
        await self._rq.write_many(self.tables["manifests"], puts)
        return keys

    async def _manifest_of(self, item: Item) -> list[ManifestEntry]:
        """The file's manifest: inline or in pages, then the pages appended to a paged
        upload (``store_pages``)."""
        pages = codec.int_of(item, "pages")
        if pages == 0:
            entries = codec.decode_entries(
                item["mf"]["S"], bytes(item["m"]["B"]), item.get("sha256", {}).get("S", "")
            )
            if entries:
                return entries
            return await self._rq.run(self._appended_entries, item)
        mid = item["mid"]["S"]
        keys = [codec.page_key(mid, no) for no in range(pages)]
        got = await self._rq.get_many(self.tables["manifests"], keys)
        if len(got) != pages:
            raise Unavailable(f"manifest of {item['file_id']['S']} is missing pages")
        got.sort(key=lambda i: str(i["part"]["S"]))
        return [
            e for page in got for e in codec.decode_entries(page["f"]["S"], bytes(page["e"]["B"]))
        ]

    def _appended_pages(self, mid: str) -> Iterator[Item]:
        """The pages appended to a paged upload, in order (strongly consistent)."""
        return self._rq.paginate(
            "query",
            TableName=self.tables["manifests"],
            KeyConditionExpression="#mid = :mid AND begins_with(#part, :a)",
            ExpressionAttributeNames=attr_names("mid", "part"),
            ExpressionAttributeValues={":mid": S(mid), ":a": S(codec.APPENDED)},
            ConsistentRead=True,
        )

    def _appended_entries(self, item: Item) -> list[ManifestEntry]:
        """Every entry appended to a paged upload (none for other files)."""
        if "apages" not in item and item.get("state", {}).get("S") == FILE_COMPLETE:
            return []  # committed with its whole manifest at create_file
        pages: Iterable[Item] = self._appended_pages(item["mid"]["S"])
        if "apages" in item:  # sealed: the pages it checked, never one appended since
            pages = itertools.islice(pages, int(item["apages"]["N"]))
        return [
            e for page in pages for e in codec.decode_entries(page["f"]["S"], bytes(page["e"]["B"]))
        ]

    def _drop_manifest(self, mid: str) -> None:
        """Delete every item of a manifest partition (pages and markers)."""
        keys = [
            {"mid": i["mid"], "part": i["part"]}
            for i in self._rq.paginate(
                "query",
                TableName=self.tables["manifests"],
                KeyConditionExpression="#mid = :mid",
                ProjectionExpression="#mid, #part",
                ExpressionAttributeNames=attr_names("mid", "part"),
                ExpressionAttributeValues={":mid": S(mid)},
                ConsistentRead=True,
            )
        ]
        for part in chunks_of(keys, BATCH_WRITE_MAX):
            self._rq.batch_write(
                self.tables["manifests"], [{"DeleteRequest": {"Key": k}} for k in part]
            )

    # --- shared by commit and delete -------------------------------------------------------

    def _hash_key(self, rec: FileRecord) -> Item:
        """The file_hashes key of ``rec``'s content entry (verified files apart from
        claims, ``sha256_entry``)."""
        return {"tenant": S(rec.tenant), "sha256": S(sha256_entry(rec.sha256, rec.sha256_verified))}

    def _marker_action(self, mid: str, kind: str, no: int, now: float) -> Item:
        """Put a batch marker unless it exists: the batch is applied once, whoever runs it."""
        return {
            "Put": {
                "TableName": self.tables["manifests"],
                "Item": codec.marker_item(mid, kind, no, now),
                "ConditionExpression": "attribute_not_exists(mid)",
            }
        }
