"""dfs-s3's object metadata and writes, driven by boto3 (default settings, path-style,
us-east-1) against a live local cluster with the gateway as its own process: the standard
headers S3 keeps (Cache-Control, Content-Disposition, Content-Encoding, Content-Language,
Expires) on PutObject, CreateMultipartUpload and CopyObject; no dfs header on an S3 GET;
``response-*`` overrides (signed, presigned fetched with plain HTTP, refused anonymously);
CopyObject's metadata and tagging directives; atomic ``If-None-Match: *`` on PutObject and
CompleteMultipartUpload; small (XML) bodies checked against the signed hash. The main case
runs on SQLite and DynamoDB (moto), the rest on SQLite."""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import google_crc32c
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.e2e.conftest import Gateway, s3_code
from tests.e2e.test_s3_ops import anonymous

STORED = {
    "CacheControl": "max-age=3600, public",
    "ContentDisposition": 'attachment; filename="report.pdf"',
    "ContentEncoding": "gzip",
    "ContentLanguage": "fr-CA",
}
EXPIRES = "Wed, 01 Dec 2094 16:00:00 GMT"
DFS_ONLY = ("x-dfs-sha256",)


def http_headers(answer: dict[str, Any]) -> dict[str, str]:
    headers: dict[str, str] = answer["ResponseMetadata"]["HTTPHeaders"]
    return headers


def stored_of(answer: dict[str, Any]) -> dict[str, str]:
    got = {k: answer[k] for k in STORED if k in answer}
    if "expires" in http_headers(answer):
        got["Expires"] = http_headers(answer)["expires"]
    return got


def file_id(gw: Gateway, bucket: str, key: str) -> str:
    """The stored file the key's version links, as the native API tells it."""
    req = urllib.request.Request(
        f"{gw.api_url}/object-info/{bucket}/{key}",
        headers={"Authorization": f"Bearer {gw.token}"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return str(json.loads(resp.read())["file_id"])


def test_stored_headers_copy_directives_and_conditional_create(gateway: Gateway) -> None:
    s3 = gateway.client()
    s3.create_bucket(Bucket="meta")
    s3.put_object(
        Bucket="meta",
        Key="k",
        Body=b"data",
        ContentType="text/plain",
        Metadata={"a": "1"},
        Tagging="t=1",
        Expires=EXPIRES,
        **STORED,
    )
    want = {**STORED, "Expires": EXPIRES}
    got = s3.get_object(Bucket="meta", Key="k")
    assert got["Body"].read() == b"data"  # as sent: a stored Content-Encoding decodes nothing
    for answer in (s3.head_object(Bucket="meta", Key="k"), got):
        assert stored_of(answer) == want
        assert answer["ContentType"] == "text/plain"
        assert not set(DFS_ONLY) & set(http_headers(answer))
    plain = s3.put_object(Bucket="meta", Key="plain", Body=b"p")
    got = s3.get_object(Bucket="meta", Key="plain")
    assert got["Body"].read() == b"p"
    assert stored_of(got) == {}  # no Content-Disposition: attachment of dfs's own
    assert not set(DFS_ONLY) & set(http_headers(got))

    # COPY (the default) keeps everything; REPLACE takes the request's
    s3.copy_object(Bucket="meta", Key="same", CopySource={"Bucket": "meta", "Key": "k"})
    same = s3.head_object(Bucket="meta", Key="same")
    assert (stored_of(same), same["Metadata"], same["ContentType"]) == (
        want,
        {"a": "1"},
        "text/plain",
    )
    assert s3.get_object_tagging(Bucket="meta", Key="same")["TagSet"] == [
        {"Key": "t", "Value": "1"}
    ]
    s3.copy_object(
        Bucket="meta",
        Key="new-meta",
        CopySource={"Bucket": "meta", "Key": "k"},
        MetadataDirective="REPLACE",
        ContentType="application/json",
        Metadata={"b": "2"},
        ContentLanguage="de",
    )
    new = s3.head_object(Bucket="meta", Key="new-meta")
    assert (new["ContentType"], new["Metadata"]) == ("application/json", {"b": "2"})
    assert stored_of(new) == {"ContentLanguage": "de"}
    tags = s3.get_object_tagging(Bucket="meta", Key="new-meta")["TagSet"]
    assert tags == [{"Key": "t", "Value": "1"}]  # the tagging directive is COPY
    s3.copy_object(
        Bucket="meta",
        Key="new-tags",
        CopySource={"Bucket": "meta", "Key": "k"},
        TaggingDirective="REPLACE",
        Tagging="x=y",
    )
    assert s3.head_object(Bucket="meta", Key="new-tags")["Metadata"] == {"a": "1"}
    tags = s3.get_object_tagging(Bucket="meta", Key="new-tags")["TagSet"]
    assert tags == [{"Key": "x", "Value": "y"}]

    # onto itself: refused unless something is replaced; then metadata only
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket="meta", Key="k", CopySource={"Bucket": "meta", "Key": "k"})
    assert s3_code(exc) == ("InvalidRequest", 400)
    before = file_id(gateway, "meta", "k")
    etag = s3.head_object(Bucket="meta", Key="k")["ETag"]
    s3.copy_object(
        Bucket="meta",
        Key="k",
        CopySource={"Bucket": "meta", "Key": "k"},
        MetadataDirective="REPLACE",
        Metadata={"c": "3"},
        CacheControl="no-store",
    )
    head = s3.head_object(Bucket="meta", Key="k")
    assert (head["Metadata"], stored_of(head), head["ETag"]) == (
        {"c": "3"},
        {"CacheControl": "no-store"},
        etag,
    )
    assert file_id(gateway, "meta", "k") == before  # no byte moved: the same stored file
    assert s3.get_object(Bucket="meta", Key="k")["Body"].read() == b"data"

    # If-None-Match: * creates only a new key
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket="meta", Key="plain", Body=b"again", IfNoneMatch="*")
    assert s3_code(exc) == ("PreconditionFailed", 412)
    assert s3.head_object(Bucket="meta", Key="plain")["ETag"] == plain["ETag"]
    s3.put_object(Bucket="meta", Key="fresh", Body=b"first", IfNoneMatch="*")
    assert s3.get_object(Bucket="meta", Key="fresh")["Body"].read() == b"first"

    # bounds: a clear 400, nothing written
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket="meta", Key="big", Body=b"x", ContentDisposition="a" * 3000)
    assert s3_code(exc) == ("MetadataTooLarge", 400)
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket="meta", Key="big")
    assert s3_code(exc)[1] == 404


def racing_puts(s3: Any, bucket: str, **condition: str) -> list[str]:
    """Eight PutObjects of ``bucket/k`` at once with ``condition``: their answers, sorted
    ("200", or the error code)."""

    def put(i: int) -> str:
        body = os.urandom(1000) + bytes([i])
        try:
            s3.put_object(Bucket=bucket, Key="k", Body=body, **condition)
        except ClientError as exc:
            return str(exc.response["Error"]["Code"])
        return "200"

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        return sorted(pool.map(put, range(8)))


def test_concurrent_conditional_creates_exactly_one_wins(sqlite_gateway: Gateway) -> None:
    s3 = sqlite_gateway.client()
    s3.create_bucket(Bucket="race")
    got = racing_puts(s3, "race", IfNoneMatch="*")
    assert got == ["200"] + ["PreconditionFailed"] * 7
    versions = s3.list_object_versions(Bucket="race").get("Versions", [])
    assert len(versions) == 1


def test_response_overrides(sqlite_gateway: Gateway) -> None:
    gw = sqlite_gateway
    s3 = gw.client()
    s3.create_bucket(Bucket="ovr")
    s3.put_object(Bucket="ovr", Key="doc.txt", Body=b"hello", CacheControl="no-cache")
    got = s3.get_object(
        Bucket="ovr",
        Key="doc.txt",
        ResponseContentDisposition='attachment; filename="x.txt"',
        ResponseContentType="text/csv",
        ResponseContentLanguage="en",
        ResponseCacheControl="max-age=5",
        ResponseContentEncoding="identity",
        ResponseExpires=EXPIRES,
    )
    assert got["Body"].read() == b"hello"
    assert stored_of(got) == {
        "ContentDisposition": 'attachment; filename="x.txt"',
        "ContentLanguage": "en",
        "CacheControl": "max-age=5",
        "ContentEncoding": "identity",
        "Expires": EXPIRES,
    }
    assert got["ContentType"] == "text/csv"
    head = s3.head_object(Bucket="ovr", Key="doc.txt", ResponseContentType="text/x")
    assert (head["ContentType"], head["CacheControl"]) == ("text/x", "no-cache")

    v4 = gw.client(signature_version="s3v4")
    url = v4.generate_presigned_url(
        "get_object",
        Params={"Bucket": "ovr", "Key": "doc.txt", "ResponseContentDisposition": "inline"},
    )
    with urllib.request.urlopen(url, timeout=30) as resp:
        assert resp.read() == b"hello"
        assert resp.headers["Content-Disposition"] == "inline"
        assert resp.headers["Cache-Control"] == "no-cache"

    s3.put_object_acl(Bucket="ovr", Key="doc.txt", ACL="public-read")
    anon = anonymous(gw)
    assert anon.get_object(Bucket="ovr", Key="doc.txt")["Body"].read() == b"hello"
    with pytest.raises(ClientError) as exc:
        anon.get_object(Bucket="ovr", Key="doc.txt", ResponseContentDisposition="inline")
    assert s3_code(exc) == ("InvalidRequest", 400)
    with pytest.raises(urllib.error.HTTPError) as http:  # plain HTTP, no signature at all
        urllib.request.urlopen(f"{gw.url}/ovr/doc.txt?response-content-type=text/html", timeout=30)
    http.value.close()
    assert http.value.code == 400


def test_multipart_headers_conditional_complete_and_download(
    sqlite_gateway: Gateway, tmp_path: Path
) -> None:
    s3 = sqlite_gateway.client()
    s3.create_bucket(Bucket="mpu")
    data = os.urandom(11 * 1024 * 1024 + 5)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    small = TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20)
    extra = {"CacheControl": "max-age=9", "ContentDisposition": "inline", "Metadata": {"m": "v"}}
    s3.upload_file(str(src), "mpu", "big.bin", ExtraArgs=extra, Config=small)
    head = s3.head_object(Bucket="mpu", Key="big.bin")
    assert head["ETag"].endswith('-3"')  # a multipart object
    assert (head["CacheControl"], head["ContentDisposition"], head["Metadata"]) == (
        "max-age=9",
        "inline",
        {"m": "v"},
    )
    out = tmp_path / "out.bin"
    s3.download_file("mpu", "big.bin", str(out), Config=small)  # ranged GETs with If-Match
    assert out.read_bytes() == data
    out.unlink()
    s3.download_file("mpu", "big.bin", str(out))  # boto3's defaults
    assert out.read_bytes() == data

    # CompleteMultipartUpload with If-None-Match: * on a taken key: 412, the upload stays
    up = s3.create_multipart_upload(Bucket="mpu", Key="big.bin")["UploadId"]
    part = s3.upload_part(Bucket="mpu", Key="big.bin", UploadId=up, PartNumber=1, Body=b"small")
    parts = {"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket="mpu", Key="big.bin", UploadId=up, MultipartUpload=parts, IfNoneMatch="*"
        )
    assert s3_code(exc) == ("PreconditionFailed", 412)
    assert s3.head_object(Bucket="mpu", Key="big.bin")["ETag"] == head["ETag"]
    assert [
        p["PartNumber"] for p in s3.list_parts(Bucket="mpu", Key="big.bin", UploadId=up)["Parts"]
    ] == [1]
    s3.abort_multipart_upload(Bucket="mpu", Key="big.bin", UploadId=up)
    up = s3.create_multipart_upload(Bucket="mpu", Key="fresh", ContentLanguage="nl")["UploadId"]
    part = s3.upload_part(Bucket="mpu", Key="fresh", UploadId=up, PartNumber=1, Body=b"small")
    parts = {"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}
    s3.complete_multipart_upload(
        Bucket="mpu", Key="fresh", UploadId=up, MultipartUpload=parts, IfNoneMatch="*"
    )
    got = s3.get_object(Bucket="mpu", Key="fresh")
    assert (got["Body"].read(), got["ContentLanguage"]) == (b"small", "nl")


def test_small_bodies_are_checked_against_the_signed_hash(sqlite_gateway: Gateway) -> None:
    """An XML body (here PutObjectTagging's) changed after signing is refused, and the
    change does not happen: every body goes through ``dfs.s3.bodies``' checks."""
    gw = sqlite_gateway
    s3 = gw.client()
    s3.create_bucket(Bucket="signed")
    s3.put_object(Bucket="signed", Key="k", Body=b"x", Tagging="a=1")
    tagging = "<Tagging><TagSet><Tag><Key>a</Key><Value>{}</Value></Tag></TagSet></Tagging>"
    signed, sent = tagging.format("2").encode(), tagging.format("3").encode()
    request = AWSRequest("PUT", f"{gw.url}/signed/k?tagging", data=signed)
    S3SigV4Auth(Credentials(gw.key_id, gw.secret), "s3", "us-east-1").add_auth(request)
    forged = urllib.request.Request(
        f"{gw.url}/signed/k?tagging", data=sent, headers=dict(request.headers), method="PUT"
    )
    with pytest.raises(urllib.error.HTTPError) as http:
        urllib.request.urlopen(forged, timeout=30)
    body = http.value.read()
    http.value.close()
    assert http.value.code == 400
    assert b"XAmzContentSHA256Mismatch" in body
    assert s3.get_object_tagging(Bucket="signed", Key="k")["TagSet"] == [{"Key": "a", "Value": "1"}]
    honest = urllib.request.Request(
        f"{gw.url}/signed/k?tagging", data=signed, headers=dict(request.headers), method="PUT"
    )
    with urllib.request.urlopen(honest, timeout=30) as resp:
        assert resp.status == 200
    assert s3.get_object_tagging(Bucket="signed", Key="k")["TagSet"] == [{"Key": "a", "Value": "2"}]


def test_small_bodies_are_checked_against_their_declared_checksums(
    sqlite_gateway: Gateway,
) -> None:
    """An XML body's ``x-amz-checksum-*`` of any algorithm is verified (only CRC32 was): a
    body sent with its payload unsigned and another body's checksum is ``BadDigest``."""
    gw = sqlite_gateway
    s3 = gw.client()
    s3.create_bucket(Bucket="summed")
    s3.put_object(Bucket="summed", Key="k", Body=b"x", Tagging="a=1")
    tagging = "<Tagging><TagSet><Tag><Key>a</Key><Value>{}</Value></Tag></TagSet></Tagging>"
    meant, sent = tagging.format("2").encode(), tagging.format("3").encode()
    url = f"{gw.url}/summed/k?tagging"
    sums = {
        "sha256": base64.b64encode(hashlib.sha256(meant).digest()).decode(),
        "sha1": base64.b64encode(hashlib.sha1(meant).digest()).decode(),
        "crc32c": base64.b64encode(google_crc32c.value(meant).to_bytes(4, "big")).decode(),
    }
    for algorithm, value in sums.items():
        headers = {"x-amz-content-sha256": "UNSIGNED-PAYLOAD", f"x-amz-checksum-{algorithm}": value}
        request = AWSRequest("PUT", url, data=sent, headers=headers)
        S3SigV4Auth(Credentials(gw.key_id, gw.secret), "s3", "us-east-1").add_auth(request)
        forged = urllib.request.Request(url, data=sent, headers=dict(request.headers), method="PUT")
        with pytest.raises(urllib.error.HTTPError) as http:
            urllib.request.urlopen(forged, timeout=30)
        body = http.value.read()
        http.value.close()
        assert (http.value.code, b"BadDigest" in body) == (400, True), (algorithm, body)
    assert s3.get_object_tagging(Bucket="summed", Key="k")["TagSet"] == [{"Key": "a", "Value": "1"}]
    for algorithm in ("SHA256", "SHA1"):  # boto3's own checksums of the body: accepted
        tags = {"TagSet": [{"Key": "a", "Value": algorithm}]}
        s3.put_object_tagging(Bucket="summed", Key="k", Tagging=tags, ChecksumAlgorithm=algorithm)
        assert s3.get_object_tagging(Bucket="summed", Key="k")["TagSet"] == tags["TagSet"]
