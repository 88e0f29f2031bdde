"""The gateway's access-key cache (``dfs.s3.sigv4.KeyCache``) on a real SQLite store: a key
is looked up and opened once per ``ttl``, a revoked key is refused once its entry expires,
unknown ids are never cached (a new key works at once), and the cache stays bounded."""

from __future__ import annotations

import pytest

from dfs import access_keys
from dfs.meta.base import AccessKeyRecord
from dfs.meta.sqlite import SqliteMetadataStore
from dfs.s3 import sigv4
from dfs.s3.sigv4 import DERIVED_PER_KEY, KEY_CACHE_SECONDS, KeyCache, OpenKey
from tests.manual_clock import Clock

API_SECRET = b"unit-test-api-secret-0123456789abcdef"


async def new_key(meta: SqliteMetadataStore, tenant: str = "acme") -> tuple[str, str]:
    key_id, secret = access_keys.new_key_id(), access_keys.new_secret()
    sealed = access_keys.seal_secret(API_SECRET, key_id, tenant, secret)
    await meta.put_access_key(AccessKeyRecord(key_id, tenant, sealed))
    return key_id, secret


async def test_a_revoked_key_is_refused_once_its_entry_expires(meta: SqliteMetadataStore) -> None:
    clock = Clock()
    keys = KeyCache(meta, API_SECRET, ttl=KEY_CACHE_SECONDS, clock=clock)
    key_id, secret = await new_key(meta)
    got = await keys.get(key_id)
    assert got is not None
    assert (got.tenant, got.secret) == ("acme", secret)
    calls = meta.calls
    assert await keys.get(key_id) == got  # from the cache: no metadata read
    assert meta.calls == calls
    assert await meta.delete_access_key(key_id)
    clock.now += KEY_CACHE_SECONDS - 0.1
    assert await keys.get(key_id) == got  # still within the documented window
    clock.now += 0.2
    assert await keys.get(key_id) is None  # past it: looked up again, and gone


async def test_unknown_ids_are_not_cached_and_the_cache_is_bounded(
    meta: SqliteMetadataStore,
) -> None:
    keys = KeyCache(meta, API_SECRET, size=2, clock=Clock())
    key_id = access_keys.new_key_id()
    assert await keys.get(key_id) is None
    assert await keys.get("not a key id") is None
    sealed = access_keys.seal_secret(API_SECRET, key_id, "acme", "s" * 40)
    await meta.put_access_key(AccessKeyRecord(key_id, "acme", sealed))
    assert await keys.get(key_id) is not None  # created after a miss: works at once
    ids = [(await new_key(meta))[0] for _ in range(3)]
    for k in ids:
        assert await keys.get(k) is not None
    calls = meta.calls
    assert await keys.get(ids[-1]) is not None  # recent: cached
    assert meta.calls == calls
    assert await keys.get(key_id) is not None  # dropped (least recently used): read again
    assert meta.calls == calls + 1


def test_an_entry_derives_each_signing_key_once_and_holds_a_few(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The derived keys live in the key's cache entry (they leave with it: a revoked key's
    secret is not kept elsewhere), one derivation per day and region, a few at most."""
    derivations: list[tuple[str, str]] = []
    real = sigv4.signing_key

    def counted(secret: str, date: str, region: str, service: str = "s3") -> bytes:
        derivations.append((date, region))
        return real(secret, date, region, service)

    monkeypatch.setattr(sigv4, "signing_key", counted)
    entry = OpenKey("acme", "secret-1", until=0.0)
    first = entry.signing_key("20261203", "us-east-1")
    assert first == real("secret-1", "20261203", "us-east-1")
    assert entry.signing_key("20261203", "us-east-1") == first
    assert derivations == [("20261203", "us-east-1")]
    for day in range(4, 4 + 2 * DERIVED_PER_KEY):
        entry.signing_key(f"202612{day:02d}", "us-east-1")
    assert len(entry.derived) <= DERIVED_PER_KEY
