"""The pinned AWS CLI's ``s3api`` calls against dfs-s3 on a live cluster (SQLite): versioning,
tagging and a multipart upload done call by call, and ``aws s3 presign`` URLs fetched with
plain HTTP (an expired one refused)."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.e2e.conftest import Gateway, aws_cli, aws_env

MIB = 1024 * 1024


class Cli:
    """``aws --endpoint-url GATEWAY ...`` with the gateway's key, output as JSON."""

    def __init__(self, gw: Gateway, tmp_path: Path) -> None:
        self.base = [aws_cli(), "--endpoint-url", gw.url, "--output", "json"]
        self.env = aws_env(gw, tmp_path)

    def text(self, *args: str) -> str:
        proc = subprocess.run(
            [*self.base, *args], env=self.env, capture_output=True, text=True, timeout=180
        )
        assert proc.returncode == 0, f"aws {' '.join(args[:2])}: {proc.stderr}"
        return proc.stdout

    def api(self, *args: str) -> Any:
        out = self.text("s3api", *args)
        return json.loads(out) if out.strip() else {}


def test_s3api_versioning_and_tagging(sqlite_gateway: Gateway, tmp_path: Path) -> None:
    aws = Cli(sqlite_gateway, tmp_path)
    aws.api("create-bucket", "--bucket", "vers")
    aws.api(
        "put-bucket-versioning",
        "--bucket",
        "vers",
        "--versioning-configuration",
        "Status=Enabled",
    )
    assert aws.api("get-bucket-versioning", "--bucket", "vers")["Status"] == "Enabled"
    bodies = [b"first version\n", b"second, longer version\n"]
    made = []
    for i, body in enumerate(bodies):
        src = tmp_path / f"v{i}.txt"
        src.write_bytes(body)
        put = aws.api("put-object", "--bucket", "vers", "--key", "doc.txt", "--body", str(src))
        made.append(put["VersionId"])
    assert made[0] != made[1]
    listed = aws.api("list-object-versions", "--bucket", "vers")
    versions = [(v["Key"], v["VersionId"], v["IsLatest"]) for v in listed["Versions"]]
    assert versions == [("doc.txt", made[1], True), ("doc.txt", made[0], False)]
    out = tmp_path / "old.txt"
    got = aws.api(
        "get-object", "--bucket", "vers", "--key", "doc.txt", "--version-id", made[0], str(out)
    )
    assert got["VersionId"] == made[0]
    assert out.read_bytes() == bodies[0]

    tags = "TagSet=[{Key=team,Value=storage},{Key=tier,Value=hot}]"
    aws.api("put-object-tagging", "--bucket", "vers", "--key", "doc.txt", "--tagging", tags)
    got = aws.api("get-object-tagging", "--bucket", "vers", "--key", "doc.txt")
    assert sorted((t["Key"], t["Value"]) for t in got["TagSet"]) == [
        ("team", "storage"),
        ("tier", "hot"),
    ]
    old = aws.api(
        "get-object-tagging", "--bucket", "vers", "--key", "doc.txt", "--version-id", made[0]
    )
    assert old["TagSet"] == []  # tags belong to the version they were put on
    aws.api("delete-object-tagging", "--bucket", "vers", "--key", "doc.txt")
    assert aws.api("get-object-tagging", "--bucket", "vers", "--key", "doc.txt")["TagSet"] == []


def test_s3api_multipart_calls(sqlite_gateway: Gateway, tmp_path: Path) -> None:
    aws = Cli(sqlite_gateway, tmp_path)
    aws.api("create-bucket", "--bucket", "mpu-cli")
    data = [os.urandom(5 * MIB), os.urandom(MIB + 7)]
    uid = aws.api("create-multipart-upload", "--bucket", "mpu-cli", "--key", "big.bin")["UploadId"]
    parts = []
    for n, body in enumerate(data, start=1):
        src = tmp_path / f"part{n}"
        src.write_bytes(body)
        sent = aws.api(
            "upload-part",
            *("--bucket", "mpu-cli", "--key", "big.bin", "--upload-id", uid),
            *("--part-number", str(n), "--body", str(src)),
        )
        parts.append({"PartNumber": n, "ETag": sent["ETag"]})
    listed = aws.api("list-parts", "--bucket", "mpu-cli", "--key", "big.bin", "--upload-id", uid)
    assert [(p["PartNumber"], p["Size"]) for p in listed["Parts"]] == [(1, 5 * MIB), (2, MIB + 7)]
    uploads = aws.api("list-multipart-uploads", "--bucket", "mpu-cli")["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [("big.bin", uid)]
    (tmp_path / "parts.json").write_text(json.dumps({"Parts": parts}))
    done = aws.api(
        "complete-multipart-upload",
        *("--bucket", "mpu-cli", "--key", "big.bin", "--upload-id", uid),
        *("--multipart-upload", f"file://{tmp_path / 'parts.json'}"),
    )
    assert done["ETag"].endswith('-2"')
    out = tmp_path / "back.bin"
    aws.api("get-object", "--bucket", "mpu-cli", "--key", "big.bin", str(out))
    assert out.read_bytes() == b"".join(data)

    dropped = aws.api("create-multipart-upload", "--bucket", "mpu-cli", "--key", "gone.bin")[
        "UploadId"
    ]
    src = tmp_path / "small"
    src.write_bytes(b"never completed")
    aws.api(
        "upload-part",
        *("--bucket", "mpu-cli", "--key", "gone.bin", "--upload-id", dropped),
        *("--part-number", "1", "--body", str(src)),
    )
    aws.api(
        "abort-multipart-upload", "--bucket", "mpu-cli", "--key", "gone.bin", "--upload-id", dropped
    )
    assert aws.api("list-multipart-uploads", "--bucket", "mpu-cli").get("Uploads", []) == []
    keys = [o["Key"] for o in aws.api("list-objects-v2", "--bucket", "mpu-cli")["Contents"]]
    assert keys == ["big.bin"]


def _fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        with e:  # its socket closed, not left to the collector
            return e.code, e.read()


def test_s3_presign_fetched_with_plain_http(sqlite_gateway: Gateway, tmp_path: Path) -> None:
    aws = Cli(sqlite_gateway, tmp_path)
    aws.api("create-bucket", "--bucket", "share")
    body = os.urandom(300_000)
    (tmp_path / "f.bin").write_bytes(body)
    aws.text("s3", "cp", str(tmp_path / "f.bin"), "s3://share/dir/f.bin")
    # this CLI presigns with signature version 2 unless told otherwise: refused (501)
    v2 = aws.text("s3", "presign", "s3://share/dir/f.bin").strip()
    assert "Signature=" in v2
    assert "X-Amz-Signature=" not in v2
    status, err = _fetch(v2)
    assert (status, b"<Code>NotImplemented</Code>" in err) == (501, True)
    config = tmp_path / "aws-config"
    config.write_text("[default]\ns3 =\n    signature_version = s3v4\n")
    aws.env["AWS_CONFIG_FILE"] = str(config)
    url = aws.text("s3", "presign", "s3://share/dir/f.bin", "--expires-in", "600").strip()
    assert "X-Amz-Signature=" in url
    assert _fetch(url) == (200, body)
    assert _fetch(url.replace("dir/f.bin", "dir/g.bin"))[0] == 403  # the signature names the key

    short = aws.text("s3", "presign", "s3://share/dir/f.bin", "--expires-in", "1").strip()
    deadline = time.monotonic() + 30
    while (answer := _fetch(short))[0] == 200:  # served until its second is over
        assert answer[1] == body
        assert time.monotonic() < deadline, "an expired presigned URL was still served"
        time.sleep(0.5)
    status, err = answer
    assert status == 403
    assert b"<Code>AccessDenied</Code>" in err
    assert b"expired" in err
