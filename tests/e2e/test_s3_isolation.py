"""What a narrower credential, or another tenant, may not do or learn (a review's findings).

A presigned URL and a captured signed request do only what their signature covers; a
stranger's conditional copy, versioned read, ACL write or empty listing answers as if the
bucket or key were not there; a read-write grantee writes objects but never makes them
public; only the owner reads a bucket's or object's ACL, and the tenants it is shared with
are the owner's to see. Real processes on loopback: the gateway, boto3 and raw HTTP.
"""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from botocore.auth import S3SigV4QueryAuth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from dfs.localcluster import LocalCluster, http_json
from tests.e2e.conftest import Gateway, s3_code, tenant_key_http

pytestmark = pytest.mark.e2e

SECRET = b"alice's secret\n"


def send(
    method: str, url: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """One raw HTTP request; (status, body), errors included."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


def api(method: str, url: str, token: str, body: dict[str, Any]) -> tuple[int, Any]:
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    status, raw = send(method, url, json.dumps(body).encode(), auth)
    return status, json.loads(raw) if raw else None


@pytest.fixture
def alice_and_bob(sqlite_gateway: Gateway, sqlite_cluster: LocalCluster) -> tuple[Any, Any, str]:
    """The gateway's tenant (alice: a private bucket ``priv`` holding ``secret.txt``, and
    ``shared``, granted read-write to bob) and a second tenant bob's client; bob's token."""
    alice = sqlite_gateway.client(signature_version="s3v4")
    alice.create_bucket(Bucket="priv")
    alice.put_object(Bucket="priv", Key="secret.txt", Body=SECRET)
    alice.create_bucket(Bucket="shared")
    token, made = tenant_key_http(sqlite_cluster, "bob")
    status, _ = api(
        "PATCH",
        f"{sqlite_gateway.api_url}/buckets/shared",
        sqlite_gateway.token,
        {"grants": {"bob": "read-write"}},
    )
    assert status == 200
    bob = sqlite_gateway.client(made["access_key_id"], made["secret_access_key"])
    bob.create_bucket(Bucket="bobs")
    bob.put_object(Bucket="bobs", Key="mine.txt", Body=b"bob's\n")
    return alice, bob, token


def test_a_presigned_put_does_only_what_it_signs(
    sqlite_gateway: Gateway, alice_and_bob: tuple[Any, Any, str]
) -> None:
    alice, _bob, _token = alice_and_bob
    url = alice.generate_presigned_url("put_object", Params={"Bucket": "priv", "Key": "in.bin"})
    # the URL signs host alone: headers that would make it a copy, or public, are refused
    for extra in (
        {"x-amz-copy-source": "priv/secret.txt"},
        {"x-amz-acl": "public-read"},
        {"x-amz-copy-source": "priv/secret.txt", "x-amz-acl": "public-read"},
    ):
        status, body = send("PUT", url, b"", extra)
        assert status == 403, body
        assert b"<Code>AccessDenied</Code>" in body
        assert b"not signed" in body
    with pytest.raises(ClientError) as gone:
        alice.head_object(Bucket="priv", Key="in.bin")
    assert s3_code(gone) == ("404", 404)
    anonymous = send("GET", f"{sqlite_gateway.url}/priv/in.bin")
    assert anonymous[0] == 403
    # what it does sign still works
    assert send("PUT", url, b"the upload\n")[0] == 200
    assert alice.get_object(Bucket="priv", Key="in.bin")["Body"].read() == b"the upload\n"


def test_a_header_signed_request_must_sign_its_payload_hash(
    sqlite_gateway: Gateway, alice_and_bob: tuple[Any, Any, str]
) -> None:
    alice, _bob, _token = alice_and_bob
    # signed over host and x-amz-date and an empty body, x-amz-content-sha256 left out
    req = AWSRequest(method="PUT", url=f"{sqlite_gateway.url}/priv/swapped.txt", data=b"")
    creds = Credentials(sqlite_gateway.key_id, sqlite_gateway.secret)
    SigV4Auth(creds, "s3", "us-east-1").add_auth(req)
    headers = {k: v for k, v in req.prepare().headers.items() if k.lower() != "content-length"}
    assert "x-amz-content-sha256" not in {k.lower() for k in headers}
    headers["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD"  # sent along, not signed
    status, body = send("PUT", f"{sqlite_gateway.url}/priv/swapped.txt", b"other bytes", headers)
    assert status == 403, body
    assert b"x-amz-content-sha256" in body
    with pytest.raises(ClientError):
        alice.head_object(Bucket="priv", Key="swapped.txt")


def test_a_presigned_url_that_signs_a_payload_hash_takes_only_that_body(
    sqlite_gateway: Gateway, alice_and_bob: tuple[Any, Any, str]
) -> None:
    alice, _bob, _token = alice_and_bob
    agreed = b"the body the signer agreed to\n"
    digest = {"x-amz-content-sha256": hashlib.sha256(agreed).hexdigest()}
    url = f"{sqlite_gateway.url}/priv/bound.txt"
    req = AWSRequest(method="PUT", url=url, headers=dict(digest))
    creds = Credentials(sqlite_gateway.key_id, sqlite_gateway.secret)
    S3SigV4QueryAuth(creds, "s3", "us-east-1", expires=300).add_auth(req)
    assert "X-Amz-SignedHeaders=host%3Bx-amz-content-sha256" in req.url
    # the URL's holder sends other bytes with the signed header: was stored as given
    status, body = send("PUT", req.url, b"something else entirely\n", digest)
    assert status == 400, body
    assert b"XAmzContentSHA256Mismatch" in body
    with pytest.raises(ClientError):
        alice.head_object(Bucket="priv", Key="bound.txt")
    status, body = send("PUT", req.url, agreed, digest)
    assert status == 200, body
    assert alice.get_object(Bucket="priv", Key="bound.txt")["Body"].read() == agreed


def _code(call: Any) -> tuple[str, int]:
    with pytest.raises(ClientError) as exc:
        call()
    return s3_code(exc)


def test_a_stranger_learns_nothing_of_keys_it_cannot_see(
    alice_and_bob: tuple[Any, Any, str],
) -> None:
    _alice, bob, _token = alice_and_bob

    def copy(key: str, **cond: str) -> tuple[str, int]:
        src = {"Bucket": "bobs", "Key": "mine.txt"}
        return _code(lambda: bob.copy_object(Bucket="priv", Key=key, CopySource=src, **cond))

    md5 = f'"{hashlib.md5(SECRET).hexdigest()}"'
    # a conditional copy onto another tenant's key: one answer whether it exists or not,
    # and whether the ETag (the MD5 of the bytes) was guessed right or not
    answers = {
        copy("secret.txt"),
        copy("missing.txt"),
        copy("secret.txt", IfNoneMatch="*"),
        copy("missing.txt", IfNoneMatch="*"),
        copy("secret.txt", IfMatch=md5),
        copy("secret.txt", IfMatch='"00"'),
        copy("missing.txt", IfMatch=md5),
    }
    assert answers == {("NoSuchBucket", 404)}
    # a version of a key it may not read: alike for version null (every object of an
    # unversioned bucket has it) and a key that is not there
    gets = {
        _code(lambda k=k: bob.get_object(Bucket="priv", Key=k, VersionId="null"))
        for k in ("secret.txt", "missing.txt")
    }
    assert gets == {("NoSuchKey", 404)}
    heads = {  # a HEAD answer has no body: its status alone
        _code(lambda k=k: bob.head_object(Bucket="priv", Key=k, VersionId="null"))[1]
        for k in ("secret.txt", "missing.txt")
    }
    assert heads == {404}
    # an ACL written with a guess of the owner's id: alike for a right and a wrong guess
    guesses = {
        _code(
            lambda guess=guess: bob.put_object_acl(
                Bucket="priv",
                Key="secret.txt",
                AccessControlPolicy={
                    "Owner": {"ID": guess},
                    "Grants": [
                        {
                            "Grantee": {"Type": "CanonicalUser", "ID": guess},
                            "Permission": "FULL_CONTROL",
                        }
                    ],
                },
            )
        )
        for guess in ("s3o", "zed")
    }
    assert guesses == {("NoSuchBucket", 404)}
    # an empty listing still needs the right to list
    assert _code(lambda: bob.list_objects_v2(Bucket="priv", MaxKeys=0)) == ("NoSuchBucket", 404)


def test_a_read_write_grantee_writes_but_never_publishes(
    sqlite_gateway: Gateway, alice_and_bob: tuple[Any, Any, str]
) -> None:
    alice, bob, bob_token = alice_and_bob
    bob.put_object(Bucket="shared", Key="ok.txt", Body=b"written by bob\n")  # may write
    assert _code(
        lambda: bob.put_object(Bucket="shared", Key="pub.txt", Body=b"x", ACL="public-read")
    ) == ("AccessDenied", 403)
    src = {"Bucket": "shared", "Key": "ok.txt"}
    assert _code(
        lambda: bob.copy_object(Bucket="shared", Key="copy.txt", CopySource=src, ACL="public-read")
    ) == ("AccessDenied", 403)
    status, body = api(
        "PUT",
        f"{sqlite_gateway.api_url}/objects/shared/native.txt",
        bob_token,
        {"access": "public-read"},
    )
    assert status == 403, body
    listed = [o["Key"] for o in alice.list_objects_v2(Bucket="shared").get("Contents", [])]
    assert listed == ["ok.txt"]  # nothing of the refused writes, no copy left behind
    for key in ("ok.txt", "pub.txt", "copy.txt", "native.txt"):
        assert send("GET", f"{sqlite_gateway.url}/shared/{key}")[0] == 403  # anonymous
    # the ACLs, which name whom the bucket and its objects are shared with: the owner's
    assert _code(lambda: bob.get_bucket_acl(Bucket="shared")) == ("AccessDenied", 403)
    assert _code(lambda: bob.get_object_acl(Bucket="shared", Key="ok.txt")) == (
        "AccessDenied",
        403,
    )
    grants = alice.get_bucket_acl(Bucket="shared")["Grants"]
    assert any(g["Grantee"].get("ID") == "bob" for g in grants)


def test_the_tenants_a_bucket_is_shared_with_are_the_owners_to_see(
    sqlite_gateway: Gateway, alice_and_bob: tuple[Any, Any, str]
) -> None:
    alice, _bob, bob_token = alice_and_bob
    owner = sqlite_gateway.token
    base = sqlite_gateway.api_url
    bob_auth = {"Authorization": f"Bearer {bob_token}"}
    alice.put_object(Bucket="shared", Key="f.txt", Body=b"y")
    assert api("PATCH", f"{base}/buckets/shared", owner, {"access": "public-read"})[0] == 200
    status, _ = api("PATCH", f"{base}/object-info/shared/f.txt", owner, {"shared_with": ["bob"]})
    assert status == 200
    for who in (None, bob_token):  # anyone reading the public bucket, and the grantee
        auth = {"Authorization": f"Bearer {who}"} if who else {}
        bucket = json.loads(send("GET", f"{base}/buckets/shared", headers=auth)[1])
        listing = json.loads(send("GET", f"{base}/buckets/shared/objects", headers=auth)[1])
        assert bucket["grants"] == {}
        assert [o["shared_with"] for o in listing["objects"]] == [[]]
    info = json.loads(send("GET", f"{base}/object-info/shared/f.txt", headers=bob_auth)[1])
    assert info["shared_with"] == []
    assert http_json(f"{base}/buckets/shared", owner)["grants"] == {"bob": "read-write"}
    assert http_json(f"{base}/object-info/shared/f.txt", owner)["shared_with"] == ["bob"]


def test_only_the_owner_lists_other_tenants_multipart_uploads(
    sqlite_gateway: Gateway, sqlite_cluster: LocalCluster, alice_and_bob: tuple[Any, Any, str]
) -> None:
    """An upload names its initiator: another tenant's, listed to a reader of the bucket,
    told it which tenants may write the bucket (the owner's to see, as in its ACL)."""
    alice, bob, _token = alice_and_bob
    _, made = tenant_key_http(sqlite_cluster, "carol")
    carol = sqlite_gateway.client(made["access_key_id"], made["secret_access_key"])
    mine = alice.create_multipart_upload(Bucket="shared", Key="a/plan.txt")["UploadId"]
    bobs = bob.create_multipart_upload(Bucket="shared", Key="b/draft.txt")["UploadId"]
    status, _ = api(
        "PATCH",
        f"{sqlite_gateway.api_url}/buckets/shared",
        sqlite_gateway.token,
        {"access": "public-read"},
    )
    assert status == 200

    def listed(s3: Any) -> list[tuple[str, str, str]]:
        ups = s3.list_multipart_uploads(Bucket="shared").get("Uploads", [])
        return [(u["Key"], u["Initiator"]["ID"], u["UploadId"]) for u in ups]

    assert listed(alice) == [("a/plan.txt", "s3o", mine), ("b/draft.txt", "bob", bobs)]
    assert listed(bob) == [("b/draft.txt", "bob", bobs)]  # the read-write grantee: its own
    assert listed(carol) == []  # any tenant may read the public bucket: was both uploads
    # the owner still completes, the grantee still aborts, its own
    bob.abort_multipart_upload(Bucket="shared", Key="b/draft.txt", UploadId=bobs)
    alice.abort_multipart_upload(Bucket="shared", Key="a/plan.txt", UploadId=mine)
    assert listed(alice) == []


def test_expected_bucket_owners_are_checked(
    sqlite_gateway: Gateway, sqlite_cluster: LocalCluster, alice_and_bob: tuple[Any, Any, str]
) -> None:
    """``ExpectedBucketOwner`` and ``ExpectedSourceBucketOwner`` (bucket names are global:
    another tenant's bucket of the name expected may be shared with the caller): AccessDenied
    to a caller who may list the bucket; to a stranger, alike for a right and a wrong guess."""
    alice, bob, _token = alice_and_bob
    bob.create_bucket(Bucket="lookalike")
    policy = {
        "Owner": {"ID": "bob"},
        "Grants": [
            {"Grantee": {"Type": "CanonicalUser", "ID": "s3o"}, "Permission": p}
            for p in ("READ", "WRITE")
        ],
    }
    bob.put_bucket_acl(Bucket="lookalike", AccessControlPolicy=policy)
    bob.put_object(Bucket="lookalike", Key="open.txt", Body=b"public\n", ACL="public-read")
    # alice's write meant for a bucket of her own: was stored in bob's
    put = {"Bucket": "lookalike", "Key": "payroll.csv", "Body": b"salaries\n"}
    assert _code(lambda: alice.put_object(**put, ExpectedBucketOwner="s3o")) == (
        "AccessDenied",
        403,
    )
    assert _code(lambda: bob.head_object(Bucket="lookalike", Key="payroll.csv"))[1] == 404
    mpu = alice.create_multipart_upload(Bucket="lookalike", Key="big")["UploadId"]
    part = {"Bucket": "lookalike", "Key": "big", "UploadId": mpu, "PartNumber": 1, "Body": b"x"}
    assert _code(lambda: alice.upload_part(**part, ExpectedBucketOwner="s3o"))[0] == "AccessDenied"
    alice.put_object(**put, ExpectedBucketOwner="bob")  # the right owner: written
    src = {"Bucket": "lookalike", "Key": "payroll.csv"}
    copy = {"Bucket": "priv", "Key": "copied.csv", "CopySource": src}
    assert _code(lambda: alice.copy_object(**copy, ExpectedSourceBucketOwner="s3o"))[0] == (
        "AccessDenied"
    )
    alice.copy_object(**copy, ExpectedSourceBucketOwner="bob", ExpectedBucketOwner="s3o")
    # a stranger to the bucket: the object's own public access reads it with the right
    # owner only, and a wrong guess answers as the unreadable object does
    _, made = tenant_key_http(sqlite_cluster, "carol")
    carol = sqlite_gateway.client(made["access_key_id"], made["secret_access_key"])
    get = {"Bucket": "lookalike", "Key": "open.txt"}
    assert carol.get_object(**get, ExpectedBucketOwner="bob")["Body"].read() == b"public\n"
    assert _code(lambda: carol.get_object(**get, ExpectedBucketOwner="zed")) == ("NoSuchKey", 404)
    private = {"Bucket": "lookalike", "Key": "payroll.csv"}
    assert {
        _code(lambda o=owner: carol.get_object(**private, ExpectedBucketOwner=o))
        for owner in ("bob", "zed")
    } == {("NoSuchKey", 404)}
    url = f"{sqlite_gateway.url}/lookalike/open.txt"
    assert send("GET", url, headers={"x-amz-expected-bucket-owner": "bob"})[0] == 200
    assert send("GET", url, headers={"x-amz-expected-bucket-owner": "zed"})[0] == 403
