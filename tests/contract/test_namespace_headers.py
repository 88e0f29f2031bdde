"""The namespace port's stored response headers and conditional create, on every backend
(the ``meta`` fixture: SQLite and DynamoDB on moto's server).

- ``headers`` (Cache-Control, Content-Disposition, Content-Encoding, Content-Language,
  Expires, as the S3 gateway keeps them) round-trip through put, get, both listings,
  restore and copy (a copy takes them from ``dst``, like the other fields), and versions
  written without them (SQLite rows made before the column, DynamoDB items without the
  attribute) read as none.
- ``put_object(..., if_absent=True)`` creates only while the key has no current object:
  KeyExists otherwise, nothing written; a delete marker counts as absent; of concurrent
  creates of one key exactly one wins, on two handles of the store.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from dfs.errors import KeyExists
from dfs.meta.namespace import VERSIONING_ENABLED, NewObject, Usage
from dfs.meta.sqlite import SqliteMetadataStore
from tests.contract.test_namespace_store import (
    Store,
    bucket,
    cid,
    make_file,
    obj,
    refcounts,
    second_handle,
)

HEADERS = (
    ("cache-control", "max-age=3600"),
    ("content-disposition", 'attachment; filename="r.pdf"'),
    ("content-encoding", "gzip"),
    ("content-language", "fr-CA"),
    ("expires", "Wed, 01 Dec 2094 16:00:00 GMT"),
)


async def test_stored_headers_round_trip(ns: Store) -> None:
    await bucket(ns, "hd", versioning=VERSIONING_ENABLED)
    f = await make_file(ns, "t1", [(cid("hd"), 7)])
    put = await ns.put_object(obj("hd", "k", f, headers=HEADERS), 2.0)
    assert put.version.headers == HEADERS
    assert (await ns.get_object("hd", "k")).headers == HEADERS
    assert (await ns.list_objects("hd")).objects[0].headers == HEADERS
    assert (await ns.list_versions("hd")).objects[0].headers == HEADERS
    plain = await ns.put_object(obj("hd", "k", f), 3.0)
    assert plain.version.headers == ()
    restored = await ns.restore_version("hd", "k", put.version.version_id, 4.0)
    assert restored.version.headers == HEADERS
    kept = await ns.copy_object("hd", "k", None, NewObject("hd", "c", "", 0, headers=HEADERS), 5.0)
    assert kept.version.headers == HEADERS
    dropped = await ns.copy_object("hd", "k", None, NewObject("hd", "d", "", 0), 6.0)
    assert dropped.version.headers == ()
    assert (await ns.get_object("hd", "c")).headers == HEADERS
    tagged = await ns.update_object("hd", "c", None, tags=[("a", "b")])
    assert tagged.headers == HEADERS  # changing tags in place keeps them


async def test_versions_written_before_headers_read_as_none(ns: Store, tmp_path: Path) -> None:
    if isinstance(ns, SqliteMetadataStore):  # a database of its own, closed and reopened
        path = tmp_path / "old.db"
        store: Store = await SqliteMetadataStore.open(f"sqlite://{path}")  # type: ignore[assignment]
        await bucket(store, "old")
        f = await make_file(store, "t1", [(cid("old"), 5)])
        await store.put_object(obj("old", "k", f), 2.0)
        await store.close()
        _drop_headers_column(str(path))  # the table as it was before the column
        store = await SqliteMetadataStore.open(f"sqlite://{path}")  # type: ignore[assignment]
        try:
            assert (await store.get_object("old", "k")).headers == ()
            again = await store.put_object(obj("old", "k", f, headers=HEADERS[:1]), 3.0)
            assert again.version.headers == HEADERS[:1]
            assert (await store.list_objects("old")).objects[0].headers == HEADERS[:1]
        finally:
            await store.close()
        return
    from dfs.meta.dynamo import store_namespace_codec as nc

    await bucket(ns, "old")
    f = await make_file(ns, "t1", [(cid("old"), 5)])
    put = await ns.put_object(obj("old", "k", f), 2.0)
    assert "hd" not in nc.version_attrs(put.version)  # what older items hold: no attribute
    assert (await ns.get_object("old", "k")).headers == ()
    assert (await ns.list_objects("old")).objects[0].headers == ()


def _drop_headers_column(path: str) -> None:
    db = sqlite3.connect(path)
    try:
        db.execute("ALTER TABLE ns_versions DROP COLUMN headers")
        db.commit()
        assert "headers" not in {r[1] for r in db.execute("PRAGMA table_info(ns_versions)")}
    finally:
        db.close()


async def test_if_absent_creates_only_a_new_key(ns: Store) -> None:
    await bucket(ns, "ia", versioning=VERSIONING_ENABLED)
    a = await make_file(ns, "t1", [(cid("ia-a"), 10)])
    b = await make_file(ns, "t1", [(cid("ia-b"), 20)])
    first = await ns.put_object(obj("ia", "k", a), 2.0, if_absent=True)
    with pytest.raises(KeyExists):
        await ns.put_object(obj("ia", "k", b), 3.0, if_absent=True)
    assert (await ns.get_object("ia", "k")).version_id == first.version.version_id
    assert len((await ns.list_versions("ia")).objects) == 1
    assert await ns.usage("t1", "ia") == Usage(1, 1, 0, 10, 10)
    assert await refcounts(ns, [cid("ia-b")]) == {cid("ia-b"): 1}  # b's own file only
    await ns.delete_object("ia", "k", None, 4.0)  # a delete marker: the key is absent again
    second = await ns.put_object(obj("ia", "k", b), 5.0, if_absent=True)
    assert (await ns.get_object("ia", "k")).file_id == b.file_id
    assert second.version.is_latest


async def racing_puts(ns: Store, name: str, lost: type[Exception], **condition: Any) -> list[str]:
    """Six puts to ``name/k`` at once with ``condition``, on two handles of the store, each
    of its own new file: the file ids of those that won (the others raised ``lost``)."""
    files = [await make_file(ns, "t1", [(cid((name, i)), 10)]) for i in range(6)]

    async def put(store: Store, i: int) -> str | None:
        try:
            await store.put_object(obj(name, "k", files[i], etag=f"e-{i}"), 2.0, **condition)
        except lost:
            return None
        return files[i].file_id

    async with second_handle(ns) as other:
        got = await asyncio.gather(*(put(ns if i % 2 else other, i) for i in range(6)))
    return [g for g in got if g is not None]


@pytest.mark.parametrize("versioning", ["unversioned", VERSIONING_ENABLED])
async def test_concurrent_creates_of_one_key_exactly_one_wins(ns: Store, versioning: str) -> None:
    name = f"race-{versioning[:2]}"
    await bucket(ns, name, versioning=versioning)
    winners = await racing_puts(ns, name, KeyExists, if_absent=True)
    assert len(winners) == 1
    assert (await ns.get_object(name, "k")).file_id == winners[0]
    assert len((await ns.list_versions(name)).objects) == 1
    assert await ns.usage("t1", name) == Usage(1, 1, 0, 10, 10)
