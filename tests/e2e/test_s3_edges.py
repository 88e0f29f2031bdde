"""Edges of dfs-s3's object calls against a live local cluster on SQLite, driven by boto3 as
AWS documents the calls: HeadObject with a ``Range`` (only the length changes: 206, or 416
for a range no byte of the object is in), and keys holding a line break (valid S3 keys, and
valid namespace keys, which every object call must reach)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.e2e.conftest import Gateway, s3_code


def test_head_object_with_a_range(sqlite_gateway: Gateway) -> None:
    s3 = sqlite_gateway.client()
    s3.create_bucket(Bucket="head-range")
    etag = s3.put_object(Bucket="head-range", Key="k", Body=b"0123456789")["ETag"]
    s3.put_object(Bucket="head-range", Key="empty", Body=b"")
    head = s3.head_object(Bucket="head-range", Key="k", Range="bytes=2-4")
    assert head["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert (head["ContentLength"], head["ContentRange"], head["ETag"]) == (3, "bytes 2-4/10", etag)
    head = s3.head_object(Bucket="head-range", Key="k", Range="bytes=-3")
    assert (head["ContentLength"], head["ContentRange"]) == (3, "bytes 7-9/10")
    head = s3.head_object(Bucket="head-range", Key="k", Range="bytes=5-100")
    assert (head["ContentLength"], head["ContentRange"]) == (5, "bytes 5-9/10")
    for key, rng in (("k", "bytes=10-"), ("empty", "bytes=0-")):
        with pytest.raises(ClientError) as exc:
            s3.head_object(Bucket="head-range", Key=key, Range=rng)
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 416
    # a Range that is no byte range is ignored, as on GetObject: the whole object
    head = s3.head_object(Bucket="head-range", Key="k", Range="lines=1-2")
    assert head["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert head["ContentLength"] == 10
    assert "ContentRange" not in head
    # on an empty object too: a byte range 416 (above), anything else the empty body
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket="head-range", Key="empty", Range="bytes=0-")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 416
    got = s3.get_object(Bucket="head-range", Key="empty", Range="lines=1-2")
    assert (got["ResponseMetadata"]["HTTPStatusCode"], got["Body"].read()) == (200, b"")


@pytest.mark.parametrize("key", ["line\nbreak", "cr\r\nlf", "\n"])
def test_a_key_with_a_line_break(sqlite_gateway: Gateway, key: str) -> None:
    s3 = sqlite_gateway.client()
    s3.create_bucket(Bucket="line-breaks")
    s3.put_object(Bucket="line-breaks", Key=key, Body=b"body")
    assert s3.get_object(Bucket="line-breaks", Key=key)["Body"].read() == b"body"
    assert s3.head_object(Bucket="line-breaks", Key=key)["ContentLength"] == 4
    listed = s3.list_objects_v2(Bucket="line-breaks")["Contents"]
    assert [o["Key"] for o in listed] == [key]
    copy = key + "copy"
    s3.copy_object(Bucket="line-breaks", Key=copy, CopySource={"Bucket": "line-breaks", "Key": key})
    assert s3.get_object(Bucket="line-breaks", Key=copy)["Body"].read() == b"body"
    up = s3.create_multipart_upload(Bucket="line-breaks", Key=copy)["UploadId"]
    part = s3.upload_part(Bucket="line-breaks", Key=copy, UploadId=up, PartNumber=1, Body=b"mp")
    parts = {"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}
    s3.complete_multipart_upload(Bucket="line-breaks", Key=copy, UploadId=up, MultipartUpload=parts)
    assert s3.get_object(Bucket="line-breaks", Key=copy)["Body"].read() == b"mp"
    for k in (key, copy):
        s3.delete_object(Bucket="line-breaks", Key=k)
        with pytest.raises(ClientError) as exc:
            s3.head_object(Bucket="line-breaks", Key=k)
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket="line-breaks", Key=key)
    assert s3_code(exc) == ("NoSuchKey", 404)  # S3's error document, not aiohttp's page
