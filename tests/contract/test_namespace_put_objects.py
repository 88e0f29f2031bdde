"""``put_objects``, on both backends: a batch is ``put_object`` of each entry, in order.

One tenant's bucket gets a batch through ``put_objects``, a twin tenant's bucket the same
entries one ``put_object`` at a time, from the same starting state; both must end the same:
the answers (version made or not, file released, error), the versions and their fields, the
current objects, the usage counters (bytes stored counted once per distinct chunk) and the
chunk references. The batch mixes what SQLite links in one pass (a fresh key and a file no
version links) with everything it must leave to ``put``: a key with versions, a file linked
already, a key or a file named twice, an empty object, another tenant's file, a missing
file, a bucket read as another owner's.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from dfs.errors import BucketNotFound, DfsError, FileNotFound
from dfs.meta.base import FileRecord
from dfs.meta.namespace import (
    VERSIONING_ENABLED,
    VERSIONING_SUSPENDED,
    VERSIONING_UNVERSIONED,
    NewObject,
    ObjectVersion,
    PutResult,
    Usage,
)
from tests.contract.test_namespace_store import (
    Store,
    assert_refcounts_exact,
    bucket,
    cid,
    make_file,
    nonzero,
)

SHARED, OWN = cid("pm-shared"), cid("pm-own")
CHUNKS: dict[str, list[tuple[str, int]]] = {
    # label: the file's manifest; "s1"/"s2" share a chunk with each other and with "old"
    "old": [(SHARED, 100), (cid("pm-old"), 10)],
    "linked": [(cid("pm-linked"), 20)],
    "s1": [(SHARED, 100), (cid("pm-s1"), 30)],
    "s2": [(SHARED, 100), (SHARED, 100), (cid("pm-s2"), 40)],
    "big": [(cid(("pm-big", i)), 5) for i in range(12)],
    "again": [(cid("pm-again"), 50)],
    "twice": [(OWN, 60)],
    "second": [(cid("pm-second"), 70)],
    "new-old": [(cid("pm-new-old"), 80)],
}


async def _files(ns: Store, tenant: str) -> dict[str, FileRecord]:
    return {label: await make_file(ns, tenant, chunks) for label, chunks in CHUNKS.items()}


def _entries(b: str, tenant: str, f: dict[str, FileRecord], foreign: FileRecord) -> list[NewObject]:
    """The batch: (key, file label or "" for an empty object, fields)."""

    def o(key: str, label: str, **kw: Any) -> NewObject:
        rec = f[label] if label else None
        file_id, size = (rec.file_id, rec.size) if rec else ("", 0)
        return NewObject(b, key, file_id, size, etag=f"e-{key}", owner=tenant, **kw)

    return [
        o("docs/s1.txt", "s1", content_type="text/plain", user_metadata=(("z", "1"), ("a", "2"))),
        o("docs/s2.TXT", "s2", tags=(("t", "v"),), access="public-read"),
        o("big.bin", "big", shared_with=("t9", "t8", "t9"), headers=(("cache-control", "no"),)),
        o("old.bin", "new-old"),  # a key with a version: S3's rules decide
        o("old.bin", "s2"),  # again, with a file named before: after the one above
        o("dup", "again"),  # linked already with these fields: not again (unless_current)
        o("linked-again", "linked"),  # a file a version links already
        o("twice", "twice"),
        o("twice", "second"),  # the same key again: after the first
        o("file-twice-2", "s1"),  # the same file again, for another key
        o("folder/", ""),  # an empty object
        NewObject(b, "foreign", foreign.file_id, foreign.size, owner=tenant),
        NewObject(b, "missing", "00000000-0000-4000-8000-000000000000", 5, owner=tenant),
        NewObject(b, "moved", "", 0, owner="someone-else"),  # the bucket is not theirs
    ]


async def _setup(ns: Store, b: str, tenant: str, versioning: str) -> dict[str, FileRecord]:
    await bucket(ns, b, tenant, versioning)
    f = await _files(ns, tenant)
    await ns.put_object(NewObject(b, "old.bin", f["old"].file_id, f["old"].size), 1.0)
    await ns.put_object(NewObject(b, "other", f["linked"].file_id, f["linked"].size), 1.0)
    dup = NewObject(b, "dup", f["again"].file_id, f["again"].size, etag="e-dup", owner=tenant)
    await ns.put_object(dup, 1.0)
    return f


def _answer(r: PutResult | DfsError, labels: dict[str, str]) -> tuple[Any, ...]:
    if isinstance(r, DfsError):
        return ("error", type(r).__name__)
    return (
        _version(r.version, labels),
        labels.get(r.released_file_id or "", r.released_file_id),
        r.made,
    )


def _version(v: ObjectVersion, labels: dict[str, str]) -> tuple[Any, ...]:
    """A version with its file as a label and no bucket, id or time (they differ)."""
    fields = dataclasses.replace(v, bucket="", version_id="", file_id="", created_at=0.0)
    return (labels.get(v.file_id, v.file_id), v.version_id == "null", fields)


async def _state(ns: Store, b: str, tenant: str, labels: dict[str, str]) -> tuple[Any, ...]:
    versions = [_version(v, labels) for v in (await ns.list_versions(b, limit=1000)).objects]
    current = [v.key for v in (await ns.list_objects(b, limit=1000)).objects]
    usage = (
        await ns.usage(tenant),
        await ns.usage(tenant, b),
        nonzero(await ns.usage_by_prefix(tenant, b)),
        nonzero(await ns.usage_by_type(tenant, b)),
        nonzero(await ns.usage_by_type(tenant)),
    )
    return versions, current, usage


@pytest.mark.parametrize(
    "versioning", [VERSIONING_UNVERSIONED, VERSIONING_ENABLED, VERSIONING_SUSPENDED]
)
async def test_a_batch_is_put_object_of_each_entry_in_order(ns: Store, versioning: str) -> None:
    foreign = await make_file(ns, "pm-stranger", [(cid("pm-foreign"), 9)])
    v = versioning[:2]
    one_by_one, batched = f"pm-{v}-each", f"pm-{v}-batch"
    fe = await _setup(ns, one_by_one, f"pm-{v}-te", versioning)
    fb = await _setup(ns, batched, f"pm-{v}-tb", versioning)
    labels = {rec.file_id: label for f in (fe, fb) for label, rec in f.items()}

    expected: list[PutResult | DfsError] = []
    for entry in _entries(one_by_one, f"pm-{v}-te", fe, foreign):
        try:
            expected.append(await ns.put_object(entry, 2.0, unless_current=True))
        except DfsError as exc:
            expected.append(exc)
    got = await ns.put_objects(
        _entries(batched, f"pm-{v}-tb", fb, foreign), 2.0, unless_current=True
    )

    assert [_answer(r, labels) for r in got] == [_answer(r, labels) for r in expected]
    assert [_answer(r, labels) for r in got][-3:] == [
        ("error", "FileNotFound"),
        ("error", "FileNotFound"),
        ("error", "BucketNotFound"),
    ]
    assert sum(1 for r in got if isinstance(r, PutResult) and r.made) == 10
    want = await _state(ns, one_by_one, f"pm-{v}-te", labels)
    assert await _state(ns, batched, f"pm-{v}-tb", labels) == want
    last = {r.version.key: r.version for r in got if isinstance(r, PutResult)}
    for version in last.values():  # each key's last answer is its version as it reads back
        assert await ns.get_object(batched, version.key, version.version_id) == version
    chunks = [c for manifest in CHUNKS.values() for c, _ in manifest]
    await assert_refcounts_exact(ns, [f"pm-{v}-te", f"pm-{v}-tb"], chunks)


async def test_the_bytes_stored_count_each_chunk_once(ns: Store) -> None:
    await bucket(ns, "pm-bytes", "pm-t1")
    f = await _files(ns, "pm-t1")
    objs = [
        NewObject("pm-bytes", label, rec.file_id, rec.size)
        for label, rec in f.items()
        if label in ("s1", "s2", "big")
    ]
    done = await ns.put_objects(objs, 2.0)
    assert all(isinstance(r, PutResult) and r.made for r in done)
    # SHARED once, the s1 and s2 chunks, the 12 chunks of "big"
    assert await ns.usage("pm-t1", "pm-bytes") == Usage(3, 3, 0, 130 + 240 + 60, 170 + 60)
    assert await ns.usage("pm-t1") == Usage(3, 3, 0, 430, 230)


async def test_a_missing_bucket_refuses_every_entry(ns: Store) -> None:
    a = await make_file(ns, "pm-t2", [(cid("pm-nb"), 10)])
    done = await ns.put_objects(
        [NewObject("pm-nobucket", "k", a.file_id, a.size), NewObject("pm-nobucket", "e", "", 0)],
        2.0,
    )
    assert [type(r) for r in done] == [BucketNotFound, BucketNotFound]


async def test_batches_at_once_keep_every_counter_exact(ns: Store) -> None:
    """Batches and single puts running together on keys of one bucket (SQLite: in one
    group commit), some refused: the counters match what the versions add up to."""
    await bucket(ns, "pm-many", "pm-t3", VERSIONING_ENABLED)
    files = [await make_file(ns, "pm-t3", [(cid(("pm-m", i % 7)), 10 + i % 7)]) for i in range(60)]

    def entry(i: int) -> NewObject:
        return NewObject("pm-many", f"p{i % 3}/k{i % 40}.t{i % 2}", files[i].file_id, files[i].size)

    batches = [[entry(i) for i in range(s, s + 15)] for s in range(0, 45, 15)]
    batches[1][3] = dataclasses.replace(batches[1][3], file_id=cid("not-a-file")[:36])
    singles = [ns.put_object(entry(i), 3.0) for i in range(45, 60)]
    got, _ = await asyncio.gather(
        asyncio.gather(*(ns.put_objects(b, 2.0) for b in batches)), asyncio.gather(*singles)
    )
    assert [type(r) for batch in got for r in batch if isinstance(r, DfsError)] == [FileNotFound]
    versions = (await ns.list_versions("pm-many", limit=1000)).objects
    assert len(versions) == 59
    current = (await ns.list_objects("pm-many", limit=1000)).objects
    sizes = sum(v.size for v in versions)
    stored = sum(10 + i for i in range(7))  # each of the 7 chunks once
    usage = await ns.usage("pm-t3", "pm-many")
    assert (usage.objects, usage.versions, usage.logical_bytes) == (len(current), 59, sizes)
    assert usage.stored_bytes == stored
    by_prefix = nonzero(await ns.usage_by_prefix("pm-t3", "pm-many"))
    assert sum(u.versions for u in by_prefix.values()) == 59
    assert sum(u.objects for u in by_prefix.values()) == len(current)
