"""Files created complete in the DynamoDB store (``create_and_commit_files``): a backup's
unchanged files, whose every chunk the API checked is held, recorded in one step each.

A file whose manifest rides in its item (at most ``INLINE_ENTRIES`` entries) and whose
distinct chunks fit one refcount transaction (``CHUNKS_PER_TX``) is one TransactWriteItems:
the file item put complete under ``attribute_not_exists(file_id)``, its chunks' refcounts and
the tenant's (the conditional updates of ``store_refcounts``, so the counts stay exact), a
counter shard and the content entry, exactly what ``commit_file`` writes for a small file,
without the pending item first and without reading it back. No reader ever sees it pending.
Bigger files take the two steps (``create_file``, then ``commit_file``), which stay exact
and resumable whatever their size.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable, Sequence

import dfs.meta.dynamo.codec as codec
from dfs.errors import Conflict, DfsError
from dfs.meta.base import FILE_COMPLETE, FileRecord, Location, ManifestEntry
from dfs.meta.dynamo.codec import Ref, S
from dfs.meta.dynamo.requests import Item
from dfs.meta.dynamo.store_chunks import ChunksPart
from dfs.meta.dynamo.store_commit import CommitPart
from dfs.meta.dynamo.store_core import BATCH_CONCURRENCY, INLINE_ENTRIES
from dfs.meta.dynamo.store_files import FilesPart
from dfs.meta.dynamo.store_refcounts import ADD, CHUNKS_PER_TX


class CreatePart(FilesPart, CommitPart, ChunksPart):
    async def create_and_commit_files(
        self,
        files: Sequence[tuple[FileRecord, Sequence[ManifestEntry]]],
        now: float,
        *,
        locations: Iterable[Location] = (),
        for_object: bool = False,
    ) -> list[FileRecord]:
        locs = list(locations)
        if locs:  # the copies first, in their own writes: no file is complete without them
            await self.add_locations(locs, now)
        # each file is its own transaction (a file's refcounts may fill one); a few at a
        # time, since every call is a round trip
        sem = asyncio.Semaphore(BATCH_CONCURRENCY)

        async def one(rec: FileRecord, manifest: Sequence[ManifestEntry]) -> FileRecord:
            async with sem:
                return await self._create_committed(rec, manifest, now, unlinked=for_object)

        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(one(rec, manifest)) for rec, manifest in files]
        except* DfsError as group:
            raise group.exceptions[0] from None
        return [t.result() for t in tasks]

    async def _create_committed(
        self,
        rec: FileRecord,
        manifest: Sequence[ManifestEntry],
        now: float,
        *,
        unlinked: bool = False,
    ) -> FileRecord:
        """One file created complete; ``unlinked``: its item carries ``UNLINKED_ATTR`` from
        its first write (a PutObject's file not linked yet, see the codec)."""
        entries = list(manifest)
        refs = codec.refs_of(entries)
        if len(entries) > INLINE_ENTRIES or len(refs) > CHUNKS_PER_TX:
            await self.create_file(rec, entries, unlinked=unlinked)
            return await self.commit_file(rec.file_id, now)
        item = codec.file_item(rec, FILE_COMPLETE, self._new_manifest_id(rec), len(entries))
        if unlinked:
            item[codec.UNLINKED_ATTR] = S("1")
        await self._put_manifest(item, entries)  # inline: adds it to the item, writes nothing
        if not await self._rq.run(self._put_committed, item, rec, refs, now):
            raise Conflict(f"metadata write conflicts: file {rec.file_id} exists")
        return dataclasses.replace(rec, state=FILE_COMPLETE)

    def _put_committed(self, item: Item, rec: FileRecord, refs: Sequence[Ref], now: float) -> bool:
        """The file put complete with its references, counters and content entry in one
        transaction; False if the id is taken (by another item than this one)."""
        head = {
            "Put": {
                "TableName": self.tables["files"],
                "Item": item,
                "ConditionExpression": "attribute_not_exists(file_id)",
            }
        }
        extra = {"total_files": 1, "logical_bytes": rec.size}
        tail = self._hash_tail(rec)
        if self._apply_refs(ADD, head, rec.file_id, refs, now, extra, rec.tenant, tail):
            return True
        # ours already, if a retried request had in fact succeeded
        current = self._get_file_item(rec.file_id, ("mid",))
        return current is not None and current["mid"]["S"] == item["mid"]["S"]
