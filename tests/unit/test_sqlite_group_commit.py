"""The SQLite store's group commit (``dfs.meta.sqlite_group``), through the write that uses
it (``create_and_put_object``): writes issued together commit in one transaction; a write
refused inside the group is rolled back alone (its file, its chunk references and the label
it added), the others stand; the interned labels stay those the database holds."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from pathlib import Path

import pytest

from dfs.errors import BucketNotFound, FileNotFound
from dfs.meta.base import FileRecord, Location, ManifestEntry
from dfs.meta.namespace import BucketRecord, NewObject
from dfs.meta.sqlite import SqliteMetadataStore


def cid(n: object) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


class Write:
    """One PutObject's new file and version."""

    def __init__(self, tenant: str, bucket: str, n: int, owner: str = "") -> None:
        self.chunk = cid(("chunk", n))
        self.rec = FileRecord(
            file_id=str(uuid.uuid4()),
            name="f",
            size=10 + n,
            sha256=cid(("file", n)),
            chunker="fixed:4096",
            tenant=tenant,
            created_at=1.0,
            chunk_count=1,
        )
        self.obj = NewObject(
            bucket, f"k{n}", self.rec.file_id, self.rec.size, owner=owner or tenant
        )

    async def put(self, meta: SqliteMetadataStore) -> object:
        size = self.rec.size
        return await meta.create_and_put_object(
            self.rec,
            [ManifestEntry(0, size, self.chunk)],
            [Location(self.chunk, "n1", size)],
            self.obj,
            2.0,
        )


async def test_a_refusal_in_a_group_is_rolled_back_alone(
    meta: SqliteMetadataStore, tmp_path: Path
) -> None:
    for tenant in ("alpha", "gamma", "beta"):
        await meta.create_bucket(BucketRecord(f"b-{tenant}", tenant, created_at=1.0))
    alpha = [Write("alpha", "b-alpha", n) for n in range(5)]
    # beta's first file (it adds beta's label), into alpha's bucket as if beta owned it
    refused = Write("beta", "b-alpha", 5, owner="beta")
    gamma = [Write("gamma", "b-gamma", n) for n in range(6, 10)]  # its label after beta's
    before = meta._group.commits
    got = await asyncio.gather(
        *(w.put(meta) for w in [*alpha, refused, *gamma]), return_exceptions=True
    )
    assert meta._group.commits - before < len(got)  # writes issued together shared commits
    assert isinstance(got[5], BucketNotFound)
    assert not any(isinstance(g, BaseException) for g in got[:5] + got[6:])
    with pytest.raises(FileNotFound):
        await meta.get_file(refused.rec.file_id)
    assert refused.chunk not in await meta.get_chunks([refused.chunk])
    for w in alpha + gamma:
        assert (await meta.get_file(w.rec.file_id)).tenant == w.rec.tenant
        assert (await meta.get_object(w.obj.bucket, w.obj.key)).file_id == w.rec.file_id
    again = Write("beta", "b-beta", 11)  # beta's label added again, for real this time
    await again.put(meta)
    reopened = await SqliteMetadataStore.open(f"sqlite:///{tmp_path / 'meta.db'}")
    try:  # the database's labels, read afresh, say what the cached ones said
        for store in (meta, reopened):
            for w in [*alpha, *gamma, again]:
                assert (await store.get_file(w.rec.file_id)).tenant == w.rec.tenant
            assert len(await store.list_files("beta", limit=10)) == 1
            assert len(await store.list_files("gamma", limit=10)) == 4
    finally:
        await reopened.close()


async def test_a_lone_write_commits_at_once(meta: SqliteMetadataStore) -> None:
    await meta.create_bucket(BucketRecord("b-solo", "solo", created_at=1.0))
    before = meta._group.commits
    for n in range(3):  # one after another: a commit each, none waits for company
        await Write("solo", "b-solo", 20 + n).put(meta)
    assert meta._group.commits - before == 3
