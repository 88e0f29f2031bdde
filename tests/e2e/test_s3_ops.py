"""dfs-s3's operations beyond the first slice, driven by boto3 (default settings, path-style,
us-east-1) against a live local cluster with the gateway as its own process: versioning and
ListObjectVersions, tagging, DeleteObjects, ListObjects v1, conditional requests, checksums,
ACLs and anonymous reads. The main cases run on SQLite and on DynamoDB (moto's server), the
rest on SQLite."""

from __future__ import annotations

import base64
import hashlib
import os
import time
import urllib.error
import urllib.request
from email.utils import formatdate
from pathlib import Path
from typing import Any

import boto3
import google_crc32c
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.e2e.conftest import Gateway, s3_code


def anonymous(gw: Gateway) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=gw.url,
        region_name="us-east-1",
        config=Config(signature_version=UNSIGNED, s3={"addressing_style": "path"}),
    )


def md5(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


def test_versioning_and_object_versions(gateway: Gateway) -> None:
    s3 = gateway.client()
    s3.create_bucket(Bucket="vers")
    assert "Status" not in s3.get_bucket_versioning(Bucket="vers")
    s3.put_bucket_versioning(Bucket="vers", VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket="vers")["Status"] == "Enabled"
    v1 = s3.put_object(Bucket="vers", Key="k", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket="vers", Key="k", Body=b"two!")["VersionId"]
    assert v1 != v2
    assert s3.get_object(Bucket="vers", Key="k", VersionId=v1)["Body"].read() == b"one"
    got = s3.get_object(Bucket="vers", Key="k")
    assert (got["Body"].read(), got["VersionId"]) == (b"two!", v2)
    assert s3.head_object(Bucket="vers", Key="k", VersionId=v1)["ContentLength"] == 3
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket="vers", Key="k", VersionId="nosuchversion")
    assert s3_code(exc)[1] in (400, 404)

    gone = s3.delete_object(Bucket="vers", Key="k")
    assert gone["DeleteMarker"] is True
    marker = gone["VersionId"]
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket="vers", Key="k")
    assert s3_code(exc) == ("NoSuchKey", 404)
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket="vers", Key="k", VersionId=marker)
    assert s3_code(exc)[1] == 405
    for i in range(3):
        s3.put_object(Bucket="vers", Key=f"d/{i}", Body=b"x")
    listed = s3.list_object_versions(Bucket="vers")
    assert [(v["Key"], v["VersionId"], v["IsLatest"]) for v in listed["Versions"]][-2:] == [
        ("k", v2, False),
        ("k", v1, False),
    ]
    assert [(m["Key"], m["VersionId"], m["IsLatest"]) for m in listed["DeleteMarkers"]] == [
        ("k", marker, True)
    ]
    pages = s3.get_paginator("list_object_versions").paginate(
        Bucket="vers", PaginationConfig={"PageSize": 1}
    )
    seen = [
        (e["Key"], e["VersionId"])
        for p in pages
        for e in p.get("Versions", []) + p.get("DeleteMarkers", [])
    ]
    assert len(seen) == 6
    assert len(set(seen)) == 6
    assert ("k", marker) in seen
    assert ("k", v1) in seen
    grouped = s3.list_object_versions(Bucket="vers", Delimiter="/")
    assert [c["Prefix"] for c in grouped["CommonPrefixes"]] == ["d/"]
    after = s3.list_object_versions(Bucket="vers", KeyMarker="d/2")
    assert {v["Key"] for v in after["Versions"]} == {"k"}

    s3.delete_object(Bucket="vers", Key="k", VersionId=marker)  # the marker goes: v2 is back
    assert s3.get_object(Bucket="vers", Key="k")["Body"].read() == b"two!"
    copied = s3.copy_object(
        Bucket="vers", Key="old", CopySource={"Bucket": "vers", "Key": "k", "VersionId": v1}
    )
    assert copied["CopySourceVersionId"] == v1
    assert s3.get_object(Bucket="vers", Key="old")["Body"].read() == b"one"
    s3.delete_object(Bucket="vers", Key="k", VersionId=v1)
    keys = [v["VersionId"] for v in s3.list_object_versions(Bucket="vers", Prefix="k")["Versions"]]
    assert keys == [v2]

    s3.put_bucket_versioning(Bucket="vers", VersioningConfiguration={"Status": "Suspended"})
    assert s3.get_bucket_versioning(Bucket="vers")["Status"] == "Suspended"
    assert s3.put_object(Bucket="vers", Key="k", Body=b"three")["VersionId"] == "null"


def test_tagging_delete_objects_and_list_v1(gateway: Gateway) -> None:
    s3 = gateway.client()
    s3.create_bucket(Bucket="tags")
    s3.put_object(Bucket="tags", Key="t", Body=b"tagged", Tagging="a=1&b=two%20words")
    tags = s3.get_object_tagging(Bucket="tags", Key="t")["TagSet"]
    assert tags == [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "two words"}]
    assert s3.get_object(Bucket="tags", Key="t")["TagCount"] == 2
    s3.put_object_tagging(Bucket="tags", Key="t", Tagging={"TagSet": [{"Key": "c", "Value": "3"}]})
    assert s3.get_object_tagging(Bucket="tags", Key="t")["TagSet"] == [{"Key": "c", "Value": "3"}]
    s3.delete_object_tagging(Bucket="tags", Key="t")
    assert s3.get_object_tagging(Bucket="tags", Key="t")["TagSet"] == []
    too_many = [{"Key": f"k{i}", "Value": "v"} for i in range(11)]
    for bad in (too_many, [{"Key": "k" * 129, "Value": "v"}], [{"Key": "k", "Value": "v" * 257}]):
        with pytest.raises(ClientError) as exc:
            s3.put_object_tagging(Bucket="tags", Key="t", Tagging={"TagSet": bad})
        assert s3_code(exc) == ("InvalidTag", 400)
    with pytest.raises(ClientError) as exc:
        s3.get_object_tagging(Bucket="tags", Key="missing")
    assert s3_code(exc) == ("NoSuchKey", 404)

    keys = ["a/1", "a/2", "b/1", "c", "d e+f"]
    for key in keys:
        s3.put_object(Bucket="tags", Key=key, Body=key.encode())
    listed = s3.list_objects(Bucket="tags", Delimiter="/", MaxKeys=2)
    assert [p["Prefix"] for p in listed["CommonPrefixes"]] == ["a/", "b/"]
    assert listed["IsTruncated"]
    assert listed["NextMarker"] == "b/"
    rest = s3.list_objects(Bucket="tags", Delimiter="/", Marker=listed["NextMarker"])
    assert [o["Key"] for o in rest["Contents"]] == ["c", "d e+f", "t"]
    assert not rest["IsTruncated"]
    pages = s3.get_paginator("list_objects").paginate(
        Bucket="tags", PaginationConfig={"PageSize": 2}
    )
    assert [o["Key"] for p in pages for o in p["Contents"]] == sorted([*keys, "t"])
    assert [o["Key"] for o in s3.list_objects(Bucket="tags", Marker="b/1")["Contents"]] == [
        "c",
        "d e+f",
        "t",
    ]
    v2 = s3.list_objects_v2(Bucket="tags", StartAfter="c")
    assert [o["Key"] for o in v2["Contents"]] == ["d e+f", "t"]

    deleted = s3.delete_objects(
        Bucket="tags",
        Delete={"Objects": [{"Key": "a/1"}, {"Key": "a/2"}, {"Key": "nothing-here"}]},
    )
    assert sorted(d["Key"] for d in deleted["Deleted"]) == ["a/1", "a/2", "nothing-here"]
    quiet = s3.delete_objects(Bucket="tags", Delete={"Objects": [{"Key": "c"}], "Quiet": True})
    assert "Deleted" not in quiet
    assert "Errors" not in quiet
    left = [o["Key"] for o in s3.list_objects(Bucket="tags")["Contents"]]
    assert left == ["b/1", "d e+f", "t"]
    with pytest.raises(ClientError) as exc:
        s3.delete_objects(
            Bucket="tags", Delete={"Objects": [{"Key": f"k{i}"} for i in range(1001)]}
        )
    assert s3_code(exc) == ("MalformedXML", 400)


def test_conditional_requests_and_checksums(sqlite_gateway: Gateway, tmp_path: Path) -> None:
    s3 = sqlite_gateway.client()
    s3.create_bucket(Bucket="cond")
    # boto3's download_file sends If-Match with the ranged GETs of an object above 8 MiB
    large = os.urandom(9 * 1024 * 1024 + 3)
    s3.put_object(Bucket="cond", Key="large", Body=large)
    s3.download_file("cond", "large", str(tmp_path / "large"))
    assert (tmp_path / "large").read_bytes() == large
    etag = s3.put_object(Bucket="cond", Key="k", Body=b"body")["ETag"]
    assert s3.get_object(Bucket="cond", Key="k", IfMatch=etag)["Body"].read() == b"body"
    past = formatdate(time.time() - 3600, usegmt=True)
    future = formatdate(time.time() + 3600, usegmt=True)
    for kw, want in [
        ({"IfMatch": '"0000"'}, "412"),
        ({"IfUnmodifiedSince": past}, "412"),
        ({"IfNoneMatch": etag}, "304"),
        ({"IfModifiedSince": formatdate(time.time(), usegmt=True)}, "304"),
    ]:
        for call in (s3.get_object, s3.head_object):
            with pytest.raises(ClientError) as exc:
                call(Bucket="cond", Key="k", **kw)
            assert str(exc.value.response["ResponseMetadata"]["HTTPStatusCode"]) == want, kw
    assert s3.head_object(Bucket="cond", Key="k", IfModifiedSince=past)["ETag"] == etag
    # a date past the server's clock is invalid (RFC 7232 3.3): S3 answers the object
    assert s3.get_object(Bucket="cond", Key="k", IfModifiedSince=future)["Body"].read() == b"body"
    src = {"Bucket": "cond", "Key": "k"}
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket="cond", Key="c1", CopySource=src, CopySourceIfMatch='"0000"')
    assert s3_code(exc) == ("PreconditionFailed", 412)
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket="cond", Key="c1", CopySource=src, CopySourceIfNoneMatch=etag)
    assert s3_code(exc) == ("PreconditionFailed", 412)
    s3.copy_object(Bucket="cond", Key="c1", CopySource=src, CopySourceIfMatch=etag)
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket="cond", Key="k", Body=b"again", IfNoneMatch="*")
    assert s3_code(exc) == ("PreconditionFailed", 412)
    s3.put_object(Bucket="cond", Key="new", Body=b"first", IfNoneMatch="*")
    assert s3.get_object(Bucket="cond", Key="k")["Body"].read() == b"body"

    data = os.urandom(300_000)
    crc32c = base64.b64encode(google_crc32c.value(data).to_bytes(4, "big")).decode()
    for algorithm in ("CRC32", "CRC32C", "SHA1", "SHA256"):
        # botocore computes CRC32C only with awscrt installed: then the value is given
        how = {"ChecksumCRC32C": crc32c} if algorithm == "CRC32C" else {}
        put = s3.put_object(
            Bucket="cond",
            Key=f"sum/{algorithm}",
            Body=data,
            **(how or {"ChecksumAlgorithm": algorithm}),
        )
        if algorithm == "CRC32C":
            assert put["ChecksumCRC32C"] == crc32c
        head = s3.head_object(Bucket="cond", Key=f"sum/{algorithm}", ChecksumMode="ENABLED")
        assert head[f"Checksum{algorithm}"] == put[f"Checksum{algorithm}"]
        got = s3.get_object(Bucket="cond", Key=f"sum/{algorithm}", ChecksumMode="ENABLED")
        assert got["Body"].read() == data
        assert got[f"Checksum{algorithm}"] == put[f"Checksum{algorithm}"]
        assert f"Checksum{algorithm}" not in s3.head_object(Bucket="cond", Key=f"sum/{algorithm}")
    sha = base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert (
        s3.head_object(Bucket="cond", Key="sum/SHA256", ChecksumMode="ENABLED")["ChecksumSHA256"]
        == sha
    )
    wrong = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket="cond", Key="bad", Body=data, ChecksumSHA256=wrong)
    assert s3_code(exc) == ("BadDigest", 400)
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket="cond", Key="bad")
    assert s3_code(exc)[1] == 404
    meta = s3.head_object(Bucket="cond", Key="sum/SHA256")["Metadata"]
    assert meta == {}  # the kept checksum is not user metadata


def test_acls_anonymous_reads_and_unimplemented(gateway: Gateway) -> None:
    s3, anon = gateway.client(), anonymous(gateway)
    s3.create_bucket(Bucket="acl-b")
    s3.put_object(Bucket="acl-b", Key="k", Body=b"public soon")
    owner = s3.get_bucket_acl(Bucket="acl-b")
    assert [g["Permission"] for g in owner["Grants"]] == ["FULL_CONTROL"]
    with pytest.raises(ClientError) as exc:
        anon.get_object(Bucket="acl-b", Key="k")
    assert s3_code(exc) == ("AccessDenied", 403)
    s3.put_object_acl(Bucket="acl-b", Key="k", ACL="public-read")
    grants = s3.get_object_acl(Bucket="acl-b", Key="k")["Grants"]
    assert {"Type": "Group", "URI": "http://acs.amazonaws.com/groups/global/AllUsers"} in [
        g["Grantee"] for g in grants
    ]
    assert anon.get_object(Bucket="acl-b", Key="k")["Body"].read() == b"public soon"
    s3.put_object(Bucket="acl-b", Key="private", Body=b"p")
    with pytest.raises(ClientError) as exc:
        anon.head_object(Bucket="acl-b", Key="private")
    assert s3_code(exc)[1] == 403
    s3.put_bucket_acl(Bucket="acl-b", ACL="public-read")
    assert anon.get_object(Bucket="acl-b", Key="private")["Body"].read() == b"p"
    with pytest.raises(ClientError) as exc:
        anon.get_object(Bucket="acl-b", Key="missing")
    assert s3_code(exc) == ("NoSuchKey", 404)
    for call in (
        lambda: anon.put_object(Bucket="acl-b", Key="x", Body=b"no"),
        lambda: anon.list_objects_v2(Bucket="acl-b"),
        lambda: anon.delete_object(Bucket="acl-b", Key="k"),
        lambda: anon.list_buckets(),
    ):
        with pytest.raises(ClientError) as exc:
            call()
        assert s3_code(exc) == ("AccessDenied", 403)
    s3.put_bucket_acl(Bucket="acl-b", ACL="private")
    s3.put_object_acl(Bucket="acl-b", Key="k", ACL="private")
    with pytest.raises(ClientError) as exc:
        anon.get_object(Bucket="acl-b", Key="private")
    assert s3_code(exc) == ("AccessDenied", 403)
    s3.create_bucket(Bucket="born-public", ACL="public-read")
    s3.put_object(Bucket="born-public", Key="k", Body=b"open")
    assert anon.get_object(Bucket="born-public", Key="k")["Body"].read() == b"open"

    for call in (
        lambda: s3.put_bucket_acl(Bucket="acl-b", ACL="public-read-write"),
        lambda: s3.put_object(Bucket="acl-b", Key="k", Body=b"x", ACL="authenticated-read"),
        lambda: s3.put_bucket_acl(
            Bucket="acl-b", GrantFullControl="emailaddress=someone@example.com"
        ),
        lambda: s3.get_bucket_lifecycle_configuration(Bucket="acl-b"),
        lambda: s3.put_object(Bucket="acl-b", Key="k", Body=b"x", ServerSideEncryption="AES256"),
        lambda: s3.put_object(Bucket="acl-b", Key="k", Body=b"x", WebsiteRedirectLocation="/a"),
        lambda: s3.put_object(Bucket="acl-b", Key="k", Body=b"x", StorageClass="GLACIER"),
        lambda: s3.put_object(Bucket="acl-b", Key="k", Body=b"x", IfMatch='"0", "1"'),
    ):
        with pytest.raises(ClientError) as exc:
            call()
        assert s3_code(exc) == ("NotImplemented", 501)
    assert md5(b"public soon") == s3.head_object(Bucket="acl-b", Key="k")["ETag"]


def test_copy_object_with_a_canned_acl(gateway: Gateway) -> None:
    """CopyObject's ``x-amz-acl`` is the copy's access from its one write (a copy takes no
    ACL of its source: without one it is private, as S3 makes it)."""
    s3, anon = gateway.client(), anonymous(gateway)
    s3.create_bucket(Bucket="acl-copy")
    s3.put_bucket_versioning(Bucket="acl-copy", VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket="acl-copy", Key="src", Body=b"copied bytes", ACL="public-read")
    src = {"Bucket": "acl-copy", "Key": "src"}
    s3.copy_object(Bucket="acl-copy", Key="open", CopySource=src, ACL="public-read")
    s3.copy_object(Bucket="acl-copy", Key="closed", CopySource=src)
    assert anon.get_object(Bucket="acl-copy", Key="open")["Body"].read() == b"copied bytes"
    with pytest.raises(ClientError) as exc:
        anon.get_object(Bucket="acl-copy", Key="closed")
    assert s3_code(exc) == ("AccessDenied", 403)
    versions = s3.list_object_versions(Bucket="acl-copy", Prefix="open")["Versions"]
    assert len(versions) == 1  # one write made it, public from the start


def _preflight(url: str, headers: dict[str, str]) -> tuple[int, Any]:
    req = urllib.request.Request(url, method="OPTIONS", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers
    except urllib.error.HTTPError as err:
        err.close()
        return err.code, err.headers


def test_bucket_cors_and_preflight(gateway: Gateway) -> None:
    s3 = gateway.client()
    s3.create_bucket(Bucket="web")
    s3.put_object(Bucket="web", Key="page.txt", Body=b"hi")
    url = f"{gateway.url}/web/page.txt"
    asks = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "PUT"}
    assert _preflight(url, asks)[0] == 403  # no rules yet
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_cors(Bucket="web")
    assert s3_code(exc) == ("NoSuchCORSConfiguration", 404)
    rules = [
        {
            "AllowedOrigins": ["https://*.example.com"],
            "AllowedMethods": ["GET", "PUT"],
            "AllowedHeaders": ["content-type", "x-amz-*"],
            "ExposeHeaders": ["ETag"],
            "MaxAgeSeconds": 600,
        },
        {"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]},
    ]
    s3.put_bucket_cors(Bucket="web", CORSConfiguration={"CORSRules": rules})
    got = s3.get_bucket_cors(Bucket="web")["CORSRules"]
    assert got[0]["AllowedOrigins"] == ["https://*.example.com"]
    assert got[0]["MaxAgeSeconds"] == 600
    status, headers = _preflight(
        url, {**asks, "Access-Control-Request-Headers": "Content-Type, X-Amz-Date"}
    )
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert headers["Access-Control-Allow-Methods"] == "GET, PUT"
    assert headers["Access-Control-Max-Age"] == "600"
    denied = {**asks, "Access-Control-Request-Headers": "X-Other"}
    assert _preflight(url, denied)[0] == 403
    status, headers = _preflight(
        url, {"Origin": "https://else.org", "Access-Control-Request-Method": "GET"}
    )
    assert (status, headers["Access-Control-Allow-Origin"]) == (200, "*")
    assert (
        _preflight(url, {"Origin": "https://else.org", "Access-Control-Request-Method": "PUT"})[0]
        == 403
    )
    s3.delete_bucket_cors(Bucket="web")
    assert _preflight(url, asks)[0] == 403


def test_delete_objects_of_many_keys_answers_in_order(gateway: Gateway) -> None:
    """DeleteObjects deletes its keys many at once and answers each in the request's
    order; a request naming a key twice runs in its order (in a suspended bucket, a delete
    then a removal of the null version leave the key nothing)."""
    s3 = gateway.client()
    s3.create_bucket(Bucket="many")
    s3.put_bucket_versioning(Bucket="many", VersioningConfiguration={"Status": "Enabled"})
    keys = [f"k/{i:03d}" for i in range(300)]
    for key in keys[:200]:
        s3.put_object(Bucket="many", Key=key, Body=key.encode())
    too_long = "x" * 1100  # no key: refused alone, among the others
    asked = [{"Key": k} for k in keys[:150]] + [{"Key": too_long}]
    asked += [{"Key": k} for k in keys[150:]]
    answer = s3.delete_objects(Bucket="many", Delete={"Objects": asked})
    assert [d["Key"] for d in answer["Deleted"]] == keys
    assert all(d.get("DeleteMarker") for d in answer["Deleted"])  # S3: a key not there too
    assert [(e["Key"], e["Code"]) for e in answer["Errors"]] == [(too_long, "InvalidArgument")]
    assert "Contents" not in s3.list_objects_v2(Bucket="many")
    markers = s3.list_object_versions(Bucket="many")["DeleteMarkers"]
    assert sorted(m["Key"] for m in markers) == keys

    s3.create_bucket(Bucket="twice")
    s3.put_bucket_versioning(Bucket="twice", VersioningConfiguration={"Status": "Suspended"})
    s3.put_object(Bucket="twice", Key="k", Body=b"the null version")
    both = [{"Key": "k"}, {"Key": "k", "VersionId": "null"}]
    s3.delete_objects(Bucket="twice", Delete={"Objects": both})
    got = s3.list_object_versions(Bucket="twice")
    assert (got.get("Versions"), got.get("DeleteMarkers")) == (None, None)
