"""Multipart calls as clients send them (a review's findings), through the S3 gateway in
process with boto3: CreateMultipartUpload refuses what PutObject refuses rather than
dropping it; UploadPartCopy honours ``x-amz-copy-source-if-*`` (boto3's managed copy sends
``CopySourceIfMatch`` with every part) and copies from a key holding ``?``; an empty part
in aws-chunked form (boto3 over HTTPS) is a part; CompleteMultipartUpload answers the
version it made.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import aiohttp
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.clients import s3_path_style
from tests.integration.conftest import InProcessCluster
from tests.integration.test_namespace_api import tokens
from tests.integration.test_s3_tenancy import gateway, refused, run

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning"),
]

MIB = 1024 * 1024


async def _access_key(api: str, token: str) -> Credentials:
    async with aiohttp.ClientSession() as s:
        auth = {"Authorization": f"Bearer {token}"}
        async with s.post(f"{api}/access-keys", json={}, headers=auth) as r:
            body = await r.json()
            assert r.status == 201, body
    return Credentials(body["access_key_id"], body["secret_access_key"])


def _read(s3: Any, bucket: str, key: str) -> tuple[str, bytes]:
    """The object's ETag and bytes (read in the calling thread: never the event loop's,
    which serves them)."""
    got = s3.get_object(Bucket=bucket, Key=key)
    return got["ETag"], got["Body"].read()


def _client(url: str, creds: Credentials) -> Any:
    return s3_path_style(url, creds.access_key, creds.secret_key)


async def test_create_refuses_what_put_object_refuses(inproc: InProcessCluster) -> None:
    (alice,) = await tokens(inproc.api.url, "alice")
    async with gateway(inproc) as url:
        s3 = _client(url, await _access_key(inproc.api.url, alice))
        await run(s3.create_bucket, Bucket="bkt")
        dropped = [
            {"StorageClass": "GLACIER"},
            {"WebsiteRedirectLocation": "/elsewhere"},
            {"ObjectLockLegalHoldStatus": "ON"},
            {"SSEKMSKeyId": "some-key"},
        ]
        for kw in dropped:
            put = {"Bucket": "bkt", "Key": "p", "Body": b"x", **kw}
            assert await refused(s3.put_object, **put) == "NotImplemented", kw
            create = {"Bucket": "bkt", "Key": "m", **kw}
            assert await refused(s3.create_multipart_upload, **create) == "NotImplemented", kw
        got = await run(s3.list_multipart_uploads, Bucket="bkt")
        assert got.get("Uploads", []) == []  # none of them began an upload
        # the storage class dfs keeps is taken, as PutObject takes it
        made = await run(s3.create_multipart_upload, Bucket="bkt", Key="m", StorageClass="STANDARD")
        assert made["UploadId"]


async def test_managed_copy_and_copy_source_conditions(inproc: InProcessCluster) -> None:
    (alice,) = await tokens(inproc.api.url, "alice")
    async with gateway(inproc) as url:
        s3 = _client(url, await _access_key(inproc.api.url, alice))
        await run(s3.create_bucket, Bucket="bkt")
        data = os.urandom(9 * MIB)
        await run(s3.put_object, Bucket="bkt", Key="big", Body=data)
        # s3transfer copies in parts above the threshold, with CopySourceIfMatch on each
        config = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
        src = {"Bucket": "bkt", "Key": "big"}
        await run(s3.copy, CopySource=src, Bucket="bkt", Key="copied", Config=config)
        etag, body = await run(_read, s3=s3, bucket="bkt", key="copied")
        assert etag.endswith('-2"')  # made of parts, not one CopyObject
        assert body == data

        etag = (await run(s3.head_object, **src))["ETag"]
        uid = (await run(s3.create_multipart_upload, Bucket="bkt", Key="k"))["UploadId"]
        part = {"Bucket": "bkt", "Key": "k", "UploadId": uid, "PartNumber": 1, "CopySource": src}
        for cond in (
            {"CopySourceIfMatch": '"0123456789abcdef0123456789abcdef"'},
            {"CopySourceIfNoneMatch": etag},
        ):
            assert await refused(s3.upload_part_copy, **part, **cond) == "PreconditionFailed"
        parts = await run(s3.list_parts, Bucket="bkt", Key="k", UploadId=uid)
        assert parts.get("Parts", []) == []  # a refused condition stores no part
        made = await run(s3.upload_part_copy, **part, CopySourceIfMatch=etag)
        assert made["CopyPartResult"]["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'


async def test_part_copy_from_keys_with_query_characters(inproc: InProcessCluster) -> None:
    (alice,) = await tokens(inproc.api.url, "alice")
    async with gateway(inproc) as url:
        s3 = _client(url, await _access_key(inproc.api.url, alice))
        await run(s3.create_bucket, Bucket="bkt")
        uid = (await run(s3.create_multipart_upload, Bucket="bkt", Key="dst"))["UploadId"]
        bodies = {"we?ird": b"question mark", "pct%41": b"percent", "a?versionId=x": b"v"}
        etags = []
        for n, (key, body) in enumerate(bodies.items(), start=1):
            await run(s3.put_object, Bucket="bkt", Key=key, Body=body)
            src = {"Bucket": "bkt", "Key": key}
            made = await run(
                s3.upload_part_copy,
                Bucket="bkt",
                Key="dst",
                UploadId=uid,
                PartNumber=n,
                CopySource=src,
            )
            assert made["CopyPartResult"]["ETag"] == f'"{hashlib.md5(body).hexdigest()}"', key
            etags.append(made["CopyPartResult"]["ETag"])
        # each part is the bytes of its own key
        listed = await run(s3.list_parts, Bucket="bkt", Key="dst", UploadId=uid)
        assert [p["Size"] for p in listed["Parts"]] == [len(b) for b in bodies.values()]
        assert [p["ETag"] for p in listed["Parts"]] == etags


class _TrailerAuth(S3SigV4Auth):
    def payload(self, request: AWSRequest) -> str:
        return "STREAMING-UNSIGNED-PAYLOAD-TRAILER"


async def _empty_chunked_put(url: str, creds: Credentials, crc32: str) -> tuple[int, str, str]:
    """An empty body in the aws-chunked trailer form boto3 sends over HTTPS: the status,
    the ETag and the answer's text."""
    body = f"0\r\nx-amz-checksum-crc32:{crc32}\r\n\r\n".encode()
    headers = {
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": "0",
        "x-amz-trailer": "x-amz-checksum-crc32",
        "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "Content-Length": str(len(body)),
    }
    req = AWSRequest(method="PUT", url=url, data=body, headers=headers)
    _TrailerAuth(creds, "s3", "us-east-1").add_auth(req)
    async with (
        aiohttp.ClientSession() as s,
        s.put(url, data=body, headers=dict(req.headers.items())) as r,
    ):
        return r.status, r.headers.get("ETag", ""), await r.text()


async def test_an_empty_aws_chunked_part_is_a_part(inproc: InProcessCluster) -> None:
    (alice,) = await tokens(inproc.api.url, "alice")
    async with gateway(inproc) as url:
        creds = await _access_key(inproc.api.url, alice)
        s3 = _client(url, creds)
        await run(s3.create_bucket, Bucket="bkt")
        uid = (await run(s3.create_multipart_upload, Bucket="bkt", Key="k"))["UploadId"]
        part_url = f"{url}/bkt/k?partNumber=1&uploadId={uid}"
        # the trailer is read and checked: a wrong CRC32 of no bytes is refused
        status, _, text = await _empty_chunked_put(part_url, creds, "AAAAAQ==")
        assert (status, "<Code>BadDigest</Code>" in text) == (400, True), text
        status, etag, text = await _empty_chunked_put(part_url, creds, "AAAAAA==")
        assert (status, etag) == (200, f'"{hashlib.md5(b"").hexdigest()}"'), text
        parts = {"Parts": [{"PartNumber": 1, "ETag": etag}]}
        await run(
            s3.complete_multipart_upload,
            Bucket="bkt",
            Key="k",
            UploadId=uid,
            MultipartUpload=parts,
        )
        assert (await run(_read, s3=s3, bucket="bkt", key="k"))[1] == b""


@pytest.mark.parametrize("versioning", ["Enabled", ""])
async def test_complete_answers_the_version_it_made(
    inproc: InProcessCluster, versioning: str
) -> None:
    (alice,) = await tokens(inproc.api.url, "alice")
    async with gateway(inproc) as url:
        s3 = _client(url, await _access_key(inproc.api.url, alice))
        await run(s3.create_bucket, Bucket="bkt")
        if versioning:
            conf = {"Status": versioning}
            await run(s3.put_bucket_versioning, Bucket="bkt", VersioningConfiguration=conf)
        made = []
        for data in (b"first", b"second"):
            uid = (await run(s3.create_multipart_upload, Bucket="bkt", Key="k"))["UploadId"]
            part = {"Bucket": "bkt", "Key": "k", "UploadId": uid, "PartNumber": 1}
            etag = (await run(s3.upload_part, **part, Body=data))["ETag"]
            done = await run(
                s3.complete_multipart_upload,
                Bucket="bkt",
                Key="k",
                UploadId=uid,
                MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
            )
            made.append(done.get("VersionId"))
        versions = (await run(s3.list_object_versions, Bucket="bkt"))["Versions"]
        if versioning:
            # newest first in the listing: each Complete named its own version
            assert made == [v["VersionId"] for v in reversed(versions)]
            assert None not in made
            assert made[0] != made[1]
        else:
            assert made == [None, None]  # as PutObject: no version id where versioning is off
