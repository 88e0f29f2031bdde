"""GetObject and HeadObject ``?partNumber`` of an empty last part (S3 lets the last part of a
multipart upload be empty), through dfs-s3 with boto3: no byte of the object, not all of
them. A Range built from the part's edges (``bytes=S-(S-1)``) is invalid, and GET used to
ignore it and stream the whole object with 200."""

from __future__ import annotations

import os

import pytest

from tests.e2e.conftest import Gateway

pytestmark = pytest.mark.e2e

MIB = 1024 * 1024


def test_an_empty_last_part_answers_no_bytes(sqlite_gateway: Gateway) -> None:
    s3 = sqlite_gateway.client()
    s3.create_bucket(Bucket="tail")
    first = os.urandom(5 * MIB)
    uid = s3.create_multipart_upload(Bucket="tail", Key="k")["UploadId"]
    etags = [
        s3.upload_part(Bucket="tail", Key="k", UploadId=uid, PartNumber=n, Body=b)["ETag"]
        for n, b in ((1, first), (2, b""))
    ]
    parts = [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, start=1)]
    s3.complete_multipart_upload(
        Bucket="tail", Key="k", UploadId=uid, MultipartUpload={"Parts": parts}
    )

    got = s3.get_object(Bucket="tail", Key="k", PartNumber=2)
    assert got["Body"].read() == b""
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert (got["ContentLength"], got["PartsCount"]) == (0, 2)
    assert "ContentRange" not in got  # no byte range names zero bytes

    head = s3.head_object(Bucket="tail", Key="k", PartNumber=2)
    assert head["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert (head["ContentLength"], head["PartsCount"]) == (0, 2)
    assert "ContentRange" not in head

    # the part before it, and the whole object, are untouched by the empty one
    got = s3.get_object(Bucket="tail", Key="k", PartNumber=1)
    assert got["Body"].read() == first
    assert got["ContentRange"] == f"bytes 0-{5 * MIB - 1}/{5 * MIB}"
    assert s3.get_object(Bucket="tail", Key="k")["Body"].read() == first
