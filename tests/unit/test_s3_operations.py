"""The S3 action names the gateway's metrics use: from method, target, query and headers."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request

from dfs.s3.operations import action_of

OBJECT = {"bucket": "b", "key": "k/1"}
BUCKET = {"bucket": "b"}


@pytest.mark.parametrize(
    ("method", "url", "info", "headers", "action"),
    [
        ("GET", "/", {}, {}, "ListBuckets"),
        ("PUT", "/b", BUCKET, {}, "CreateBucket"),
        ("GET", "/b?list-type=2", BUCKET, {}, "ListObjectsV2"),
        ("GET", "/b?marker=x", BUCKET, {}, "ListObjects"),
        ("GET", "/b?location", BUCKET, {}, "GetBucketLocation"),
        ("GET", "/b?uploads", BUCKET, {}, "ListMultipartUploads"),
        ("PUT", "/b?versioning", BUCKET, {}, "PutBucketVersioning"),
        ("POST", "/b?delete", BUCKET, {}, "DeleteObjects"),
        ("HEAD", "/b", BUCKET, {}, "HeadBucket"),
        ("PUT", "/b/k/1", OBJECT, {}, "PutObject"),
        ("PUT", "/b/k/1", OBJECT, {"x-amz-copy-source": "/b/k/0"}, "CopyObject"),
        ("PUT", "/b/k/1?partNumber=1&uploadId=u", OBJECT, {}, "UploadPart"),
        (
            "PUT",
            "/b/k/1?partNumber=1&uploadId=u",
            OBJECT,
            {"x-amz-copy-source": "/b/x"},
            "UploadPartCopy",
        ),
        ("POST", "/b/k/1?uploads", OBJECT, {}, "CreateMultipartUpload"),
        ("POST", "/b/k/1?uploadId=u", OBJECT, {}, "CompleteMultipartUpload"),
        ("DELETE", "/b/k/1?uploadId=u", OBJECT, {}, "AbortMultipartUpload"),
        ("GET", "/b/k/1?uploadId=u", OBJECT, {}, "ListParts"),
        ("GET", "/b/k/1?versionId=v", OBJECT, {}, "GetObject"),
        ("GET", "/b/k/1?X-Amz-Signature=s&x-id=GetObject", OBJECT, {}, "GetObject"),
        ("HEAD", "/b/k/1", OBJECT, {}, "HeadObject"),
        ("PUT", "/b/k/1?tagging", OBJECT, {}, "PutObjectTagging"),
        ("PUT", "/b?tagging", BUCKET, {}, "PutBucketTagging"),
        ("DELETE", "/b?tagging", BUCKET, {}, "DeleteBucketTagging"),
        ("DELETE", "/b/k/1", OBJECT, {}, "DeleteObject"),
        ("OPTIONS", "/b/k/1", OBJECT, {}, "PreflightCors"),
        ("PATCH", "/b/k/1", OBJECT, {}, "Unknown"),
        ("PATCH", "/", {}, {}, "Unknown"),
    ],
)
def test_action_of(
    method: str, url: str, info: dict[str, str], headers: dict[str, str], action: str
) -> None:
    request = make_mocked_request(method, url, headers=headers, match_info=info)
    assert action_of(request) == action
