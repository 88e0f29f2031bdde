"""Changing a key's versions in the DynamoDB store: one TransactWriteItems per change.

Every change (put, delete marker, permanent delete of a version, restore, copy, tag and
access updates) is computed from a strongly consistent read of the key's head item and
written in ONE transaction conditional on the head's ``rev`` being what was read, so the
changes of one key are serialized: two concurrent puts both become versions in an enabled
bucket, and in an unversioned one the second replaces the first (each replaced file is
released once, because only one transaction can move a given ``rev``). A cancelled
transaction is computed again from a fresh read (bounded rounds, then Conflict).

The same transaction carries everything the change implies, so nothing is ever half done:
the version items, the head, the listed item, the search index items, the usage counters
(tenant and bucket totals, top-level prefix, file type: objects, versions, delete markers,
logical bytes; the bucket's totals row conditional on the bucket not being deleted and
still having the versioning state the change assumed, see the codec), the file link counts
(conditional on their read values), a ConditionCheck that each newly linked file is complete and of the bucket's tenant, and a
durable job item for each file whose link count crossed 0 in a scope (``jobs#``): its
chunks must be added to or dropped from that scope's stored bytes, and, when the last link
of the file went, the file released. The chunk work cannot ride in this transaction (a
file may have any number of chunks, a transaction holds 100 items), so the job is finished
right after the transaction by ``store_namespace_jobs`` and, after a crash, by its sweep.
A PutObject's new file (``store_namespace_create``) rides in the same transaction: its own
put replaces the ConditionCheck, and it has no link counts to read.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence

import dfs.meta.dynamo.store_namespace_codec as nc
from dfs.errors import BucketNotFound, Conflict, FileNotFound
from dfs.meta.base import FILE_COMPLETE
from dfs.meta.dynamo.codec import UNLINKED_ATTR, N, S, attr_names, int_of
from dfs.meta.dynamo.requests import Cancelled, Item
from dfs.meta.dynamo.store_namespace_buckets import NsBucketsPart
from dfs.meta.namespace import BucketRecord, ObjectVersion
from dfs.namespace_rules import extension, top_prefix

Versioned = tuple[str, ObjectVersion]  # (version sort key, version)


@dataclasses.dataclass(slots=True)
class KeyState:
    """What a change of one key is computed from."""

    bucket: BucketRecord
    key: str
    head: Item | None
    reads: Mapping[str, list[Item]] = dataclasses.field(default_factory=dict)

    @property
    def latest(self) -> Versioned | None:
        if self.head is None:
            return None
        return nc.latest_vsk(self.head), nc.version_record(self.bucket.name, self.head, True)

    @property
    def nsk(self) -> str | None:
        return None if self.head is None or "nsk" not in self.head else self.head["nsk"]["S"]


@dataclasses.dataclass(slots=True)
class Change:
    """A change of one key: versions added and removed, versions rewritten in place (tags,
    access), and what is latest afterwards (None: the key has no versions left)."""

    latest: Versioned | None
    nsk: str | None
    adds: list[Versioned] = dataclasses.field(default_factory=list)
    removes: list[Versioned] = dataclasses.field(default_factory=list)
    rewrites: list[Versioned] = dataclasses.field(default_factory=list)
    result: ObjectVersion | None = None


Plan = Callable[[KeyState], Change]


def _live(v: Versioned | None) -> bool:
    return v is not None and not v[1].is_delete_marker


class NsWritePart(NsBucketsPart):
    def _key_state(
        self, bucket: str, key: str, also: Mapping[str, Sequence[Item]] | None = None
    ) -> KeyState:
        """The key's state; ``also``: more keys (by logical table) read in the same
        BatchGetItem, their items in ``KeyState.reads``."""
        wanted = {"namespace": [nc.bucket_key(bucket)], "objects": [nc.head_key(bucket, key)]}
        got = self._get_across({**wanted, **(also or {})}, {})
        if not got["namespace"]:
            raise BucketNotFound(f"no bucket {bucket}")
        item = got["namespace"][0]
        if "deleting" in item:
            raise Conflict(f"bucket {bucket} is being deleted")
        head = got["objects"][0] if got["objects"] else None
        return KeyState(nc.bucket_record(item), key, head, got)

    def _version_at(self, st: KeyState, vsk: str) -> Versioned | None:
        """A version of the key by its sort key (from the head when it is the latest)."""
        latest = st.latest
        if latest is not None and latest[0] == vsk:
            return latest
        item = self._ns_get("objects", nc.version_key(st.bucket.name, st.key, vsk))
        if item is None:
            return None
        return vsk, nc.version_record(st.bucket.name, item, False)

    def _change_round(self, bucket: str, key: str, plan: Plan) -> tuple[Change, list[Item]] | None:
        """One optimistic round: read, plan, write. None when the transaction lost a race."""
        st = self._key_state(bucket, key)
        change = plan(st)
        if not (change.adds or change.removes or change.rewrites):
            return change, []  # nothing to write (deleting what is not there)
        try:
            jobs = self._write_change(st, change)
        except Cancelled:
            return None
        return change, jobs

    def _write_change(self, st: KeyState, ch: Change) -> list[Item]:
        """The change's transaction (see the module); returns the job items it put. The
        round's own ClientRequestToken makes the retry policy's resend of it, after an
        answer lost, a no-op rather than a second change planned on the first's result."""
        actions, jobs = self._change_actions(st, ch)
        self._rq.transact(actions, token=uuid.uuid4().hex)
        return jobs

    def _change_actions(
        self, st: KeyState, ch: Change, fresh: str | None = None
    ) -> tuple[list[Item], list[Item]]:
        """The change's transaction actions and the job items among them. ``fresh``: a file
        the same transaction puts, so it has no links to read and no item to check yet."""
        link_actions, jobs, checks = self._link_actions(st, ch, fresh)
        actions = [
            self._head_action(st, ch),
            *self._version_actions(st, ch),
            *self._listed_actions(st, ch),
            *self._index_actions(st, ch),
            *self._usage_actions(st, ch),
            *link_actions,
            *({"Put": {"TableName": self.tables["namespace"], "Item": j}} for j in jobs),
            *checks,
        ]
        return actions, jobs

    def _head_action(self, st: KeyState, ch: Change) -> Item:
        table = self.tables["objects"]
        key = nc.head_key(st.bucket.name, st.key)
        if st.head is None:
            cond: Item = {"ConditionExpression": "attribute_not_exists(p)"}
            nv, rev = 0, 0
        else:
            nv, rev = int_of(st.head, "nv"), int_of(st.head, "rev")
            cond = {
                "ConditionExpression": "#rev = :rev",
                "ExpressionAttributeNames": attr_names("rev"),
                "ExpressionAttributeValues": {":rev": N(rev)},
            }
        if ch.latest is None:
            return {"Delete": {"TableName": table, "Key": key, **cond}}
        item: Item = {
            **key,
            **nc.version_attrs(ch.latest[1]),
            "nv": N(nv + len(ch.adds) - len(ch.removes)),
            "rev": N(rev + 1),
        }
        if ch.latest[0] != ch.latest[1].version_id:  # a null version's sort key
            item["lsk"] = S(ch.latest[0])
        if ch.nsk is not None:
            item["nsk"] = S(ch.nsk)
        return {"Put": {"TableName": table, "Item": item, **cond}}

    def _version_actions(self, st: KeyState, ch: Change) -> Iterable[Item]:
        table = self.tables["objects"]
        for vsk, v in (*ch.adds, *ch.rewrites):
            yield {"Put": {"TableName": table, "Item": nc.version_item(st.bucket.name, vsk, v)}}
        for vsk, _ in ch.removes:
            key = nc.version_key(st.bucket.name, st.key, vsk)
            yield {"Delete": {"TableName": table, "Key": key}}

    def _listed_actions(self, st: KeyState, ch: Change) -> Iterable[Item]:
        table = self.tables["objects"]
        key = nc.listed_key(st.bucket.name, st.key)
        if ch.latest is not None and _live(ch.latest):
            yield {"Put": {"TableName": table, "Item": {**key, **nc.version_attrs(ch.latest[1])}}}
        elif _live(st.latest):
            yield {"Delete": {"TableName": table, "Key": key}}

    def _index_actions(self, st: KeyState, ch: Change) -> Iterable[Item]:
        """The search index items of the latest live version: old ones out, new ones in
        (one action per item: a transaction may not touch an item twice)."""
        old = _index_items(st.bucket.name, st.latest)
        new = _index_items(st.bucket.name, ch.latest)
        table = self.tables["objects"]
        for ident in old.keys() - new.keys():
            yield {"Delete": {"TableName": table, "Key": nc.key_of(*ident)}}
        for ident, item in new.items():
            if old.get(ident) != item:
                yield {"Put": {"TableName": table, "Item": item}}

    def _usage_actions(self, st: KeyState, ch: Change) -> Iterable[Item]:
        """The usage rows a change moves; the bucket's totals row always when versions come
        or go, with its condition that the bucket still has the versioning state assumed
        and is not being deleted."""
        if not (ch.adds or ch.removes):
            return  # tags or access rewritten in place: nothing counted changes
        deltas = _usage_deltas(st.latest, ch)
        b, key = st.bucket, st.key
        yield self._usage_update(f"b:{b.name}", nc.usage_shard(key), deltas, b)
        if not any(deltas.values()):
            return
        rows = [
            (f"t:{b.tenant}", nc.usage_shard(f"{b.name}/{key}")),
            (f"b:{b.name}", nc.usage_group_row("prefix", top_prefix(key), key)),
            (f"b:{b.name}", nc.usage_group_row("type", extension(key), key)),
            (f"t:{b.tenant}", nc.usage_group_row("type", extension(key), f"{b.name}/{key}")),
        ]
        for scope, row in rows:
            yield self._usage_update(scope, row, deltas)

    def _usage_update(
        self, scope: str, row: str, deltas: dict[str, int], guard: BucketRecord | None = None
    ) -> Item:
        names = [n for n, v in deltas.items() if v] or ["versions"]
        update: Item = {
            "TableName": self.tables["namespace"],
            "Key": nc.key_of(nc.usage_partition(scope), row),
            "UpdateExpression": "ADD " + ", ".join(f"#{n} :{n}" for n in names),
            "ExpressionAttributeNames": attr_names(*names),
            "ExpressionAttributeValues": {f":{n}": N(deltas.get(n, 0)) for n in names},
        }
        if guard is not None:
            update["ConditionExpression"] = "#versioning = :v AND attribute_not_exists(#deleting)"
            update["ExpressionAttributeNames"].update(attr_names("versioning", "deleting"))
            update["ExpressionAttributeValues"][":v"] = S(guard.versioning)
        return {"Update": update}

    # --- file links -------------------------------------------------------------------------

    def _link_actions(
        self, st: KeyState, ch: Change, fresh: str | None = None
    ) -> tuple[list[Item], list[Item], list[Item]]:
        """(link count writes, job items, file checks) for the files the change links or
        unlinks; conditional on the counts read here (none for ``fresh``: absent)."""
        deltas: dict[str, int] = {}
        for sign, versions in ((1, ch.adds), (-1, ch.removes)):
            for _, v in versions:
                if v.file_id and not v.is_delete_marker:
                    deltas[v.file_id] = deltas.get(v.file_id, 0) + sign
        deltas = {f: d for f, d in deltas.items() if d}
        b = st.bucket
        scopes = ("tenant", f"bucket#{b.name}")
        linked = sorted(f for f, d in deltas.items() if d > 0 and f != fresh)
        got = self._get_across(
            {
                "namespace": [
                    nc.link_key(f, s) for f in sorted(deltas) if f != fresh for s in scopes
                ],
                "files": [{"file_id": S(f)} for f in linked],
            },
            {"files": ("file_id", "state", "tenant")},
        )
        _check_linkable(linked, got["files"], b.tenant)
        read = {(i["p"]["S"].removeprefix("link#"), i["s"]["S"]): i for i in got["namespace"]}
        actions: list[Item] = []
        jobs: list[Item] = []
        for f, d in sorted(deltas.items()):
            ops: list[tuple[str, int]] = []
            release = False
            for scope in scopes:
                item = read.get((f, scope))
                n0 = int_of(item, "n") if item else 0
                if d > 0 and item is not None and "rel" in item:
                    raise FileNotFound(f"file {f} is being released")
                actions.append(self._link_action(f, scope, item, n0, n0 + d))
                if (n0 == 0) != (n0 + d == 0):
                    name = "t:" + b.tenant if scope == "tenant" else "b:" + b.name
                    ops.append((name, 1 if d > 0 else -1))
                    release = release or (scope == "tenant" and n0 + d == 0)
            if ops:
                jobs.append(_job_item(f, b, ops, release))
        checks = [self._file_check(f, b.tenant) for f in linked]
        return actions, jobs, checks

    def _link_action(self, file_id: str, scope: str, item: Item | None, n0: int, n1: int) -> Item:
        table = self.tables["namespace"]
        key = nc.link_key(file_id, scope)
        if n1 < 0:  # the head read is older than the link read: lost a race, read again
            raise Cancelled(["StaleRead"])
        if item is None:
            cond: Item = {"ConditionExpression": "attribute_not_exists(p)"}
        else:
            cond = {
                "ConditionExpression": "#n = :n0",
                "ExpressionAttributeNames": attr_names("n"),
                "ExpressionAttributeValues": {":n0": N(n0)},
            }
        if n1 == 0 and scope != "tenant":
            return {"Delete": {"TableName": table, "Key": key, **cond}}
        new: Item = {**key, "n": N(n1)}
        if n1 == 0:
            new["rel"] = S("1")  # the file is being released: nothing may link it now
        return {"Put": {"TableName": table, "Item": new, **cond}}

    def _file_check(self, file_id: str, tenant: str) -> Item:
        """A newly linked file must be complete and the bucket tenant's; linked, it loses
        its ``UNLINKED_ATTR`` mark in the same step (a lookup by content may find it from
        now on), so no failure after the link can leave the mark behind."""
        return {
            "Update": {
                "TableName": self.tables["files"],
                "Key": {"file_id": S(file_id)},
                "UpdateExpression": f"REMOVE #{UNLINKED_ATTR}",
                "ConditionExpression": "#state = :complete AND #tenant = :t",
                "ExpressionAttributeNames": attr_names("state", "tenant", UNLINKED_ATTR),
                "ExpressionAttributeValues": {":complete": S(FILE_COMPLETE), ":t": S(tenant)},
            }
        }


def _check_linkable(file_ids: list[str], items: list[Item], tenant: str) -> None:
    """FileNotFound unless each file is complete and the tenant's, as read with the links:
    a put of a missing file fails at once instead of retrying its ConditionCheck."""
    ok = {
        i["file_id"]["S"]
        for i in items
        if i["state"]["S"] == FILE_COMPLETE and i["tenant"]["S"] == tenant
    }
    for f in file_ids:
        if f not in ok:
            raise FileNotFound(f"no complete file {f} of tenant {tenant}")


def _usage_deltas(old_latest: Versioned | None, ch: Change) -> dict[str, int]:
    d = dict.fromkeys(("objects", "versions", "delete_markers", "logical_bytes"), 0)
    for sign, versions in ((1, ch.adds), (-1, ch.removes)):
        for _, v in versions:
            if v.is_delete_marker:
                d["delete_markers"] += sign
            else:
                d["versions"] += sign
                d["logical_bytes"] += sign * v.size
    d["objects"] = int(_live(ch.latest)) - int(_live(old_latest))
    return d


def _index_items(bucket: str, latest: Versioned | None) -> dict[tuple[str, str], Item]:
    """(p, s) -> item of the search index items of a latest version (none for markers)."""
    if latest is None or latest[1].is_delete_marker:
        return {}
    v = latest[1]
    out: dict[tuple[str, str], Item] = {}
    for tag, value in v.tags:
        item = {**nc.tag_key(bucket, tag, v.key), "v": S(value)}
        out[(item["p"]["S"], v.key)] = item
    if v.content_type:
        p = nc.ctype_partition(bucket, v.content_type)
        out[(p, v.key)] = {**nc.key_of(p, v.key), "ct": S(v.content_type)}
    return out


def _job_item(file_id: str, b: BucketRecord, ops: list[tuple[str, int]], release: bool) -> Item:
    item: Item = {
        **nc.key_of(nc.job_partition(file_id), f"{file_id}#{uuid.uuid4().hex}"),
        "fid": S(file_id),
        "tenant": S(b.tenant),
        "ops": S(json.dumps(ops)),
    }
    if release:
        item["rel"] = S("1")
    return item
