"""A bucket shared with many tenants: the API and the S3 gateway bound the grants one bucket
holds (``MAX_GRANTS``, 400 beyond), every backend changes and deletes a bucket at that bound
in one write, and DynamoDB still updates and deletes a bucket shared with more tenants
before the bound existed (one transaction holds at most 100 writes)."""

from __future__ import annotations

import pytest

from dfs.api.namespace_bodies import MAX_GRANTS, parse_grants
from dfs.errors import BucketNotFound, InvalidRequest
from dfs.meta.dynamo import DynamoMetadataStore
from dfs.meta.namespace import (
    GRANT_READ,
    GRANT_READ_WRITE,
    VERSIONING_ENABLED,
    BucketRecord,
)
from dfs.s3 import acl
from dfs.s3.errors import S3Error
from tests.contract.conftest import Store


def _grants(n: int, tag: str = "t", grant: str = GRANT_READ) -> list[tuple[str, str]]:
    return [(f"{tag}{i:03d}", grant) for i in range(n)]


async def _listed_by(ns: Store, tenant: str) -> list[str]:
    return [b.name for b in await ns.list_buckets(tenant, granted=True)]


async def test_a_bucket_at_the_bound_changes_its_whole_grant_set_and_goes(ns: Store) -> None:
    await ns.create_bucket(BucketRecord("shared", "acme", 1.0))
    first = _grants(MAX_GRANTS, "a")
    assert (await ns.update_bucket("shared", "acme", grants=first)).grants == tuple(first)
    # every grantee replaced and the versioning turned on, in one change
    second = _grants(MAX_GRANTS, "b", GRANT_READ_WRITE)
    rec = await ns.update_bucket("shared", "acme", grants=second, versioning=VERSIONING_ENABLED)
    assert (rec.grants, rec.versioning) == (tuple(second), VERSIONING_ENABLED)
    assert await _listed_by(ns, "b000") == ["shared"]
    assert await _listed_by(ns, "a000") == []
    # one grant changed (read-write -> read), the others kept
    third = [("b000", GRANT_READ), *second[1:]]
    assert (await ns.update_bucket("shared", "acme", grants=third)).grants == tuple(third)
    assert dict((await ns.get_bucket("shared")).grants)["b000"] == GRANT_READ
    await ns.delete_bucket("shared", "acme")
    with pytest.raises(BucketNotFound):
        await ns.get_bucket("shared")
    assert await _listed_by(ns, f"b{MAX_GRANTS - 1:03d}") == []


async def test_a_bucket_shared_before_the_bound_still_changes_and_goes(ns: Store) -> None:
    """99 grantees: what a DynamoDB store accepted before the bound (1 + 99 writes); its
    versioning change and its delete need more writes than one transaction takes."""
    await ns.create_bucket(BucketRecord("legacy", "acme", 1.0))
    many = _grants(99)
    await ns.update_bucket("legacy", "acme", grants=many)
    rec = await ns.update_bucket("legacy", "acme", versioning=VERSIONING_ENABLED)
    assert (len(rec.grants), rec.versioning) == (99, VERSIONING_ENABLED)
    assert len((await ns.update_bucket("legacy", "acme", grants=many[:90])).grants) == 90
    assert await _listed_by(ns, "t095") == []
    assert await _listed_by(ns, "t089") == ["legacy"]
    await ns.delete_bucket("legacy", "acme")
    with pytest.raises(BucketNotFound):
        await ns.get_bucket("legacy")
    assert await _listed_by(ns, "t000") == []


async def test_too_many_changes_for_one_transaction_are_refused_as_a_bad_request(
    ns: Store,
) -> None:
    """Past the API's bound, the store's own limit is InvalidRequest (400), never an
    internal error; SQLite has none."""
    await ns.create_bucket(BucketRecord("huge", "acme", 1.0))
    if isinstance(ns, DynamoMetadataStore):
        with pytest.raises(InvalidRequest):
            await ns.update_bucket("huge", "acme", grants=_grants(100))
        assert (await ns.get_bucket("huge")).grants == ()
    else:
        assert len((await ns.update_bucket("huge", "acme", grants=_grants(100))).grants) == 100
    await ns.delete_bucket("huge", "acme")


def test_the_api_and_the_gateway_bound_the_grants() -> None:
    at_bound = {t: g for t, g in _grants(MAX_GRANTS)}
    assert len(parse_grants(at_bound)) == MAX_GRANTS
    with pytest.raises(InvalidRequest, match=str(MAX_GRANTS)):
        parse_grants({**at_bound, "one-more": GRANT_READ})
    asked = [(t, "READ") for t, _ in _grants(MAX_GRANTS)] + [(acl.ALL_USERS, "READ")]
    public, tenants = acl.bucket_access(asked)
    assert public
    assert len(tenants) == MAX_GRANTS
    with pytest.raises(S3Error) as exc:
        acl.bucket_access([*asked, ("one-more", "READ")])
    assert (exc.value.status, exc.value.code) == (400, "InvalidRequest")
