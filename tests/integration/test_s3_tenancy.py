"""Multipart uploads and copies across tenants through the S3 gateway (a review's
findings): an upload belongs to its bucket as it was made, never to the next bucket of the
name; a part or Complete needs write access still; CreateMultipartUpload refuses an ACL it
cannot keep; a tenant an object is shared with copies it with CopyObject. In process: the
API's coordinator under a dfs-s3 app on loopback, boto3 per tenant (run in threads: the
servers share the test's event loop).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from botocore.exceptions import ClientError

from dfs.api.body_slots import BigBodySlots
from dfs.s3.app import make_app
from dfs.s3.context import BODIES
from dfs.server import runner_kwargs
from tests.clients import s3_path_style
from tests.integration.conftest import InProcessCluster
from tests.integration.test_namespace_api import tokens

pytestmark = [
    pytest.mark.integration,
    # the gateway keeps its caller under a str request key (dfs.s3.context.CALLER), which
    # aiohttp warns of; in its own process (the e2e tests) that warning is never an error
    pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning"),
]


@contextlib.asynccontextmanager
async def gateway(
    inproc: InProcessCluster, bodies: BigBodySlots | None = None
) -> AsyncIterator[str]:
    """The gateway in process (its big-body slots ``bodies``, if given)."""
    app = make_app(inproc.api.coordinator)
    if bodies is not None:
        app[BODIES] = bodies
    runner = web.AppRunner(app, auto_decompress=False, **runner_kwargs())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def s3_client(api: str, token: str, url: str) -> Any:
    """A boto3 client signing with a new access key of ``token``'s tenant."""
    async with aiohttp.ClientSession() as s:
        auth = {"Authorization": f"Bearer {token}"}
        async with s.post(f"{api}/access-keys", json={}, headers=auth) as r:
            body = await r.json()
            assert r.status == 201, body
    return s3_path_style(url, body["access_key_id"], body["secret_access_key"])


async def run(fn: Callable[..., Any], **kw: Any) -> Any:
    return await asyncio.to_thread(fn, **kw)


async def refused(fn: Callable[..., Any], **kw: Any) -> str:
    """The S3 error code ``fn(**kw)`` answers (it must fail)."""
    with pytest.raises(ClientError) as info:
        await run(fn, **kw)
    return str(info.value.response["Error"]["Code"])


async def grant(owner: Any, bucket: str, *permissions: str) -> None:
    """Bob's grant on ``bucket``, set by its owner through the gateway (whose own change
    its cached bucket records drop at once)."""
    grants = [
        {"Grantee": {"Type": "CanonicalUser", "ID": "bob"}, "Permission": p} for p in permissions
    ]
    policy = {"Owner": {"ID": "alice"}, "Grants": grants}
    await run(owner.put_bucket_acl, Bucket=bucket, AccessControlPolicy=policy)


async def test_uploads_of_a_deleted_bucket_are_not_the_next_owners(
    inproc: InProcessCluster,
) -> None:
    api = inproc.api.url
    alice_t, carol_t = await tokens(api, "alice", "carol")
    async with gateway(inproc) as url:
        alice = await s3_client(api, alice_t, url)
        carol = await s3_client(api, carol_t, url)
        await run(alice.create_bucket, Bucket="backups")
        old = [
            await run(alice.create_multipart_upload, Bucket="backups", Key=f"hr/{n}.csv")
            for n in ("a", "b")
        ]
        first = {"Bucket": "backups", "Key": "hr/a.csv", "UploadId": old[0]["UploadId"]}
        await run(alice.upload_part, **first, PartNumber=1, Body=b"x" * 1000)
        await run(alice.delete_bucket, Bucket="backups")
        await run(carol.create_bucket, Bucket="backups")
        got = await run(carol.list_multipart_uploads, Bucket="backups")
        assert got.get("Uploads", []) == []
        # carol's own upload sorts after alice's old ones: a page of one still finds it
        mine = await run(carol.create_multipart_upload, Bucket="backups", Key="z.bin")
        got = await run(carol.list_multipart_uploads, Bucket="backups", MaxUploads=1)
        assert [u["UploadId"] for u in got["Uploads"]] == [mine["UploadId"]]
        assert not got["IsTruncated"]
        # alice, who may not write carol's bucket, adds nothing to her old upload
        part = {**first, "PartNumber": 2, "Body": b"y" * 1000}
        assert await refused(alice.upload_part, **part) == "NoSuchBucket"
        # nor does carol find alice's upload under her bucket
        assert await refused(carol.list_parts, **first) == "NoSuchUpload"


async def test_a_revoked_grantee_adds_no_part_and_completes_nothing(
    inproc: InProcessCluster,
) -> None:
    api = inproc.api.url
    alice_t, bob_t = await tokens(api, "alice", "bob")
    async with gateway(inproc) as url:
        alice = await s3_client(api, alice_t, url)
        bob = await s3_client(api, bob_t, url)
        await run(alice.create_bucket, Bucket="drop")
        await grant(alice, "drop", "READ", "WRITE")
        up = await run(bob.create_multipart_upload, Bucket="drop", Key="in.bin")
        target = {"Bucket": "drop", "Key": "in.bin", "UploadId": up["UploadId"]}
        p1 = await run(bob.upload_part, **target, PartNumber=1, Body=b"a" * 100)
        await grant(alice, "drop", "READ")  # write access revoked
        part = {**target, "PartNumber": 2, "Body": b"b" * 100}
        assert await refused(bob.upload_part, **part) == "AccessDenied"
        await run(alice.put_object, Bucket="drop", Key="src.bin", Body=b"c" * 100)
        copy = {**target, "PartNumber": 2, "CopySource": {"Bucket": "drop", "Key": "src.bin"}}
        assert await refused(bob.upload_part_copy, **copy) == "AccessDenied"
        parts = {"Parts": [{"PartNumber": 1, "ETag": p1["ETag"]}]}
        done = {**target, "MultipartUpload": parts}
        assert await refused(bob.complete_multipart_upload, **done) == "AccessDenied"
        assert await refused(bob.head_object, Bucket="drop", Key="in.bin") == "404"
        # bob still lists and aborts his own upload
        listed = await run(bob.list_parts, **target)
        assert [p["PartNumber"] for p in listed["Parts"]] == [1]
        await run(bob.abort_multipart_upload, **target)


async def test_create_multipart_upload_refuses_an_acl_it_cannot_keep(
    inproc: InProcessCluster,
) -> None:
    api = inproc.api.url
    (alice_t,) = await tokens(api, "alice")
    async with gateway(inproc) as url:
        alice = await s3_client(api, alice_t, url)
        await run(alice.create_bucket, Bucket="site")
        where = {"Bucket": "site", "Key": "big.bin"}
        create = alice.create_multipart_upload
        assert await refused(create, **where, ACL="public-read") == "NotImplemented"
        assert await refused(create, **where, GrantRead="id=bob") == "NotImplemented"
        up = await run(create, **where, ACL="private")
        p = await run(alice.upload_part, **where, UploadId=up["UploadId"], PartNumber=1, Body=b"z")
        parts = {"Parts": [{"PartNumber": 1, "ETag": p["ETag"]}]}
        await run(
            alice.complete_multipart_upload, **where, UploadId=up["UploadId"], MultipartUpload=parts
        )
        acl = await run(alice.get_object_acl, **where)
        assert [g["Grantee"].get("ID") for g in acl["Grants"]] == ["alice"]


async def test_a_tenant_an_object_is_shared_with_copies_it(inproc: InProcessCluster) -> None:
    api = inproc.api.url
    alice_t, bob_t = await tokens(api, "alice", "bob")
    async with gateway(inproc) as url:
        alice = await s3_client(api, alice_t, url)
        bob = await s3_client(api, bob_t, url)
        await run(alice.create_bucket, Bucket="site")
        await run(alice.put_object, Bucket="site", Key="doc.txt", Body=b"shared doc")
        policy = {
            "Owner": {"ID": "alice"},
            "Grants": [{"Grantee": {"Type": "CanonicalUser", "ID": "bob"}, "Permission": "READ"}],
        }
        await run(alice.put_object_acl, Bucket="site", Key="doc.txt", AccessControlPolicy=policy)
        await run(bob.create_bucket, Bucket="bobs")
        src = {"Bucket": "site", "Key": "doc.txt"}
        await run(bob.copy_object, Bucket="bobs", Key="copy.txt", CopySource=src)
        got = await run(bob.get_object, Bucket="bobs", Key="copy.txt")
        assert await asyncio.to_thread(got["Body"].read) == b"shared doc"
        # what bob may not read stays as missing as before
        await run(alice.put_object, Bucket="site", Key="private.txt", Body=b"no")
        other = {"Bucket": "site", "Key": "private.txt"}
        copy = {"Bucket": "bobs", "Key": "nope.txt", "CopySource": other}
        assert await refused(bob.copy_object, **copy) == "NoSuchKey"
