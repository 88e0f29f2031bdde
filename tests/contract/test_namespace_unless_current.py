"""The writes a client may send again after their answer was lost, on both backends.

``put_object(..., unless_current=True)``:

- when the key's latest version is an object linking the same file, nothing is written: the
  answer is that version (``made`` False), no second version, no file released, no count
  changed, whatever the versioning;
- "the same" is the same file with the same content type, metadata, tags and access (an
  empty object: no file);
- it is checked before the other conditions, so a conditional create sent again answers
  its own first write instead of KeyExists;
- any other latest (another file, a delete marker, none) gets the link as without it.

``delete_object(..., unless_deleted=True)``: a key with no current object (a delete marker
latest, or no version at all) gets no marker; one with a current object gets one, as without
the flag; a version id or an unversioned bucket are unchanged by it.

``delete_object(..., version_id, if_latest=V)``: the version goes only while the key's latest
entry is ``V`` (what a prune saw before removing a delete marker); another latest, a write
since, or no key at all refuses it with Conflict and changes nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from dfs.errors import Conflict, KeyExists
from dfs.meta.namespace import (
    VERSIONING_ENABLED,
    VERSIONING_SUSPENDED,
    VERSIONING_UNVERSIONED,
    Usage,
)
from tests.contract.test_namespace_store import Store, bucket, cid, make_file, obj, refcounts


@pytest.mark.parametrize("versioning", [VERSIONING_UNVERSIONED, VERSIONING_ENABLED])
async def test_a_link_sent_again_makes_nothing(ns: Store, versioning: str) -> None:
    name = f"uc-{versioning[:2]}"
    await bucket(ns, name, versioning=versioning)
    a = await make_file(ns, "t1", [(cid((name, "a")), 10)])
    first = await ns.put_object(obj(name, "k", a, etag="e-a"), 1.0, unless_current=True)
    assert first.made
    again = await ns.put_object(obj(name, "k", a, etag="e-a"), 2.0, unless_current=True)
    assert not again.made
    assert again.released_file_id is None
    assert again.version.version_id == first.version.version_id
    assert again.version.file_id == a.file_id
    assert again.version.is_latest
    assert len((await ns.list_versions(name)).objects) == 1
    assert await refcounts(ns, [cid((name, "a"))]) == {cid((name, "a")): 1}
    assert await ns.usage("t1", name) == Usage(1, 1, 0, 10, 10)


async def test_another_file_a_marker_or_no_key_gets_the_link(ns: Store) -> None:
    await bucket(ns, "ucv", versioning=VERSIONING_ENABLED)
    a = await make_file(ns, "t1", [(cid("ucv-a"), 10)])
    b = await make_file(ns, "t1", [(cid("ucv-b"), 20)])
    assert (await ns.put_object(obj("ucv", "k", a), 1.0, unless_current=True)).made
    assert (await ns.put_object(obj("ucv", "k", b), 2.0, unless_current=True)).made
    # a is no longer the current object: linking it again is a new version
    back = await ns.put_object(obj("ucv", "k", a), 3.0, unless_current=True)
    assert back.made
    assert (await ns.get_object("ucv", "k")).version_id == back.version.version_id
    await ns.delete_object("ucv", "k", None, 4.0)  # a delete marker is latest
    assert (await ns.put_object(obj("ucv", "k", a), 5.0, unless_current=True)).made
    assert len((await ns.list_versions("ucv")).objects) == 5  # four versions and the marker
    # without the flag, the same file twice is two versions (the link's plain meaning)
    assert (await ns.put_object(obj("ucv", "k", a), 6.0)).made
    assert len((await ns.list_versions("ucv")).objects) == 6


async def test_the_same_is_the_same_file_with_the_same_fields(ns: Store) -> None:
    await bucket(ns, "uce", versioning=VERSIONING_ENABLED)
    folder = obj("uce", "photos/", None, content_type="application/x-directory")
    assert (await ns.put_object(folder, 1.0, unless_current=True)).made
    assert not (await ns.put_object(folder, 2.0, unless_current=True)).made
    tagged = obj("uce", "photos/", None, content_type="application/x-directory", tags=(("a", "b"),))
    assert (await ns.put_object(tagged, 3.0, unless_current=True)).made
    a = await make_file(ns, "t1", [(cid("uce-a"), 10)])
    assert (await ns.put_object(obj("uce", "k", a), 4.0, unless_current=True)).made
    retagged = obj("uce", "k", a, tags=(("x", "y"),))
    assert (await ns.put_object(retagged, 5.0, unless_current=True)).made
    assert not (await ns.put_object(retagged, 6.0, unless_current=True)).made
    assert len((await ns.list_versions("uce")).objects) == 4


async def test_it_is_checked_before_the_conditional_create(ns: Store) -> None:
    await bucket(ns, "ucc")
    a = await make_file(ns, "t1", [(cid("ucc-a"), 10)])
    b = await make_file(ns, "t1", [(cid("ucc-b"), 20)])
    first = await ns.put_object(obj("ucc", "k", a), 1.0, if_absent=True, unless_current=True)
    again = await ns.put_object(obj("ucc", "k", a), 2.0, if_absent=True, unless_current=True)
    assert (again.made, again.version.version_id) == (False, first.version.version_id)
    with pytest.raises(KeyExists):  # another file: the create's condition still holds
        await ns.put_object(obj("ucc", "k", b), 3.0, if_absent=True, unless_current=True)
    assert (await ns.get_object("ucc", "k")).file_id == a.file_id


@pytest.mark.parametrize("versioning", [VERSIONING_ENABLED, VERSIONING_SUSPENDED])
async def test_a_delete_sent_again_adds_no_second_marker(ns: Store, versioning: str) -> None:
    name = f"ud-{versioning[:2]}"
    await bucket(ns, name, versioning=VERSIONING_ENABLED)
    a = await make_file(ns, "t1", [(cid((name, "a")), 10)])
    await ns.put_object(obj(name, "k", a), 1.0)
    if versioning == VERSIONING_SUSPENDED:
        await ns.update_bucket(name, "t1", versioning=VERSIONING_SUSPENDED)
    marker = await ns.delete_object(name, "k", None, 2.0, unless_deleted=True)
    assert marker is not None
    assert marker.is_delete_marker
    again = await ns.delete_object(name, "k", None, 3.0, unless_deleted=True)
    assert again is not None
    assert again.version_id == marker.version_id
    assert len((await ns.list_versions(name)).objects) == 2  # the version and one marker
    assert await ns.delete_object(name, "never", None, 4.0, unless_deleted=True) is None
    assert [v.key for v in (await ns.list_versions(name)).objects] == ["k", "k"]
    # without the flag a marker every time (S3's DeleteObject)
    await ns.delete_object(name, "k", None, 5.0)
    expected = 3 if versioning == VERSIONING_ENABLED else 2  # suspended: the null replaced
    assert len((await ns.list_versions(name)).objects) == expected
    assert await refcounts(ns, [cid((name, "a"))]) == {cid((name, "a")): 1}


async def test_unless_deleted_leaves_versions_and_unversioned_deletes_alone(ns: Store) -> None:
    await bucket(ns, "udu")
    a = await make_file(ns, "t1", [(cid("udu-a"), 10)])
    await ns.put_object(obj("udu", "k", a), 1.0)
    gone = await ns.delete_object("udu", "k", None, 2.0, unless_deleted=True)
    assert gone is not None
    assert gone.file_id == a.file_id
    assert await ns.delete_object("udu", "k", None, 3.0, unless_deleted=True) is None
    await bucket(ns, "udv", versioning=VERSIONING_ENABLED)
    b = await make_file(ns, "t1", [(cid("udv-b"), 10)])
    v = (await ns.put_object(obj("udv", "k", b), 1.0)).version
    await ns.delete_object("udv", "k", None, 2.0)
    removed = await ns.delete_object("udv", "k", v.version_id, 3.0, unless_deleted=True)
    assert removed is not None
    assert removed.version_id == v.version_id
    assert len((await ns.list_versions("udv")).objects) == 1  # the marker only


async def test_concurrent_links_count_usage_exactly(ns: Store) -> None:
    """Links sent at once share commits on SQLite (their usage summed per group, a refused
    one's taken back): every counter, by prefix and by type too, is what the versions say."""
    await bucket(ns, "ucu", versioning=VERSIONING_ENABLED)
    keys = [f"{'abcab'[i % 5]}/f{i}.{('txt', 'jpg')[i % 2]}" for i in range(40)]
    made = [await make_file(ns, "t1", [(cid(("ucu", k)), 10 + i)]) for i, k in enumerate(keys)]
    dup = await make_file(ns, "t1", [(cid(("ucu", "dup")), 7)])

    async def put(i: int) -> bool:
        try:
            if i < len(keys):
                await ns.put_object(obj("ucu", keys[i], made[i]), 1.0, unless_current=True)
            else:  # a create of a key that exists: refused in the middle of the group
                await ns.put_object(obj("ucu", keys[0], dup), 1.0, if_absent=True)
        except KeyExists:
            return False
        return True

    got = await asyncio.gather(*(put(i) for i in range(len(keys) + 5)))
    assert got == [True] * len(keys) + [False] * 5
    sizes = [10 + i for i in range(len(keys))]
    assert await ns.usage("t1", "ucu") == Usage(len(keys), len(keys), 0, sum(sizes), sum(sizes))
    by_prefix = await ns.usage_by_prefix("t1", "ucu")
    for p in "abc":
        mine = [s for k, s in zip(keys, sizes, strict=True) if k.startswith(p)]
        assert by_prefix[p].objects == len(mine)
        assert by_prefix[p].logical_bytes == sum(mine)
    by_type = await ns.usage_by_type("t1", "ucu")
    for ext in ("txt", "jpg"):
        mine = [s for k, s in zip(keys, sizes, strict=True) if k.endswith(ext)]
        assert by_type[ext].versions == len(mine)


async def test_a_link_sent_again_in_a_suspended_bucket_makes_nothing(ns: Store) -> None:
    """Suspended versioning replaces the ``null`` version: sent again, the link neither
    replaces it (releasing its own file) nor adds one."""
    await bucket(ns, "ucs", versioning=VERSIONING_ENABLED)
    a = await make_file(ns, "t1", [(cid("ucs-a"), 10)])
    b = await make_file(ns, "t1", [(cid("ucs-b"), 20)])
    kept = await ns.put_object(obj("ucs", "k", a), 1.0)
    await ns.update_bucket("ucs", "t1", versioning=VERSIONING_SUSPENDED)
    first = await ns.put_object(obj("ucs", "k", b), 2.0, unless_current=True)
    again = await ns.put_object(obj("ucs", "k", b), 3.0, unless_current=True)
    assert (first.made, again.made) == (True, False)
    assert again.version.version_id == first.version.version_id == "null"
    assert again.released_file_id is None
    ids = [v.version_id for v in (await ns.list_versions("ucs")).objects]
    assert sorted(ids) == sorted(["null", kept.version.version_id])
    assert await refcounts(ns, [cid("ucs-a"), cid("ucs-b")]) == {cid("ucs-a"): 1, cid("ucs-b"): 1}


@pytest.mark.parametrize(
    "change",
    [
        {"content_type": "text/plain"},
        {"user_metadata": (("mtime", "2"),)},
        {"access": "public-read"},
        {"tags": (("t", "2"),)},
    ],
)
async def test_any_other_field_is_a_new_version(ns: Store, change: dict[str, Any]) -> None:
    name = f"ucf-{next(iter(change))[:4]}".replace("_", "-")
    await bucket(ns, name, versioning=VERSIONING_ENABLED)
    a = await make_file(ns, "t1", [(cid((name, "a")), 10)])
    base = obj(name, "k", a, content_type="text/x", user_metadata=(("mtime", "1"),))
    assert (await ns.put_object(base, 1.0, unless_current=True)).made
    changed = dataclasses.replace(base, **change)
    assert (await ns.put_object(changed, 2.0, unless_current=True)).made
    assert not (await ns.put_object(changed, 3.0, unless_current=True)).made
    assert len((await ns.list_versions(name)).objects) == 2


async def test_a_removal_only_while_the_latest_is_the_one_seen(ns: Store) -> None:
    await bucket(ns, "uil", versioning=VERSIONING_ENABLED)
    a = await make_file(ns, "t1", [(cid("uil-a"), 10)])
    b = await make_file(ns, "t1", [(cid("uil-b"), 20)])
    v1 = (await ns.put_object(obj("uil", "k", a), 1.0)).version
    marker = await ns.delete_object("uil", "k", None, 2.0)
    assert marker is not None
    # a write since the prune looked: the marker stays
    await ns.put_object(obj("uil", "k", b), 3.0)
    listed = [v.version_id for v in (await ns.list_versions("uil")).objects]
    with pytest.raises(Conflict):
        await ns.delete_object("uil", "k", marker.version_id, 4.0, if_latest=marker.version_id)
    assert [v.version_id for v in (await ns.list_versions("uil")).objects] == listed
    with pytest.raises(Conflict):
        await ns.delete_object("uil", "none", marker.version_id, 4.0, if_latest="x")
    # the latest as seen: removed
    latest = listed[0]
    gone = await ns.delete_object("uil", "k", v1.version_id, 5.0, if_latest=latest)
    assert gone is not None
    assert gone.version_id == v1.version_id
    assert [v.version_id for v in (await ns.list_versions("uil")).objects] == listed[:2]
    assert await ns.usage("t1", "uil") == Usage(1, 1, 1, 20, 20)
    # the latest entry itself, named as the latest: removed
    top = await ns.delete_object("uil", "k", None, 6.0)
    assert top is not None
    gone = await ns.delete_object("uil", "k", top.version_id, 7.0, if_latest=top.version_id)
    assert gone is not None
    assert gone.version_id == top.version_id
    assert [v.version_id for v in (await ns.list_versions("uil")).objects] == listed[:2]
