"""The short-lived caches behind the S3 gateway's small-object writes: ``TtlMap`` (read at
most once per ttl, failures never cached, bounded) and ``Namespace.bucket_for_write`` on a
real SQLite store: a grant revoked elsewhere (another Namespace: the API, another gateway)
stops a write once the entry expires, and the Namespace's own bucket changes (delete,
ACL or grants, versioning) are seen at once."""

from __future__ import annotations

from types import SimpleNamespace
from typing import cast

import pytest

from dfs.api import access
from dfs.api.bodies import Principal
from dfs.api.coordinator import Coordinator
from dfs.api.namespace_bodies import ObjectFields
from dfs.api.namespace_service import Namespace
from dfs.api.ttl_cache import TtlMap
from dfs.auth import ROLE_USER
from dfs.errors import BucketNotFound, DfsError
from dfs.meta.namespace import GRANT_READ_WRITE, VERSIONING_ENABLED
from dfs.meta.sqlite import SqliteMetadataStore
from tests.manual_clock import Clock

TTL = 2.0
OWNER = Principal("acme", ROLE_USER)
GRANTEE = Principal("globex", ROLE_USER)


def namespace(meta: SqliteMetadataStore, clock: Clock, ttl: float = TTL) -> Namespace:
    coord = cast(Coordinator, SimpleNamespace(clock=lambda: 1_700_000_000.0, meta=meta))
    return Namespace(meta, coord, bucket_ttl=ttl, cache_clock=clock)


async def test_ttl_map_reads_once_per_ttl_and_never_caches_a_failure() -> None:
    clock, loads = Clock(), []

    async def load() -> int:
        loads.append(clock.now)
        return len(loads)

    async def fail() -> int:
        raise BucketNotFound("gone")

    cache: TtlMap[str, int] = TtlMap(1.0, size=2, clock=clock)
    assert await cache.get("a", load) == 1
    clock.now += 0.9
    assert await cache.get("a", load) == 1  # within the ttl: no read
    clock.now += 0.2
    assert await cache.get("a", load) == 2  # past it: read again
    with pytest.raises(BucketNotFound):
        await cache.get("b", fail)
    assert await cache.get("b", load) == 3  # the failure was not kept
    assert await cache.get("c", load) == 4  # a third key drops the least recently used
    assert await cache.get("a", load) == 5
    cache.drop("a")
    assert await cache.get("a", load) == 6

    # a drop while a load is awaited: what that load read is returned, not kept
    async def overtaken() -> int:
        cache.drop("d")
        return await load()

    assert await cache.get("d", overtaken) == 7
    assert await cache.get("d", load) == 8
    assert await cache.get("d", load) == 8
    uncached: TtlMap[str, int] = TtlMap(0.0, clock=clock)
    assert [await uncached.get("a", load) for _ in range(2)] == [9, 10]


async def test_a_revoked_grant_stops_writes_once_the_entry_expires(
    meta: SqliteMetadataStore,
) -> None:
    clock = Clock()
    gateway, api = namespace(meta, clock), namespace(meta, clock, ttl=0.0)
    await api.create_bucket(OWNER, "shared", None, None)
    await api.update_bucket(
        OWNER, "shared", versioning=None, bucket_access=None, grants=[("globex", GRANT_READ_WRITE)]
    )
    access.require_write(GRANTEE, await gateway.bucket_for_write("shared"))
    await api.update_bucket(OWNER, "shared", versioning=None, bucket_access=None, grants=[])
    calls = meta.calls
    clock.now += TTL - 0.1
    access.require_write(GRANTEE, await gateway.bucket_for_write("shared"))  # the window
    assert meta.calls == calls  # no read: the entry is still fresh
    clock.now += 0.2
    with pytest.raises(DfsError):
        access.require_write(GRANTEE, await gateway.bucket_for_write("shared"))


async def test_the_namespaces_own_bucket_changes_are_seen_at_once(
    meta: SqliteMetadataStore,
) -> None:
    clock = Clock()
    ns = namespace(meta, clock)
    await ns.create_bucket(OWNER, "b1", None, None)
    assert (await ns.bucket_for_write("b1")).versioning != VERSIONING_ENABLED
    await ns.update_bucket(
        OWNER, "b1", versioning=VERSIONING_ENABLED, bucket_access=None, grants=None
    )
    assert (await ns.bucket_for_write("b1")).versioning == VERSIONING_ENABLED
    await ns.delete_bucket(OWNER, "b1")
    with pytest.raises(DfsError) as missing:
        await ns.bucket_for_write("b1")
    assert missing.value.code == access.no_bucket("b1").code
    # a missing bucket is never cached: created elsewhere, it is writable at once
    await namespace(meta, clock, ttl=0.0).create_bucket(OWNER, "b1", None, None)
    assert (await ns.bucket_for_write("b1")).tenant == OWNER.tenant


async def test_a_read_of_bucket_and_object_is_one_store_call(meta: SqliteMetadataStore) -> None:
    ns = namespace(meta, Clock())
    await ns.create_bucket(OWNER, "b2", None, None)
    calls = meta.calls
    b, v = await ns.bucket_and_object("b2", "missing", None)
    assert (b.name, v) == ("b2", None)
    assert meta.calls == calls + 1
    with pytest.raises(DfsError) as missing:
        await ns.bucket_and_object("nope", "k", None)
    assert missing.value.code == access.no_bucket("nope").code


async def test_a_stale_cached_bucket_puts_nothing_in_another_tenants_bucket(
    meta: SqliteMetadataStore,
) -> None:
    """The owner's bucket cached, deleted elsewhere and made again by another tenant: the
    owner's empty object (no file for the store to check) is refused, not linked there."""
    clock = Clock()
    gateway, api = namespace(meta, clock), namespace(meta, clock, ttl=0.0)
    await api.create_bucket(OWNER, "reused", None, None)
    cached = await gateway.bucket_for_write("reused")
    await api.delete_bucket(OWNER, "reused")
    await api.create_bucket(GRANTEE, "reused", None, None)
    assert (await gateway.bucket_for_write("reused")).tenant == OWNER.tenant  # still cached
    with pytest.raises(BucketNotFound):
        await gateway.link(OWNER, "reused", "k", "", ObjectFields(), read=cached)
    assert (await meta.list_objects("reused")).objects == []
