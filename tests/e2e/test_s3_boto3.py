"""dfs-s3 against real S3 clients: boto3 (default settings, path-style, us-east-1) and the
AWS CLI (pinned, from scripts/ci-tools.sh), on a live local cluster (API + 3 nodes on SQLite)
with the gateway as its own process."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from dfs.localcluster import wait_for
from dfs.s3.sigv4 import KEY_CACHE_SECONDS
from tests.e2e.conftest import Gateway, aws_cli, aws_env, run_cli, s3_code


def test_boto3_round_trip(gateway: Gateway) -> None:
    s3 = gateway.client()
    s3.create_bucket(Bucket="photos")
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["photos"]
    s3.head_bucket(Bucket="photos")
    big = os.urandom(3 * 1024 * 1024 + 17)
    bodies = {
        "a/one.bin": big,
        "a/two.txt": b"hello s3",
        "b/empty": b"",
        "c/sp ace+plus%25&é.txt": b"odd key",
        "top": b"x" * 1000,
    }
    for key, body in bodies.items():
        put = s3.put_object(Bucket="photos", Key=key, Body=body)
        assert put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    for key, body in bodies.items():
        got = s3.get_object(Bucket="photos", Key=key)
        assert got["Body"].read() == body
        assert got["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
        assert s3.head_object(Bucket="photos", Key=key)["ContentLength"] == len(body)
    part = s3.get_object(Bucket="photos", Key="a/one.bin", Range="bytes=1000000-2100000")
    assert part["Body"].read() == big[1000000:2100001]
    assert part["ResponseMetadata"]["HTTPStatusCode"] == 206

    listed = s3.list_objects_v2(Bucket="photos", Delimiter="/")
    assert [c["Prefix"] for c in listed["CommonPrefixes"]] == ["a/", "b/", "c/"]
    assert [o["Key"] for o in listed["Contents"]] == ["top"]
    keys, token = [], None
    while True:
        page = s3.list_objects_v2(
            Bucket="photos", MaxKeys=2, **({"ContinuationToken": token} if token else {})
        )
        keys += [o["Key"] for o in page.get("Contents", [])]
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    assert keys == sorted(bodies)
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="photos", Prefix="a/")["Contents"]] == [
        "a/one.bin",
        "a/two.txt",
    ]

    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket="photos")
    assert s3_code(exc) == ("BucketNotEmpty", 409)
    s3.delete_object(Bucket="photos", Key="a/two.txt")
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket="photos", Key="a/two.txt")
    assert s3_code(exc) == ("NoSuchKey", 404)
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket="nobucket", Key="k")
    assert s3_code(exc) == ("NoSuchBucket", 404)
    for key in bodies:
        s3.delete_object(Bucket="photos", Key=key)
    s3.delete_bucket(Bucket="photos")
    assert s3.list_buckets()["Buckets"] == []


def test_refusals_and_unimplemented(gateway: Gateway) -> None:
    s3 = gateway.client()
    s3.create_bucket(Bucket="docs")
    s3.put_object(Bucket="docs", Key="k", Body=b"data")
    wrong = gateway.client(secret="x" * 40)
    with pytest.raises(ClientError) as exc:
        wrong.get_object(Bucket="docs", Key="k")
    assert s3_code(exc) == ("SignatureDoesNotMatch", 403)
    # versioning, DeleteObjects and tagging work now (tests/e2e/test_s3_ops.py); these do not
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_lifecycle_configuration(Bucket="docs")
    assert s3_code(exc) == ("NotImplemented", 501)
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_policy(Bucket="docs")
    assert s3_code(exc) == ("NotImplemented", 501)
    with pytest.raises(ClientError) as exc:
        s3.put_object_retention(
            Bucket="docs",
            Key="k",
            Retention={"Mode": "GOVERNANCE", "RetainUntilDate": "2030-01-01"},
        )
    assert s3_code(exc) == ("NotImplemented", 501)
    # CopyObject is metadata only: the copy links the same stored file
    copied = s3.copy_object(Bucket="docs", Key="k2", CopySource={"Bucket": "docs", "Key": "k"})
    assert copied["CopyObjectResult"]["ETag"] == f'"{hashlib.md5(b"data").hexdigest()}"'
    assert s3.get_object(Bucket="docs", Key="k2")["Body"].read() == b"data"
    s3.copy_object(  # REPLACE: the copy's metadata is the request's (tests/e2e/test_s3_metadata.py)
        Bucket="docs",
        Key="k3",
        CopySource={"Bucket": "docs", "Key": "k"},
        MetadataDirective="REPLACE",
        Metadata={"m": "1"},
    )
    assert s3.head_object(Bucket="docs", Key="k3")["Metadata"] == {"m": "1"}

    # boto3 presigns with signature version 2 unless told s3v4: v2 is not implemented
    v2 = s3.generate_presigned_url("get_object", Params={"Bucket": "docs", "Key": "k"})
    with pytest.raises(urllib.error.HTTPError) as http:
        urllib.request.urlopen(v2, timeout=30)
    http.value.close()
    assert http.value.code == 501
    v4 = gateway.client(signature_version="s3v4")
    url = v4.generate_presigned_url("get_object", Params={"Bucket": "docs", "Key": "k"})
    with urllib.request.urlopen(url, timeout=30) as resp:
        assert resp.read() == b"data"
    expired = v4.generate_presigned_url(
        "get_object", Params={"Bucket": "docs", "Key": "k"}, ExpiresIn=1
    )
    time.sleep(2)
    with pytest.raises(urllib.error.HTTPError) as http:
        urllib.request.urlopen(expired, timeout=30)
    http.value.close()
    assert http.value.code == 403

    run_cli("keys", "revoke", gateway.api_url, gateway.key_id, env={"DFS_TOKEN": gateway.token})
    revoked_at = time.monotonic()
    listed = run_cli("keys", "ls", "--json", gateway.api_url, env={"DFS_TOKEN": gateway.token})
    assert json.loads(listed.stdout)["access_keys"] == []
    refused: list[tuple[str, int]] = []

    def refused_now() -> bool:  # the gateway may serve the key it cached for a few seconds
        try:
            s3.get_object(Bucket="docs", Key="k")
        except ClientError as exc:
            refused.append(
                (exc.response["Error"]["Code"], exc.response["ResponseMetadata"]["HTTPStatusCode"])
            )
            return True
        return False

    wait_for(refused_now, KEY_CACHE_SECONDS + 10, "the gateway to refuse the revoked key", 0.5)
    assert refused == [("InvalidAccessKeyId", 403)]
    assert time.monotonic() - revoked_at < KEY_CACHE_SECONDS + 10


def test_settings_the_namespace_cannot_keep_are_refused(sqlite_gateway: Gateway) -> None:
    """501 rather than a success that drops what was asked: a copy's ACL grants (the copy
    was private), a bucket's object lock (its objects deletable at once) and an object
    ownership that is not dfs's (the bucket's owner owns every object, ACLs apply)."""
    s3 = sqlite_gateway.client()
    s3.create_bucket(Bucket="docs")
    s3.put_object(Bucket="docs", Key="k", Body=b"data")
    src = {"Bucket": "docs", "Key": "k"}
    for grant in ({"GrantRead": "id=bob"}, {"GrantFullControl": "id=bob"}):
        with pytest.raises(ClientError) as exc:
            s3.copy_object(Bucket="docs", Key="copy", CopySource=src, **grant)
        assert s3_code(exc) == ("NotImplemented", 501)
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket="docs", Key="copy")
    assert s3_code(exc)[1] == 404
    for setting in (
        {"ObjectLockEnabledForBucket": True},
        {"ObjectOwnership": "BucketOwnerEnforced"},
        {"ObjectOwnership": "ObjectWriter"},
    ):
        with pytest.raises(ClientError) as exc:
            s3.create_bucket(Bucket="settings", **setting)
        assert s3_code(exc) == ("NotImplemented", 501)
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["docs"]
    s3.create_bucket(Bucket="settings", ObjectLockEnabledForBucket=False)
    s3.create_bucket(Bucket="owned", ObjectOwnership="BucketOwnerPreferred")


def test_aws_cli_cp_round_trip(gateway: Gateway, tmp_path: Path) -> None:
    gateway.client().create_bucket(Bucket="cli")
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(2 * 1024 * 1024 + 5))
    env = aws_env(gateway, tmp_path)
    base = [aws_cli(), "--endpoint-url", gateway.url, "s3"]
    steps = [
        ["cp", str(src), "s3://cli/dir/src.bin"],
        ["cp", "s3://cli/dir/src.bin", str(tmp_path / "back.bin")],
        ["ls", "s3://cli/dir/"],
        ["rm", "s3://cli/dir/src.bin"],
        ["ls", "s3://cli/"],
    ]
    outputs = []
    for args in steps:
        proc = subprocess.run(base + args, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        outputs.append(proc.stdout)
    assert "src.bin" in outputs[2]
    assert outputs[4].strip() == ""
    assert (tmp_path / "back.bin").read_bytes() == src.read_bytes()
