"""The S3 access keys of the metadata port, on every backend (``meta`` fixture)."""

from __future__ import annotations

import pytest

from dfs.errors import Conflict
from dfs.meta.base import AccessKeyRecord, MetadataStore


async def test_access_keys_put_get_conflict(meta: MetadataStore) -> None:
    rec = AccessKeyRecord("AKIDFS0000000000001", "acme", "sealed-1", "ci", 5.0)
    await meta.put_access_key(rec)
    with pytest.raises(Conflict):
        await meta.put_access_key(AccessKeyRecord(rec.access_key_id, "other", "x"))
    assert await meta.get_access_key(rec.access_key_id) == rec
    assert await meta.get_access_key("AKIDFS0000000000002") is None


async def test_access_keys_listed_per_tenant_and_deleted(meta: MetadataStore) -> None:
    a1 = AccessKeyRecord("AKIDFSA1", "a", "s1", "", 2.0)
    a2 = AccessKeyRecord("AKIDFSA2", "a", "s2", "two", 1.0)
    b1 = AccessKeyRecord("AKIDFSB1", "b", "s3", "", 3.0)
    for rec in (a1, a2, b1):
        await meta.put_access_key(rec)
    assert await meta.list_access_keys("a") == [a2, a1]
    assert await meta.list_access_keys() == [a2, a1, b1]
    assert await meta.list_access_keys("nobody") == []
    assert await meta.delete_access_key("AKIDFSA1") is True
    assert await meta.delete_access_key("AKIDFSA1") is False
    assert await meta.get_access_key("AKIDFSA1") is None
    assert await meta.list_access_keys("a") == [a2]
