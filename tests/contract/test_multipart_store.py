"""The multipart-upload port (``dfs.meta.multipart``) on every backend (``meta`` fixture)."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from typing import Any

import pytest

from dfs.errors import UploadNotFound
from dfs.meta import sqlite_multipart
from dfs.meta.base import MetadataStore
from dfs.meta.dynamo import DynamoMetadataStore
from dfs.meta.multipart import (
    UPLOAD_COMPLETING,
    UPLOAD_DONE,
    UPLOAD_OPEN,
    MultipartStore,
    MultipartUpload,
    UploadPart,
    multipart_store,
    new_upload_id,
)
from dfs.s3 import multipart_listing


def _store(meta: MetadataStore) -> MultipartStore:
    store = multipart_store(meta)
    assert store is not None
    return store


def _upload(key: str, now: float, bucket: str = "b1") -> MultipartUpload:
    return MultipartUpload(
        new_upload_id(now), "t1", bucket, key, now, "text/plain", (("color", "blue"),)
    )


def _part(n: int, fid: str = "f") -> UploadPart:
    return UploadPart(n, f"{fid}{n}", 5 << 20, f"{n:032x}", 100.0 + n)


async def test_create_get_and_parts_replace(meta: MetadataStore) -> None:
    store = _store(meta)
    u = _upload("dir/a.bin", 1000.0)
    await store.create_multipart_upload(u)
    assert await store.get_multipart_upload(u.upload_id) == u
    with pytest.raises(UploadNotFound):
        await store.get_multipart_upload(new_upload_id(1.0))
    assert await store.put_upload_part(u.upload_id, _part(2)) is None
    assert await store.put_upload_part(u.upload_id, _part(1)) is None
    assert await store.put_upload_part(u.upload_id, _part(2, "g")) == "f2"  # replaced
    parts = await store.list_upload_parts(u.upload_id)
    assert [(p.part_number, p.file_id) for p in parts] == [(1, "f1"), (2, "g2")]
    assert parts[0] == _part(1)
    assert [p.part_number for p in await store.list_upload_parts(u.upload_id, after=1)] == [2]
    assert len(await store.list_upload_parts(u.upload_id, limit=1)) == 1


async def test_an_upload_keeps_the_objects_stored_headers(meta: MetadataStore) -> None:
    store = _store(meta)
    headers = (("cache-control", "max-age=60"), ("content-disposition", 'inline; filename="a"'))
    u = dataclasses.replace(_upload("h", 1000.0), headers=headers)
    await store.create_multipart_upload(u)
    assert (await store.get_multipart_upload(u.upload_id)).headers == headers
    before = await store.set_multipart_state(u.upload_id, {UPLOAD_OPEN}, UPLOAD_COMPLETING)
    assert before.headers == headers
    assert [x.headers for x in await store.list_multipart_uploads("b1")] == [headers]


async def test_states_close_the_races(meta: MetadataStore) -> None:
    store = _store(meta)
    u = _upload("k", 1000.0)
    await store.create_multipart_upload(u)
    await store.put_upload_part(u.upload_id, _part(1))
    # two Completes at once: exactly one wins
    got = await asyncio.gather(
        store.set_multipart_state(u.upload_id, {UPLOAD_OPEN}, UPLOAD_COMPLETING),
        store.set_multipart_state(u.upload_id, {UPLOAD_OPEN}, UPLOAD_COMPLETING),
        return_exceptions=True,
    )
    assert sorted(type(g).__name__ for g in got) == ["MultipartUpload", "UploadNotFound"]
    # parts and Abort are refused while completing
    with pytest.raises(UploadNotFound):
        await store.put_upload_part(u.upload_id, _part(2))
    with pytest.raises(UploadNotFound):
        await store.set_multipart_state(u.upload_id, {UPLOAD_OPEN}, UPLOAD_DONE)
    before = await store.set_multipart_state(u.upload_id, {UPLOAD_COMPLETING}, UPLOAD_OPEN)
    assert before.state == UPLOAD_COMPLETING
    await store.put_upload_part(u.upload_id, _part(2))
    await store.set_multipart_state(u.upload_id, {UPLOAD_OPEN}, UPLOAD_DONE)
    assert (await store.get_multipart_upload(u.upload_id)).state == UPLOAD_DONE
    await store.delete_multipart_upload(u.upload_id)
    await store.delete_multipart_upload(u.upload_id)  # idempotent
    with pytest.raises(UploadNotFound):
        await store.get_multipart_upload(u.upload_id)
    assert await store.list_upload_parts(u.upload_id) == []
    with pytest.raises(UploadNotFound):
        await store.put_upload_part(u.upload_id, _part(3))


async def test_listing_order_prefix_markers_and_age(meta: MetadataStore) -> None:
    store = _store(meta)
    made = [
        _upload("b/2", 1003.0),
        _upload("a", 1001.0),
        _upload("b/1", 1002.0),
        _upload("b/1", 1004.0),
        _upload("c", 1000.0),
        _upload("a", 1005.0, bucket="other"),
    ]
    for u in made:
        await store.create_multipart_upload(u)
    listed = await store.list_multipart_uploads("b1")
    assert [(u.key, u.created_at) for u in listed] == [
        ("a", 1001.0),
        ("b/1", 1002.0),
        ("b/1", 1004.0),
        ("b/2", 1003.0),
        ("c", 1000.0),
    ]
    assert [u.key for u in await store.list_multipart_uploads("b1", prefix="b/")] == [
        "b/1",
        "b/1",
        "b/2",
    ]
    page = await store.list_multipart_uploads("b1", limit=2)
    assert len(page) == 2
    last = page[-1]
    rest = await store.list_multipart_uploads("b1", after=(last.key, last.upload_id))
    assert [u.upload_id for u in page + rest] == [u.upload_id for u in listed]
    await store.set_multipart_state(made[4].upload_id, {UPLOAD_OPEN}, UPLOAD_DONE)
    assert "c" not in [u.key for u in await store.list_multipart_uploads("b1")]
    stale = await store.stale_multipart_uploads(1002.5)
    assert [u.created_at for u in stale] == [1000.0, 1001.0, 1002.0]
    assert len(await store.stale_multipart_uploads(2000.0, limit=4)) == 4


async def test_a_page_is_full_of_live_uploads_until_the_end(meta: MetadataStore) -> None:
    """Done uploads (sealed while their parts are released, or left by a crash) are skipped
    without shortening the page: a page shorter than asked means the end to
    ListMultipartUploads, which would then answer IsTruncated=false over live uploads."""
    store = _store(meta)
    made = [_upload(k, 1000.0 + i) for i, k in enumerate("abcdefg")]
    for u in made:
        await store.create_multipart_upload(u)
    for u in (made[0], made[2], made[3]):  # a, c, d
        await store.set_multipart_state(u.upload_id, {UPLOAD_OPEN}, UPLOAD_DONE)
    assert [u.key for u in await store.list_multipart_uploads("b1", limit=3)] == ["b", "e", "f"]

    async def lister(after: tuple[str, str] | None, limit: int) -> list[MultipartUpload]:
        return await store.list_multipart_uploads("b1", "", after, limit)

    seen: list[str] = []
    query = multipart_listing.Query()
    while True:
        entries, truncated = await multipart_listing.uploads_page(lister, query, 1)
        seen += [e.key for e in entries if isinstance(e, MultipartUpload)]
        if not truncated:
            break
        last = entries[-1]
        assert isinstance(last, MultipartUpload)
        query = multipart_listing.Query(key_marker=last.key, upload_id_marker=last.upload_id)
    assert seen == ["b", "e", "f", "g"]


async def test_an_upload_forgotten_while_listed_is_skipped(
    meta: MetadataStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DynamoDB reads the by-key index, then each upload: one forgotten in between (its
    index items read, its upload item gone) is left out of the page, not an error."""
    store = _store(meta)
    made = [_upload(k, 1000.0 + i) for i, k in enumerate("abc")]
    for u in made:
        await store.create_multipart_upload(u)
    if isinstance(store, DynamoMetadataStore):
        real = store._listed

        def forgotten_first(item: dict[str, Any]) -> MultipartUpload:
            if item["uid"]["S"] == made[0].upload_id:
                store._rq.call(  # type: ignore[attr-defined]
                    "delete_item",
                    TableName=store.tables["namespace"],  # type: ignore[attr-defined]
                    Key={"p": {"S": f"mpu#{made[0].upload_id}"}, "s": {"S": "-"}},
                )
            return real(item)  # type: ignore[no-any-return]

        monkeypatch.setattr(store, "_listed", forgotten_first)
    else:  # SQLite forgets in one transaction: the upload is simply gone
        await store.delete_multipart_upload(made[0].upload_id)
    assert [u.key for u in await store.list_multipart_uploads("b1", limit=2)] == ["b", "c"]


async def test_checksums_of_the_upload_and_its_parts_are_kept(meta: MetadataStore) -> None:
    store = _store(meta)
    u = dataclasses.replace(_upload("c", 1000.0), checksum="crc32c")
    await store.create_multipart_upload(u)
    assert (await store.get_multipart_upload(u.upload_id)).checksum == "crc32c"
    summed = dataclasses.replace(_part(1), checksums=(("crc32c", "4waSgw=="), ("sha1", "x=")))
    await store.put_upload_part(u.upload_id, summed)
    await store.put_upload_part(u.upload_id, _part(2))
    assert await store.list_upload_parts(u.upload_id) == [summed, _part(2)]
    before = await store.set_multipart_state(u.upload_id, {UPLOAD_OPEN}, UPLOAD_COMPLETING)
    assert before.checksum == "crc32c"
    plain = _upload("p", 1001.0)
    await store.create_multipart_upload(plain)
    assert (await store.get_multipart_upload(plain.upload_id)).checksum == ""


async def test_uploads_are_counted_up_to_a_limit(meta: MetadataStore) -> None:
    store = _store(meta)
    assert await store.count_multipart_uploads(10) == 0
    uploads = [_upload(f"n{i}", 1000.0 + i, bucket=f"b{i % 2}") for i in range(5)]
    for u in uploads:
        await store.create_multipart_upload(u)
    assert await store.count_multipart_uploads(10) == 5
    assert await store.count_multipart_uploads(3) == 3  # bounded work
    await store.set_multipart_state(uploads[0].upload_id, {UPLOAD_OPEN}, UPLOAD_COMPLETING)
    assert await store.count_multipart_uploads(10) == 5  # still in progress
    await store.delete_multipart_upload(uploads[1].upload_id)
    assert await store.count_multipart_uploads(10) == 4


def test_sqlite_tables_made_before_checksums_gain_them() -> None:
    """A database whose multipart tables predate the checksums gets the columns at open, its
    uploads and parts reading as without checksums."""
    conn = sqlite3.connect(":memory:")
    conn.row_factory = sqlite3.Row
    conn.executescript(
        "CREATE TABLE s3_uploads (upload_id TEXT PRIMARY KEY, tenant TEXT NOT NULL,"
        " bucket TEXT NOT NULL, key TEXT NOT NULL, created_at REAL NOT NULL,"
        " content_type TEXT NOT NULL, user_metadata TEXT NOT NULL, state TEXT NOT NULL);"
        "CREATE TABLE s3_upload_parts (upload_id TEXT NOT NULL, part_number INTEGER NOT NULL,"
        " file_id TEXT NOT NULL, size INTEGER NOT NULL, etag TEXT NOT NULL,"
        " last_modified REAL NOT NULL, PRIMARY KEY (upload_id, part_number));"
        "INSERT INTO s3_uploads VALUES ('u1', 't', 'b', 'k', 1.0, '', '[]', 'open');"
        "INSERT INTO s3_upload_parts VALUES ('u1', 1, 'f1', 5, 'e', 2.0);"
    )
    sqlite_multipart.apply_multipart_schema(conn)
    upload = sqlite_multipart._get(conn, "u1")
    assert (upload.headers, upload.checksum) == ((), "")
    row = conn.execute(
        "SELECT part_number, file_id, size, etag, last_modified, checksums FROM s3_upload_parts"
    ).fetchone()
    assert sqlite_multipart._part(row) == UploadPart(1, "f1", 5, "e", 2.0)
    conn.close()
