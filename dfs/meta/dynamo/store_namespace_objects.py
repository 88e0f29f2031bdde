"""Objects and versions in the DynamoDB store: put, get, delete, restore, copy, update.

Each operation is a plan (a pure function of the key's state read by
``store_namespace_write``) of what to add, remove or rewrite; the write part turns it into
one transaction and retries it from a fresh read when it loses a race. Jobs the transaction
left (stored bytes, releasing a file) are run before the operation returns.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import dfs.meta.dynamo.store_namespace_codec as nc
from dfs.bounded import gather_by_key
from dfs.errors import Conflict, DfsError, FileNotFound, KeyNotFound, SourceChanged, Unavailable
from dfs.ids import new_file_id
from dfs.meta.base import FileRecord, Location, ManifestEntry
from dfs.meta.dynamo.codec import UNLINKED_ATTR, S, attr_names
from dfs.meta.dynamo.requests import Item
from dfs.meta.dynamo.store_commit import CommitPart
from dfs.meta.dynamo.store_files import FilesPart
from dfs.meta.dynamo.store_namespace_buckets import MAX_ROUNDS
from dfs.meta.dynamo.store_namespace_jobs import NsJobsPart
from dfs.meta.dynamo.store_namespace_write import Change, KeyState, Plan, Versioned
from dfs.meta.namespace import (
    NULL_VERSION,
    VERSIONING_ENABLED,
    VERSIONING_UNVERSIONED,
    BucketRecord,
    NewObject,
    ObjectVersion,
    PutResult,
    check_condition,
    check_latest,
    check_owner,
    holds_already,
)

log = logging.getLogger("dfs.meta")

PUTS_AT_ONCE = 64
"""Keys ``put_objects`` writes at once."""

COPY_ATTEMPTS = 3
"""Writes of a copy whose destination bucket changed owner between its read and the write
(each one redone for the owner read again)."""


class NsObjectsPart(FilesPart, CommitPart, NsJobsPart):
    if TYPE_CHECKING:  # provided by CreatePart, DeletePart and NsCreatePart

        async def create_and_commit_files(
            self,
            files: Sequence[tuple[FileRecord, Sequence[ManifestEntry]]],
            now: float,
            *,
            locations: Iterable[Location] = (),
            for_object: bool = False,
        ) -> list[FileRecord]: ...
        async def delete_file(self, file_id: str, tenant: str, now: float) -> FileRecord: ...
        async def create_and_put_object(
            self,
            rec: FileRecord,
            manifest: Sequence[ManifestEntry],
            locations: Sequence[Location],
            obj: NewObject,
            now: float,
            *,
            if_absent: bool = False,
            if_match: str | None = None,
        ) -> PutResult: ...

    async def _change(
        self, bucket: str, key: str, plan: Plan, now: float
    ) -> tuple[Change, str | None]:
        """Run ``plan`` on the key until its transaction wins; then its jobs. Returns the
        change and the file it released, if any."""
        for _ in range(MAX_ROUNDS):
            got = await self._rq.run(self._change_round, bucket, key, plan)
            if got is None:
                continue
            change, jobs = got
            await self._run_jobs(jobs, now)
            released = next((j["fid"]["S"] for j in jobs if "rel" in j), None)
            return change, released
        raise Conflict(f"key {key} of bucket {bucket} keeps changing; try again")

    def _find(self, st: KeyState, version_id: str | None) -> Versioned | None:
        """The latest version (None for a version id), or that version."""
        if version_id is None:
            return st.latest
        if version_id == NULL_VERSION:
            vsk = st.nsk
        elif nc.is_version_id(version_id):
            vsk = version_id
        else:
            return None
        return None if vsk is None or st.head is None else self._version_at(st, vsk)

    # --- put, restore, copy ---------------------------------------------------------------

    async def put_object(
        self,
        obj: NewObject,
        now: float,
        *,
        if_absent: bool = False,
        if_match: str | None = None,
        unless_current: bool = False,
    ) -> PutResult:
        """The conditions (``unless_current``, ``if_absent``, ``if_match``) are checked
        against the head read; the transaction is conditional on that head (its ``rev``, or
        its absence), so a write that raced in cancels it and the next round's read sees it.
        A head that holds the file already (``unless_current``) is answered as read: a
        change that adds nothing writes nothing."""
        plan = self._put_plan(obj, now, if_absent, if_match, unless_current)
        change, released = await self._change(obj.bucket, obj.key, plan, now)
        assert change.result is not None
        return PutResult(change.result, released, made=bool(change.adds))

    async def put_objects(
        self, objs: Sequence[NewObject], now: float, *, unless_current: bool = False
    ) -> list[PutResult | DfsError]:
        """``put_object`` of each, ``PUTS_AT_ONCE`` keys at a time (a key named twice: in
        order). Each key is its own transaction (a TransactWriteItems holds at most 100
        items, and the keys share no condition), so a refusal costs its entry alone."""
        out: list[PutResult | DfsError | None] = [None] * len(objs)

        async def one(i: int) -> None:
            try:
                out[i] = await self.put_object(objs[i], now, unless_current=unless_current)
            except DfsError as exc:
                out[i] = exc
            except Exception as exc:  # a bug: this entry's answer, not the batch's
                log.exception("link of %s/%s failed", objs[i].bucket, objs[i].key)
                out[i] = Unavailable(f"link failed: {type(exc).__name__}")

        await gather_by_key(one, [(o.bucket, o.key) for o in objs], PUTS_AT_ONCE)
        return [r for r in out if r is not None]

    def _put_plan(
        self,
        obj: NewObject,
        now: float,
        if_absent: bool,
        if_match: str | None,
        unless_current: bool = False,
    ) -> Plan:
        def plan(st: KeyState) -> Change:
            check_owner(obj, st.bucket.tenant)
            latest = st.latest
            if unless_current and latest is not None and holds_already(obj, latest[1]):
                return Change(latest=latest, nsk=st.nsk, result=latest[1])
            live = latest is not None and not latest[1].is_delete_marker
            check_condition(obj, latest[1].etag if latest and live else None, if_absent, if_match)
            enabled = st.bucket.versioning == VERSIONING_ENABLED
            vsk = nc.new_vsk(now, latest[0] if latest else None, null=not enabled)
            v = nc.new_version(obj, vsk, now)
            if enabled:
                return Change(latest=(vsk, v), nsk=st.nsk, adds=[(vsk, v)], result=v)
            old = self._find(st, NULL_VERSION)
            removes = [old] if old is not None else []
            return Change(latest=(vsk, v), nsk=vsk, adds=[(vsk, v)], removes=removes, result=v)

        return plan

    async def restore_version(
        self, bucket: str, key: str, version_id: str, now: float
    ) -> PutResult:
        v = await self.get_object(bucket, key, version_id)
        if v.is_delete_marker:
            raise KeyNotFound(f"version {version_id} of {key} is a delete marker")
        return await self.put_object(_as_new(v, bucket, key), now)

    async def copy_object(
        self,
        src_bucket: str,
        src_key: str,
        src_version: str | None,
        dst: NewObject,
        now: float,
        *,
        if_absent: bool = False,
        if_match: str | None = None,
        expect_file: str | None = None,
    ) -> PutResult:
        src = await self.get_object(src_bucket, src_key, src_version)
        if src.is_delete_marker:
            raise KeyNotFound(f"version {src_version} of {src_key} is a delete marker")
        if expect_file is not None and src.file_id != expect_file:
            raise SourceChanged(f"{src_key!r} was written while it was copied")
        obj = dataclasses.replace(
            dst, file_id=src.file_id, size=src.size, etag=src.etag, sha256=src.sha256
        )
        for _ in range(COPY_ATTEMPTS):
            dst_tenant = (await self.get_bucket(dst.bucket)).tenant
            try:
                return await self._copy_into(src.file_id, dst_tenant, obj, now, if_absent, if_match)
            except FileNotFound:
                # the write refuses a file of another tenant than the bucket's: the source's
                # file went, or the bucket got another owner since it was read (SQLite reads
                # it in the write's transaction: the copy then goes to the new owner)
                if (await self.get_bucket(dst.bucket)).tenant == dst_tenant:
                    raise KeyNotFound(f"{src_key} was deleted during the copy") from None
        raise Conflict(f"bucket {dst.bucket} keeps changing owner: copy not made")

    async def _copy_into(
        self,
        file_id: str,
        dst_tenant: str,
        obj: NewObject,
        now: float,
        if_absent: bool,
        if_match: str | None,
    ) -> PutResult:
        """``copy_object``'s write into a bucket of ``dst_tenant`` (as read just before)."""
        if file_id:
            src_file = await self.get_file(file_id)
            if src_file.tenant != dst_tenant:
                return await self._copy_as_own(src_file, dst_tenant, obj, now, if_absent, if_match)
        return await self.put_object(obj, now, if_absent=if_absent, if_match=if_match)

    async def _copy_as_own(
        self,
        src: FileRecord,
        tenant: str,
        obj: NewObject,
        now: float,
        if_absent: bool,
        if_match: str | None,
    ) -> PutResult:
        """A copy into another tenant's bucket links a file of that tenant with ``src``'s
        manifest (no chunk moves; its references counted as for any file), created and
        linked by ``create_and_put_object``: in one transaction when they fit, else in two
        writes under an intent the sweep resolves, so neither a refused link nor a crash
        between the two leaves the file behind."""
        rec = dataclasses.replace(
            src, file_id=new_file_id(), tenant=tenant, name=obj.key, created_at=now
        )
        manifest = await self.get_manifest(src.file_id)
        own = dataclasses.replace(obj, file_id=rec.file_id)
        return await self.create_and_put_object(
            rec, manifest, [], own, now, if_absent=if_absent, if_match=if_match
        )

    def _clear_unlinked(self, file_id: str) -> None:
        """Remove ``UNLINKED_ATTR`` from the file's item (none left: nothing to do)."""
        self._rq.call_or_none(
            "update_item",
            TableName=self.tables["files"],
            Key={"file_id": S(file_id)},
            UpdateExpression=f"REMOVE #{UNLINKED_ATTR}",
            ConditionExpression="attribute_exists(#file_id)",
            ExpressionAttributeNames=attr_names("file_id", UNLINKED_ATTR),
        )

    async def _link_item(self, file_id: str) -> Item | None:
        """The file's tenant link count item: None when no version links it and it is not
        being released (``rel``: the release deletes it, with its scopes' counts)."""
        item: Item | None = await self._rq.run(
            self._ns_get, "namespace", nc.link_key(file_id, "tenant")
        )
        return item

    # --- get, delete, update ----------------------------------------------------------------

    async def get_object(
        self, bucket: str, key: str, version_id: str | None = None
    ) -> ObjectVersion:
        def op() -> ObjectVersion:
            head = self._ns_get("objects", nc.head_key(bucket, key))
            if head is None:
                self._bucket_item(bucket)  # BucketNotFound before KeyNotFound
                raise KeyNotFound(f"no key {key} in bucket {bucket}")
            # the key exists, so its bucket does: finding a version needs only its name
            found = self._find(KeyState(BucketRecord(bucket, ""), key, head), version_id)
            if found is None or (version_id is None and found[1].is_delete_marker):
                raise KeyNotFound(f"no key {key} in bucket {bucket}")
            return found[1]

        return await self._rq.run(op)

    async def delete_object(
        self,
        bucket: str,
        key: str,
        version_id: str | None,
        now: float,
        *,
        unless_deleted: bool = False,
        if_latest: str | None = None,
        if_written: tuple[str, float] | None = None,
    ) -> ObjectVersion | None:
        def plan(st: KeyState) -> Change:
            check_latest(key, st.latest[1] if st.latest else None, if_latest, if_written)
            if version_id is not None:
                return self._remove_version(st, version_id)
            versioning, latest = st.bucket.versioning, st.latest
            if versioning == VERSIONING_UNVERSIONED:  # the answer: the version removed
                gone = latest[1] if latest else None
                return Change(None, None, removes=[latest] if latest else [], result=gone)
            if unless_deleted and (latest is None or latest[1].is_delete_marker):
                # nothing current: no marker added (a change that adds nothing writes nothing)
                return Change(latest, st.nsk, result=latest[1] if latest else None)
            latest_vsk = st.latest[0] if st.latest else None
            vsk = nc.new_vsk(now, latest_vsk, null=versioning != VERSIONING_ENABLED)
            marker = nc.delete_marker(bucket, key, vsk, now)
            if versioning == VERSIONING_ENABLED:
                return Change((vsk, marker), st.nsk, adds=[(vsk, marker)], result=marker)
            old = self._find(st, NULL_VERSION)
            removes = [old] if old is not None else []
            return Change((vsk, marker), vsk, adds=[(vsk, marker)], removes=removes, result=marker)

        change, _ = await self._change(bucket, key, plan, now)
        return change.result

    def _remove_version(self, st: KeyState, version_id: str) -> Change:
        found = self._find(st, version_id)
        if found is None:
            return Change(latest=st.latest, nsk=st.nsk)  # S3: not an error
        latest = st.latest
        nsk = None if found[0] == st.nsk else st.nsk
        if latest is not None and found[0] == latest[0]:
            latest = self._next_newest(st, found[0])
        removed = dataclasses.replace(found[1], is_latest=st.latest == found)
        return Change(latest=latest, nsk=nsk, removes=[found], result=removed)

    def _next_newest(self, st: KeyState, vsk: str) -> Versioned | None:
        for item in self._ns_query("objects", f"ver#{st.bucket.name}/{st.key}", 2):
            if item["s"]["S"] != vsk:
                return item["s"]["S"], nc.version_record(st.bucket.name, item, True)
        return None

    async def update_object(
        self,
        bucket: str,
        key: str,
        version_id: str | None,
        *,
        tags: Sequence[tuple[str, str]] | None = None,
        access: str | None = None,
        shared_with: Sequence[str] | None = None,
    ) -> ObjectVersion:
        def plan(st: KeyState) -> Change:
            found = self._find(st, version_id)
            if found is None or found[1].is_delete_marker:
                raise KeyNotFound(f"no key {key} in bucket {bucket}")
            vsk, v = found
            new = dataclasses.replace(
                v,
                tags=v.tags if tags is None else tuple(sorted(tags)),
                access=v.access if access is None else access,
                shared_with=(
                    v.shared_with if shared_with is None else tuple(sorted(set(shared_with)))
                ),
            )
            latest = st.latest
            if latest is not None and latest[0] == vsk:
                latest = (vsk, new)
            return Change(latest=latest, nsk=st.nsk, rewrites=[(vsk, new)], result=new)

        change, _ = await self._change(bucket, key, plan, 0.0)
        assert change.result is not None
        return change.result


def _as_new(v: ObjectVersion, bucket: str, key: str) -> NewObject:
    return NewObject(
        bucket=bucket,
        key=key,
        file_id=v.file_id,
        size=v.size,
        etag=v.etag,
        sha256=v.sha256,
        content_type=v.content_type,
        user_metadata=v.user_metadata,
        tags=v.tags,
        access=v.access,
        shared_with=v.shared_with,
        headers=v.headers,
    )
