"""``copy_object`` into a bucket that changes owner between the copy's read of it and its
write (deleted, then made again by another tenant): both backends copy into the new owner's
bucket (a file record of the new owner with the source's manifest). SQLite reads the bucket
in the write's transaction; DynamoDB reads it first, and answered ``KeyNotFound`` ("the
source was deleted during the copy") when its write refused the old owner's file. A copy
that names the owner its writer read (``NewObject.owner``, as ``Namespace.copy`` does, which
checked the caller's write access against that owner) is refused instead (BucketNotFound)."""

from __future__ import annotations

from typing import Any

import pytest

from dfs.errors import BucketNotFound
from dfs.meta.namespace import BucketRecord, NewObject
from tests.contract.test_namespace_store import Store, bucket, cid, make_file, obj


async def _change_owner(ns: Store, name: str) -> None:
    await ns.delete_bucket(name, "t1")
    await ns.create_bucket(BucketRecord(name, "t2", created_at=2.0))


@pytest.mark.parametrize("source_tenant", ["t1", "t2"])
async def test_a_copy_goes_to_the_buckets_owner_at_its_write(
    ns: Store, monkeypatch: pytest.MonkeyPatch, source_tenant: str
) -> None:
    """The owner changes right after the copy reads the destination bucket (DynamoDB's
    read; SQLite reads none outside its write, so the change simply comes first): the copy
    is made for the new owner, t2, whether the source was t1's (the old owner's) or t2's."""
    await bucket(ns, f"src-{source_tenant}", source_tenant)
    rec = await make_file(ns, source_tenant, [(cid(f"co-{source_tenant}"), 10)])
    await ns.put_object(obj(f"src-{source_tenant}", "k", rec), 1.0)
    await bucket(ns, "dst-co", "t1")
    real = ns.get_bucket
    changed: list[bool] = []

    async def read_then_change(name: str) -> Any:
        got = await real(name)
        if name == "dst-co" and not changed:
            changed.append(True)
            await _change_owner(ns, name)
        return got

    monkeypatch.setattr(ns, "get_bucket", read_then_change)
    if type(ns).__name__.startswith("Sqlite"):
        await _change_owner(ns, "dst-co")  # no read of its own to come between
        changed.append(True)
    made = await ns.copy_object(
        f"src-{source_tenant}", "k", None, NewObject("dst-co", "c", "", 0), 3.0
    )
    assert changed
    assert made.version.size == 10
    copied = await ns.get_file(made.version.file_id)
    assert copied.tenant == "t2"
    assert copied.size == 10


async def test_a_copy_naming_the_owner_it_read_is_refused_by_another_owner(ns: Store) -> None:
    """The service names the destination owner it checked the caller's write access
    against (``NewObject.owner``): a bucket made again by another tenant since refuses the
    copy (BucketNotFound) and gets no object, on both backends."""
    await bucket(ns, "src-own", "t1")
    rec = await make_file(ns, "t1", [(cid("own-1"), 10)])
    await ns.put_object(obj("src-own", "k", rec), 1.0)
    await bucket(ns, "dst-own", "t1")
    await _change_owner(ns, "dst-own")
    with pytest.raises(BucketNotFound):
        await ns.copy_object(
            "src-own", "k", None, NewObject("dst-own", "c", "", 0, owner="t1"), 3.0
        )
    listing = await ns.list_objects("dst-own", prefix="", token=None, limit=10)
    assert listing.objects == []
