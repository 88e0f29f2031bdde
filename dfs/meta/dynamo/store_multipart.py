"""S3 multipart uploads on DynamoDB (``dfs.meta.multipart.MultipartStore``), as items of the
``namespace`` table under their own key prefixes (no table, index or IAM grant is added:
the API and the gateway already read and write that table).

| p                | s                        | what                                              |
|------------------|--------------------------|---------------------------------------------------|
| ``mpu#ID``       | ``-``                    | the upload: tenant, bucket, key, created_at, content type, metadata (JSON), state ``st`` (and the last move's mark ``sw`` and state before ``ps``), checksum algorithm ``ck`` (when given) |
| ``mpu#ID``       | ``part#NNNNN``           | a part: file id, size, ETag, last modified, checksums ``ck`` (JSON, when any) |
| ``mpuk#BUCKET``  | ``KEY`` NUL ``ID``       | the bucket's uploads in (key, upload id) order: ListMultipartUploads (keys hold no NUL) |
| ``mpuage``       | ``CREATED#ID``           | every upload by age: ``stale_multipart_uploads``  |

Races are closed by conditions: a part is put in one transaction with a condition check
that the upload item is ``open`` (and, on the part, that it still holds the file id read
before, so the replaced file id returned is exact); a state move is one conditional
UpdateItem. Creating writes the three items in one transaction; forgetting deletes the
index items first, then the parts, then the upload item. Transactions carry a
ClientRequestToken, and a resend cancelled on its own write (past the token's window) is
recognised: the upload item is the one written; the part holds this put's file id, and the
file id it replaced is the one the first round read. A state move marks the upload item
with its own random mark (``sw``) and the state it moved from (``ps``): its resend after a
lost answer, refused on the move already made, finds its mark and answers as the first
answer would have (a refusal left a Complete's upload stuck ``completing``).
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Collection
from typing import Any

from dfs.errors import Conflict, UploadNotFound
from dfs.meta.dynamo.codec import N, S, attr_names
from dfs.meta.dynamo.requests import Cancelled, Item
from dfs.meta.dynamo.store_core import StoreCore
from dfs.meta.multipart import (
    MAX_PARTS,
    UPLOAD_DONE,
    UPLOAD_OPEN,
    MultipartUpload,
    UploadPart,
)

_HEAD = "-"
_SEP = "\x00"
MAX_ROUNDS = 32


def _upload_key(upload_id: str) -> Item:
    return {"p": S(f"mpu#{upload_id}"), "s": S(_HEAD)}


def _part_key(upload_id: str, number: int) -> Item:
    return {"p": S(f"mpu#{upload_id}"), "s": S(f"part#{number:05d}")}


def _by_key(u: MultipartUpload) -> Item:
    return {"p": S(f"mpuk#{u.bucket}"), "s": S(f"{u.key}{_SEP}{u.upload_id}")}


def _by_age(u: MultipartUpload) -> Item:
    return {"p": S("mpuage"), "s": S(f"{u.created_at:020.6f}#{u.upload_id}")}


def _fields(u: MultipartUpload) -> Item:
    item: Item = {
        "uid": S(u.upload_id),
        "t": S(u.tenant),
        "b": S(u.bucket),
        "k": S(u.key),
        "ca": N(u.created_at),
        "ct": S(u.content_type or "-"),
        "um": S(json.dumps([list(p) for p in u.user_metadata])),
        "st": S(u.state),
    }
    if u.headers:  # left out when none, as items written before it have none
        item["hd"] = S(json.dumps([list(p) for p in u.headers]))
    if u.checksum:
        item["ck"] = S(u.checksum)
    return item


def _upload(item: Item) -> MultipartUpload:
    ct = item["ct"]["S"]
    return MultipartUpload(
        upload_id=item["uid"]["S"],
        tenant=item["t"]["S"],
        bucket=item["b"]["S"],
        key=item["k"]["S"],
        created_at=float(item["ca"]["N"]),
        content_type="" if ct == "-" else ct,
        user_metadata=tuple((str(k), str(v)) for k, v in json.loads(item["um"]["S"])),
        state=item["st"]["S"],
        headers=tuple((str(k), str(v)) for k, v in json.loads(item["hd"]["S"]))
        if "hd" in item
        else (),
        checksum=item["ck"]["S"] if "ck" in item else "",
    )


def _part(item: Item) -> UploadPart:
    return UploadPart(
        part_number=int(item["s"]["S"][len("part#") :]),
        file_id=item["fid"]["S"],
        size=int(item["sz"]["N"]),
        etag=item["et"]["S"],
        last_modified=float(item["lm"]["N"]),
        checksums=tuple((str(a), str(v)) for a, v in json.loads(item["ck"]["S"]))
        if "ck" in item
        else (),
    )


class MultipartPart(StoreCore):
    def _mp_query(self, p: str, **extra: Any) -> list[Item]:
        cond = extra.pop("cond", "")
        values = {":p": S(p), **extra.pop("values", {})}
        params: dict[str, Any] = {
            "TableName": self.tables["namespace"],
            "KeyConditionExpression": "#p = :p" + cond,
            "ExpressionAttributeNames": attr_names("p", *(["s"] if cond else [])),
            "ExpressionAttributeValues": values,
            "ConsistentRead": True,
        }
        limit = extra.pop("limit", None)
        if limit is None:
            return list(self._rq.paginate("query", **params))
        return self._rq.up_to("query", limit, params)[0]

    def _get_upload_item(self, upload_id: str) -> Item:
        resp = self._rq.call(
            "get_item",
            TableName=self.tables["namespace"],
            Key=_upload_key(upload_id),
            ConsistentRead=True,
        )
        item: Item | None = resp.get("Item")
        if item is None:
            raise UploadNotFound(f"no multipart upload {upload_id}")
        return item

    async def create_multipart_upload(self, upload: MultipartUpload) -> None:
        table = self.tables["namespace"]
        fields = _fields(upload)
        index = {k: fields[k] for k in ("uid", "t", "k", "ca")}
        actions = [
            {
                "Put": {
                    "TableName": table,
                    "Item": {**_upload_key(upload.upload_id), **fields},
                    "ConditionExpression": "attribute_not_exists(p)",
                }
            },
            {"Put": {"TableName": table, "Item": {**_by_key(upload), **index}}},
            {"Put": {"TableName": table, "Item": {**_by_age(upload), **index}}},
        ]

        def op() -> None:
            try:
                self._rq.transact(actions, uuid.uuid4().hex)
            except Cancelled:
                # the id is new, so a cancellation is this very write, resent after its
                # answer was lost (past the token's window): done, unless the item differs
                if _upload(self._get_upload_item(upload.upload_id)) != upload:
                    raise Conflict(f"multipart upload {upload.upload_id} exists") from None

        await self._rq.run(op)

    async def get_multipart_upload(self, upload_id: str) -> MultipartUpload:
        return _upload(await self._rq.run(self._get_upload_item, upload_id))

    async def put_upload_part(self, upload_id: str, part: UploadPart) -> str | None:
        return await self._rq.run(self._put_part, upload_id, part)

    def _put_part(self, upload_id: str, part: UploadPart) -> str | None:
        table = self.tables["namespace"]
        key = _part_key(upload_id, part.part_number)
        item = {
            **key,
            "fid": S(part.file_id),
            "sz": N(part.size),
            "et": S(part.etag),
            "lm": N(part.last_modified),
        }
        if part.checksums:
            item["ck"] = S(json.dumps([list(c) for c in part.checksums]))
        check = {
            "ConditionCheck": {
                "TableName": table,
                "Key": _upload_key(upload_id),
                "ConditionExpression": "#st = :open",
                "ExpressionAttributeNames": attr_names("st"),
                "ExpressionAttributeValues": {":open": S(UPLOAD_OPEN)},
            }
        }
        first: list[str | None] = []  # the part's file id as the first round read it
        for _ in range(MAX_ROUNDS):
            old = self._rq.call("get_item", TableName=table, Key=key, ConsistentRead=True)
            old_fid = old["Item"]["fid"]["S"] if "Item" in old else None
            if first and old_fid == part.file_id:
                # an earlier round was applied though its answer was lost (its resend was
                # cancelled on its own write): it replaced what that round read
                return first[0]
            first = first or [old_fid]
            put: Item = {"TableName": table, "Item": item}
            if old_fid is None:
                put["ConditionExpression"] = "attribute_not_exists(p)"
            else:
                put["ConditionExpression"] = "fid = :old"
                put["ExpressionAttributeValues"] = {":old": S(old_fid)}
            try:
                self._rq.transact([check, {"Put": put}], uuid.uuid4().hex)
                return old_fid
            except Cancelled as exc:
                if exc.codes[0] == "ConditionalCheckFailed":
                    raise UploadNotFound(f"multipart upload {upload_id} is not open") from None
                # a concurrent put of the same part number won: read it again
        raise UploadNotFound(f"part {part.part_number} of {upload_id} kept changing")

    async def list_upload_parts(
        self, upload_id: str, after: int = 0, limit: int = MAX_PARTS
    ) -> list[UploadPart]:
        items = await self._rq.run(
            lambda: self._mp_query(
                f"mpu#{upload_id}",
                cond=" AND #s BETWEEN :lo AND :hi",
                values={":lo": S(f"part#{after + 1:05d}"), ":hi": S("part#99999")},
                limit=limit,
            )
        )
        return [_part(i) for i in items]

    async def set_multipart_state(
        self, upload_id: str, expect: Collection[str], state: str
    ) -> MultipartUpload:
        return await self._rq.run(self._move_state, upload_id, sorted(expect), state)

    def _move_state(self, upload_id: str, expect: list[str], state: str) -> MultipartUpload:
        """The conditional state move, stamped with this call's mark (``sw``) and the state
        it moved from (``ps``): a resend of a move applied whose answer was lost is refused
        on its own write, and recognised by its mark."""
        mark = uuid.uuid4().hex
        names = [f":e{i}" for i in range(len(expect))]
        resp = self._rq.call_or_none(
            "update_item",
            TableName=self.tables["namespace"],
            Key=_upload_key(upload_id),
            UpdateExpression="SET #ps = #st, #st = :new, #sw = :mark",
            ConditionExpression=f"#st IN ({', '.join(names)})",
            ExpressionAttributeNames=attr_names("st", "ps", "sw"),
            ExpressionAttributeValues={
                ":new": S(state),
                ":mark": S(mark),
                **{n: S(e) for n, e in zip(names, expect, strict=True)},
            },
            ReturnValues="ALL_OLD",
        )
        if resp is not None:
            return _upload(resp["Attributes"])
        try:
            item = self._get_upload_item(upload_id)
        except UploadNotFound:
            item = {}
        if item.get("sw", {}).get("S") != mark:
            raise UploadNotFound(f"multipart upload {upload_id} is not {'/'.join(expect)}")
        return dataclasses.replace(_upload(item), state=item["ps"]["S"])

    async def delete_multipart_upload(self, upload_id: str) -> None:
        def op() -> list[Item]:
            try:
                upload = _upload(self._get_upload_item(upload_id))
            except UploadNotFound:
                return []
            return [_by_key(upload), _by_age(upload)] + [
                {"p": i["p"], "s": i["s"]} for i in self._mp_query(f"mpu#{upload_id}")
            ]

        keys = await self._rq.run(op)
        head = _upload_key(upload_id)
        # the upload item last: while it exists, a retry finds the rest again
        rest = [{"DeleteRequest": {"Key": k}} for k in keys if k != head]
        await self._rq.write_many(self.tables["namespace"], rest)
        if keys:
            await self._rq.run(
                lambda: self._rq.call("delete_item", TableName=self.tables["namespace"], Key=head)
            )

    async def list_multipart_uploads(
        self, bucket: str, prefix: str = "", after: tuple[str, str] | None = None, limit: int = 1000
    ) -> list[MultipartUpload]:
        # ``limit`` live uploads unless the index ends first: a shorter answer means the
        # end to ListMultipartUploads (``dfs.s3.multipart_listing``), so done uploads and
        # uploads forgotten since the index was read are skipped and reading goes on
        def op() -> list[MultipartUpload]:
            start = max(f"{after[0]}{_SEP}{after[1]}" if after else "", prefix)
            cond, values = " AND #s > :after", {":after": S(start or _SEP)}
            out: list[MultipartUpload] = []
            while len(out) < limit:
                page = self._mp_query(
                    f"mpuk#{bucket}", cond=cond, values=values, limit=limit - len(out)
                )
                if not page:
                    return out
                for item in page:
                    key = item["k"]["S"]
                    if key > prefix and not key.startswith(prefix):
                        return out
                    if key.startswith(prefix) and (u := self._live(item)) is not None:
                        out.append(u)
                values = {":after": page[-1]["s"]}
            return out

        return await self._rq.run(op)

    def _live(self, item: Item) -> MultipartUpload | None:
        """The upload an index item names, unless it is done or gone."""
        try:
            u = self._listed(item)
        except UploadNotFound:
            return None
        return None if u.state == UPLOAD_DONE else u

    def _listed(self, item: Item) -> MultipartUpload:
        return _upload(self._get_upload_item(item["uid"]["S"]))

    async def count_multipart_uploads(self, limit: int) -> int:
        """A COUNT query of the ``mpuage`` index items (one per upload), stopped at
        ``limit``: DynamoDB reads the index keys, never the uploads."""

        def op() -> int:
            params: dict[str, Any] = {
                "TableName": self.tables["namespace"],
                "KeyConditionExpression": "#p = :p",
                "ExpressionAttributeNames": attr_names("p"),
                "ExpressionAttributeValues": {":p": S("mpuage")},
                "Select": "COUNT",
                "Limit": limit,
            }
            count = 0
            while count < limit:
                params["Limit"] = limit - count
                resp = self._rq.call("query", **params)
                count += int(resp.get("Count", 0))
                if "LastEvaluatedKey" not in resp:
                    break
                params["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
            return min(count, limit)

        return await self._rq.run(op)

    async def stale_multipart_uploads(
        self, before: float, limit: int = 1000
    ) -> list[MultipartUpload]:
        def op() -> list[MultipartUpload]:
            items = self._mp_query(
                "mpuage",
                cond=" AND #s < :before",
                values={":before": S(f"{before:020.6f}")},
                limit=limit,
            )
            out = []
            for item in items:
                try:
                    out.append(self._listed(item))
                except UploadNotFound:
                    continue  # forgotten meanwhile
            return out

        return await self._rq.run(op)
