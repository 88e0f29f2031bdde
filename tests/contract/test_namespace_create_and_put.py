"""``create_and_put_object`` on both backends: a new file recorded complete (with its copies)
and linked as the key's version by one call, every check of ``create_and_commit_files`` and
``put_object`` kept; a refused link (``if_absent``, ``if_match``, ``check_owner``, a missing
bucket) leaves no file, no chunk reference and no copy counted for the tenant.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

import pytest

from dfs.errors import BucketNotFound, Conflict, EtagMismatch, FileNotFound, KeyExists
from dfs.meta.base import FILE_COMPLETE, FileRecord, Location, ManifestEntry
from dfs.meta.namespace import VERSIONING_ENABLED, NewObject, Usage
from tests.contract.test_namespace_store import Store, bucket, cid, make_file, obj, refcounts


def new_file(tenant: str, chunk: str, size: int) -> tuple[FileRecord, list[ManifestEntry]]:
    rec = FileRecord(
        file_id=str(uuid.uuid4()),
        name="f",
        size=size,
        sha256=cid(("file", chunk)),
        chunker="fixed:4096",
        tenant=tenant,
        created_at=1.0,
        chunk_count=1,
    )
    return rec, [ManifestEntry(0, size, chunk)]


def as_object(b: str, key: str, rec: FileRecord, etag: str = "", owner: str = "") -> NewObject:
    return NewObject(b, key, rec.file_id, rec.size, etag=etag, sha256=rec.sha256, owner=owner)


async def test_the_file_is_created_complete_and_linked(ns: Store) -> None:
    await bucket(ns, "cp", versioning=VERSIONING_ENABLED)
    rec, manifest = new_file("t1", cid("cp-a"), 10)
    locs = [Location(cid("cp-a"), "n1", 10), Location(cid("cp-a"), "n2", 10)]
    made = await ns.create_and_put_object(
        rec, manifest, locs, as_object("cp", "k", rec, etag="e-a", owner="t1"), 2.0
    )
    got = await ns.get_object("cp", "k")
    assert (got.file_id, got.etag, got.version_id) == (rec.file_id, "e-a", made.version.version_id)
    assert (await ns.get_file(rec.file_id, "t1")).state == FILE_COMPLETE
    assert await ns.get_manifest(rec.file_id) == manifest
    assert (await ns.get_locations([cid("cp-a")]))[cid("cp-a")] == {"n1", "n2"}
    assert await refcounts(ns, [cid("cp-a")]) == {cid("cp-a"): 1}
    assert cid("cp-a") in await ns.owned_chunks("t1", [cid("cp-a")])
    assert await ns.usage("t1", "cp") == Usage(1, 1, 0, 10, 10)


async def test_a_refused_link_leaves_no_file(ns: Store) -> None:
    await bucket(ns, "cr")
    old = await make_file(ns, "t1", [(cid("cr-old"), 5)])
    await ns.put_object(obj("cr", "k", old, etag="e-old"), 1.0)
    refused: list[tuple[bool, str | None, type[Exception], str, str, str]] = [
        (True, None, KeyExists, "k", "t1", "cr"),
        (False, "e-other", EtagMismatch, "k", "t1", "cr"),
        (False, None, BucketNotFound, "k2", "t0", "cr"),  # no longer the writer's bucket
        (False, None, BucketNotFound, "k", "t1", "cr-none"),
    ]
    for i, (if_absent, if_match, error, key, owner, b) in enumerate(refused):
        chunk = cid(("cr-new", i))
        rec, manifest = new_file("t1", chunk, 20)
        with pytest.raises(error):
            await ns.create_and_put_object(
                rec,
                manifest,
                [Location(chunk, "n1", 20)],
                as_object(b, key, rec, etag="e-new", owner=owner),
                2.0,
                if_absent=if_absent,
                if_match=if_match,
            )
        with pytest.raises(FileNotFound):
            await ns.get_file(rec.file_id, "t1")
        assert await refcounts(ns, [chunk]) == {chunk: 0}
        assert not await ns.owned_chunks("t1", [chunk])
    got = await ns.get_object("cr", "k")
    assert (got.file_id, got.etag) == (old.file_id, "e-old")
    assert await ns.usage("t1", "cr") == Usage(1, 1, 0, 5, 5)
    assert [f.file_id for f in await ns.list_files("t1", limit=100)] == [old.file_id]


async def test_an_unversioned_overwrite_releases_the_old_file(ns: Store) -> None:
    await bucket(ns, "co")
    old = await make_file(ns, "t1", [(cid("co-old"), 5)])
    await ns.put_object(obj("co", "k", old), 1.0)
    rec, manifest = new_file("t1", cid("co-new"), 7)
    made = await ns.create_and_put_object(
        rec, manifest, [Location(cid("co-new"), "n1", 7)], as_object("co", "k", rec), 2.0
    )
    assert made.released_file_id == old.file_id
    with pytest.raises(FileNotFound):
        await ns.get_file(old.file_id, "t1")
    assert await refcounts(ns, [cid("co-old"), cid("co-new")]) == {
        cid("co-old"): 0,
        cid("co-new"): 1,
    }


async def test_the_callers_refusal_is_raised_whatever_the_cleanup_meets(
    ns: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the link is a second write (DynamoDB, a file of more chunks than one
    transaction holds beside the link), a refused link deletes the new file; if that delete
    is refused too (another upload of the same bytes linked the file meanwhile), the caller
    still gets its own refusal (412's KeyExists), not the cleanup's error."""
    await bucket(ns, "cc")
    old = await make_file(ns, "t1", [(cid("cc-old"), 5)])
    await ns.put_object(obj("cc", "k", old), 1.0)

    async def linked_meanwhile(*args: object, **kwargs: object) -> None:
        raise Conflict("the file is linked: not deleted")

    monkeypatch.setattr(ns, "delete_file", linked_meanwhile)
    rec, _ = new_file("t1", cid("cc-new"), 60)
    manifest = [ManifestEntry(i, 1, cid(("cc-new", i))) for i in range(60)]
    manifest[0] = ManifestEntry(0, 1, cid("cc-new"))
    rec = dataclasses.replace(rec, chunk_count=len(manifest))
    with pytest.raises(KeyExists):
        await ns.create_and_put_object(
            rec,
            manifest,
            [Location(cid("cc-new"), "n1", 1)],
            as_object("cc", "k", rec, owner="t1"),
            2.0,
            if_absent=True,
        )
    assert (await ns.get_object("cc", "k")).file_id == old.file_id


async def test_of_concurrent_creates_exactly_one_wins(ns: Store) -> None:
    """``If-None-Match: *`` PutObjects of one new key at once: one links its file, every
    other gets KeyExists and leaves no file, no reference and no usage behind."""
    await bucket(ns, "cw")
    made = [new_file("t1", cid(("cw", i)), 10 + i) for i in range(4)]

    async def create(i: int) -> str | None:
        rec, manifest = made[i]
        try:
            await ns.create_and_put_object(
                rec,
                manifest,
                [Location(manifest[0].chunk_id, "n1", rec.size)],
                as_object("cw", "k", rec, owner="t1"),
                2.0,
                if_absent=True,
            )
        except KeyExists:
            return None
        return rec.file_id

    won = [f for f in await asyncio.gather(*(create(i) for i in range(4))) if f is not None]
    assert len(won) == 1
    winner, winner_manifest = next(m for m in made if m[0].file_id == won[0])
    assert (await ns.get_object("cw", "k")).file_id == winner.file_id
    assert [f.file_id for f in await ns.list_files("t1", limit=100)] == [winner.file_id]
    chunks = [manifest[0].chunk_id for _, manifest in made]
    won_chunk = winner_manifest[0].chunk_id
    assert await refcounts(ns, chunks) == {c: int(c == won_chunk) for c in chunks}
    assert await ns.owned_chunks("t1", chunks) == {won_chunk}
    assert await ns.usage("t1", "cw") == Usage(1, 1, 0, winner.size, winner.size)


async def test_concurrent_creates_of_the_same_bytes_count_the_chunk_once(ns: Store) -> None:
    """PutObjects of the same content to several keys at once: each links its own file, and
    the chunk's references, the dedup counters and the tenant's stored bytes stay exact
    (on DynamoDB every refcount guess but one is stale and computed again)."""
    await bucket(ns, "cs")
    chunk = cid("cs-same")
    made = [new_file("t1", chunk, 10) for _ in range(4)]
    before = await ns.get_stats()

    async def create(i: int) -> None:
        rec, manifest = made[i]
        where = [Location(chunk, "n1", 10)]
        await ns.create_and_put_object(rec, manifest, where, as_object("cs", f"k{i}", rec), 2.0)

    await asyncio.gather(*(create(i) for i in range(4)))
    assert await refcounts(ns, [chunk]) == {chunk: 4}
    stats = await ns.get_stats()
    assert stats.total_files - before.total_files == 4
    assert (
        stats.unique_chunks - before.unique_chunks,
        stats.stored_bytes - before.stored_bytes,
    ) == (1, 10)
    assert stats.duplicates_avoided - before.duplicates_avoided == 3
    assert await ns.usage("t1", "cs") == Usage(4, 4, 0, 40, 10)
