"""S3 multipart uploads through dfs-s3, with real processes: boto3's ``upload_file`` (default
TransferConfig: 8 MiB parts above 8 MiB) on SQLite and on DynamoDB (moto), the calls one by
one with S3's errors, UploadPartCopy, dedup of a multipart object like a single PUT, and the
collection of abandoned uploads."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import subprocess
import time
import urllib.request
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from botocore.exceptions import ClientError

from dfs.localcluster import http_json
from tests.e2e.conftest import (
    Gateway,
    aws_cli,
    aws_env,
    run_cli,
    s3_code,
    started_cluster,
    started_gateway,
)

MIB = 1024 * 1024


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _multipart_etag(parts: list[bytes]) -> str:
    joined = b"".join(hashlib.md5(p).digest() for p in parts)
    return f'"{hashlib.md5(joined).hexdigest()}-{len(parts)}"'


def _object_file(gw: Gateway, bucket: str, key: str) -> str:
    info = http_json(f"{gw.api_url}/object-info/{bucket}/{quote(key)}", gw.token)
    return str(info["file_id"])


def _object_chunks(gw: Gateway, bucket: str, key: str) -> list[str]:
    file_id = _object_file(gw, bucket, key)
    plan = http_json(f"{gw.api_url}/download-plan?file_id={file_id}", gw.token)
    return [c["sha256"] for c in plan["chunks"]]


def test_upload_file_with_boto3_defaults(gateway: Gateway, tmp_path: Path) -> None:
    s3 = gateway.client()
    s3.create_bucket(Bucket="big")
    data = random.Random(7).randbytes(20 * MIB + 12345)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    extra = {"ContentType": "application/x-test", "Metadata": {"color": "blue"}}
    s3.upload_file(str(src), "big", "dir/file.bin", ExtraArgs=extra)
    head = s3.head_object(Bucket="big", Key="dir/file.bin")
    parts = [data[i : i + 8 * MIB] for i in range(0, len(data), 8 * MIB)]
    assert head["ETag"] == _multipart_etag(parts)
    assert head["ContentLength"] == len(data)
    assert head["ContentType"] == "application/x-test"
    assert head["Metadata"] == {"color": "blue"}
    assert s3.get_object(Bucket="big", Key="dir/file.bin")["Body"].read() == data
    # (download_file sends If-Match with its ranged GETs: conditional requests are not
    # served yet, so the ranges are asked here directly)
    got = s3.get_object(
        Bucket="big", Key="dir/file.bin", Range=f"bytes={8 * MIB - 5}-{8 * MIB + 4}"
    )
    assert got["Body"].read() == data[8 * MIB - 5 : 8 * MIB + 5]
    assert s3.list_multipart_uploads(Bucket="big").get("Uploads", []) == []
    # the parts' files are gone: the tenant holds the object's file only
    files = http_json(f"{gateway.api_url}/files?limit=1000", gateway.token)["files"]
    assert [f["name"] for f in files] == ["file.bin"]
    # its whole-file SHA-256 (the native client checks it), kept as the parts arrived
    assert files[0]["sha256"] == hashlib.sha256(data).hexdigest()
    # and its part edges spliced as the parts arrived: Complete read no chunk back
    assert "parts arrived, spliced ahead" in gateway.log.read_text()


def _start(s3: Any, bucket: str, key: str) -> str:
    return str(s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"])


def test_calls_errors_and_part_copy(sqlite_gateway: Gateway) -> None:
    s3 = sqlite_gateway.client()
    s3.create_bucket(Bucket="mpu")
    rnd = random.Random(1)
    p1, p1b, p2, p3 = (rnd.randbytes(n) for n in (5 * MIB, 5 * MIB + 1, 5 * MIB + 7, 1000))
    uid = _start(s3, "mpu", "obj")
    e1 = s3.upload_part(Bucket="mpu", Key="obj", UploadId=uid, PartNumber=1, Body=p1)["ETag"]
    e3 = s3.upload_part(Bucket="mpu", Key="obj", UploadId=uid, PartNumber=3, Body=p3)["ETag"]
    # a part sent again replaces the first one
    e1b = s3.upload_part(Bucket="mpu", Key="obj", UploadId=uid, PartNumber=1, Body=p1b)["ETag"]
    assert (e1, e1b, e3) == tuple(f'"{_md5(p)}"' for p in (p1, p1b, p3))
    e2 = s3.upload_part(Bucket="mpu", Key="obj", UploadId=uid, PartNumber=2, Body=p2)["ETag"]
    listed = s3.list_parts(Bucket="mpu", Key="obj", UploadId=uid)
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed["Parts"]] == [
        (1, e1b, len(p1b)),
        (2, e2, len(p2)),
        (3, e3, len(p3)),
    ]
    page = s3.list_parts(Bucket="mpu", Key="obj", UploadId=uid, MaxParts=2)
    assert page["IsTruncated"]
    assert page["NextPartNumberMarker"] == 2
    rest = s3.list_parts(Bucket="mpu", Key="obj", UploadId=uid, PartNumberMarker=2)
    assert [p["PartNumber"] for p in rest["Parts"]] == [3]
    # a page size over S3's 1000 is taken as 1000, as S3 takes it (not refused)
    many = s3.list_parts(Bucket="mpu", Key="obj", UploadId=uid, MaxParts=5000)
    assert (many["MaxParts"], len(many["Parts"])) == (1000, 3)
    assert s3.list_multipart_uploads(Bucket="mpu", MaxUploads=5000)["MaxUploads"] == 1000
    other = _start(s3, "mpu", "another")
    ups = s3.list_multipart_uploads(Bucket="mpu")["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in ups] == [("another", other), ("obj", uid)]
    assert [u["Key"] for u in s3.list_multipart_uploads(Bucket="mpu", Prefix="ob")["Uploads"]] == [
        "obj"
    ]
    first = s3.list_multipart_uploads(Bucket="mpu", MaxUploads=1)
    assert first["IsTruncated"]
    assert first["NextKeyMarker"] == "another"
    after = s3.list_multipart_uploads(
        Bucket="mpu", KeyMarker=first["NextKeyMarker"], UploadIdMarker=first["NextUploadIdMarker"]
    )
    assert [u["Key"] for u in after["Uploads"]] == ["obj"]

    def complete(parts: list[tuple[int, str]], key: str = "obj", upload: str = uid) -> Any:
        body = {"Parts": [{"PartNumber": n, "ETag": e} for n, e in parts]}
        return s3.complete_multipart_upload(
            Bucket="mpu", Key=key, UploadId=upload, MultipartUpload=body
        )

    for parts, code in [
        ([(1, e1), (2, e2)], "InvalidPart"),  # part 1's old ETag
        ([(1, e1b), (4, e2)], "InvalidPart"),
        ([(2, e2), (1, e1b)], "InvalidPartOrder"),
        ([(1, e1b), (3, e3), (2, e2)], "InvalidPartOrder"),
        ([(1, e1b), (3, e3), (4, e3)], "InvalidPart"),
    ]:
        with pytest.raises(ClientError) as exc:
            complete(parts)
        assert s3_code(exc) == (code, 400), parts
    small = _start(s3, "mpu", "small")
    es = [
        s3.upload_part(Bucket="mpu", Key="small", UploadId=small, PartNumber=n, Body=b"x" * 10)[
            "ETag"
        ]
        for n in (1, 2)
    ]
    with pytest.raises(ClientError) as exc:
        complete([(1, es[0]), (2, es[1])], "small", small)
    assert s3_code(exc) == ("EntityTooSmall", 400)
    # refused Completes leave the upload open: the right list completes it
    done = complete([(1, e1b), (2, e2), (3, e3)])
    assert done["ETag"] == _multipart_etag([p1b, p2, p3])
    assert s3.get_object(Bucket="mpu", Key="obj")["Body"].read() == p1b + p2 + p3
    # the same Complete again is answered as the first (S3's rule for a retry)
    assert complete([(1, e1b), (2, e2), (3, e3)])["ETag"] == done["ETag"]
    with pytest.raises(ClientError) as exc:
        s3.upload_part(Bucket="mpu", Key="obj", UploadId=uid, PartNumber=4, Body=b"late")
    assert s3_code(exc) == ("NoSuchUpload", 404)

    # Abort: the upload is gone, its parts with it
    s3.abort_multipart_upload(Bucket="mpu", Key="small", UploadId=small)
    for call in (
        lambda: s3.list_parts(Bucket="mpu", Key="small", UploadId=small),
        lambda: s3.abort_multipart_upload(Bucket="mpu", Key="small", UploadId=small),
        lambda: s3.upload_part(Bucket="mpu", Key="small", UploadId=small, PartNumber=1, Body=b"x"),
        lambda: s3.list_parts(Bucket="mpu", Key="obj2", UploadId=other),  # another key's id
    ):
        with pytest.raises(ClientError) as exc:
            call()
        assert s3_code(exc) == ("NoSuchUpload", 404)
    with pytest.raises(ClientError) as exc:
        s3.upload_part(Bucket="mpu", Key="another", UploadId=other, PartNumber=0, Body=b"x")
    assert s3_code(exc)[1] == 400
    with pytest.raises(ClientError) as exc:
        s3.create_multipart_upload(Bucket="nobucket", Key="k")
    assert s3_code(exc) == ("NoSuchBucket", 404)

    # UploadPartCopy: a range of obj, then the whole of a small object
    s3.put_object(Bucket="mpu", Key="tail", Body=b"tail bytes")
    c1 = s3.upload_part_copy(
        Bucket="mpu",
        Key="another",
        UploadId=other,
        PartNumber=1,
        CopySource={"Bucket": "mpu", "Key": "obj"},
        CopySourceRange=f"bytes=100-{100 + 5 * MIB - 1}",
    )["CopyPartResult"]["ETag"]
    c2 = s3.upload_part_copy(
        Bucket="mpu", Key="another", UploadId=other, PartNumber=2, CopySource="mpu/tail"
    )["CopyPartResult"]["ETag"]
    whole = p1b + p2 + p3
    expect = [whole[100 : 100 + 5 * MIB], b"tail bytes"]
    assert (c1, c2) == tuple(f'"{_md5(p)}"' for p in expect)
    with pytest.raises(ClientError) as exc:
        s3.upload_part_copy(
            Bucket="mpu",
            Key="another",
            UploadId=other,
            PartNumber=3,
            CopySource="mpu/tail",
            CopySourceRange="bytes=5-100",
        )
    assert s3_code(exc) == ("InvalidArgument", 400)
    done = complete([(1, c1), (2, c2)], "another", other)
    assert done["ETag"] == _multipart_etag(expect)
    assert s3.get_object(Bucket="mpu", Key="another")["Body"].read() == b"".join(expect)
    assert s3.list_multipart_uploads(Bucket="mpu").get("Uploads", []) == []


DEDUP_MIB = 256
"""The issue's size: 32 of boto3's 8 MiB parts, so 31 part edges for the splice to re-cut."""


def _write_data(path: Path, mib: int, seed: int, insert_at: int | None = None) -> str:
    """``mib`` MiB of seeded pseudo-random bytes (100 more inserted at byte ``insert_at``);
    returns their SHA-256."""
    rnd, whole = random.Random(seed), hashlib.sha256()
    with path.open("wb") as f:
        for i in range(mib):
            block = rnd.randbytes(MIB)
            if insert_at is not None and i * MIB <= insert_at < (i + 1) * MIB:
                cut = insert_at - i * MIB
                block = block[:cut] + random.Random(100).randbytes(100) + block[cut:]
            f.write(block)
            whole.update(block)
    return whole.hexdigest()


def _read_sha256(s3: Any, bucket: str, key: str) -> str:
    body, whole = s3.get_object(Bucket=bucket, Key=key)["Body"], hashlib.sha256()
    while block := body.read(MIB):
        whole.update(block)
    return whole.hexdigest()


def test_multipart_dedups_like_a_single_put(
    tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's measure (DEDUP_MIB): the bytes by one PutObject, the
    same bytes by boto3's multipart defaults, and a copy with 100 bytes inserted in the
    middle: the distinct bytes stored stay below 1.1 x DEDUP_MIB, and the multipart object
    is made of the PUT's very chunks (Complete re-chunked it as one stream), in a file of
    its own (an object's file is deleted with it). The one big test of this module."""
    meta = f"sqlite:///{tmp_path / 'cluster' / 'meta.db'}"
    started = time.monotonic()
    with (
        started_cluster(tmp_path, meta, monkeypatch, request) as c,
        started_gateway(c, "s3t") as gw,
    ):
        s3 = gw.client()
        s3.create_bucket(Bucket="ddp")
        src, edited = tmp_path / "data.bin", tmp_path / "edited.bin"
        sums = {"single": _write_data(src, DEDUP_MIB, 256)}
        sums["multi"] = sums["single"]
        sums["edited"] = _write_data(edited, DEDUP_MIB, 256, insert_at=DEDUP_MIB * MIB // 2)
        with src.open("rb") as f:
            s3.put_object(Bucket="ddp", Key="single", Body=f)
        s3.upload_file(str(src), "ddp", "multi")
        s3.upload_file(str(edited), "ddp", "edited")
        stats = http_json(f"{c.api_url}/admin/stats", c.admin_token)
        assert _object_file(gw, "ddp", "multi") != _object_file(gw, "ddp", "single")
        assert _object_chunks(gw, "ddp", "multi") == _object_chunks(gw, "ddp", "single")
        for key, digest in sums.items():
            assert _read_sha256(s3, "ddp", key) == digest, key
        took = time.monotonic() - started
        stored = stats["stored_bytes"]
        print(f"stored {stored / MIB:.1f} MiB for 3 x {DEDUP_MIB} MiB; {took:.0f} s")
        assert stored < 1.1 * DEDUP_MIB * MIB


@pytest.mark.parametrize("meta_url", ["sqlite"], indirect=True)
@pytest.mark.cluster(env={"DFS_S3_MULTIPART_TTL": "2", "DFS_GC_INTERVAL": "1"})
def test_abandoned_uploads_are_collected(gateway: Gateway) -> None:
    s3 = gateway.client()
    s3.create_bucket(Bucket="old")
    uid = _start(s3, "old", "k")
    s3.upload_part(Bucket="old", Key="k", UploadId=uid, PartNumber=1, Body=b"abandoned")
    deadline = time.monotonic() + 60
    while s3.list_multipart_uploads(Bucket="old").get("Uploads"):
        assert time.monotonic() < deadline, "the upload was not collected"
        time.sleep(1)
    with pytest.raises(ClientError) as exc:
        s3.list_parts(Bucket="old", Key="k", UploadId=uid)
    assert s3_code(exc) == ("NoSuchUpload", 404)


def test_aws_cli_cp_above_the_multipart_threshold(sqlite_gateway: Gateway, tmp_path: Path) -> None:
    """``aws s3 cp`` of a file above the CLI's 8 MiB threshold: multipart, 8 MiB parts."""
    gw = sqlite_gateway
    gw.client().create_bucket(Bucket="cli-mp")
    data = random.Random(9).randbytes(17 * MIB + 3)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    env = aws_env(gw, tmp_path)
    cmd = [aws_cli(), "--endpoint-url", gw.url, "s3", "cp", str(src), "s3://cli-mp/big.bin"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    got = gw.client().get_object(Bucket="cli-mp", Key="big.bin")
    assert got["ETag"].endswith('-3"')
    assert got["Body"].read() == data
    # the CLI asks for CRC32 on the upload and each part: the object's checksum is composite
    parts = [data[i : i + 8 * MIB] for i in range(0, len(data), 8 * MIB)]
    sums = b"".join(zlib.crc32(p).to_bytes(4, "big") for p in parts)
    head = [aws_cli(), "--endpoint-url", gw.url, "s3api", "head-object", "--bucket", "cli-mp"]
    head += ["--key", "big.bin", "--checksum-mode", "ENABLED"]
    proc = subprocess.run(head, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    want = base64.b64encode(zlib.crc32(sums).to_bytes(4, "big")).decode() + "-3"
    assert (answer["ChecksumCRC32"], answer["ChecksumType"]) == (want, "COMPOSITE")


def _page(s3: Any, **kw: Any) -> tuple[list[str], list[str], dict[str, Any]]:
    got = s3.list_multipart_uploads(Bucket="tree", **kw)
    keys = [u["Key"] for u in got.get("Uploads", [])]
    return keys, [p["Prefix"] for p in got.get("CommonPrefixes", [])], got


def test_list_uploads_with_delimiter_and_markers(gateway: Gateway) -> None:
    """ListMultipartUploads rolls keys into CommonPrefixes, which count towards max-uploads
    and resume from a NextKeyMarker that is one; encoding-type=url encodes keys and prefixes."""
    s3 = gateway.client()
    s3.create_bucket(Bucket="tree")
    ids = {k: _start(s3, "tree", k) for k in ["a/1", "a/2", "a/b/3", "c/x", "c/y", "d é/1"]}
    b_ids = sorted(_start(s3, "tree", "b") for _ in range(2))
    keys, prefixes, _ = _page(s3, Delimiter="/")
    assert (keys, prefixes) == (["b", "b"], ["a/", "c/", "d é/"])
    keys, prefixes, _ = _page(s3, Delimiter="/", Prefix="a/")
    assert (keys, prefixes) == (["a/1", "a/2"], ["a/b/"])
    # pages of two entries: a prefix or an upload each
    keys, prefixes, got = _page(s3, Delimiter="/", MaxUploads=2)
    assert (keys, prefixes, got["IsTruncated"]) == (["b"], ["a/"], True)
    assert (got["NextKeyMarker"], got["NextUploadIdMarker"]) == ("b", b_ids[0])
    marker = {"KeyMarker": "b", "UploadIdMarker": b_ids[0]}
    keys, prefixes, got = _page(s3, Delimiter="/", MaxUploads=2, **marker)
    assert (keys, prefixes, got["IsTruncated"]) == (["b"], ["c/"], True)
    assert (got["NextKeyMarker"], got.get("NextUploadIdMarker", "")) == ("c/", "")
    keys, prefixes, got = _page(s3, Delimiter="/", MaxUploads=2, KeyMarker="c/")
    assert (keys, prefixes, got["IsTruncated"]) == ([], ["d é/"], False)
    # a key marker alone skips every upload of that key; without a delimiter all are listed
    keys, _, _ = _page(s3, KeyMarker="a/2")
    assert keys == ["a/b/3", "b", "b", "c/x", "c/y", "d é/1"]
    assert _page(s3, Delimiter="/", Prefix="c/")[0] == ["c/x", "c/y"]
    signed = gateway.client(signature_version="s3v4")
    url = signed.generate_presigned_url(
        "list_multipart_uploads",
        Params={"Bucket": "tree", "Delimiter": "/", "Prefix": "d é/", "EncodingType": "url"},
    )
    with urllib.request.urlopen(url, timeout=30) as resp:
        body = resp.read().decode()
    assert "<Key>d%20%C3%A9/1</Key>" in body
    assert "<Prefix>d%20%C3%A9/</Prefix>" in body
    assert "<EncodingType>url</EncodingType>" in body
    assert f"<UploadId>{ids['d é/1']}</UploadId>" in body
    for key, uid in [*ids.items(), *(("b", u) for u in b_ids)]:
        s3.abort_multipart_upload(Bucket="tree", Key=key, UploadId=uid)
    assert _page(s3, Delimiter="/")[:2] == ([], [])


def _native_files(gw: Gateway) -> list[dict[str, Any]]:
    """The tenant's files as ``dfs-client ls --all`` lists them."""
    out = run_cli("ls", "--all", "--json", gw.api_url, env={"DFS_TOKEN": gw.token}).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_parts_are_not_the_tenants_files(gateway: Gateway) -> None:
    """Parts in flight never show in the native listing; after Complete only the object's
    file does, after Abort nothing more; a native upload of a part's bytes is a file of its
    own (never the part, which the upload deletes)."""
    s3 = gateway.client()
    s3.create_bucket(Bucket="quiet")
    data = [os.urandom(5 * MIB), os.urandom(MIB)]
    uid = _start(s3, "quiet", "dir/obj.bin")
    etags = [
        s3.upload_part(Bucket="quiet", Key="dir/obj.bin", UploadId=uid, PartNumber=n, Body=b)[
            "ETag"
        ]
        for n, b in enumerate(data, start=1)
    ]
    assert _native_files(gateway) == []
    same = s3.put_object(Bucket="quiet", Key="copy-of-part-2", Body=data[1])
    assert same["ETag"] == f'"{_md5(data[1])}"'
    body = {"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, start=1)]}
    s3.complete_multipart_upload(
        Bucket="quiet", Key="dir/obj.bin", UploadId=uid, MultipartUpload=body
    )
    assert sorted(f["name"] for f in _native_files(gateway)) == ["copy-of-part-2", "obj.bin"]
    got = s3.get_object(Bucket="quiet", Key="copy-of-part-2")["Body"].read()
    assert got == data[1]  # its file was not the part's, deleted at Complete
    dropped = _start(s3, "quiet", "gone")
    s3.upload_part(Bucket="quiet", Key="gone", UploadId=dropped, PartNumber=1, Body=b"x" * 1000)
    assert len(_native_files(gateway)) == 2
    s3.abort_multipart_upload(Bucket="quiet", Key="gone", UploadId=dropped)
    assert sorted(f["name"] for f in _native_files(gateway)) == ["copy-of-part-2", "obj.bin"]


def test_part_number_reads(gateway: Gateway) -> None:
    """GetObject/HeadObject ?partNumber answer that part's bytes with the parts count; an
    object stored in one piece is its own part 1."""
    s3 = gateway.client()
    s3.create_bucket(Bucket="parts")
    data = [os.urandom(5 * MIB), os.urandom(5 * MIB), os.urandom(MIB + 3)]
    uid = s3.create_multipart_upload(Bucket="parts", Key="mp", Metadata={"owner": "me"})["UploadId"]
    etags = [
        s3.upload_part(Bucket="parts", Key="mp", UploadId=uid, PartNumber=n, Body=b)["ETag"]
        for n, b in enumerate(data, start=1)
    ]
    body = {"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, start=1)]}
    s3.complete_multipart_upload(Bucket="parts", Key="mp", UploadId=uid, MultipartUpload=body)
    got = s3.get_object(Bucket="parts", Key="mp", PartNumber=2)
    assert got["Body"].read() == data[1]
    assert got["PartsCount"] == 3
    assert got["ContentRange"] == f"bytes {5 * MIB}-{10 * MIB - 1}/{11 * MIB + 3}"
    head = s3.head_object(Bucket="parts", Key="mp", PartNumber=3)
    assert (head["ContentLength"], head["PartsCount"]) == (MIB + 3, 3)
    assert head["Metadata"] == {"owner": "me"}  # the kept part sizes are no user metadata
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket="parts", Key="mp", PartNumber=4)
    assert s3_code(exc) == ("InvalidPartNumber", 416)
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket="parts", Key="mp", PartNumber=1, Range="bytes=0-1")
    assert s3_code(exc)[1] == 400
    single = os.urandom(1000)
    s3.put_object(Bucket="parts", Key="one", Body=single)
    got = s3.get_object(Bucket="parts", Key="one", PartNumber=1)
    assert got["Body"].read() == single
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket="parts", Key="one", PartNumber=2)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 416
    with pytest.raises(ClientError) as exc:
        s3.create_multipart_upload(Bucket="parts", Key="x", Metadata={"dfs-part-sizes": "1"})
    assert s3_code(exc) == ("InvalidArgument", 400)


def test_part_copy_of_a_given_source_version(sqlite_gateway: Gateway) -> None:
    """UploadPartCopy of ``bucket/key?versionId=``: that version's bytes, whatever the key
    holds now; its id answered in ``x-amz-copy-source-version-id``, as CopyObject does. A
    delete marker's id is 400 InvalidRequest, a version that is not there NoSuchVersion, a
    key whose latest version is a marker NoSuchKey, for both copy calls, as S3 answers."""
    s3 = sqlite_gateway.client()
    s3.create_bucket(Bucket="pcv")
    s3.put_bucket_versioning(Bucket="pcv", VersioningConfiguration={"Status": "Enabled"})
    old, new = random.Random(7).randbytes(5 * MIB), b"the bytes written over them"
    v1 = s3.put_object(Bucket="pcv", Key="src", Body=old)["VersionId"]
    v2 = s3.put_object(Bucket="pcv", Key="src", Body=new)["VersionId"]
    uid = _start(s3, "pcv", "dst")
    answers = [
        s3.upload_part_copy(
            Bucket="pcv",
            Key="dst",
            UploadId=uid,
            PartNumber=n,
            CopySource={"Bucket": "pcv", "Key": "src", **({"VersionId": v} if v else {})},
        )
        for n, v in ((1, v1), (2, None))
    ]
    assert [a["CopySourceVersionId"] for a in answers] == [v1, v2]
    etags = [a["CopyPartResult"]["ETag"] for a in answers]
    assert etags == [f'"{_md5(old)}"', f'"{_md5(new)}"']
    marker = s3.delete_object(Bucket="pcv", Key="src")["VersionId"]
    gone = v1[:-4] + ("0000" if not v1.endswith("0000") else "1111")  # no such version
    calls = [  # S3's answers, for a part and for CopyObject alike
        lambda source: s3.upload_part_copy(
            Bucket="pcv", Key="dst", UploadId=uid, PartNumber=3, CopySource=source
        ),
        lambda source: s3.copy_object(Bucket="pcv", Key="copy", CopySource=source),
    ]
    for call in calls:
        for version, expect in (
            (marker, ("InvalidRequest", 400)),
            (gone, ("NoSuchVersion", 404)),
            (None, ("NoSuchKey", 404)),  # the latest is the marker
        ):
            source = {"Bucket": "pcv", "Key": "src", **({"VersionId": version} if version else {})}
            with pytest.raises(ClientError) as exc:
                call(source)
            assert s3_code(exc) == expect
    parts = {"Parts": [{"PartNumber": n, "ETag": e} for n, e in ((1, etags[0]), (2, etags[1]))]}
    s3.complete_multipart_upload(Bucket="pcv", Key="dst", UploadId=uid, MultipartUpload=parts)
    assert s3.get_object(Bucket="pcv", Key="dst")["Body"].read() == old + new
    # the old version's part is its own bytes even though the key's current one differs
    got = s3.get_object(Bucket="pcv", Key="src", VersionId=v1)["Body"].read()
    assert got == old


def test_a_complete_sent_again_after_it_succeeded_answers_as_the_first(
    sqlite_gateway: Gateway,
) -> None:
    """botocore sends a Complete again when the first one's answer was lost: S3 answers the
    retry 200 with the same result, so the client does not fail an upload that is stored.
    Another part list, an aborted upload, or a key overwritten since stay NoSuchUpload."""
    s3 = sqlite_gateway.client()
    s3.create_bucket(Bucket="again")
    s3.put_bucket_versioning(Bucket="again", VersioningConfiguration={"Status": "Enabled"})
    rnd = random.Random(5)
    p1, p2 = rnd.randbytes(5 * MIB), rnd.randbytes(1000)
    uid = _start(s3, "again", "obj")
    e1 = s3.upload_part(Bucket="again", Key="obj", UploadId=uid, PartNumber=1, Body=p1)["ETag"]
    e2 = s3.upload_part(Bucket="again", Key="obj", UploadId=uid, PartNumber=2, Body=p2)["ETag"]
    listed = {"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]}

    def complete(parts: dict[str, Any]) -> Any:
        return s3.complete_multipart_upload(
            Bucket="again", Key="obj", UploadId=uid, MultipartUpload=parts
        )

    first = complete(listed)
    again = complete(listed)
    assert again["ETag"] == first["ETag"] == _multipart_etag([p1, p2])
    assert again["VersionId"] == first["VersionId"]
    assert again["Key"] == "obj"
    assert s3.get_object(Bucket="again", Key="obj")["Body"].read() == p1 + p2
    assert len(s3.list_object_versions(Bucket="again")["Versions"]) == 1  # nothing made again
    with pytest.raises(ClientError) as err:  # not the parts that made the object
        complete({"Parts": [{"PartNumber": 1, "ETag": e1}]})
    assert s3_code(err) == ("NoSuchUpload", 404)
    s3.put_object(Bucket="again", Key="obj", Body=b"overwritten")
    with pytest.raises(ClientError) as err:
        complete(listed)
    assert s3_code(err) == ("NoSuchUpload", 404)
    aborted = _start(s3, "again", "gone")
    e = s3.upload_part(Bucket="again", Key="gone", UploadId=aborted, PartNumber=1, Body=p2)["ETag"]
    s3.abort_multipart_upload(Bucket="again", Key="gone", UploadId=aborted)
    with pytest.raises(ClientError) as err:
        s3.complete_multipart_upload(
            Bucket="again",
            Key="gone",
            UploadId=aborted,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e}]},
        )
    assert s3_code(err) == ("NoSuchUpload", 404)
