"""``If-Match`` on dfs-s3's writes, driven by boto3 (default settings) against a live local
cluster on SQLite: PutObject and CompleteMultipartUpload replace only the object with the
given ETag (404 NoSuchKey when the key has none, 412 PreconditionFailed when the ETag is
another, nothing written); of concurrent replaces of one ETag exactly one wins; CopyObject
takes ``If-None-Match: *`` and ``If-Match`` on its target the same way."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.e2e.conftest import Gateway, s3_code
from tests.e2e.test_s3_metadata import racing_puts


def test_put_object_if_match(sqlite_gateway: Gateway) -> None:
    s3 = sqlite_gateway.client()
    s3.create_bucket(Bucket="ifm")
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket="ifm", Key="k", Body=b"first", IfMatch='"0123"')
    assert s3_code(exc) == ("NoSuchKey", 404)
    first = s3.put_object(Bucket="ifm", Key="k", Body=b"first")["ETag"]
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket="ifm", Key="k", Body=b"second", IfMatch='"0123"')
    assert s3_code(exc) == ("PreconditionFailed", 412)
    assert s3.get_object(Bucket="ifm", Key="k")["Body"].read() == b"first"
    second = s3.put_object(Bucket="ifm", Key="k", Body=b"second", IfMatch=first)["ETag"]
    assert s3.get_object(Bucket="ifm", Key="k")["Body"].read() == b"second"
    with pytest.raises(ClientError) as exc:  # the old ETag no longer matches
        s3.put_object(Bucket="ifm", Key="k", Body=b"third", IfMatch=first)
    assert s3_code(exc) == ("PreconditionFailed", 412)
    s3.put_object(Bucket="ifm", Key="k", Body=b"third", IfMatch="*")
    assert s3.head_object(Bucket="ifm", Key="k")["ETag"] not in (first, second)
    s3.delete_object(Bucket="ifm", Key="k")
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket="ifm", Key="k", Body=b"fourth", IfMatch="*")
    assert s3_code(exc) == ("NoSuchKey", 404)


def test_copy_object_conditions_on_its_target(sqlite_gateway: Gateway) -> None:
    s3 = sqlite_gateway.client()
    s3.create_bucket(Bucket="ifm-copy")
    src = s3.put_object(Bucket="ifm-copy", Key="src", Body=b"src")["ETag"]
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket="ifm-copy", Key="dst", CopySource="ifm-copy/src", IfMatch=src)
    assert s3_code(exc) == ("NoSuchKey", 404)
    s3.copy_object(Bucket="ifm-copy", Key="dst", CopySource="ifm-copy/src", IfNoneMatch="*")
    assert s3.get_object(Bucket="ifm-copy", Key="dst")["Body"].read() == b"src"
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket="ifm-copy", Key="dst", CopySource="ifm-copy/src", IfNoneMatch="*")
    assert s3_code(exc) == ("PreconditionFailed", 412)
    old = s3.put_object(Bucket="ifm-copy", Key="dst", Body=b"other")["ETag"]
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket="ifm-copy", Key="dst", CopySource="ifm-copy/src", IfMatch=src)
    assert s3_code(exc) == ("PreconditionFailed", 412)
    assert s3.get_object(Bucket="ifm-copy", Key="dst")["Body"].read() == b"other"
    s3.copy_object(Bucket="ifm-copy", Key="dst", CopySource="ifm-copy/src", IfMatch=old)
    assert s3.get_object(Bucket="ifm-copy", Key="dst")["Body"].read() == b"src"


def test_concurrent_replaces_of_one_etag_exactly_one_wins(sqlite_gateway: Gateway) -> None:
    s3 = sqlite_gateway.client()
    s3.create_bucket(Bucket="ifm-race")
    base = s3.put_object(Bucket="ifm-race", Key="k", Body=b"base")["ETag"]
    got = racing_puts(s3, "ifm-race", IfMatch=base)
    assert got == ["200"] + ["PreconditionFailed"] * 7
    assert s3.head_object(Bucket="ifm-race", Key="k")["ETag"] != base


def test_complete_multipart_upload_if_match(sqlite_gateway: Gateway) -> None:
    s3 = sqlite_gateway.client()
    s3.create_bucket(Bucket="ifm-mpu")
    first = s3.put_object(Bucket="ifm-mpu", Key="k", Body=b"first")["ETag"]

    def complete(if_match: str) -> None:
        up = s3.create_multipart_upload(Bucket="ifm-mpu", Key="k")["UploadId"]
        part = s3.upload_part(Bucket="ifm-mpu", Key="k", UploadId=up, PartNumber=1, Body=b"new")
        parts = {"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}
        try:
            s3.complete_multipart_upload(
                Bucket="ifm-mpu", Key="k", UploadId=up, MultipartUpload=parts, IfMatch=if_match
            )
        except ClientError:
            listed = s3.list_parts(Bucket="ifm-mpu", Key="k", UploadId=up)["Parts"]
            assert [p["PartNumber"] for p in listed] == [1]  # the upload stays open
            s3.abort_multipart_upload(Bucket="ifm-mpu", Key="k", UploadId=up)
            raise

    with pytest.raises(ClientError) as exc:
        complete('"0123"')
    assert s3_code(exc) == ("PreconditionFailed", 412)
    assert s3.get_object(Bucket="ifm-mpu", Key="k")["Body"].read() == b"first"
    complete(first)
    got = s3.get_object(Bucket="ifm-mpu", Key="k")
    assert got["Body"].read() == b"new"
    assert got["ETag"].endswith('-1"')
