"""An S3 object's file and the tenant's native files stay apart (both metadata backends):
deleting an object releases (deletes) its file, so no native upload is ever answered with an
object's file, and no object is ever made of a native file found by content. Before, a
native ``POST /upload`` of an object's bytes answered 409 with the object's file id, and a
PutObject (or ``/upload?bucket=&key=``) of a native file's bytes linked that file: either
way the DeleteObject deleted the file the native user held."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

import pytest

from dfs import protocol
from dfs.api.multipart import MIN_PART_BYTES
from dfs.localcluster import http_json
from tests.e2e.conftest import Gateway

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
