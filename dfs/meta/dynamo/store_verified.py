"""The verified-content part of the DynamoDB store: ``mark_sha256_verified``.

A complete file whose declared sha256 an API process found true (it hashed the bytes) moves
from its claim's file_hashes entry to the verified one, in one transaction with setting its
``sha256_verified`` flag: the claim's entry is handed on as a delete hands it on
(``DeletePart._unhash_actions``, conditional on the entry being unchanged), and the verified
entry is joined as a commit joins it (``CommitPart._hash_action``, named if unnamed). Two
different items of file_hashes (``sha256_entry``), so one transaction may touch both.
"""

from __future__ import annotations

import dataclasses

import dfs.meta.dynamo.codec as codec
from dfs.errors import Unavailable
from dfs.meta.base import FILE_COMPLETE, FileRecord
from dfs.meta.dynamo.codec import S, attr_names
from dfs.meta.dynamo.requests import Cancelled, Item
from dfs.meta.dynamo.store_commit import CommitPart
from dfs.meta.dynamo.store_delete import DeletePart
from dfs.meta.dynamo.store_refcounts import MAX_ROUNDS


class VerifiedPart(CommitPart, DeletePart):
    async def mark_sha256_verified(self, file_id: str) -> FileRecord | None:
        item = await self._rq.run(self._get_file_item, file_id)
        if item is None or item["state"]["S"] != FILE_COMPLETE:
            return None
        rec = codec.file_record(item)
        if not rec.sha256_verified:
            await self._rq.run(self._move_to_verified, rec)
        return dataclasses.replace(rec, sha256_verified=True)

    def _flag_action(self, file_id: str) -> Item:
        return {
            "Update": {
                "TableName": self.tables["files"],
                "Key": {"file_id": S(file_id)},
                "UpdateExpression": "SET #sha256_verified = :true",
                "ConditionExpression": "#state = :complete "
                "AND attribute_not_exists(#sha256_verified)",
                "ExpressionAttributeNames": attr_names("state", "sha256_verified"),
                "ExpressionAttributeValues": {
                    ":complete": S(FILE_COMPLETE),
                    ":true": {"BOOL": True},
                },
            }
        }

    def _move_to_verified(self, rec: FileRecord) -> None:
        verified = dataclasses.replace(rec, sha256_verified=True)
        flag = self._flag_action(rec.file_id)
        for attempt in range(MAX_ROUNDS):
            try:
                joined = self._hash_action(verified, read=attempt > 0)
                self._rq.transact([flag, *self._unhash_actions(rec), joined])
                return
            except Cancelled as exc:
                if exc.codes[0] == "ConditionalCheckFailed":
                    return  # deleted, or marked by another process meanwhile
                # the claim's entry changed since it was read, or the verified one's set
                # is full: read them again
        raise Unavailable("marking a file verified kept losing races on its content entry")
