"""``delete_object(..., if_written=(file_id, created_at))`` on both backends: the delete
happens only while the key's latest entry is the version written as that (its file and
its time), decided in the delete's atomic step. A move deletes its source with it: in an
unversioned or suspended bucket every write of the key reuses the version id ``null``, so
``if_latest="null"`` alone matched a write that landed during the move, which was deleted.
"""

from __future__ import annotations

import pytest

from dfs.errors import Conflict, KeyNotFound
from dfs.meta.namespace import (
    NULL_VERSION,
    VERSIONING_SUSPENDED,
    VERSIONING_UNVERSIONED,
)
from tests.contract.test_namespace_store import Store, bucket, cid, make_file, obj


@pytest.mark.parametrize("versioning", [VERSIONING_UNVERSIONED, VERSIONING_SUSPENDED])
async def test_a_null_version_written_over_since_it_was_read_is_not_deleted(
    ns: Store, versioning: str
) -> None:
    await bucket(ns, "iw", versioning=versioning)
    a = await make_file(ns, "t1", [(cid("iw-a"), 10)])
    b = await make_file(ns, "t1", [(cid("iw-b"), 20)])
    read = (await ns.put_object(obj("iw", "k", a), 1.0)).version
    assert read.version_id == NULL_VERSION
    await ns.put_object(obj("iw", "k", b), 2.0)  # written after the caller read ``read``
    with pytest.raises(Conflict):
        await ns.delete_object(
            "iw", "k", None, 3.0, if_latest=NULL_VERSION, if_written=(a.file_id, 1.0)
        )
    kept = await ns.get_object("iw", "k")
    assert (kept.file_id, kept.created_at) == (b.file_id, 2.0)
    await ns.delete_object(
        "iw", "k", None, 4.0, if_latest=NULL_VERSION, if_written=(b.file_id, 2.0)
    )
    with pytest.raises(KeyNotFound):
        await ns.get_object("iw", "k")


async def test_empty_objects_are_told_apart_by_their_write_time(ns: Store) -> None:
    """No file to compare: an empty object written again since is another write."""
    await bucket(ns, "ie")
    await ns.put_object(obj("ie", "folder/", None), 1.0)
    await ns.put_object(obj("ie", "folder/", None, content_type="text/x-again"), 2.0)
    with pytest.raises(Conflict):
        await ns.delete_object("ie", "folder/", None, 3.0, if_written=("", 1.0))
    assert (await ns.get_object("ie", "folder/")).content_type == "text/x-again"
    await ns.delete_object("ie", "folder/", None, 4.0, if_written=("", 2.0))
    with pytest.raises(KeyNotFound):
        await ns.get_object("ie", "folder/")


async def test_a_delete_marker_is_not_the_version_written(ns: Store) -> None:
    """A suspended bucket's delete makes a ``null`` marker with no file: not the empty
    object that was read, even written at the same time."""
    await bucket(ns, "im", versioning=VERSIONING_SUSPENDED)
    await ns.put_object(obj("im", "k", None), 1.0)
    await ns.delete_object("im", "k", None, 1.0)  # a null marker, also "" at 1.0
    with pytest.raises(Conflict):
        await ns.delete_object("im", "k", None, 2.0, if_written=("", 1.0))
    versions = (await ns.list_versions("im")).objects
    assert [v.is_delete_marker for v in versions] == [True]
