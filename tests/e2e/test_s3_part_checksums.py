"""Per-part checksums of multipart uploads and bucket tagging, driven by boto3 (current
release, default settings: it sends CRC32 with every part and validates checksums on GET)
against a live gateway process: the composite object checksum S3 defines, ListParts'
checksums, Complete's checks of the listed ones, ``partNumber`` reads answering the part's
checksum, and Get/Put/DeleteBucketTagging with S3's limits, on SQLite and DynamoDB (moto)."""

from __future__ import annotations

import base64
import hashlib
import random
import zlib
from pathlib import Path
from typing import Any

import google_crc32c
import pytest
from botocore.exceptions import ClientError

from tests.e2e.conftest import Gateway, s3_code

MIB = 1024 * 1024


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def crc32(data: bytes) -> bytes:
    return zlib.crc32(data).to_bytes(4, "big")


def crc32c(data: bytes) -> bytes:
    return int(google_crc32c.value(data)).to_bytes(4, "big")


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def composite(fn: Any, parts: list[bytes]) -> str:
    """S3's composite checksum, computed here from the parts' bytes."""
    return f"{b64(fn(b''.join(fn(p) for p in parts)))}-{len(parts)}"


def test_upload_file_defaults_give_a_composite_checksum(gateway: Gateway, tmp_path: Path) -> None:
    """``upload_file``'s defaults: CRC32 on CreateMultipartUpload and every part, the parts'
    checksums listed in Complete; the object's checksum is the composite, each part's its
    own (which boto3 checks against the part's bytes)."""
    s3 = gateway.client()
    s3.create_bucket(Bucket="sums")
    data = random.Random(11).randbytes(17 * MIB + 5)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    s3.upload_file(str(src), "sums", "obj.bin")
    parts = [data[i : i + 8 * MIB] for i in range(0, len(data), 8 * MIB)]
    head = s3.head_object(Bucket="sums", Key="obj.bin", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == composite(crc32, parts)
    assert head["ChecksumType"] == "COMPOSITE"
    got = s3.get_object(Bucket="sums", Key="obj.bin", ChecksumMode="ENABLED")
    assert got["Body"].read() == data
    for number, part in enumerate(parts, start=1):
        got = s3.get_object(Bucket="sums", Key="obj.bin", PartNumber=number, ChecksumMode="ENABLED")
        assert got["ChecksumCRC32"] == b64(crc32(part))
        assert got["Body"].read() == part  # boto3 validated the part's checksum on the way
    plain = s3.head_object(Bucket="sums", Key="obj.bin")
    assert "ChecksumCRC32" not in plain  # only with checksum mode
    out = tmp_path / "out.bin"
    s3.download_file("sums", "obj.bin", str(out))
    assert out.read_bytes() == data


def _upload_parts(s3: Any, key: str, algorithm: str, fn: Any, parts: list[bytes]) -> str:
    made = s3.create_multipart_upload(Bucket="algos", Key=key, ChecksumAlgorithm=algorithm)
    assert made["ChecksumAlgorithm"] == algorithm
    assert made["ChecksumType"] == "COMPOSITE"
    uid = str(made["UploadId"])
    for number, part in enumerate(parts, start=1):
        sent = {f"Checksum{algorithm}": b64(fn(part))}
        answer = s3.upload_part(
            Bucket="algos", Key=key, UploadId=uid, PartNumber=number, Body=part, **sent
        )
        assert answer[f"Checksum{algorithm}"] == sent[f"Checksum{algorithm}"]
    return uid


@pytest.mark.parametrize(("algorithm", "fn"), [("CRC32C", crc32c), ("SHA256", sha256)])
def test_explicit_algorithms_list_parts_and_complete(
    sqlite_gateway: Gateway, algorithm: str, fn: Any
) -> None:
    s3 = sqlite_gateway.client()
    s3.create_bucket(Bucket="algos")
    parts = [random.Random(n).randbytes(5 * MIB) for n in range(2)] + [b"last part"]
    key = f"obj-{algorithm}"
    uid = _upload_parts(s3, key, algorithm, fn, parts)
    listed = s3.list_parts(Bucket="algos", Key=key, UploadId=uid)
    assert listed["ChecksumAlgorithm"] == algorithm
    member = f"Checksum{algorithm}"
    assert [p[member] for p in listed["Parts"]] == [b64(fn(p)) for p in parts]
    wrong = [
        {"PartNumber": p["PartNumber"], "ETag": p["ETag"], member: b64(fn(b"other"))}
        for p in listed["Parts"]
    ]
    with pytest.raises(ClientError) as exc:  # a listed checksum not the part's
        s3.complete_multipart_upload(
            Bucket="algos", Key=key, UploadId=uid, MultipartUpload={"Parts": wrong}
        )
    assert s3_code(exc) == ("InvalidPart", 400)
    right = [
        {"PartNumber": p["PartNumber"], "ETag": p["ETag"], member: p[member]}
        for p in listed["Parts"]
    ]
    done = s3.complete_multipart_upload(  # the refused list left the upload open
        Bucket="algos", Key=key, UploadId=uid, MultipartUpload={"Parts": right}
    )
    assert done[member] == composite(fn, parts)
    assert done["ChecksumType"] == "COMPOSITE"
    head = s3.head_object(Bucket="algos", Key=key, ChecksumMode="ENABLED")
    assert (head[member], head["ChecksumType"]) == (composite(fn, parts), "COMPOSITE")
    part = s3.head_object(Bucket="algos", Key=key, PartNumber=3, ChecksumMode="ENABLED")
    assert part[member] == b64(fn(parts[2]))


def test_part_checksum_errors_and_unsupported_types(sqlite_gateway: Gateway) -> None:
    s3 = sqlite_gateway.client()
    s3.create_bucket(Bucket="algos")
    uid = _upload_parts(s3, "errs", "CRC32C", crc32c, [b"first"])
    with pytest.raises(ClientError) as exc:  # a wrong value
        s3.upload_part(
            Bucket="algos", Key="errs", UploadId=uid, PartNumber=2, Body=b"x",
            ChecksumCRC32C=b64(crc32c(b"y")),
        )  # fmt: skip
    assert s3_code(exc) == ("BadDigest", 400)
    with pytest.raises(ClientError) as exc:  # boto3's default CRC32 on a CRC32C upload
        s3.upload_part(Bucket="algos", Key="errs", UploadId=uid, PartNumber=2, Body=b"x")
    assert s3_code(exc) == ("InvalidRequest", 400)
    assert [p["PartNumber"] for p in s3.list_parts(Bucket="algos", Key="errs", UploadId=uid)[
        "Parts"
    ]] == [1]  # fmt: skip
    for extra in ({"ChecksumType": "FULL_OBJECT"}, {"ChecksumAlgorithm": "CRC64NVME"}):
        args = {"ChecksumAlgorithm": "CRC32", **extra}
        with pytest.raises(ClientError) as exc:
            s3.create_multipart_upload(Bucket="algos", Key="full", **args)
        assert s3_code(exc) == ("NotImplemented", 501)
    # an upload without an algorithm still keeps the checksums its parts sent
    plain = s3.create_multipart_upload(Bucket="algos", Key="plain")["UploadId"]
    s3.upload_part(Bucket="algos", Key="plain", UploadId=plain, PartNumber=1, Body=b"abc")
    listed = s3.list_parts(Bucket="algos", Key="plain", UploadId=plain)
    assert listed["Parts"][0]["ChecksumCRC32"] == b64(crc32(b"abc"))
    assert "ChecksumAlgorithm" not in listed
    s3.abort_multipart_upload(Bucket="algos", Key="errs", UploadId=uid)
    s3.abort_multipart_upload(Bucket="algos", Key="plain", UploadId=plain)


def _tags(n: int, key_len: int = 3, value_len: int = 3) -> dict[str, Any]:
    return {"TagSet": [{"Key": f"{i:0{key_len}d}", "Value": "v" * value_len} for i in range(n)]}


def test_bucket_tagging(gateway: Gateway) -> None:
    s3 = gateway.client()
    s3.create_bucket(Bucket="tagged")
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_tagging(Bucket="tagged")
    assert s3_code(exc) == ("NoSuchTagSet", 404)
    tags = [{"Key": "team", "Value": "storage"}, {"Key": "env", "Value": ""}]
    s3.put_bucket_tagging(Bucket="tagged", Tagging={"TagSet": tags})
    got = s3.get_bucket_tagging(Bucket="tagged")["TagSet"]
    assert sorted(got, key=lambda t: t["Key"]) == sorted(tags, key=lambda t: t["Key"])
    s3.put_bucket_tagging(Bucket="tagged", Tagging=_tags(50, 128, 256))  # S3's limits
    assert len(s3.get_bucket_tagging(Bucket="tagged")["TagSet"]) == 50
    duplicate = {"TagSet": [{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}]}
    for bad in (_tags(51), _tags(1, key_len=129), _tags(1, value_len=257), duplicate):
        with pytest.raises(ClientError) as exc:
            s3.put_bucket_tagging(Bucket="tagged", Tagging=bad)
        assert s3_code(exc) == ("InvalidTag", 400)
    assert len(s3.get_bucket_tagging(Bucket="tagged")["TagSet"]) == 50  # refused: unchanged
    s3.put_object(Bucket="tagged", Key="k", Body=b"x")
    assert s3.get_object_tagging(Bucket="tagged", Key="k")["TagSet"] == []  # not the object's
    s3.delete_bucket_tagging(Bucket="tagged")
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_tagging(Bucket="tagged")
    assert s3_code(exc) == ("NoSuchTagSet", 404)
    s3.put_bucket_tagging(Bucket="tagged", Tagging=_tags(2))
    s3.delete_object(Bucket="tagged", Key="k")
    s3.delete_bucket(Bucket="tagged")
    s3.create_bucket(Bucket="tagged")  # created again: untagged
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_tagging(Bucket="tagged")
    assert s3_code(exc) == ("NoSuchTagSet", 404)
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_policy(Bucket="tagged")  # still not implemented
    assert s3_code(exc) == ("NotImplemented", 501)
