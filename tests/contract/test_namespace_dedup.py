"""A file that an object version links is the namespace's: a lookup by content
(``find_file_by_sha256``, which whole-file dedup answers an upload with) never names it, on
both backends. Were it named, the upload's file id would be the object's file, and deleting
the object (its last version) would delete the file the upload was answered with.
"""

from __future__ import annotations

import dataclasses

import pytest

from dfs.errors import FileNotFound
from dfs.meta.base import FileRecord, Location, ManifestEntry
from dfs.meta.namespace import NewObject
from tests.contract.test_namespace_create_and_put import new_file
from tests.contract.test_namespace_store import Store, bucket, cid


def _verified(tenant: str, chunk: str) -> tuple[FileRecord, list]:  # type: ignore[type-arg]
    rec, manifest = new_file(tenant, chunk, 10)
    return dataclasses.replace(rec, sha256_verified=True), manifest


def _object(b: str, key: str, rec: FileRecord) -> NewObject:
    return NewObject(b, key, rec.file_id, rec.size, sha256=rec.sha256, owner=rec.tenant)


async def _released(ns: Store, now: float) -> None:
    """Any release job left (DynamoDB's writer runs them itself; none is left here)."""
    await ns.finish_namespace_jobs(now)


async def test_an_objects_file_is_not_found_by_content(ns: Store) -> None:
    """PutObject's file (created and linked in one write) is never a dedup answer; a native
    file of the same bytes committed afterwards is, and survives the object's delete."""
    await bucket(ns, "dd")
    rec, manifest = _verified("t1", cid("dd-a"))
    locs = [Location(cid("dd-a"), "n1", 10)]
    await ns.create_and_put_object(rec, manifest, locs, _object("dd", "k", rec), 2.0)
    assert await ns.find_file_by_sha256("t1", rec.sha256) is None
    native = dataclasses.replace(rec, file_id=new_file("t1", cid("dd-a"), 10)[0].file_id)
    (native,) = await ns.create_and_commit_files([(native, manifest)], 3.0)
    found = await ns.find_file_by_sha256("t1", rec.sha256)
    # SQLite names the first file not linked; DynamoDB's entry names the first committed
    # (the object's), so it names none: dedup is lost there, never a file
    assert found is None or found.file_id == native.file_id
    await ns.delete_object("dd", "k", None, 4.0)
    await _released(ns, 5.0)
    with pytest.raises(FileNotFound):
        await ns.get_file(rec.file_id, "t1")
    assert (await ns.get_file(native.file_id, "t1")).size == 10


async def test_a_file_linked_by_id_is_no_longer_found_by_content(ns: Store) -> None:
    """A native file linked as a version (``put_object``) leaves the lookup by content in
    the same write: no later upload is answered with a file the object's delete releases."""
    await bucket(ns, "dl")
    rec, manifest = _verified("t1", cid("dl-a"))
    (rec,) = await ns.create_and_commit_files([(rec, manifest)], 1.0)
    assert (await ns.find_file_by_sha256("t1", rec.sha256)) is not None
    await ns.put_object(_object("dl", "k", rec), 2.0)
    assert await ns.find_file_by_sha256("t1", rec.sha256) is None
    # asked for with ``linked``, it is named (a reader's lookup: PUT /objects by content)
    found = await ns.find_file_by_sha256("t1", rec.sha256, linked=True)
    assert found is not None
    assert found.file_id == rec.file_id
    assert await ns.find_file_by_sha256("t2", rec.sha256, linked=True) is None  # its tenant's
    await ns.delete_object("dl", "k", None, 3.0)
    await _released(ns, 4.0)
    with pytest.raises(FileNotFound):  # released with its last version, as documented
        await ns.get_file(rec.file_id, "t1")
    assert await ns.find_file_by_sha256("t1", rec.sha256) is None


def _many_chunks(tenant: str, tag: str, n: int) -> tuple[FileRecord, list[ManifestEntry]]:
    """A verified file of ``n`` distinct 10-byte chunks (more than one DynamoDB refcount
    transaction holds: the commit that claims the file, counts in batches, then completes)."""
    rec, _ = _verified(tenant, cid(f"{tag}-0"))
    manifest = [ManifestEntry(10 * i, 10, cid(f"{tag}-{i}")) for i in range(n)]
    return dataclasses.replace(rec, size=10 * n, chunk_count=n), manifest


async def _not_found_by_content(ns: Store, rec: FileRecord) -> None:
    assert await ns.find_file_by_sha256(rec.tenant, rec.sha256) is None
    assert await ns.find_file_by_sha256(rec.tenant, rec.sha256, verified=False) is None
    # a reader's lookup (linked=True) may name it (SQLite), or not while it is marked
    # (DynamoDB: as a PutObject's file not linked yet)
    found = await ns.find_file_by_sha256(rec.tenant, rec.sha256, linked=True)
    assert found is None or found.file_id == rec.file_id


@pytest.mark.parametrize("n_chunks", [1, 60])
async def test_a_file_committed_for_an_object_is_not_found_before_its_link(
    ns: Store, n_chunks: int
) -> None:
    """A file committed ``for_object`` (its link is a later write: ``/finalize-upload`` with a
    key, an ingest's fallback) is never named by content, not even before the link: an
    upload answered with it then would lose it to the object's delete."""
    await bucket(ns, "dc")
    rec, manifest = _many_chunks("t1", f"dc{n_chunks}", n_chunks)
    await ns.create_files([(rec, manifest)])
    (done,) = await ns.commit_files([rec.file_id], 2.0, for_object=True)
    assert done is not None
    assert done.state == "complete"
    await _not_found_by_content(ns, rec)
    await ns.put_object(_object("dc", "k", rec), 3.0)
    assert await ns.find_file_by_sha256("t1", rec.sha256) is None
    await ns.delete_object("dc", "k", None, 4.0)
    await _released(ns, 5.0)
    with pytest.raises(FileNotFound):
        await ns.get_file(rec.file_id, "t1")


async def test_commit_file_for_an_object_is_not_found(ns: Store) -> None:
    rec, manifest = _verified("t1", cid("dc1-a"))
    await ns.create_files([(rec, manifest)])
    assert (await ns.commit_file(rec.file_id, 2.0, for_object=True)).state == "complete"
    await _not_found_by_content(ns, rec)


async def test_a_file_created_complete_for_an_object_is_not_found(ns: Store) -> None:
    """``create_and_commit_files(for_object=True)`` (an API ingest of an object's body
    whose every chunk it sent) marks the file in the write that records it complete."""
    rec, manifest = _verified("t1", cid("dcc-a"))
    (done,) = await ns.create_and_commit_files([(rec, manifest)], 2.0, for_object=True)
    assert done.state == "complete"
    await _not_found_by_content(ns, rec)
    big, entries = _many_chunks("t1", "dcc-big", 300)  # DynamoDB: created, then committed
    await ns.create_and_commit_files([(big, entries)], 3.0, for_object=True)
    await _not_found_by_content(ns, big)


async def test_a_native_file_committed_after_an_objects_is_found(ns: Store) -> None:
    """The mark keeps only the object's file out: a native file of the same bytes is named
    (SQLite), or none is (DynamoDB: its entry names the first committed file)."""
    rec, manifest = _verified("t1", cid("dn-a"))
    await ns.create_and_commit_files([(rec, manifest)], 2.0, for_object=True)
    native = dataclasses.replace(rec, file_id=new_file("t1", cid("dn-a"), 10)[0].file_id)
    await ns.create_and_commit_files([(native, manifest)], 3.0)
    found = await ns.find_file_by_sha256("t1", rec.sha256)
    assert found is None or found.file_id == native.file_id


@pytest.mark.parametrize("n_chunks", [1, 60])
async def test_a_file_created_for_an_object_stays_marked_through_its_commit(
    ns: Store, n_chunks: int
) -> None:
    """A pending file created ``FileRecord.for_object`` (a sync's upload: ``"for_object"`` in
    its init body) is not named by content once committed, by a plain commit too."""
    rec, manifest = _many_chunks("t1", f"dcf{n_chunks}", n_chunks)
    rec = dataclasses.replace(rec, for_object=True)
    await ns.create_files([(rec, manifest)])
    (done,) = await ns.commit_files([rec.file_id], 2.0)
    assert done is not None
    assert done.state == "complete"
    await _not_found_by_content(ns, rec)
    held, entries = _verified("t1", cid(f"dcf{n_chunks}-held"))
    held = dataclasses.replace(held, for_object=True)  # recorded complete at its plan
    await ns.create_and_commit_files([(held, entries)], 3.0)
    await _not_found_by_content(ns, held)


@pytest.mark.parametrize("n_chunks", [1, 60])
async def test_a_paged_file_created_for_an_object_stays_marked_through_seal_and_commit(
    ns: Store, n_chunks: int
) -> None:
    """A paged upload for an object (``/paged-upload`` with ``"for_object": true``: a sync
    of a huge file) is created marked with no manifest, gets its pages, is sealed and
    committed by a plain commit (``/paged-upload/finalize``): never named by content,
    before its link or after, and released with its last version."""
    await bucket(ns, "dp")
    rec, manifest = _many_chunks("t1", f"dp{n_chunks}", n_chunks)
    pending = dataclasses.replace(rec, size=0, sha256="", chunk_count=0, for_object=True)
    await ns.create_file(pending, [])
    half = max(1, n_chunks // 2)
    pages = [p for p in (manifest[:half], manifest[half:]) if p]
    for no, page in enumerate(pages):
        await ns.append_manifest_page(rec.file_id, no, page)
        await ns.mark_page_proven(rec.file_id, no)
    await ns.seal_file(rec.file_id, rec.size, rec.sha256)
    done = await ns.commit_file(rec.file_id, 2.0)
    assert done.state == "complete"
    await _not_found_by_content(ns, rec)
    await ns.put_object(_object("dp", "k", rec), 3.0)
    await _not_found_by_content(ns, rec)
    await ns.delete_object("dp", "k", None, 4.0)
    await _released(ns, 5.0)
    with pytest.raises(FileNotFound):
        await ns.get_file(rec.file_id, "t1")
