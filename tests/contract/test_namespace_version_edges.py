"""Corners of S3's version rules, on both backends: removing the current version of a key
in a suspended bucket (the ``null`` version becomes latest again), a suspended delete with
``unless_deleted`` and of a key never written, a copy or restore of a key onto itself (its
file kept, counted once), and a version id named with another key than its own.
"""

from __future__ import annotations

import pytest

from dfs.errors import KeyNotFound
from dfs.meta.namespace import (
    NULL_VERSION,
    VERSIONING_ENABLED,
    VERSIONING_SUSPENDED,
    NewObject,
    Usage,
)
from tests.contract.conftest import Store
from tests.contract.test_namespace_store import bucket, cid, make_file, obj


async def _vs(ns: Store, b: str, limit: int = 1000) -> list[tuple[str, str, bool, bool]]:
    out = []
    token = None
    while True:
        page = await ns.list_versions(b, limit=limit, token=token)
        out += [(v.key, v.version_id, v.is_latest, v.is_delete_marker) for v in page.objects]
        token = page.next_token
        if token is None:
            return out


async def test_suspended_removals_and_markers(ns: Store) -> None:
    await bucket(ns, "xa")
    f = [await make_file(ns, "t1", [(cid(("xa", i)), 10)]) for i in range(4)]
    await ns.put_object(obj("xa", "k", f[0]), 1.0)
    await ns.update_bucket("xa", "t1", versioning=VERSIONING_ENABLED)
    v1 = (await ns.put_object(obj("xa", "k", f[1]), 2.0)).version.version_id
    await ns.update_bucket("xa", "t1", versioning=VERSIONING_SUSPENDED)
    gone = await ns.delete_object("xa", "k", v1, 3.0)
    assert gone is not None
    assert gone.is_latest
    assert await _vs(ns, "xa") == [("k", NULL_VERSION, True, False)]
    got = await ns.get_object("xa", "k", NULL_VERSION)
    assert got.is_latest
    await ns.update_bucket("xa", "t1", versioning=VERSIONING_ENABLED)
    v2 = (await ns.put_object(obj("xa", "k", f[2]), 4.0)).version.version_id
    got = await ns.get_object("xa", "k", NULL_VERSION)
    assert not got.is_latest
    assert await _vs(ns, "xa", 1) == [("k", v2, True, False), ("k", NULL_VERSION, False, False)]
    await ns.update_bucket("xa", "t1", versioning=VERSIONING_SUSPENDED)
    m = await ns.delete_object("xa", "k", None, 5.0, unless_deleted=True)
    assert m is not None
    assert m.is_delete_marker
    assert m.version_id == NULL_VERSION
    assert await _vs(ns, "xa", 1) == [("k", NULL_VERSION, True, True), ("k", v2, False, False)]
    assert await ns.usage("t1", "xa") == Usage(0, 1, 1, 10, 10)
    m2 = await ns.delete_object("xa", "k", None, 6.0, unless_deleted=True)
    assert m2 is not None
    assert m2.version_id == NULL_VERSION
    assert await ns.usage("t1", "xa") == Usage(0, 1, 1, 10, 10)
    # a delete of a key never written: suspended adds a null marker
    m3 = await ns.delete_object("xa", "never", None, 7.0)
    assert m3 is not None
    assert m3.is_delete_marker
    assert await ns.usage("t1", "xa") == Usage(0, 1, 2, 10, 10)


async def test_copy_and_restore_onto_itself_keep_the_file(ns: Store) -> None:
    for name, state in (("xb1", None), ("xb2", VERSIONING_SUSPENDED)):
        await bucket(ns, name)
        if state:
            await ns.update_bucket(name, "t1", versioning=VERSIONING_ENABLED)
            await ns.update_bucket(name, "t1", versioning=state)
        f = await make_file(ns, "t1", [(cid(name), 10)])
        await ns.put_object(obj(name, "k", f), 1.0)
        done = await ns.copy_object(
            name, "k", None, NewObject(name, "k", "", 0, content_type="text/x"), 2.0
        )
        assert done.released_file_id is None
        assert (await ns.get_object(name, "k")).content_type == "text/x"
        assert (await ns.get_file(f.file_id)).file_id == f.file_id
        assert await ns.usage("t1", name) == Usage(1, 1, 0, 10, 10)
        again = await ns.restore_version(name, "k", NULL_VERSION, 3.0)
        assert again.released_file_id is None
        assert (await ns.get_file(f.file_id)).file_id == f.file_id
        assert await ns.usage("t1", name) == Usage(1, 1, 0, 10, 10)


async def test_a_version_id_of_another_key_is_not_found(ns: Store) -> None:
    await bucket(ns, "xc", versioning=VERSIONING_ENABLED)
    f = await make_file(ns, "t1", [(cid("xc"), 10)])
    va = (await ns.put_object(obj("xc", "a", f), 1.0)).version.version_id
    await ns.put_object(obj("xc", "b", f), 1.0)
    with pytest.raises(KeyNotFound):
        await ns.get_object("xc", "b", va)
    with pytest.raises(KeyNotFound):
        await ns.restore_version("xc", "b", va, 2.0)
    with pytest.raises(KeyNotFound):
        await ns.copy_object("xc", "b", va, NewObject("xc", "c", "", 0), 2.0)
    assert await ns.delete_object("xc", "b", va, 2.0) is None
    assert len(await _vs(ns, "xc")) == 2
    with pytest.raises(KeyNotFound):
        await ns.update_object("xc", "b", va, tags=(("a", "b"),))


async def test_one_file_linked_in_two_buckets_by_one_batch(ns: Store) -> None:
    await bucket(ns, "xd1", "td")
    await bucket(ns, "xd2", "td")
    f = await make_file(ns, "td", [(cid("xd"), 10)])
    done = await ns.put_objects([obj("xd1", "a", f), obj("xd2", "b", f)], 1.0)
    assert all(not isinstance(r, Exception) for r in done)
    assert await ns.usage("td") == Usage(2, 2, 0, 20, 10)
    await ns.delete_object("xd1", "a", None, 2.0)
    await ns.delete_object("xd2", "b", None, 2.0)
    assert await ns.usage("td") == Usage()
