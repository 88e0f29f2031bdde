"""``put_object(..., if_match=ETAG)``, the conditional replace, on both backends:

- it replaces only the key's current object with that ETag (``"*"``: any current object);
  KeyNotFound when the key has none (never written, or a delete marker is latest),
  EtagMismatch when the ETag is another; a refused write changes nothing;
- of concurrent replaces that read one ETag, on two handles of the store, exactly one wins;
- ``copy_object`` takes both conditions (``if_absent``, ``if_match``) on its target.
"""

from __future__ import annotations

import pytest

from dfs.errors import BucketNotFound, EtagMismatch, KeyExists, KeyNotFound, SourceChanged
from dfs.meta.namespace import VERSIONING_ENABLED, Usage
from tests.contract.test_namespace_headers import racing_puts
from tests.contract.test_namespace_store import Store, bucket, cid, make_file, obj, refcounts


async def test_if_match_replaces_only_the_object_with_that_etag(ns: Store) -> None:
    await bucket(ns, "im", versioning=VERSIONING_ENABLED)
    a = await make_file(ns, "t1", [(cid("im-a"), 10)])
    b = await make_file(ns, "t1", [(cid("im-b"), 20)])
    with pytest.raises(KeyNotFound):
        await ns.put_object(obj("im", "k", a, etag="e-a"), 1.0, if_match="e-a")
    first = await ns.put_object(obj("im", "k", a, etag="e-a"), 2.0)
    with pytest.raises(EtagMismatch):
        await ns.put_object(obj("im", "k", b, etag="e-b"), 3.0, if_match="e-other")
    assert (await ns.get_object("im", "k")).version_id == first.version.version_id
    assert len((await ns.list_versions("im")).objects) == 1
    second = await ns.put_object(obj("im", "k", b, etag="e-b"), 4.0, if_match="e-a")
    assert (await ns.get_object("im", "k")).file_id == b.file_id
    assert second.version.is_latest
    assert second.version.etag == "e-b"
    third = await ns.put_object(obj("im", "k", a, etag="e-a"), 5.0, if_match="*")
    assert (await ns.get_object("im", "k")).version_id == third.version.version_id
    await ns.delete_object("im", "k", None, 6.0)  # a delete marker: no current object
    for wanted in ("e-a", "*"):
        with pytest.raises(KeyNotFound):
            await ns.put_object(obj("im", "k", b, etag="e-b"), 7.0, if_match=wanted)
    assert len((await ns.list_versions("im")).objects) == 4  # three versions and the marker


async def test_a_refused_replace_releases_nothing(ns: Store) -> None:
    await bucket(ns, "ir")  # unversioned: a replace would release the old file
    a = await make_file(ns, "t1", [(cid("ir-a"), 10)])
    b = await make_file(ns, "t1", [(cid("ir-b"), 20)])
    await ns.put_object(obj("ir", "k", a, etag="e-a"), 2.0)
    with pytest.raises(EtagMismatch):
        await ns.put_object(obj("ir", "k", b, etag="e-b"), 3.0, if_match="e-b")
    assert (await ns.get_object("ir", "k")).file_id == a.file_id
    assert await refcounts(ns, [cid("ir-a"), cid("ir-b")]) == {cid("ir-a"): 1, cid("ir-b"): 1}
    assert await ns.usage("t1", "ir") == Usage(1, 1, 0, 10, 10)


@pytest.mark.parametrize("versioning", ["unversioned", VERSIONING_ENABLED])
async def test_concurrent_replaces_of_one_etag_exactly_one_wins(ns: Store, versioning: str) -> None:
    name = f"rr-{versioning[:2]}"
    await bucket(ns, name, versioning=versioning)
    base = await make_file(ns, "t1", [(cid((name, "base")), 10)])
    await ns.put_object(obj(name, "k", base, etag="e-base"), 1.0)
    winners = await racing_puts(ns, name, EtagMismatch, if_match="e-base")
    assert len(winners) == 1
    assert (await ns.get_object(name, "k")).file_id == winners[0]
    kept = 2 if versioning == VERSIONING_ENABLED else 1
    assert len((await ns.list_versions(name)).objects) == kept


async def test_copy_object_takes_the_conditions_on_its_target(ns: Store) -> None:
    await bucket(ns, "ic")
    a = await make_file(ns, "t1", [(cid("ic-a"), 10)])
    b = await make_file(ns, "t1", [(cid("ic-b"), 20)])
    await ns.put_object(obj("ic", "src", a, etag="e-a"), 1.0)
    with pytest.raises(KeyNotFound):
        await ns.copy_object("ic", "src", None, obj("ic", "dst", None), 2.0, if_match="*")
    first = await ns.copy_object("ic", "src", None, obj("ic", "dst", None), 3.0, if_absent=True)
    assert first.version.etag == "e-a"
    with pytest.raises(KeyExists):
        await ns.copy_object("ic", "src", None, obj("ic", "dst", None), 4.0, if_absent=True)
    await ns.put_object(obj("ic", "src", b, etag="e-b"), 5.0)
    with pytest.raises(EtagMismatch):
        await ns.copy_object("ic", "src", None, obj("ic", "dst", None), 6.0, if_match="e-b")
    assert (await ns.get_object("ic", "dst")).file_id == a.file_id
    again = await ns.copy_object("ic", "src", None, obj("ic", "dst", None), 7.0, if_match="e-a")
    assert again.version.etag == "e-b"
    assert await refcounts(ns, [cid("ic-a"), cid("ic-b")]) == {cid("ic-a"): 0, cid("ic-b"): 1}


async def test_a_write_for_the_owner_it_read_is_refused_in_another_tenants_bucket(
    ns: Store,
) -> None:
    """``NewObject.owner``: a bucket deleted and made again by another tenant since the writer
    read it takes none of the writer's objects, not even an empty one (no file to check)."""
    await bucket(ns, "ow", tenant="t2")  # the name is t2's now; the writer read t1's
    with pytest.raises(BucketNotFound):
        await ns.put_object(obj("ow", "k", None, owner="t1"), 1.0)
    with pytest.raises(KeyNotFound):
        await ns.get_object("ow", "k")
    made = await ns.put_object(obj("ow", "k", None, owner="t2"), 2.0)
    assert (await ns.get_object("ow", "k")).version_id == made.version.version_id


async def test_a_copy_whose_source_was_written_since_it_was_read_is_refused(ns: Store) -> None:
    """``copy_object(expect_file=...)``: the caller built the copy's fields (metadata,
    stored checksums) from the source version linking that file; a PUT of the unversioned
    source since then links another file under the same version id "null", and the copy
    would join the new bytes to the old fields. Refused, nothing written."""
    await bucket(ns, "sc")
    a = await make_file(ns, "t1", [(cid("sc-a"), 10)])
    b = await make_file(ns, "t1", [(cid("sc-b"), 20)])
    await ns.put_object(obj("sc", "src", a, etag="e-a"), 1.0)
    await ns.put_object(obj("sc", "src", b, etag="e-b"), 2.0)  # after the caller read a
    with pytest.raises(SourceChanged):
        await ns.copy_object("sc", "src", None, obj("sc", "dst", a), 3.0, expect_file=a.file_id)
    with pytest.raises(KeyNotFound):
        await ns.get_object("sc", "dst")
    made = await ns.copy_object("sc", "src", None, obj("sc", "dst", b), 4.0, expect_file=b.file_id)
    assert (made.version.file_id, made.version.etag) == (b.file_id, "e-b")
