"""Paged manifests in the DynamoDB store: a pending file created with an empty manifest whose
pages are appended one by one (``MetadataStore.append_manifest_page``), proven, then sealed.

Each appended page is its own item of the manifests table, (mid, "a000123"), with the page's
entries (``e``, format ``f``), so a file may have any number of pages and no item comes near
the 400 KB limit (a page holds at most ``protocol.MAX_PAGE_CHUNKS`` entries of 48 bytes).
A page is put with ``attribute_not_exists``: a retry of the same page finds it and compares;
``ok`` marks it proven. Sealing reads the pages in order and writes the file's size, sha256,
chunk count and number of pages (``apages``) under the condition that it is still pending.
"""

from __future__ import annotations

from collections.abc import Sequence

import dfs.meta.dynamo.codec as codec
from dfs.errors import Conflict, FileNotFound
from dfs.meta.base import FILE_PENDING, FileRecord, ManifestEntry
from dfs.meta.dynamo.codec import N, S, attr_names
from dfs.meta.dynamo.requests import Item
from dfs.meta.dynamo.store_core import StoreCore


class PagesPart(StoreCore):
    async def _pending_mid(self, file_id: str) -> str:
        item = await self._file_item(file_id, ("file_id", "state", "mid"))
        if item["state"]["S"] != FILE_PENDING:
            raise Conflict(f"file {file_id} is not pending")
        return str(item["mid"]["S"])

    async def append_manifest_page(
        self, file_id: str, page: int, entries: Sequence[ManifestEntry]
    ) -> None:
        item = await self._file_item(file_id, ("file_id", "state", "mid", "sha256"))
        if item["state"]["S"] != FILE_PENDING:
            raise Conflict(f"file {file_id} is not pending")
        if item.get("sha256", {}).get("S"):  # sealed: its pages are fixed (``apages``)
            raise Conflict(f"file {file_id} is sealed: no page can be added")
        mid = str(item["mid"]["S"])
        fmt, data = codec.encode_entries(entries)
        key = codec.appended_page_key(mid, page)

        def op() -> None:
            put = self._rq.call_or_none(
                "put_item",
                TableName=self.tables["manifests"],
                Item={**key, "f": S(fmt), "e": {"B": data}},
                ConditionExpression="attribute_not_exists(mid)",
            )
            if put is not None:
                return
            old = self._get_page(key)
            if old is None or (old["f"]["S"], bytes(old["e"]["B"])) != (fmt, data):
                raise Conflict(f"page {page} of file {file_id} was appended with other entries")

        await self._rq.run(op)

    def _get_page(self, key: Item) -> Item | None:
        resp = self._rq.call(
            "get_item", TableName=self.tables["manifests"], Key=key, ConsistentRead=True
        )
        found: Item | None = resp.get("Item")
        return found

    async def get_manifest_page(self, file_id: str, page: int) -> tuple[list[ManifestEntry], bool]:
        item = await self._file_item(file_id, ("file_id", "mid"))
        got = await self._rq.run(self._get_page, codec.appended_page_key(item["mid"]["S"], page))
        if got is None:
            raise FileNotFound(f"no page {page} of file {file_id}")
        entries = codec.decode_entries(got["f"]["S"], bytes(got["e"]["B"]))
        return entries, "ok" in got

    async def mark_page_proven(self, file_id: str, page: int) -> None:
        mid = await self._pending_mid(file_id)

        def op() -> None:
            done = self._rq.call_or_none(
                "update_item",
                TableName=self.tables["manifests"],
                Key=codec.appended_page_key(mid, page),
                UpdateExpression="SET #ok = :one",
                ConditionExpression="attribute_exists(#mid)",
                ExpressionAttributeNames=attr_names("ok", "mid"),
                ExpressionAttributeValues={":one": N(1)},
            )
            if done is None:
                raise FileNotFound(f"no page {page} of file {file_id}")

        await self._rq.run(op)

    async def seal_file(self, file_id: str, size: int, sha256: str) -> FileRecord:
        mid = await self._pending_mid(file_id)
        count, pages = await self._rq.run(self._check_pages, file_id, mid, size)

        def op() -> None:
            done = self._rq.call_or_none(
                "update_item",
                TableName=self.tables["files"],
                Key={"file_id": S(file_id)},
                UpdateExpression="SET #size = :size, #sha256 = :sha, #chunk_count = :count, "
                "#apages = :pages",
                ConditionExpression="#state = :pending",
                ExpressionAttributeNames=attr_names(
                    "size", "sha256", "chunk_count", "apages", "state"
                ),
                ExpressionAttributeValues={
                    ":size": N(size),
                    ":sha": S(sha256),
                    ":count": N(count),
                    ":pages": N(pages),
                    ":pending": S(FILE_PENDING),
                },
            )
            if done is None:
                raise Conflict(f"file {file_id} is not pending")

        await self._rq.run(op)
        return codec.file_record(await self._file_item(file_id))

    def _check_pages(self, file_id: str, mid: str, size: int) -> tuple[int, int]:
        """(entries, pages) of a paged upload whose pages are whole; Conflict otherwise."""
        count = offset = pages = 0
        for no, page in enumerate(self._appended_pages(mid)):
            entries = codec.decode_entries(page["f"]["S"], bytes(page["e"]["B"]))
            start = entries[0].offset if entries else offset
            if page["part"]["S"] != codec.appended_page_key(mid, no)["part"]["S"]:
                raise Conflict(f"page {no} of file {file_id} is missing")
            if "ok" not in page or start != offset:
                raise Conflict(f"page {no} of file {file_id} is not proven or does not follow")
            if entries:
                offset = entries[-1].offset + entries[-1].size
            count += len(entries)
            pages = no + 1
        if offset != size:
            raise Conflict(f"the pages of file {file_id} hold {offset} bytes, not {size}")
        return count, pages
