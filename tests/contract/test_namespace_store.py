"""One contract suite for every NamespaceStore implementation (see dfs/meta/namespace.py).

The namespace lives in the metadata store (both ports on one object), so the backends are the
``meta`` fixture of ``conftest.py``: SQLite and DynamoDB on moto's server. Files are made
through the MetadataStore port (create + commit), and every exactness claim of the namespace
(released files, copies, races) is checked through what that port says: chunk refcounts,
``get_stats``, ``owned_chunks``, ``get_file``.

Where the port leaves a choice, this suite fixes it (both backends answer alike):
- a released file is deleted as ``delete_file`` deletes it (``get_file`` raises FileNotFound);
- ``copy_object`` takes file, size, etag and sha256 from the source version, everything
  else (content type, metadata, tags, access) from ``dst``;
- ``restore_version`` copies the old version whole (metadata and tags included);
- ``delete_object`` with a version id that does not exist is not an error (S3's 204);
- search: ``min_size <= size <= max_size``, ``modified_after <= created_at <
  modified_before``;
- a listing's last page has ``next_token`` None, also when it is exactly full.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from typing import Any

import pytest

from dfs.errors import (
    BucketExists,
    BucketNotEmpty,
    BucketNotFound,
    Conflict,
    FileNotFound,
    KeyNotFound,
    NotFound,
)
from dfs.meta.base import FileRecord, ManifestEntry
from dfs.meta.namespace import (
    ACCESS_PUBLIC_READ,
    ACCESS_SHARED,
    GRANT_READ,
    GRANT_READ_WRITE,
    NULL_VERSION,
    VERSIONING_ENABLED,
    VERSIONING_SUSPENDED,
    VERSIONING_UNVERSIONED,
    BucketRecord,
    NewObject,
    ObjectListing,
    SearchQuery,
    Usage,
)
from dfs.meta.sqlite import SqliteMetadataStore
from tests.contract.conftest import Store


def cid(n: object) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


async def make_file(store: Store, tenant: str, chunks: list[tuple[str, int]]) -> FileRecord:
    """A complete file of ``tenant`` with the given (chunk id, size) manifest."""
    manifest, off = [], 0
    for chunk_id, size in chunks:
        manifest.append(ManifestEntry(off, size, chunk_id))
        off += size
    rec = FileRecord(
        file_id=str(uuid.uuid4()),
        name="f",
        size=off,
        sha256=cid(("file", tuple(chunks))),
        chunker="fixed:4096",
        tenant=tenant,
        created_at=1.0,
        chunk_count=len(manifest),
    )
    await store.create_file(rec, manifest)
    return await store.commit_file(rec.file_id, 1.0)


async def bucket(
    store: Store, name: str, tenant: str = "t1", versioning: str = VERSIONING_UNVERSIONED
) -> None:
    await store.create_bucket(BucketRecord(name, tenant, created_at=1.0))
    if versioning != VERSIONING_UNVERSIONED:
        await store.update_bucket(name, tenant, versioning=versioning)


def obj(b: str, key: str, f: FileRecord | None, **kw: Any) -> NewObject:
    return NewObject(b, key, f.file_id if f else "", f.size if f else 0, **kw)


async def refcounts(store: Store, ids: list[str]) -> dict[str, int]:
    got = await store.get_chunks(ids)
    return {i: (got[i].refcount if i in got else 0) for i in ids}


async def assert_refcounts_exact(store: Store, tenants: list[str], ids: list[str]) -> None:
    """Every chunk's refcount equals the references of the complete files that exist."""
    want = dict.fromkeys(ids, 0)
    for tenant in tenants:
        for f in await store.list_files(tenant, limit=10_000):
            for e in await store.get_manifest(f.file_id):
                if e.chunk_id in want:
                    want[e.chunk_id] += 1
    assert await refcounts(store, ids) == want


def entries(page: ObjectListing) -> list[str]:
    """A page's entries in key order: object keys and common prefixes (as "P:prefix")."""
    items = [(o.key, o.key) for o in page.objects] + [(p, "P:" + p) for p in page.common_prefixes]
    return [label for _, label in sorted(items)]


async def list_all(store: Store, b: str, limit: int, **kw: Any) -> list[str]:
    out: list[str] = []
    token: str | None = None
    for _ in range(100_000):
        page = await store.list_objects(b, token=token, limit=limit, **kw)
        assert len(page.objects) + len(page.common_prefixes) <= limit
        out += entries(page)
        token = page.next_token
        if token is None:
            return out
    raise AssertionError("listing never ended")


def expected_listing(keys: list[str], prefix: str, delimiter: str) -> list[str]:
    out: list[str] = []
    for key in sorted(keys):
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix) :]
        if delimiter and delimiter in rest:
            cp = prefix + rest[: rest.index(delimiter) + len(delimiter)]
            if not out or out[-1] != "P:" + cp:
                out.append("P:" + cp)
        else:
            out.append(key)
    return out


# --- buckets ------------------------------------------------------------------------------


async def test_bucket_names_are_unique_across_tenants(ns: Store) -> None:
    await ns.create_bucket(BucketRecord("photos", "t1", created_at=5.0))
    with pytest.raises(BucketExists):
        await ns.create_bucket(BucketRecord("photos", "t1"))
    with pytest.raises(BucketExists):
        await ns.create_bucket(BucketRecord("photos", "t2"))
    got = await ns.get_bucket("photos")
    assert (got.name, got.tenant, got.created_at) == ("photos", "t1", 5.0)
    assert got.versioning == VERSIONING_UNVERSIONED
    with pytest.raises(BucketNotFound):
        await ns.get_bucket("nope")
    await ns.create_bucket(BucketRecord("alpha", "t1"))
    await ns.create_bucket(BucketRecord("zeta", "t2"))
    assert [b.name for b in await ns.list_buckets("t1")] == ["alpha", "photos"]
    assert [b.name for b in await ns.list_buckets("t2")] == ["zeta"]
    assert await ns.list_buckets("t3") == []


async def test_grants_show_buckets_to_other_tenants(ns: Store) -> None:
    await bucket(ns, "shared-one", "t1")
    await bucket(ns, "own", "t2")
    rec = await ns.update_bucket("shared-one", "t1", grants=[("t2", GRANT_READ)])
    assert rec.grants == (("t2", GRANT_READ),)
    assert (await ns.get_bucket("shared-one")).grants == (("t2", GRANT_READ),)
    assert [b.name for b in await ns.list_buckets("t2")] == ["own"]
    assert [b.name for b in await ns.list_buckets("t2", granted=True)] == ["own", "shared-one"]
    assert [b.name for b in await ns.list_buckets("t3", granted=True)] == []
    await ns.update_bucket("shared-one", "t1", grants=[("t3", GRANT_READ_WRITE)])
    assert [b.name for b in await ns.list_buckets("t2", granted=True)] == ["own"]
    assert [b.name for b in await ns.list_buckets("t3", granted=True)] == ["shared-one"]
    await ns.update_bucket("shared-one", "t1", grants=[])
    assert await ns.list_buckets("t3", granted=True) == []


async def test_update_bucket_versioning_and_access(ns: Store) -> None:
    await bucket(ns, "vers", "t1")
    rec = await ns.update_bucket("vers", "t1", access=ACCESS_PUBLIC_READ)
    assert (rec.access, rec.versioning) == (ACCESS_PUBLIC_READ, VERSIONING_UNVERSIONED)
    assert (await ns.update_bucket("vers", "t1", versioning=VERSIONING_ENABLED)).versioning == (
        VERSIONING_ENABLED
    )
    rec = await ns.update_bucket("vers", "t1", versioning=VERSIONING_SUSPENDED)
    assert (rec.versioning, rec.access) == (VERSIONING_SUSPENDED, ACCESS_PUBLIC_READ)
    with pytest.raises(Conflict):
        await ns.update_bucket("vers", "t1", versioning=VERSIONING_UNVERSIONED)
    await ns.update_bucket("vers", "t1", versioning=VERSIONING_ENABLED)
    with pytest.raises(Conflict):
        await ns.update_bucket("vers", "t1", versioning=VERSIONING_UNVERSIONED)
    assert (await ns.get_bucket("vers")).versioning == VERSIONING_ENABLED
    with pytest.raises(BucketNotFound):
        await ns.update_bucket("vers", "t2", access=ACCESS_PUBLIC_READ)
    with pytest.raises(BucketNotFound):
        await ns.update_bucket("nope", "t1", access=ACCESS_PUBLIC_READ)


async def test_delete_bucket_only_when_empty_and_own(ns: Store) -> None:
    await bucket(ns, "full", "t1", VERSIONING_ENABLED)
    f = await make_file(ns, "t1", [(cid(1), 10)])
    put = await ns.put_object(obj("full", "a", f), 2.0)
    with pytest.raises(BucketNotEmpty):
        await ns.delete_bucket("full", "t1")
    with pytest.raises(NotFound):
        await ns.delete_bucket("full", "t2")
    with pytest.raises(NotFound):
        await ns.delete_bucket("nope", "t1")
    marker = await ns.delete_object("full", "a", None, 3.0)
    assert marker is not None
    assert marker.is_delete_marker
    await ns.delete_object("full", "a", put.version.version_id, 4.0)
    with pytest.raises(BucketNotEmpty):  # the delete marker remains
        await ns.delete_bucket("full", "t1")
    await ns.delete_object("full", "a", marker.version_id, 5.0)
    await ns.delete_bucket("full", "t1")
    with pytest.raises(BucketNotFound):
        await ns.get_bucket("full")
    await ns.create_bucket(BucketRecord("full", "t2"))  # the name is free again
    assert (await ns.get_bucket("full")).tenant == "t2"


# --- versions -----------------------------------------------------------------------------


async def test_unversioned_overwrite_releases_the_old_file_once(ns: Store) -> None:
    await bucket(ns, "plain")
    a = await make_file(ns, "t1", [(cid("a"), 10), (cid("s"), 5)])
    b = await make_file(ns, "t1", [(cid("b"), 20), (cid("s"), 5)])
    first = await ns.put_object(obj("plain", "k", a, etag="ea"), 2.0)
    assert first.version.version_id == NULL_VERSION
    assert first.released_file_id is None
    assert (first.version.file_id, first.version.size, first.version.is_latest) == (
        a.file_id,
        15,
        True,
    )
    second = await ns.put_object(obj("plain", "k", b, etag="eb"), 3.0)
    assert second.released_file_id == a.file_id
    assert second.version.version_id == NULL_VERSION
    with pytest.raises(FileNotFound):
        await ns.get_file(a.file_id)
    assert await refcounts(ns, [cid("a"), cid("s"), cid("b")]) == {
        cid("a"): 0,
        cid("s"): 1,
        cid("b"): 1,
    }
    got = await ns.get_object("plain", "k")
    assert (got.file_id, got.etag, got.created_at) == (b.file_id, "eb", 3.0)
    assert [v.file_id for v in (await ns.list_versions("plain")).objects] == [b.file_id]
    await ns.delete_object("plain", "k", None, 4.0)
    with pytest.raises(KeyNotFound):
        await ns.get_object("plain", "k")
    with pytest.raises(FileNotFound):
        await ns.get_file(b.file_id)
    await ns.delete_object("plain", "k", None, 5.0)  # a missing key is not an error
    await ns.delete_object("plain", "k", "no-such-version", 5.0)
    stats = await ns.get_stats()
    assert (stats.total_files, stats.logical_bytes, stats.stored_bytes) == (0, 0, 0)
    assert (await ns.list_versions("plain")).objects == []


async def test_delete_file_refuses_a_file_that_a_version_links(ns: Store) -> None:
    """The seed's delete by id must not pull a file from under an object version: Conflict
    while linked (nothing changes); deleting the object then releases the file once."""
    await bucket(ns, "linked")
    f = await make_file(ns, "t1", [(cid("l1"), 10), (cid("l2"), 6)])
    await ns.put_object(obj("linked", "k", f, etag="e"), 2.0)
    before = (await ns.get_stats(), await ns.usage("t1"), await ns.usage("t1", "linked"))
    with pytest.raises(Conflict, match="linked by an object version"):
        await ns.delete_file(f.file_id, "t1", 3.0)
    with pytest.raises(FileNotFound):  # another tenant's: not found, not a conflict
        await ns.delete_file(f.file_id, "t2", 3.0)
    assert (await ns.get_file(f.file_id)).file_id == f.file_id
    assert (await ns.get_object("linked", "k")).file_id == f.file_id
    assert len(await ns.get_manifest(f.file_id)) == 2
    assert (await ns.get_stats(), await ns.usage("t1"), await ns.usage("t1", "linked")) == before
    assert await ns.usage("t1", "linked") == Usage(1, 1, 0, 16, 16)
    assert await refcounts(ns, [cid("l1"), cid("l2")]) == {cid("l1"): 1, cid("l2"): 1}
    await ns.delete_object("linked", "k", None, 4.0)
    with pytest.raises(FileNotFound):
        await ns.get_file(f.file_id)
    with pytest.raises(FileNotFound):
        await ns.delete_file(f.file_id, "t1", 5.0)
    assert await refcounts(ns, [cid("l1"), cid("l2")]) == {cid("l1"): 0, cid("l2"): 0}
    assert await ns.usage("t1") == Usage()
    assert await ns.usage("t1", "linked") == Usage()
    stats = await ns.get_stats()
    assert (stats.total_files, stats.logical_bytes, stats.stored_bytes) == (0, 0, 0)
    unlinked = await make_file(ns, "t1", [(cid("l3"), 4)])  # a file no version links
    await ns.delete_file(unlinked.file_id, "t1", 6.0)
    assert await refcounts(ns, [cid("l3")]) == {cid("l3"): 0}


async def test_enabled_versions_markers_and_permanent_deletes(ns: Store) -> None:
    await bucket(ns, "vb", versioning=VERSIONING_ENABLED)
    files = [await make_file(ns, "t1", [(cid(("v", i)), 10 + i)]) for i in range(3)]
    puts = [await ns.put_object(obj("vb", "doc.txt", f), 2.0 + i) for i, f in enumerate(files)]
    vids = [p.version.version_id for p in puts]
    assert len(set(vids)) == 3
    assert NULL_VERSION not in vids
    assert all(p.released_file_id is None for p in puts)
    assert sorted(vids) == vids[::-1]  # newer versions sort first
    assert (await ns.get_object("vb", "doc.txt")).file_id == files[2].file_id
    old = await ns.get_object("vb", "doc.txt", vids[0])
    assert (old.file_id, old.size, old.is_latest) == (files[0].file_id, 10, False)
    listed = (await ns.list_versions("vb")).objects
    assert [v.version_id for v in listed] == vids[::-1]
    assert [v.is_latest for v in listed] == [True, False, False]
    marker = await ns.delete_object("vb", "doc.txt", None, 9.0)
    assert marker is not None
    assert (marker.is_delete_marker, marker.is_latest, marker.file_id, marker.size) == (
        True,
        True,
        "",
        0,
    )
    with pytest.raises(KeyNotFound):
        await ns.get_object("vb", "doc.txt")
    got = await ns.get_object("vb", "doc.txt", marker.version_id)
    assert got.is_delete_marker
    assert (await ns.list_objects("vb")).objects == []
    listed = (await ns.list_versions("vb")).objects
    assert [v.version_id for v in listed] == [marker.version_id, *vids[::-1]]
    assert [v.is_latest for v in listed] == [True, False, False, False]
    await ns.delete_object("vb", "doc.txt", marker.version_id, 10.0)  # undelete
    assert (await ns.get_object("vb", "doc.txt")).version_id == vids[2]
    await ns.delete_object("vb", "doc.txt", vids[2], 11.0)  # the next newest becomes latest
    latest = await ns.get_object("vb", "doc.txt")
    assert (latest.version_id, latest.is_latest) == (vids[1], True)
    with pytest.raises(FileNotFound):
        await ns.get_file(files[2].file_id)
    assert (await refcounts(ns, [cid(("v", 2))]))[cid(("v", 2))] == 0
    with pytest.raises(KeyNotFound):
        await ns.get_object("vb", "doc.txt", vids[2])
    assert [o.key for o in (await ns.list_objects("vb")).objects] == ["doc.txt"]


async def test_null_version_rules(ns: Store) -> None:
    await bucket(ns, "nb")
    a, b, c, d, e = [await make_file(ns, "t1", [(cid(("n", i)), 10)]) for i in range(5)]
    await ns.put_object(obj("nb", "k", a), 2.0)
    await ns.update_bucket("nb", "t1", versioning=VERSIONING_ENABLED)
    vb = (await ns.put_object(obj("nb", "k", b), 3.0)).version.version_id
    vc = (await ns.put_object(obj("nb", "k", c), 4.0)).version.version_id

    async def versions() -> list[tuple[str, str, bool]]:
        listed = (await ns.list_versions("nb")).objects
        return [(v.version_id, v.file_id, v.is_delete_marker) for v in listed]

    assert await versions() == [(vc, c.file_id, False), (vb, b.file_id, False),
                                (NULL_VERSION, a.file_id, False)]  # fmt: skip
    await ns.update_bucket("nb", "t1", versioning=VERSIONING_SUSPENDED)
    put = await ns.put_object(obj("nb", "k", d), 5.0)  # replaces the null version
    assert (put.version.version_id, put.released_file_id) == (NULL_VERSION, a.file_id)
    assert await versions() == [(NULL_VERSION, d.file_id, False), (vc, c.file_id, False),
                                (vb, b.file_id, False)]  # fmt: skip
    marker = await ns.delete_object("nb", "k", None, 6.0)  # a null marker replaces it
    assert marker is not None
    assert (marker.version_id, marker.is_delete_marker) == (NULL_VERSION, True)
    with pytest.raises(FileNotFound):
        await ns.get_file(d.file_id)
    assert await versions() == [(NULL_VERSION, "", True), (vc, c.file_id, False),
                                (vb, b.file_id, False)]  # fmt: skip
    with pytest.raises(KeyNotFound):
        await ns.get_object("nb", "k")
    assert (await ns.get_object("nb", "k", NULL_VERSION)).is_delete_marker
    await ns.update_bucket("nb", "t1", versioning=VERSIONING_ENABLED)
    ve = (await ns.put_object(obj("nb", "k", e), 7.0)).version.version_id
    assert await versions() == [(ve, e.file_id, False), (NULL_VERSION, "", True),
                                (vc, c.file_id, False), (vb, b.file_id, False)]  # fmt: skip
    await ns.delete_object("nb", "k", NULL_VERSION, 8.0)
    assert [v[0] for v in await versions()] == [ve, vc, vb]
    assert await refcounts(ns, [cid(("n", i)) for i in range(5)]) == {
        cid(("n", 0)): 0,
        cid(("n", 1)): 1,
        cid(("n", 2)): 1,
        cid(("n", 3)): 0,
        cid(("n", 4)): 1,
    }


async def test_get_and_put_errors(ns: Store) -> None:
    await bucket(ns, "errs", "t1")
    f = await make_file(ns, "t1", [(cid("e"), 3)])
    other = await make_file(ns, "t2", [(cid("o"), 3)])
    with pytest.raises(BucketNotFound):
        await ns.get_object("nope", "k")
    with pytest.raises(BucketNotFound):
        await ns.put_object(obj("nope", "k", f), 1.0)
    with pytest.raises(KeyNotFound):
        await ns.get_object("errs", "k")
    await ns.put_object(obj("errs", "k", f), 1.0)
    with pytest.raises(KeyNotFound):
        await ns.get_object("errs", "k", "no-such-version")
    with pytest.raises(KeyNotFound):
        await ns.get_object("errs", "other-key", NULL_VERSION)
    with pytest.raises(FileNotFound):  # a file of another tenant
        await ns.put_object(obj("errs", "x", other), 1.0)
    with pytest.raises(FileNotFound):
        await ns.put_object(NewObject("errs", "x", str(uuid.uuid4()), 3), 1.0)
    with pytest.raises(KeyNotFound):
        await ns.get_object("errs", "x")


async def test_object_fields_round_trip_and_empty_folder(ns: Store) -> None:
    await bucket(ns, "fields")
    f = await make_file(ns, "t1", [(cid("f"), 7)])
    new = obj("fields", "a/b.txt", f, etag="etag1", sha256=cid("sha"), content_type="text/plain",
              user_metadata=(("a", "1"), ("b", "2")), tags=(("k", "v"),),
              access=ACCESS_SHARED, shared_with=("t2", "t3"))  # fmt: skip
    await ns.put_object(new, 2.5)
    got = await ns.get_object("fields", "a/b.txt")
    assert (got.bucket, got.key, got.file_id, got.size, got.created_at) == (
        "fields",
        "a/b.txt",
        f.file_id,
        7,
        2.5,
    )
    assert (got.etag, got.sha256, got.content_type) == ("etag1", cid("sha"), "text/plain")
    assert got.user_metadata == (("a", "1"), ("b", "2"))
    assert (got.tags, got.access, got.shared_with) == ((("k", "v"),), ACCESS_SHARED, ("t2", "t3"))
    folder = await ns.put_object(NewObject("fields", "empty/", "", 0), 3.0)
    assert (folder.version.file_id, folder.version.size) == ("", 0)
    page = await ns.list_objects("fields", prefix="empty/", delimiter="/")
    assert [o.key for o in page.objects] == ["empty/"]
    page = await ns.list_objects("fields", delimiter="/")
    assert page.common_prefixes == ["a/", "empty/"]
    assert page.objects == []


async def test_restore_version_is_metadata_only(ns: Store) -> None:
    await bucket(ns, "rb", versioning=VERSIONING_ENABLED)
    a = await make_file(ns, "t1", [(cid("ra"), 10)])
    b = await make_file(ns, "t1", [(cid("rb"), 20)])
    v1 = (
        await ns.put_object(
            obj("rb", "k", a, etag="ea", content_type="text/plain", tags=(("t", "1"),)), 2.0
        )
    ).version
    await ns.put_object(obj("rb", "k", b, etag="eb"), 3.0)
    before = await ns.get_stats()
    assert await ns.usage("t1", "rb") == Usage(1, 2, 0, 30, 30)
    restored = await ns.restore_version("rb", "k", v1.version_id, 4.0)
    assert await ns.usage("t1", "rb") == Usage(1, 3, 0, 40, 30)  # the chunks count once
    r = restored.version
    assert r.version_id not in (v1.version_id, NULL_VERSION)
    assert r.is_latest
    assert (r.file_id, r.size, r.etag, r.content_type, r.tags, r.created_at) == (
        a.file_id,
        10,
        "ea",
        "text/plain",
        (("t", "1"),),
        4.0,
    )
    assert restored.released_file_id is None
    assert await ns.get_stats() == before  # no file made, no chunk referenced again
    assert (await ns.get_object("rb", "k")).version_id == r.version_id
    assert len((await ns.list_versions("rb")).objects) == 3
    await ns.delete_object("rb", "k", v1.version_id, 5.0)  # the restored copy keeps the file
    assert (await ns.get_file(a.file_id)).file_id == a.file_id
    assert await refcounts(ns, [cid("ra"), cid("rb")]) == {cid("ra"): 1, cid("rb"): 1}
    await ns.delete_object("rb", "k", r.version_id, 6.0)
    assert await refcounts(ns, [cid("ra"), cid("rb")]) == {cid("ra"): 0, cid("rb"): 1}
    with pytest.raises(KeyNotFound):
        await ns.restore_version("rb", "k", "no-such-version", 7.0)


async def test_restore_in_unversioned_bucket_keeps_the_file(ns: Store) -> None:
    await bucket(ns, "ru")
    a = await make_file(ns, "t1", [(cid("ua"), 10)])
    await ns.put_object(obj("ru", "k", a), 2.0)
    put = await ns.restore_version("ru", "k", NULL_VERSION, 3.0)
    assert (put.version.version_id, put.version.file_id, put.released_file_id) == (
        NULL_VERSION,
        a.file_id,
        None,
    )
    assert (await ns.get_file(a.file_id)).file_id == a.file_id
    assert await refcounts(ns, [cid("ua")]) == {cid("ua"): 1}
    assert len((await ns.list_versions("ru")).objects) == 1


async def test_copy_within_a_tenant_shares_the_file(ns: Store) -> None:
    await bucket(ns, "src", "t1")
    await bucket(ns, "dst", "t1", VERSIONING_ENABLED)
    f = await make_file(ns, "t1", [(cid("c1"), 10), (cid("c2"), 20)])
    await ns.put_object(obj("src", "a/x.bin", f, etag="e", sha256=cid("s")), 2.0)
    before = await ns.get_stats()
    dst = NewObject("dst", "b/y.bin", "", 0, content_type="application/x-y", tags=(("c", "d"),))
    put = await ns.copy_object("src", "a/x.bin", None, dst, 3.0)
    v = put.version
    assert (v.bucket, v.key, v.file_id, v.size, v.etag, v.sha256) == (
        "dst",
        "b/y.bin",
        f.file_id,
        30,
        "e",
        cid("s"),
    )
    assert (v.content_type, v.tags, v.created_at) == ("application/x-y", (("c", "d"),), 3.0)
    assert await ns.get_stats() == before
    assert (await ns.get_object("dst", "b/y.bin")).file_id == f.file_id
    await ns.delete_object("src", "a/x.bin", None, 4.0)
    assert (await ns.get_file(f.file_id)).file_id == f.file_id  # the copy still links it
    assert await refcounts(ns, [cid("c1"), cid("c2")]) == {cid("c1"): 1, cid("c2"): 1}
    await ns.delete_object("dst", "b/y.bin", v.version_id, 5.0)
    assert await refcounts(ns, [cid("c1"), cid("c2")]) == {cid("c1"): 0, cid("c2"): 0}
    with pytest.raises(FileNotFound):
        await ns.get_file(f.file_id)
    assert (await ns.get_stats()).total_files == 0


async def test_etags_round_trip_whether_or_not_they_are_the_sha256(ns: Store) -> None:
    """The native API's etag is the file's sha256 (SQLite stores that case in one byte):
    every read, copy and restore gives back exactly the etag written, equal or not."""
    await bucket(ns, "etags", "t1", VERSIONING_ENABLED)
    f = await make_file(ns, "t1", [(cid("e1"), 10)])
    cases = {"same": f.sha256, "other": cid("md5-like"), "empty": ""}
    for key, etag in cases.items():
        put = await ns.put_object(obj("etags", key, f, etag=etag, sha256=f.sha256), 2.0)
        assert put.version.etag == etag
        assert (await ns.get_object("etags", key)).etag == etag
        copied = await ns.copy_object(
            "etags", key, None, NewObject("etags", f"{key}-copy", "", 0), 3.0
        )
        assert (copied.version.etag, copied.version.sha256) == (etag, f.sha256)
        restored = await ns.restore_version("etags", key, put.version.version_id, 4.0)
        assert restored.version.etag == etag
    page = await ns.list_objects("etags")
    assert {o.key: o.etag for o in page.objects} == {
        **cases,
        **{f"{k}-copy": e for k, e in cases.items()},
    }


async def test_copy_into_another_tenants_bucket(ns: Store) -> None:
    await bucket(ns, "mine", "t1")
    await bucket(ns, "theirs", "t2")
    ids = [cid("x1"), cid("x2")]
    f = await make_file(ns, "t1", [(ids[0], 10), (ids[1], 20), (ids[0], 10)])
    await ns.put_object(obj("mine", "k", f), 2.0)
    put = await ns.copy_object("mine", "k", NULL_VERSION, NewObject("theirs", "k2", "", 0), 3.0)
    copy_id = put.version.file_id
    assert copy_id not in ("", f.file_id)
    rec = await ns.get_file(copy_id, tenant="t2")
    assert (rec.size, rec.sha256, rec.tenant) == (40, f.sha256, "t2")
    assert await ns.get_manifest(copy_id) == await ns.get_manifest(f.file_id)
    assert await refcounts(ns, ids) == {ids[0]: 4, ids[1]: 2}
    assert await ns.owned_chunks("t2", ids) == set(ids)
    assert (await ns.usage("t2")).stored_bytes == 30
    assert (await ns.usage("t1")).stored_bytes == 30
    await ns.delete_object("mine", "k", None, 4.0)
    assert await refcounts(ns, ids) == {ids[0]: 2, ids[1]: 1}
    assert await ns.owned_chunks("t1", ids) == set()
    assert await ns.owned_chunks("t2", ids) == set(ids)
    assert (await ns.usage("t2")).stored_bytes == 30
    await ns.delete_object("theirs", "k2", None, 5.0)
    assert await refcounts(ns, ids) == {ids[0]: 0, ids[1]: 0}
    assert await ns.owned_chunks("t2", ids) == set()
    assert await ns.owned_chunks("t2", ids, ever=True) == set(ids)
    stats = await ns.get_stats()
    assert (stats.total_files, stats.logical_bytes, stats.stored_bytes) == (0, 0, 0)


async def test_copy_of_missing_or_deleted_source(ns: Store) -> None:
    await bucket(ns, "cs", versioning=VERSIONING_ENABLED)
    f = await make_file(ns, "t1", [(cid("cs"), 5)])
    with pytest.raises(KeyNotFound):
        await ns.copy_object("cs", "k", None, NewObject("cs", "k2", "", 0), 2.0)
    with pytest.raises(BucketNotFound):
        await ns.copy_object("nope", "k", None, NewObject("cs", "k2", "", 0), 2.0)
    await ns.put_object(obj("cs", "k", f), 2.0)
    with pytest.raises(BucketNotFound):
        await ns.copy_object("cs", "k", None, NewObject("nope", "k2", "", 0), 2.0)
    await ns.delete_object("cs", "k", None, 3.0)
    with pytest.raises(KeyNotFound):
        await ns.copy_object("cs", "k", None, NewObject("cs", "k2", "", 0), 4.0)
    assert await refcounts(ns, [cid("cs")]) == {cid("cs"): 1}


async def test_update_object_changes_one_version_in_place(ns: Store) -> None:
    await bucket(ns, "ub", versioning=VERSIONING_ENABLED)
    f = await make_file(ns, "t1", [(cid("u"), 5)])
    v1 = (await ns.put_object(obj("ub", "k", f, tags=(("a", "1"),)), 2.0)).version
    v2 = (await ns.put_object(obj("ub", "k", f), 3.0)).version
    got = await ns.update_object("ub", "k", None, tags=[("z", "9"), ("b", "2")])
    assert (got.version_id, got.tags) == (v2.version_id, (("b", "2"), ("z", "9")))
    got = await ns.update_object("ub", "k", v1.version_id, access=ACCESS_PUBLIC_READ)
    assert (got.access, got.tags, got.is_latest) == (ACCESS_PUBLIC_READ, (("a", "1"),), False)
    # a tenant named twice is one grant, on both backends, as put_object keeps it
    sharing = ["t3", "t2", "t3"]
    got = await ns.update_object("ub", "k", None, access=ACCESS_SHARED, shared_with=sharing)
    assert (got.access, got.shared_with, got.tags) == (
        ACCESS_SHARED,
        ("t2", "t3"),
        (("b", "2"), ("z", "9")),
    )
    assert (await ns.get_object("ub", "k", None)).shared_with == ("t2", "t3")
    assert len((await ns.list_versions("ub")).objects) == 2  # no version was added
    assert (await ns.get_object("ub", "k", v1.version_id)).access == ACCESS_PUBLIC_READ
    got = await ns.update_object("ub", "k", None, tags=[])
    assert got.tags == ()
    with pytest.raises(KeyNotFound):
        await ns.update_object("ub", "missing", None, tags=[])
    with pytest.raises(KeyNotFound):
        await ns.update_object("ub", "k", "no-such-version", tags=[])
    await ns.delete_object("ub", "k", None, 4.0)
    with pytest.raises(KeyNotFound):  # the latest is a delete marker
        await ns.update_object("ub", "k", None, tags=[])


# --- listings -----------------------------------------------------------------------------

LIST_KEYS = [
    "a.txt",
    "b/1.txt",
    "b/2/x.txt",
    "b/2/y.txt",
    "b/3.txt",
    "b/",
    "b0",
    "c/d/e/f.txt",
    "zz",
    "é.txt",  # U+00E9 sorts after every ASCII key in UTF-8 byte order
    "b/ünï/a",
    "\U0001f600/smile",  # a 4-byte character sorts after U+FFFD
    "\ufffd",
    "Z",
    "b-1",
    "b//double",
]


async def put_keys(ns: Store, b: str, keys: list[str], now: float = 2.0) -> None:
    for key in keys:
        await ns.put_object(NewObject(b, key, "", 0), now)


@pytest.mark.parametrize("limit", [1, 2, 3, 1000])
async def test_list_objects_prefix_delimiter_and_pages(ns: Store, limit: int) -> None:
    await bucket(ns, "lst")
    await put_keys(ns, "lst", LIST_KEYS)
    assert await list_all(ns, "lst", limit) == sorted(LIST_KEYS)
    assert sorted(LIST_KEYS, key=lambda k: k.encode()) == sorted(LIST_KEYS)
    for prefix, delimiter in [("", "/"), ("b/", "/"), ("b", "/"), ("b/2/", "/"), ("c/", "/"),
                              ("b", ""), ("nothing", "/"), ("", "."), ("b/", "x")]:  # fmt: skip
        got = await list_all(ns, "lst", limit, prefix=prefix, delimiter=delimiter)
        assert got == expected_listing(LIST_KEYS, prefix, delimiter), (prefix, delimiter)


async def test_listing_hides_deleted_keys_and_ends_on_a_full_page(ns: Store) -> None:
    await bucket(ns, "hide", versioning=VERSIONING_ENABLED)
    await put_keys(ns, "hide", ["a", "b", "c", "d/e"])
    await ns.delete_object("hide", "b", None, 3.0)
    page = await ns.list_objects("hide", limit=3)
    assert [o.key for o in page.objects] == ["a", "c", "d/e"]
    assert page.next_token is None
    page = await ns.list_objects("hide", delimiter="/", limit=3)
    assert entries(page) == ["a", "c", "P:d/"]
    assert page.next_token is None
    page = await ns.list_objects("hide", delimiter="/", limit=2)
    assert entries(page) == ["a", "c"]
    assert page.next_token is not None
    last = await ns.list_objects("hide", delimiter="/", limit=2, token=page.next_token)
    assert entries(last) == ["P:d/"]
    assert last.next_token is None
    assert all(o.is_latest for o in page.objects)
    assert not any(o.is_delete_marker for o in page.objects)
    with pytest.raises(BucketNotFound):
        await ns.list_objects("nope")


async def test_list_versions_order_and_pages(ns: Store) -> None:
    await bucket(ns, "lv", versioning=VERSIONING_ENABLED)
    f = await make_file(ns, "t1", [(cid("lv"), 4)])
    made: dict[str, list[str]] = {}
    now = 2.0
    for key, count in [("b/x", 3), ("a", 2), ("b/y", 1), ("c", 2)]:
        for _ in range(count):
            now += 1
            made.setdefault(key, []).append(
                (await ns.put_object(obj("lv", key, f), now)).version.version_id
            )
    marker = await ns.delete_object("lv", "c", None, now + 1)
    assert marker is not None
    made["c"].append(marker.version_id)
    want = [(k, v) for k in sorted(made) for v in reversed(made[k])]
    for limit in (1, 2, 3, 1000):
        got: list[tuple[str, str]] = []
        token: str | None = None
        while True:
            page = await ns.list_versions("lv", token=token, limit=limit)
            assert len(page.objects) <= limit
            assert page.common_prefixes == []
            got += [(v.key, v.version_id) for v in page.objects]
            token = page.next_token
            if token is None:
                break
        assert got == want, limit
    page = await ns.list_versions("lv", prefix="b/")
    assert [(v.key, v.is_latest) for v in page.objects] == [
        ("b/x", True),
        ("b/x", False),
        ("b/x", False),
        ("b/y", True),
    ]
    page = await ns.list_versions("lv", delimiter="/", limit=4)
    assert [(v.key, v.is_delete_marker) for v in page.objects] == [
        ("a", False),
        ("a", False),
        ("c", True),
    ]
    assert page.common_prefixes == ["b/"]
    assert page.next_token is not None
    rest = await ns.list_versions("lv", delimiter="/", limit=4, token=page.next_token)
    assert [(v.key, v.is_delete_marker, v.is_latest) for v in rest.objects] == [
        ("c", False, False),
        ("c", False, False),
    ]
    assert rest.next_token is None


@pytest.mark.timeout(900)  # a thousand transactions on moto's server, on a loaded machine
async def test_a_folder_of_many_children_pages_correctly(ns: Store) -> None:
    # the bound: 10,000 children on SQLite; 1,000 on moto's server (slow transactions)
    n = 10_000 if isinstance(ns, SqliteMetadataStore) else 1_000
    await bucket(ns, "big")
    children = [f"big/f{i:05d}" for i in range(n)] + [f"big/sub{i}/x" for i in range(0, n, 97)]
    others = ["a", "big", "bigger/x", "big0"]
    await put_many(ns, "big", children + others)
    want = expected_listing(children + others, "big/", "/")
    limit = 1000 if n > 1000 else 50
    got = await list_all(ns, "big", limit, prefix="big/", delimiter="/")
    assert got == want
    assert len(got) == n + len(range(0, n, 97))
    page = await ns.list_objects("big", delimiter="/", limit=limit)
    assert entries(page) == ["a", "big", "P:big/", "big0", "P:bigger/"]


async def put_many(ns: Store, b: str, keys: list[str]) -> None:
    """Many puts, 200 at a time (each put is still its own atomic step). SQLite skips the
    fsync of each transaction meanwhile: durability is not under test here."""
    sqlite = isinstance(ns, SqliteMetadataStore)
    if sqlite:
        await ns._run(lambda: ns._db.execute("PRAGMA synchronous=OFF"))
    try:
        for i in range(0, len(keys), 200):
            await asyncio.gather(
                *(ns.put_object(NewObject(b, k, "", 0), 2.0) for k in keys[i : i + 200])
            )
    finally:
        if sqlite:
            await ns._run(lambda: ns._db.execute("PRAGMA synchronous=FULL"))


# --- search -------------------------------------------------------------------------------


async def search_all(ns: Store, b: str, q: SearchQuery, limit: int = 2) -> list[str]:
    out: list[str] = []
    token: str | None = None
    for _ in range(10_000):
        page = await ns.search_objects(b, q, token=token, limit=limit)
        assert len(page.objects) <= limit
        out += [o.key for o in page.objects]
        token = page.next_token
        if token is None:
            return out
    raise AssertionError("search never ended")


async def test_search_filters(ns: Store) -> None:
    await bucket(ns, "srch", versioning=VERSIONING_ENABLED)
    small = await make_file(ns, "t1", [(cid("s"), 10)])
    large = await make_file(ns, "t1", [(cid("l"), 1000)])
    rows = [  # key, file, content type, tags, time
        ("photos/2024/cat.jpg", large, "image/jpeg", (("animal", "cat"),), 10.0),
        ("photos/2024/dog.png", small, "image/png", (("animal", "dog"),), 20.0),
        ("photos/notes.txt", small, "text/plain", (("draft", ""),), 30.0),
        ("docs/cat-facts.txt", large, "text/plain", (("animal", "cat"), ("x", "y")), 40.0),
        ("docs/gone.jpg", small, "image/jpeg", (("animal", "cat"),), 50.0),
        ("imagery", small, "imagex/raw", (), 60.0),
    ]
    for key, f, ctype, tags, t in rows:
        await ns.put_object(obj("srch", key, f, content_type=ctype, tags=tags), t)
    await ns.delete_object("srch", "docs/gone.jpg", None, 70.0)  # deleted: never found
    # an older version matches, the latest does not: not found
    await ns.put_object(obj("srch", "photos/notes.txt", small, content_type="text/markdown"), 80.0)
    cases = [
        (SearchQuery(), ["docs/cat-facts.txt", "imagery", "photos/2024/cat.jpg",
                         "photos/2024/dog.png", "photos/notes.txt"]),
        (SearchQuery(prefix="photos/"), ["photos/2024/cat.jpg", "photos/2024/dog.png",
                                          "photos/notes.txt"]),
        (SearchQuery(contains="cat"), ["docs/cat-facts.txt", "photos/2024/cat.jpg"]),
        (SearchQuery(tag=("animal", "cat")), ["docs/cat-facts.txt", "photos/2024/cat.jpg"]),
        (SearchQuery(tag=("animal", None)), ["docs/cat-facts.txt", "photos/2024/cat.jpg",
                                             "photos/2024/dog.png"]),
        (SearchQuery(tag=("draft", None)), []),
        (SearchQuery(content_type="image/"), ["photos/2024/cat.jpg", "photos/2024/dog.png"]),
        (SearchQuery(content_type="text/plain"), ["docs/cat-facts.txt"]),
        (SearchQuery(content_type="text/markdown"), ["photos/notes.txt"]),
        (SearchQuery(min_size=1000), ["docs/cat-facts.txt", "photos/2024/cat.jpg"]),
        (SearchQuery(max_size=10), ["imagery", "photos/2024/dog.png", "photos/notes.txt"]),
        (SearchQuery(min_size=11, max_size=999), []),
        (SearchQuery(modified_after=20.0, modified_before=60.0), ["docs/cat-facts.txt",
                                                                  "photos/2024/dog.png"]),
        (SearchQuery(modified_after=60.0), ["imagery", "photos/notes.txt"]),
        (SearchQuery(prefix="photos/", contains="o", tag=("animal", "dog"),
                     content_type="image/", max_size=10, modified_before=21.0),
         ["photos/2024/dog.png"]),
    ]  # fmt: skip
    for query, want in cases:
        assert await search_all(ns, "srch", query) == want, query
        assert await search_all(ns, "srch", query, limit=100) == want, query
    hits = (await ns.search_objects("srch", SearchQuery(contains="dog"))).objects
    assert [(h.key, h.tags, h.size, h.is_latest) for h in hits] == [
        ("photos/2024/dog.png", (("animal", "dog"),), 10, True)
    ]
    with pytest.raises(BucketNotFound):
        await ns.search_objects("nope", SearchQuery())


# --- usage --------------------------------------------------------------------------------


async def test_usage_counters_per_tenant_bucket_prefix_and_type(ns: Store) -> None:
    await bucket(ns, "u1", "t1", VERSIONING_ENABLED)
    await bucket(ns, "u2", "t1")
    await bucket(ns, "u3", "t2")
    x, y, z = cid("X"), cid("Y"), cid("Z")
    f1 = await make_file(ns, "t1", [(x, 100), (y, 50)])
    f2 = await make_file(ns, "t1", [(x, 100), (z, 30)])
    f3 = await make_file(ns, "t1", [(y, 50), (y, 50)])
    v1 = (await ns.put_object(obj("u1", "photos/a.jpg", f1), 2.0)).version
    assert await ns.usage("t1", "u1") == Usage(1, 1, 0, 150, 150)
    await ns.put_object(obj("u1", "photos/a.jpg", f2), 3.0)
    assert await ns.usage("t1", "u1") == Usage(1, 2, 0, 280, 180)
    await ns.put_object(obj("u1", "docs/B.TXT", f3), 4.0)
    assert await ns.usage("t1", "u1") == Usage(2, 3, 0, 380, 180)
    await ns.put_object(NewObject("u1", "photos/", "", 0), 5.0)
    await ns.delete_object("u1", "docs/B.TXT", None, 6.0)
    assert await ns.usage("t1", "u1") == Usage(2, 4, 1, 380, 180)
    await ns.copy_object("u1", "photos/a.jpg", v1.version_id, NewObject("u2", "x.jpg", "", 0), 7.0)
    await ns.copy_object("u1", "photos/a.jpg", None, NewObject("u3", "c.jpg", "", 0), 8.0)
    assert await ns.usage("t1", "u2") == Usage(1, 1, 0, 150, 150)
    assert await ns.usage("t1") == Usage(3, 5, 1, 530, 180)
    assert await ns.usage("t2") == Usage(1, 1, 0, 130, 130)  # dedup within the tenant only
    assert await ns.usage("t2", "u3") == Usage(1, 1, 0, 130, 130)
    assert (await ns.usage("t1")).saved_bytes == 350
    assert nonzero(await ns.usage_by_prefix("t1", "u1")) == {
        "photos": Usage(2, 3, 0, 280, 0),
        "docs": Usage(0, 1, 1, 100, 0),
    }
    assert nonzero(await ns.usage_by_prefix("t1", "u2")) == {"": Usage(1, 1, 0, 150, 0)}
    assert nonzero(await ns.usage_by_type("t1")) == {
        "jpg": Usage(2, 3, 0, 430, 0),
        "txt": Usage(0, 1, 1, 100, 0),
        "": Usage(1, 1, 0, 0, 0),
    }
    assert nonzero(await ns.usage_by_type("t1", "u2")) == {"jpg": Usage(1, 1, 0, 150, 0)}
    assert nonzero(await ns.usage_by_type("t2")) == {"jpg": Usage(1, 1, 0, 130, 0)}
    # permanent deletes give the bytes back; f1 stays linked by u2's copy
    await ns.delete_object("u1", "photos/a.jpg", v1.version_id, 9.0)
    assert await ns.usage("t1", "u1") == Usage(2, 3, 1, 230, 180)
    for v in (await ns.list_versions("u1", prefix="docs/")).objects:
        await ns.delete_object("u1", v.key, v.version_id, 10.0)
    assert await ns.usage("t1", "u1") == Usage(2, 2, 0, 130, 130)
    assert await ns.usage("t1") == Usage(3, 3, 0, 280, 180)
    for b in ("u1", "u2", "u3"):
        for v in (await ns.list_versions(b)).objects:
            await ns.delete_object(b, v.key, v.version_id, 11.0)
    for tenant in ("t1", "t2"):
        assert await ns.usage(tenant) == Usage()
        assert nonzero(await ns.usage_by_type(tenant)) == {}
    assert await ns.usage("t1", "u1") == Usage()
    assert nonzero(await ns.usage_by_prefix("t1", "u1")) == {}
    assert await ns.usage("t9") == Usage()
    assert (await ns.get_stats()).total_files == 0


def nonzero(usage: dict[str, Usage]) -> dict[str, Usage]:
    return {k: v for k, v in usage.items() if v != Usage()}


async def test_usage_of_unversioned_overwrite_and_suspended_delete(ns: Store) -> None:
    await bucket(ns, "uo", "t1")
    f1 = await make_file(ns, "t1", [(cid("o1"), 10)])
    f2 = await make_file(ns, "t1", [(cid("o2"), 20)])
    f3 = await make_file(ns, "t1", [(cid("o3"), 40)])
    await ns.put_object(obj("uo", "a/k.bin", f1), 2.0)
    await ns.put_object(obj("uo", "a/k.bin", f2), 3.0)
    assert await ns.usage("t1", "uo") == Usage(1, 1, 0, 20, 20)
    await ns.update_bucket("uo", "t1", versioning=VERSIONING_ENABLED)
    await ns.put_object(obj("uo", "a/k.bin", f3), 4.0)
    await ns.update_bucket("uo", "t1", versioning=VERSIONING_SUSPENDED)
    await ns.delete_object("uo", "a/k.bin", None, 5.0)  # a null marker replaces f2's null
    assert await ns.usage("t1", "uo") == Usage(0, 1, 1, 40, 40)
    assert nonzero(await ns.usage_by_type("t1", "uo")) == {"bin": Usage(0, 1, 1, 40, 0)}
    again = await make_file(ns, "t1", [(cid("o1"), 10)])
    await ns.put_object(obj("uo", "a/k.bin", again), 6.0)  # replaces the null marker
    assert await ns.usage("t1", "uo") == Usage(1, 2, 0, 50, 50)
    assert await refcounts(ns, [cid("o1"), cid("o2"), cid("o3")]) == {
        cid("o1"): 1,
        cid("o2"): 0,
        cid("o3"): 1,
    }


# --- concurrency --------------------------------------------------------------------------


class second_handle:
    """Another handle on the same store: a second SQLite connection to the same file (two
    processes' worth of locking), or the same DynamoDB store (its calls already overlap)."""

    def __init__(self, ns: Store) -> None:
        self.ns = ns
        self.other: Store | None = None

    async def __aenter__(self) -> Store:
        if isinstance(self.ns, SqliteMetadataStore):
            self.other = await SqliteMetadataStore.open(f"sqlite://{self.ns._path}")  # type: ignore[assignment]
            return self.other  # type: ignore[return-value]
        return self.ns

    async def __aexit__(self, *exc: object) -> None:
        if self.other is not None:
            await self.other.close()


async def test_concurrent_puts_in_an_enabled_bucket_all_become_versions(ns: Store) -> None:
    await bucket(ns, "cv", versioning=VERSIONING_ENABLED)
    files = [await make_file(ns, "t1", [(cid(("cv", i)), 10)]) for i in range(8)]
    async with second_handle(ns) as other:
        puts = await asyncio.gather(
            *(
                (ns if i % 2 else other).put_object(obj("cv", "k", f), 2.0)
                for i, f in enumerate(files)
            )
        )
    assert all(p.released_file_id is None for p in puts)
    listed = (await ns.list_versions("cv")).objects
    assert sorted(v.file_id for v in listed) == sorted(f.file_id for f in files)
    assert len({v.version_id for v in listed}) == 8
    assert [v.is_latest for v in listed] == [True] + [False] * 7
    assert (await ns.get_object("cv", "k")).version_id == listed[0].version_id
    assert await ns.usage("t1", "cv") == Usage(1, 8, 0, 80, 80)


async def test_concurrent_puts_in_an_unversioned_bucket_release_each_loser_once(ns: Store) -> None:
    await bucket(ns, "cu")
    ids = [cid(("cu", i)) for i in range(7)] + [cid("shared")]
    files = [await make_file(ns, "t1", [(ids[i], 10), (ids[-1], 5)]) for i in range(7)]
    await ns.put_object(obj("cu", "k", files[0]), 1.0)
    async with second_handle(ns) as other:
        puts = await asyncio.gather(
            *(
                (ns if i % 2 else other).put_object(obj("cu", "k", f), 2.0)
                for i, f in enumerate(files[1:])
            )
        )
    winner = await ns.get_object("cu", "k")
    released = [p.released_file_id for p in puts if p.released_file_id is not None]
    assert sorted(released) == sorted(f.file_id for f in files if f.file_id != winner.file_id)
    assert len((await ns.list_versions("cu")).objects) == 1
    want = {i: 0 for i in ids}
    want[ids[files.index(next(f for f in files if f.file_id == winner.file_id))]] = 1
    want[ids[-1]] = 1
    assert await refcounts(ns, ids) == want
    stats = await ns.get_stats()
    assert (stats.total_files, stats.logical_bytes, stats.stored_bytes) == (1, 15, 15)
    assert await ns.usage("t1", "cu") == Usage(1, 1, 0, 15, 15)


async def test_delete_copy_and_put_races_leave_exact_refcounts(ns: Store) -> None:
    await bucket(ns, "race-src", "t1")
    await bucket(ns, "race-mine", "t1", VERSIONING_ENABLED)
    await bucket(ns, "race-theirs", "t2")
    ids = [cid(("race", i)) for i in range(4)]
    async with second_handle(ns) as other:
        for round_ in range(4):
            key = f"k{round_}"
            f = await make_file(ns, "t1", [(ids[round_], 10), (ids[0], 10)])
            await ns.put_object(obj("race-src", key, f), 1.0)
            results = await asyncio.gather(
                ns.delete_object("race-src", key, None, 2.0),
                other.copy_object("race-src", key, None, NewObject("race-theirs", key, "", 0), 2.0),
                ns.copy_object("race-src", key, None, NewObject("race-mine", key, "", 0), 2.0),
                other.delete_object("race-src", key, None, 2.0),
                return_exceptions=True,
            )
            for r in results:
                assert not isinstance(r, BaseException) or isinstance(r, KeyNotFound), r
            await assert_refcounts_exact(ns, ["t1", "t2"], ids)
    copies = (await ns.list_objects("race-theirs")).objects
    held = {ids[int(c.key[1:])] for c in copies} | ({ids[0]} if copies else set())
    n = len(copies)
    assert await ns.usage("t2") == Usage(n, n, 0, 20 * n, 10 * len(held))
    assert await ns.owned_chunks("t2", ids) == held
    mine = (await ns.list_objects("race-mine")).objects
    assert (await ns.usage("t1")).objects == len(mine)
    for b in ("race-mine", "race-theirs"):
        for v in (await ns.list_versions(b)).objects:
            await ns.delete_object(b, v.key, v.version_id, 3.0)
    await assert_refcounts_exact(ns, ["t1", "t2"], ids)
    assert await refcounts(ns, ids) == dict.fromkeys(ids, 0)
    assert (await ns.get_stats()).total_files == 0
