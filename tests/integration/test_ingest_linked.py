"""An ingest whose file is linked in the write that records it (``ingest(..., commit=)``,
the S3 gateway's PutObject: ``Namespace.create_and_link``): one store write makes the file
complete, its copies and the key's version; a refused link (a lost ``If-None-Match``) leaves
no file, pending or complete; only the bucket owner's own upload takes this path."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from dfs import auth
from dfs.api.bodies import Principal
from dfs.api.ingest import CommitFn, ingest
from dfs.api.namespace_bodies import ObjectFields
from dfs.api.namespace_service import Namespace, namespace_store
from dfs.chunking import ChunkerProfile
from dfs.errors import InvalidRequest, KeyExists
from dfs.meta.base import FILE_COMPLETE, FileRecord, Location, ManifestEntry
from dfs.meta.namespace import GRANT_READ_WRITE, BucketRecord, PutResult
from tests.integration.conftest import InProcessCluster
from tests.integration.test_ingest_small import MetaWrites, _reader

pytestmark = pytest.mark.integration


def linking(
    ns: Namespace, who: Principal, b: BucketRecord, key: str, made: list[PutResult], **cond: bool
) -> CommitFn:
    async def commit(
        rec: FileRecord, manifest: Sequence[ManifestEntry], locs: Sequence[Location], now: float
    ) -> FileRecord:
        new_file = (rec, manifest, locs)
        made.append(
            await ns.create_and_link(who, b, key, new_file, ObjectFields(), "e", now, **cond)
        )
        return rec

    return commit


async def test_the_file_and_its_version_in_one_write(
    inproc: InProcessCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    coord = inproc.api.coordinator
    store = namespace_store(coord.meta)
    assert store is not None
    ns = Namespace(store, coord)
    alice, bob = Principal("alice", auth.ROLE_USER), Principal("bob", auth.ROLE_USER)
    for t in ("alice", "bob"):
        await coord.meta.create_tenant(t, coord.clock())
    b = await ns.create_bucket(alice, "linked", None, None)
    writes = MetaWrites(inproc, monkeypatch)
    data = random.Random(7).randbytes(8_000)
    made: list[PutResult] = []
    profile, limit = ChunkerProfile.default(), 1 << 20
    done = await ingest(
        coord, "alice", "x", _reader(data), profile, limit, commit=linking(ns, alice, b, "k", made)
    )
    assert writes.calls == []  # none of the file writes: the namespace's one write did it
    (put,) = made
    assert put.version.file_id == done.body["file_id"]
    assert (await store.get_object("linked", "k")).etag == "e"
    rec = await coord.meta.get_file(put.version.file_id, "alice")
    assert rec.state == FILE_COMPLETE
    chunk = rec.sha256  # one chunk: its id is the body's sha256
    assert len((await coord.meta.get_locations([chunk]))[chunk]) == 2

    other = random.Random(8).randbytes(8_000)
    refused: list[PutResult] = []
    with pytest.raises(KeyExists):  # the key is taken: nothing of this upload is recorded
        await ingest(
            coord,
            "alice",
            "y",
            _reader(other),
            profile,
            limit,
            commit=linking(ns, alice, b, "k", refused, if_absent=True),
        )
    assert refused == []
    assert [f.file_id for f in await coord.meta.list_files("alice", limit=10)] == [rec.file_id]
    assert await coord.meta.stale_pending_files(1e12, limit=10) == []
    # a grantee's file becomes the owner's by ``link``, never by this path
    await store.update_bucket("linked", "alice", grants=[("bob", GRANT_READ_WRITE)])
    granted = await store.get_bucket("linked")
    with pytest.raises(InvalidRequest):
        await ingest(
            coord,
            "bob",
            "z",
            _reader(other),
            profile,
            limit,
            commit=linking(ns, bob, granted, "b", []),
        )
    assert await coord.meta.list_files("bob", limit=10) == []
