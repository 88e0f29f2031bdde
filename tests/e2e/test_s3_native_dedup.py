"""An S3 object's file and the tenant's native files stay apart (both metadata backends):
deleting an object releases (deletes) its file, so no native upload is ever answered with an
object's file, and no object is ever made of a native file found by content. Before, a
native ``POST /upload`` of an object's bytes answered 409 with the object's file id, and a
PutObject (or ``/upload?bucket=&key=``) of a native file's bytes linked that file: either
way the DeleteObject deleted the file the native user held."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from dfs import protocol
from dfs.api.multipart import MIN_PART_BYTES
from dfs.client import Client
from dfs.client.namespace import NamespaceMethods
from dfs.localcluster import LocalCluster, http_json
from tests.e2e.conftest import Gateway, tenant_key_http

pytestmark = pytest.mark.e2e


def native_upload(gw: Gateway, data: bytes, query: str = "") -> tuple[int, dict[str, object]]:
    """``POST /upload`` of ``data``: the status and the answer (409 names the file kept)."""
    url = f"{gw.api_url}{protocol.UPLOAD_FILE}?filename=n.bin{query}"
    req = urllib.request.Request(url, data=data)
    req.add_header("Authorization", f"Bearer {gw.token}")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def native_bytes(gw: Gateway, file_id: str) -> bytes:
    url = http_json(f"{gw.api_url}/download/{file_id}", gw.token)["download_url"]
    with urllib.request.urlopen(url, timeout=60) as resp:
        return bytes(resp.read())


def test_an_objects_delete_leaves_the_native_files_of_its_bytes(gateway: Gateway) -> None:
    s3 = gateway.client()
    s3.create_bucket(Bucket="dedup")
    # an object first, then a native upload of its bytes: a file of its own
    first = os.urandom(300_000)
    s3.put_object(Bucket="dedup", Key="first", Body=first)
    status, got = native_upload(gateway, first)
    assert status == 201, got
    after_object = str(got["file_id"])
    # a native file first, then objects of its bytes (PutObject; /upload with a key)
    second = os.urandom(300_000)
    status, got = native_upload(gateway, second)
    assert status == 201, got
    before_object = str(got["file_id"])
    s3.put_object(Bucket="dedup", Key="second", Body=second)
    status, got = native_upload(gateway, second, "&bucket=dedup&key=third")
    assert status == 201, got
    assert got["file_id"] != before_object
    for key in ("first", "second", "third"):
        s3.delete_object(Bucket="dedup", Key=key)
    assert native_bytes(gateway, after_object) == first
    assert native_bytes(gateway, before_object) == second
    s3.delete_bucket(Bucket="dedup")


def test_a_multipart_objects_delete_leaves_the_native_file_of_its_bytes(gateway: Gateway) -> None:
    """CompleteMultipartUpload assembles a file of its own too (it linked the tenant's file
    of the same bytes before)."""
    s3 = gateway.client()
    s3.create_bucket(Bucket="dedup-mpu")
    parts = [os.urandom(MIN_PART_BYTES), os.urandom(1000)]
    status, got = native_upload(gateway, b"".join(parts))
    assert status == 201, got
    native = str(got["file_id"])
    uid = s3.create_multipart_upload(Bucket="dedup-mpu", Key="k")["UploadId"]
    done = [
        {
            "PartNumber": n,
            "ETag": s3.upload_part(
                Bucket="dedup-mpu", Key="k", UploadId=uid, PartNumber=n, Body=body
            )["ETag"],
        }
        for n, body in enumerate(parts, 1)
    ]
    s3.complete_multipart_upload(
        Bucket="dedup-mpu", Key="k", UploadId=uid, MultipartUpload={"Parts": done}
    )
    assert s3.get_object(Bucket="dedup-mpu", Key="k")["Body"].read() == b"".join(parts)
    s3.delete_object(Bucket="dedup-mpu", Key="k")
    assert native_bytes(gateway, native) == b"".join(parts)
    s3.delete_bucket(Bucket="dedup-mpu")


def api(gw: Gateway, method: str, path: str, token: str, body: object = None) -> tuple[int, Any]:
    """One API call as the console makes it: the status and the decoded JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{gw.api_url}{path}", data=data, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def object_bytes(gw: Gateway, path: str, token: str) -> bytes:
    req = urllib.request.Request(f"{gw.api_url}/objects/{path}")
    req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=60) as resp:
        return bytes(resp.read())


def test_an_object_made_by_content_gets_a_file_of_its_own(
    gateway: Gateway, cluster: LocalCluster
) -> None:
    """``PUT /objects`` with ``sha256`` (the console's "already stored"): the object gets a
    file record of its own with the stored file's chunks, so deleting it deletes neither the
    native file found by content nor another object's; bytes the tenant does not store are
    404 ``content_not_stored``, another tenant's included."""
    gateway.client().create_bucket(Bucket="known")
    data = os.urandom(300_000)
    sha = hashlib.sha256(data).hexdigest()
    status, got = native_upload(gateway, data)
    assert status == 201, got
    native = str(got["file_id"])
    made = []
    for key in ("a", "b"):  # b's bytes are found in a native file and in a's object
        status, got = api(gateway, "PUT", f"/objects/known/{key}", gateway.token, {"sha256": sha})
        assert status == 201, got
        made.append(got["object"]["file_id"])
    assert len({native, *made}) == 3
    assert object_bytes(gateway, "known/b", gateway.token) == data
    assert api(gateway, "DELETE", "/objects/known/a", gateway.token)[0] == 200
    assert object_bytes(gateway, "known/b", gateway.token) == data
    assert api(gateway, "DELETE", "/objects/known/b", gateway.token)[0] == 200
    assert native_bytes(gateway, native) == data
    status, got = api(gateway, "PUT", "/objects/known/c", gateway.token, {"sha256": "ab" * 32})
    assert (status, got["error"]["code"]) == (404, "content_not_stored")
    both = {"sha256": sha, "file_id": native}
    assert api(gateway, "PUT", "/objects/known/c", gateway.token, both)[0] == 400
    proof_alone = {"manifest_sha256": sha}  # not an empty object: a 400
    assert api(gateway, "PUT", "/objects/known/c", gateway.token, proof_alone)[0] == 400
    other, _key = tenant_key_http(cluster, "known-other")
    assert api(gateway, "POST", "/buckets", other, {"name": "known-other"})[0] == 201
    status, got = api(gateway, "PUT", "/objects/known-other/x", other, {"sha256": sha})
    assert (status, got["error"]["code"]) == (404, "content_not_stored")  # not its bytes


def test_a_grantees_object_by_content_leaves_the_grantees_file(
    gateway: Gateway, cluster: LocalCluster
) -> None:
    """A read-write grantee's ``PUT /objects`` by content: the object's file is a new file
    of the bucket owner's; the grantee's own file of those bytes outlives the object."""
    gateway.client().create_bucket(Bucket="granted")
    grantee, _key = tenant_key_http(cluster, "known-grantee")
    grants = {"grants": {"known-grantee": "read-write"}}
    assert api(gateway, "PATCH", "/buckets/granted", gateway.token, grants)[0] == 200
    data = os.urandom(200_000)
    mine = Gateway(gateway.url, gateway.api_url, grantee, "", "")
    status, got = native_upload(mine, data)
    assert status == 201, got
    theirs = str(got["file_id"])
    body = {"sha256": hashlib.sha256(data).hexdigest()}
    status, got = api(gateway, "PUT", "/objects/granted/g", grantee, body)
    assert status == 201, got
    assert got["object"]["file_id"] != theirs
    assert object_bytes(gateway, "granted/g", gateway.token) == data
    assert api(gateway, "DELETE", "/objects/granted/g", gateway.token)[0] == 200
    assert native_bytes(mine, theirs) == data


async def test_a_synced_file_is_no_dedup_answer_before_its_link(
    gateway: Gateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``dfs-client sync`` uploads its files, then links them: a native upload of the same
    bytes made just before the link (the hook below opens that window every time) gets a file
    of its own, which the object's delete leaves whole. A small file goes in a batch
    (``/init-uploads``, ``/finalize-uploads``), a big one alone (``/init-upload``)."""
    s3 = gateway.client()
    s3.create_bucket(Bucket="dedup-sync")
    files = {"small.bin": os.urandom(50_000), "big.bin": os.urandom(9 << 20)}
    src = tmp_path / "src"
    src.mkdir()
    for name, data in files.items():
        (src / name).write_bytes(data)
    natives: dict[str, tuple[int, dict[str, object]]] = {}
    linked: dict[str, str] = {}
    real_link_many = NamespaceMethods.link_many

    async def link_after_native_uploads(
        self: NamespaceMethods, bucket: str, entries: Sequence[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        for e in entries:
            key = str(e["key"])
            natives[key] = await asyncio.to_thread(native_upload, gateway, files[key])
            linked[key] = str(e["file_id"])
        return await real_link_many(self, bucket, entries)

    monkeypatch.setattr(NamespaceMethods, "link_many", link_after_native_uploads)
    async with Client(gateway.api_url, token=gateway.token, resume=False) as cl:
        report = await cl.upload_to([src / "small.bin", src / "big.bin"], "dedup-sync")
    assert sorted(o["key"] for o in report.done) == sorted(files)
    for key, data in files.items():
        status, got = natives[key]
        assert status == 201, got  # not answered (409) with the object's file
        assert got["file_id"] != linked[key]
        s3.delete_object(Bucket="dedup-sync", Key=key)
        assert native_bytes(gateway, str(got["file_id"])) == data
    s3.delete_bucket(Bucket="dedup-sync")


def test_a_grantees_put_and_multipart_leave_no_file_of_the_grantee(
    gateway: Gateway, cluster: LocalCluster
) -> None:
    """A read-write grantee's PutObject and CompleteMultipartUpload store the body in the
    grantee's tenant, then link a clone of the owner's: the grantee's file is released
    once the clone is linked (it was left behind, its chunks held forever)."""
    gateway.client().create_bucket(Bucket="granted-put")
    grantee, key = tenant_key_http(cluster, "put-grantee")
    grants = {"grants": {"put-grantee": "read-write"}}
    assert api(gateway, "PATCH", "/buckets/granted-put", gateway.token, grants)[0] == 200
    s3 = gateway.client(key["access_key_id"], key["secret_access_key"])
    data = os.urandom(300_000)
    s3.put_object(Bucket="granted-put", Key="p", Body=data)
    parts = [os.urandom(MIN_PART_BYTES), os.urandom(1000)]
    up = s3.create_multipart_upload(Bucket="granted-put", Key="m")["UploadId"]
    done = [
        {
            "PartNumber": n,
            "ETag": s3.upload_part(
                Bucket="granted-put", Key="m", UploadId=up, PartNumber=n, Body=body
            )["ETag"],
        }
        for n, body in enumerate(parts, start=1)
    ]
    s3.complete_multipart_upload(
        Bucket="granted-put", Key="m", UploadId=up, MultipartUpload={"Parts": done}
    )
    assert object_bytes(gateway, "granted-put/p", gateway.token) == data
    assert object_bytes(gateway, "granted-put/m", gateway.token) == b"".join(parts)
    status, listed = api(gateway, "GET", "/files", grantee)
    assert status == 200, listed
    assert listed["files"] == []  # the grantee holds no file of either object
