"""A write the disk cannot hold (SQLITE_FULL, which ends the whole transaction in SQLite
itself) leaves nothing behind, not even in the store's label cache: its caller gets the
disk's error, and the ids of labels it made are never handed to another tenant's rows.
Before, the failed ROLLBACK ("no transaction is active") skipped the cache's clean-up, and
the next tenant created got the id the failed write's tenant kept in the cache: that
tenant's later files were stored, and read back, as the other tenant's."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from pathlib import Path

import pytest

from dfs.errors import Unavailable
from dfs.meta import open_metadata_store
from dfs.meta.base import FileRecord, Location, ManifestEntry
from dfs.meta.namespace import BucketRecord, NewObject
from dfs.meta.sqlite import SqliteMetadataStore


def _h(x: object) -> str:
    return hashlib.sha256(str(x).encode()).hexdigest()


def _file(tenant: str, chunks: int) -> tuple[FileRecord, list[ManifestEntry]]:
    rec = FileRecord(
        file_id=str(uuid.uuid4()),
        name=f"{tenant}-{chunks}",
        size=10 * chunks,
        sha256=_h((tenant, chunks)),
        chunker="fixed:4096",
        tenant=tenant,
        created_at=1.0,
        chunk_count=chunks,
    )
    return rec, [ManifestEntry(10 * i, 10, _h((tenant, i))) for i in range(chunks)]


async def test_a_write_the_disk_cannot_hold_leaves_no_label_behind(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'meta.db'}"
    store = await open_metadata_store(url)
    assert isinstance(store, SqliteMetadataStore)
    try:
        await store.create_file(*_file("alice", 1))

        def no_more_pages() -> None:  # the disk is full: the database cannot grow
            pages = store._db.execute("PRAGMA page_count").fetchone()[0]
            store._db.execute(f"PRAGMA max_page_count={pages}")

        await store._run(no_more_pages)
        with pytest.raises(Unavailable, match="full"):  # the disk's error, not ROLLBACK's
            await store.create_file(*_file("mallory", 20_000))
        await store._run(lambda: store._db.execute("PRAGMA max_page_count=1073741823"))
        bob, bob_manifest = _file("bob", 1)
        await store.create_file(bob, bob_manifest)
        mallory, mallory_manifest = _file("mallory", 1)
        await store.create_file(mallory, mallory_manifest)
        assert (await store.get_file(mallory.file_id)).tenant == "mallory"
        assert (await store.get_file(bob.file_id)).tenant == "bob"
    finally:
        await store.close()
    again = await open_metadata_store(url)
    try:
        assert (await again.get_file(mallory.file_id)).tenant == "mallory"
    finally:
        await again.close()


async def test_a_group_that_fills_the_disk_fails_each_member_with_the_disks_error(
    tmp_path: Path,
) -> None:
    """Writes queued into one group commit, one of them too big for the disk: SQLite ends
    the whole transaction, so every member fails, nothing is stored, and each is told the
    disk is full (it was told "no such savepoint")."""
    store = await open_metadata_store(f"sqlite:///{tmp_path / 'meta.db'}")
    assert isinstance(store, SqliteMetadataStore)
    try:
        for tenant in ("alice", "mallory"):
            await store.create_bucket(BucketRecord(f"b-{tenant}", tenant, created_at=1.0))

        async def put(tenant: str, key: str, chunks: int) -> object:
            rec, manifest = _file(tenant, chunks)
            locations = [Location(e.chunk_id, "n1", 10) for e in manifest]
            obj = NewObject(f"b-{tenant}", key, rec.file_id, rec.size, owner=tenant)
            return await store.create_and_put_object(rec, manifest, locations, obj, 2.0)

        await put("alice", "k0", 1)

        def no_more_pages() -> None:
            pages = store._db.execute("PRAGMA page_count").fetchone()[0]
            store._db.execute(f"PRAGMA max_page_count={pages + 2}")

        await store._run(no_more_pages)
        got = await asyncio.gather(
            put("alice", "k1", 1),
            put("mallory", "k2", 5000),
            put("alice", "k3", 1),
            return_exceptions=True,
        )
        assert all(isinstance(g, Unavailable) and "full" in g.message for g in got), got
        await store._run(lambda: store._db.execute("PRAGMA max_page_count=1073741823"))
        keys = await store._run(lambda: store._db.execute("SELECT key FROM ns_versions").fetchall())
        assert [k for (k,) in keys] == ["k0"]
    finally:
        await store.close()
