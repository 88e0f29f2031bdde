"""A key's numbered version ids sort, as strings, in ``list_versions``' order (newest
first) on both backends (``version_position``): the S3 gateway resumes a versions listing
after a version removed since the last page by that place (``dfs.s3.routes_versions``)."""

from __future__ import annotations

from dfs.meta.namespace import (
    NULL_VERSION,
    VERSIONING_ENABLED,
    VERSIONING_SUSPENDED,
    version_position,
)
from tests.contract.test_namespace_store import Store, bucket, cid, make_file, obj


async def test_numbered_version_ids_sort_newest_first(ns: Store) -> None:
    await bucket(ns, "vo", versioning=VERSIONING_ENABLED)
    f = await make_file(ns, "t1", [(cid("vo"), 10)])
    # write times out of order (a clock stepped back): the order is still the writes'
    for now in (5.0, 3.0, 9.0, 9.0):
        await ns.put_object(obj("vo", "k", f), now)
    await ns.update_bucket("vo", "t1", versioning=VERSIONING_SUSPENDED)
    await ns.put_object(obj("vo", "k", None), 2.0)  # the null version, among them
    await ns.update_bucket("vo", "t1", versioning=VERSIONING_ENABLED)
    await ns.delete_object("vo", "k", None, 1.0)  # a marker
    second = (await ns.list_versions("vo")).objects[-2]
    await ns.restore_version("vo", "k", second.version_id, 8.0)
    await ns.put_object(obj("vo", "k", f), 10.0)
    listed = [v.version_id for v in (await ns.list_versions("vo")).objects]
    assert len(listed) == 8
    assert version_position(NULL_VERSION) is None
    numbered = [version_position(v) for v in listed if v != NULL_VERSION]
    assert None not in numbered
    assert numbered == sorted(numbered)  # type: ignore[type-var]
    assert len(set(numbered)) == len(numbered)
