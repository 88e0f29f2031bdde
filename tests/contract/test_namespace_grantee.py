"""A read-write grantee's PutObject on both backends, through ``Namespace.link`` (the
service over the real store and Coordinator): the grantee's file becomes a file of the
bucket owner with the same manifest, created with its link in one store write, so a
refused link (a precondition, the bucket gone) leaves no file of the owner, no chunk
reference and nothing in the owner's chunk set; an accepted one is released as any other
when its version goes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from dfs.api.bodies import Principal
from dfs.api.coordinator import Coordinator
from dfs.api.namespace_bodies import ObjectFields
from dfs.api.namespace_service import Namespace, namespace_store
from dfs.auth import ROLE_USER
from dfs.config import ApiConfig
from dfs.errors import BucketNotFound, EtagMismatch, KeyExists
from dfs.meta.base import FILE_COMPLETE, MetadataStore
from dfs.meta.namespace import GRANT_READ_WRITE
from dfs.transport.node_client import NodeClient
from tests.contract.test_namespace_store import Store, cid, make_file, refcounts

OWNER = Principal("acme", ROLE_USER)
GRANTEE = Principal("globex", ROLE_USER)


@pytest.fixture
async def service(meta: MetadataStore) -> AsyncIterator[Namespace]:
    async with aiohttp.ClientSession() as session:
        coord = Coordinator(ApiConfig(), meta, NodeClient(session), clock=lambda: 2.0)
        yield Namespace(namespace_store(meta), coord)


async def shared_bucket(ns: Namespace, name: str) -> None:
    await ns.create_bucket(OWNER, name, None, None)
    grants = [(GRANTEE.tenant, GRANT_READ_WRITE)]
    await ns.update_bucket(OWNER, name, versioning=None, bucket_access=None, grants=grants)


@pytest.mark.parametrize("chunks", [1, 60])  # one DynamoDB transaction, or two writes
async def test_a_refused_grantee_put_leaves_no_file_of_the_owner(
    meta: MetadataStore, service: Namespace, chunks: int
) -> None:
    store: Store = meta  # type: ignore[assignment]
    await shared_bucket(service, "inbox")
    old = await make_file(store, OWNER.tenant, [(cid("g-old"), 5)])
    await service.link(OWNER, "inbox", "k", old.file_id, ObjectFields(), etag="e-old")
    chunk = cid("g-new")
    more = [(cid(("g-new", i)), 3) for i in range(1, chunks)]
    mine = await make_file(store, GRANTEE.tenant, [(chunk, 9), *more])
    before = await meta.get_stats()
    refused: list[tuple[bool, str | None, type[Exception]]] = [
        (True, None, KeyExists),
        (False, "e-other", EtagMismatch),
    ]
    for if_absent, if_match, error in refused:
        with pytest.raises(error):
            await service.link(
                GRANTEE,
                "inbox",
                "k",
                mine.file_id,
                ObjectFields(),
                if_absent=if_absent,
                if_match=if_match,
            )
    # the bucket deleted after this request read it: the store refuses the link
    await shared_bucket(service, "gone")
    read = await service.bucket("gone")
    await service.delete_bucket(OWNER, "gone")
    with pytest.raises(BucketNotFound):
        await service.link(GRANTEE, "gone", "k", mine.file_id, ObjectFields(), read=read)
    assert [f.file_id for f in await meta.list_files(OWNER.tenant, limit=100)] == [old.file_id]
    every = [chunk, *(c for c, _ in more)]
    assert await refcounts(store, every) == dict.fromkeys(every, 1)  # the grantee's file's
    assert not await meta.owned_chunks(OWNER.tenant, every)
    after = await meta.get_stats()
    assert (after.total_files, after.logical_bytes) == (before.total_files, before.logical_bytes)
    assert (await service.store.get_object("inbox", "k")).file_id == old.file_id


async def test_a_grantee_put_links_a_file_of_the_owner_released_with_its_version(
    meta: MetadataStore, service: Namespace
) -> None:
    store: Store = meta  # type: ignore[assignment]
    await shared_bucket(service, "drop")
    chunk = cid("g-linked")
    mine = await make_file(store, GRANTEE.tenant, [(chunk, 7)])
    made = await service.link(GRANTEE, "drop", "k", mine.file_id, ObjectFields())
    own = await meta.get_file(made.version.file_id, OWNER.tenant)
    assert own.file_id != mine.file_id
    assert (own.state, own.size, own.sha256) == (FILE_COMPLETE, mine.size, mine.sha256)
    assert await meta.get_manifest(own.file_id) == await meta.get_manifest(mine.file_id)
    assert await refcounts(store, [chunk]) == {chunk: 2}
    assert await meta.owned_chunks(OWNER.tenant, [chunk]) == {chunk}
    assert (await service.usage(OWNER, "drop", "")).stored_bytes == 7

    await service.delete(OWNER, "drop", "k", None)  # unversioned: the file is released
    assert await meta.list_files(OWNER.tenant, limit=100) == []
    assert await refcounts(store, [chunk]) == {chunk: 1}
    assert not await meta.owned_chunks(OWNER.tenant, [chunk])
    assert (await meta.get_file(mine.file_id, GRANTEE.tenant)).state == FILE_COMPLETE
