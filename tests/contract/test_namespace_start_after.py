"""``start_after`` of the namespace's listings (S3's ``marker``, ``start-after`` and
``key-marker``), on both backends (the ``meta`` fixture: SQLite and DynamoDB on moto)."""

from __future__ import annotations

import pytest

from dfs.errors import BucketNotFound
from dfs.meta.namespace import VERSIONING_ENABLED
from tests.contract.test_namespace_store import Store, bucket, entries, make_file, obj

KEYS = ["a", "a/1", "a/2", "b", "c/x/1", "c/y", "d"]


async def _fill(store: Store, name: str, versioning: str = "unversioned") -> None:
    await bucket(store, name, versioning=versioning)
    f = await make_file(store, "t1", [("1" * 64, 10)])
    for key in KEYS:
        await store.put_object(obj(name, key, f), 2.0)
    if versioning == VERSIONING_ENABLED:
        await store.put_object(obj(name, "b", f), 3.0)


@pytest.mark.parametrize(
    ("kw", "want"),
    [
        ({"start_after": "a/1"}, ["a/2", "b", "c/x/1", "c/y", "d"]),
        ({"start_after": "a0"}, ["b", "c/x/1", "c/y", "d"]),
        ({"start_after": "c/x/1", "delimiter": "/"}, ["P:c/", "d"]),
        ({"start_after": "", "prefix": "c/"}, ["c/x/1", "c/y"]),
        ({"start_after": "a", "prefix": "c/"}, ["c/x/1", "c/y"]),
        ({"start_after": "c/x", "prefix": "c/", "delimiter": "/"}, ["P:c/x/", "c/y"]),
        ({"start_after": "z"}, []),
        ({"start_after": "d", "prefix": "a"}, []),
    ],
)
async def test_listings_start_after_a_key(ns: Store, kw: dict[str, str], want: list[str]) -> None:
    await _fill(ns, "sa")
    assert entries(await ns.list_objects("sa", **kw)) == want
    versions = await ns.list_versions("sa", **kw)
    assert entries(versions) == want


async def test_start_after_pages_on_and_checks_the_bucket(ns: Store) -> None:
    await _fill(ns, "sv", VERSIONING_ENABLED)
    page = await ns.list_versions("sv", start_after="a/2", limit=2)
    assert [(o.key, o.is_latest) for o in page.objects] == [("b", True), ("b", False)]
    assert page.next_token is not None
    rest = await ns.list_versions("sv", token=page.next_token, start_after="zzz")
    assert [o.key for o in rest.objects] == ["c/x/1", "c/y", "d"]
    page = await ns.list_objects("sv", start_after="a", limit=1)
    assert [o.key for o in page.objects] == ["a/1"]
    with pytest.raises(BucketNotFound):
        await ns.list_objects("nosuch", start_after="a")
    with pytest.raises(BucketNotFound):
        await ns.list_versions("nosuch", start_after="a")
