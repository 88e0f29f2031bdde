"""dfs-s3 against the S3 clients people use, on a live local cluster (API + 3 nodes on
SQLite) with the gateway as its own process: the AWS CLI (``aws s3 cp/sync/ls/rm``), rclone
(``copy``, ``sync``, ``check``, ``lsf``) and restic with its S3 backend (``init``, ``backup``,
``check --read-data``, ``restore``), each round-tripping a real tree (a part of this Python's
standard library) byte-identical.

The clients come from ``bash scripts/ci-tools.sh`` (rclone and restic from Debian's apt, the
AWS CLI pinned in ``requirements/awscli.txt`` in ``.venv-awscli``). Sizes and options keep
the clients off the calls the gateway does not answer yet (501): rclone uploads below its
``upload_cutoff`` and copies server-side without multipart. restic runs with its default
pack size (16 MiB), with a large incompressible file in the tree so that packs reach it
(restic asks minio-go for multipart only above 200 MiB, so packs go as chunk-signed PUTs).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import os
import shutil
import socket
import subprocess
import sysconfig
import urllib.parse
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from dfs.localcluster import LocalCluster
from dfs.s3.sigv4 import EMPTY_SHA256, signing_key
from tests.e2e.conftest import Gateway, aws_cli, started_gateway

STDLIB_PARTS = ("json", "email", "asyncio", "logging", "html", "http", "urllib", "xml")
TIMEOUT = 300
DOMAIN = "s3.localhost"  # virtual-host buckets: BUCKET.s3.localhost


def tool(name: str) -> str:
    """A client installed by scripts/ci-tools.sh; a missing one fails the test."""
    if name == "aws":
        return aws_cli()
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: run bash scripts/ci-tools.sh")
    return found


def real_tree(dest: Path) -> Path:
    """A copy of a part of this interpreter's standard library (a few MB of real files)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for part in STDLIB_PARTS:
        shutil.copytree(stdlib / part, dest / part, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def gateway(sqlite_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch) -> Iterator[Gateway]:
    monkeypatch.setenv("DFS_LOG_LEVEL", "DEBUG")  # the gateway logs each body's framing
    monkeypatch.setenv("DFS_S3_DOMAIN", DOMAIN)
    with started_gateway(sqlite_cluster, "clients") as gw:
        yield gw


def client_env(gw: Gateway, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "RCLONE_", "RESTIC_")) and k != "DFS_TOKEN"
    }
    env.update(
        {
            "AWS_ACCESS_KEY_ID": gw.key_id,
            "AWS_SECRET_ACCESS_KEY": gw.secret,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
            "HOME": str(tmp_path / "home"),
            **extra,
        }
    )
    return env


def run(argv: list[str], env: dict[str, str]) -> str:
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, f"{argv[:3]} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_aws_cli_sync_cp_ls_rm(gateway: Gateway, tmp_path: Path) -> None:
    tree = real_tree(tmp_path / "tree")
    env = client_env(gateway, tmp_path)
    aws = [tool("aws"), "--endpoint-url", gateway.url, "s3"]
    run([*aws, "mb", "s3://cli-tree"], env)
    run([*aws, "sync", str(tree), "s3://cli-tree/tree/"], env)
    listed = run([*aws, "ls", "--recursive", "s3://cli-tree/"], env)
    assert len(listed.splitlines()) == len(digests(tree))
    run([*aws, "sync", "s3://cli-tree/tree/", str(tmp_path / "back")], env)
    assert digests(tmp_path / "back") == digests(tree)
    # a second sync sends only what changed, and --delete removes what went
    (tree / "json" / "__init__.py").write_bytes(b"# changed\n")
    shutil.rmtree(tree / "html")
    again = run([*aws, "sync", "--delete", str(tree), "s3://cli-tree/tree/"], env)
    uploads = [line for line in again.splitlines() if line.startswith("upload:")]
    assert len(uploads) == 1, again
    assert "json/__init__.py" in uploads[0]
    assert sum(line.startswith("delete:") for line in again.splitlines()) == len(
        [p for p in (tmp_path / "back" / "html").rglob("*") if p.is_file()]
    )
    run([*aws, "cp", "--recursive", "s3://cli-tree/tree/", str(tmp_path / "back2")], env)
    assert digests(tmp_path / "back2") == digests(tree)
    one = tree / "email" / "message.py"
    run([*aws, "cp", str(one), "s3://cli-tree/single/message.py"], env)
    run([*aws, "cp", "s3://cli-tree/single/message.py", str(tmp_path / "one.py")], env)
    assert (tmp_path / "one.py").read_bytes() == one.read_bytes()
    top = run([*aws, "ls", "s3://cli-tree/"], env)
    assert "PRE single/" in top
    assert "PRE tree/" in top
    run([*aws, "rm", "--recursive", "s3://cli-tree/"], env)
    assert run([*aws, "ls", "--recursive", "s3://cli-tree/"], env).strip() == ""
    run([*aws, "rb", "s3://cli-tree"], env)


def test_rclone_copy_sync_check_lsf(gateway: Gateway, tmp_path: Path) -> None:
    tree = real_tree(tmp_path / "tree")
    remote = {
        "TYPE": "s3",
        "PROVIDER": "Other",
        "ENDPOINT": gateway.url,
        "ACCESS_KEY_ID": gateway.key_id,
        "SECRET_ACCESS_KEY": gateway.secret,
        "REGION": "us-east-1",
        "FORCE_PATH_STYLE": "true",
        "LIST_VERSION": "2",  # "Other" providers default to ListObjects v1
    }
    env = {
        **client_env(gateway, tmp_path),
        **{f"RCLONE_CONFIG_DFS_{k}": v for k, v in remote.items()},
        "RCLONE_CONFIG": str(tmp_path / "no-rclone.conf"),
    }
    env = {k: v for k, v in env.items() if not k.startswith("AWS_")}  # AWS_CA_BUNDLE too
    rclone = [tool("rclone"), "--retries", "1", "--low-level-retries", "2"]
    run([*rclone, "copy", str(tree), "dfs:rclone-bucket/tree"], env)
    run([*rclone, "check", str(tree), "dfs:rclone-bucket/tree"], env)  # sizes and MD5s
    files = run([*rclone, "lsf", "-R", "--files-only", "dfs:rclone-bucket/tree"], env)
    assert sorted(files.split()) == sorted(digests(tree))
    # sync: a changed file is sent again, a removed one is deleted on the remote
    (tree / "json" / "__init__.py").write_bytes(b"# changed\n")
    shutil.rmtree(tree / "xml")
    run([*rclone, "sync", str(tree), "dfs:rclone-bucket/tree"], env)
    run([*rclone, "check", str(tree), "dfs:rclone-bucket/tree"], env)
    tops = run([*rclone, "lsf", "dfs:rclone-bucket/tree"], env).split()
    assert "xml/" not in tops
    assert "json/" in tops
    run([*rclone, "copy", "dfs:rclone-bucket/tree", str(tmp_path / "back")], env)
    assert digests(tmp_path / "back") == digests(tree)
    # a touched but unchanged file: rclone rewrites its mtime with CopyObject REPLACE onto
    # the object itself (metadata only)
    touched = tree / "json" / "decoder.py"
    os.utime(touched, (1_600_000_000, 1_600_000_000))
    run([*rclone, "sync", str(tree), "dfs:rclone-bucket/tree"], env)
    listed = json.loads(run([*rclone, "lsjson", "dfs:rclone-bucket/tree/json/decoder.py"], env))
    assert listed[0]["ModTime"].startswith("2020-09-13T12:26:40")


def test_restic_backup_check_restore(gateway: Gateway, tmp_path: Path) -> None:
    tree = real_tree(tmp_path / "tree")
    (tree / "big.bin").write_bytes(os.urandom(40 * 1024 * 1024))  # fills default-size packs
    env = client_env(
        gateway,
        tmp_path,
        RESTIC_REPOSITORY=f"s3:{gateway.url}/restic-repo",
        RESTIC_PASSWORD="correct horse battery staple",
        RESTIC_CACHE_DIR=str(tmp_path / "restic-cache"),
    )
    restic = [tool("restic"), "-o", "s3.region=us-east-1"]
    run([*restic, "init"], env)
    run([*restic, "backup", str(tree)], env)
    run([*restic, "check", "--read-data"], env)
    run([*restic, "restore", "latest", "--target", str(tmp_path / "restored")], env)
    back = tmp_path / "restored" / tree.relative_to(tree.anchor)
    assert digests(back) == digests(tree)
    snapshots = json.loads(run([*restic, "snapshots", "--json"], env))
    assert len(snapshots) == 1
    # minio-go (restic's S3 client) signs every chunk of a PUT over HTTP
    log = gateway.log.read_text()
    assert "body: STREAMING-AWS4-HMAC-SHA256-PAYLOAD" in log
    packs = gateway.client().list_objects_v2(Bucket="restic-repo", Prefix="data/")["Contents"]
    assert max(p["Size"] for p in packs) >= 16 * 1024 * 1024  # the default pack size


class _StreamingAuth(S3SigV4Auth):
    """botocore's S3 signer with a streaming payload form as the payload hash (botocore
    itself never sends chunk-signed bodies)."""

    def __init__(self, form: str, *args: Any) -> None:
        super().__init__(*args)
        self.form = form

    def payload(self, request: AWSRequest) -> str:
        return self.form


def _signed_put(
    gw: Gateway, key: str, chunks: list[bytes], trailer: bool, tamper: int | None = None
) -> tuple[int, str]:
    """PUT ``chunks`` as a chunk-signed body (botocore signs the seed request, each chunk
    and the trailer are signed as SigV4 says); the byte ``tamper`` of the framed body is
    changed after signing. (status, body) of the answer."""
    form = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" + ("-TRAILER" if trailer else "")
    data = b"".join(chunks)
    headers = {
        "x-amz-content-sha256": form,
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(data)),
        **({"x-amz-trailer": "x-amz-checksum-crc32"} if trailer else {}),
    }
    request = AWSRequest("PUT", f"{gw.url}/raw/{key}", headers=headers)
    _StreamingAuth(form, Credentials(gw.key_id, gw.secret), "s3", "us-east-1").add_auth(request)
    amz_date = request.headers["x-amz-date"]
    scope = f"{amz_date[:8]}/us-east-1/s3/aws4_request"
    key_bytes = signing_key(gw.secret, amz_date[:8], "us-east-1")
    previous = request.headers["Authorization"].rsplit("Signature=", 1)[1]

    def sign(kind: str, tail: str) -> str:
        sts = f"AWS4-HMAC-SHA256-{kind}\n{amz_date}\n{scope}\n{previous}\n{tail}"
        return hmac.new(key_bytes, sts.encode(), hashlib.sha256).hexdigest()

    body = b""
    for chunk in [*chunks, b""]:
        previous = sign("PAYLOAD", f"{EMPTY_SHA256}\n{hashlib.sha256(chunk).hexdigest()}")
        body += f"{len(chunk):x};chunk-signature={previous}\r\n".encode() + chunk
        body += b"\r\n" if chunk else b""
    if trailer:
        crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
        line = f"x-amz-checksum-crc32:{crc}\n".encode()
        body += line + f"x-amz-trailer-signature:{sign('TRAILER', sha256_hex(line))}\r\n".encode()
    body += b"\r\n"
    if tamper is not None:
        at = tamper % len(body)
        body = body[:at] + bytes([body[at] ^ 1]) + body[at + 1 :]
    url = urllib.parse.urlsplit(gw.url)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=60)
    try:
        conn.request("PUT", f"/raw/{key}", body=body, headers=dict(request.headers.items()))
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_chunk_signed_puts_and_forged_chunks(gateway: Gateway) -> None:
    """Both chunk-signed forms are stored byte-identical; a chunk changed after signing is
    refused with SignatureDoesNotMatch and nothing is committed under its key."""
    s3 = gateway.client()
    s3.create_bucket(Bucket="raw")
    chunks = [os.urandom(64 * 1024) for _ in range(20)] + [os.urandom(1000)]
    for trailer in (False, True):
        key = f"ok-{trailer}"
        assert _signed_put(gateway, key, chunks, trailer)[0] == 200
        assert s3.get_object(Bucket="raw", Key=key)["Body"].read() == b"".join(chunks)
    # the 15th chunk's data, and a character of the trailer's checksum, changed after signing
    trailer_crc = -(len("x-amz-checksum-crc32:AAAAAA==\n") + 24 + 64 + 4) + 22
    for key, trailer, tamper in (
        ("forged", False, 15 * (64 * 1024 + 90)),
        ("forged-t", True, trailer_crc),
    ):
        status, body = _signed_put(gateway, key, chunks, trailer, tamper=tamper)
        assert status == 403, body
        assert "SignatureDoesNotMatch" in body
        with pytest.raises(ClientError) as exc:
            s3.head_object(Bucket="raw", Key=key)
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    listed = s3.list_objects_v2(Bucket="raw")["Contents"]
    assert sorted(o["Key"] for o in listed) == ["ok-False", "ok-True"]


def test_virtual_host_addressing_and_health(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """boto3 with addressing_style="virtual" against DFS_S3_DOMAIN=s3.localhost: it sends
    Host: BUCKET.s3.localhost:PORT and paths without the bucket. This machine's resolver does
    not resolve *.s3.localhost, so this test process maps those names to 127.0.0.1 (the
    requests themselves are boto3's, over real HTTP)."""
    real = socket.getaddrinfo

    def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and (host == DOMAIN or host.endswith("." + DOMAIN)):
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    port = urllib.parse.urlsplit(gateway.url).port
    virtual = boto3.client(
        "s3",
        endpoint_url=f"http://{DOMAIN}:{port}",
        aws_access_key_id=gateway.key_id,
        aws_secret_access_key=gateway.secret,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "virtual"}),
    )
    seen: list[str] = []
    virtual.meta.events.register("before-send.s3", lambda request, **_: seen.append(request.url))
    virtual.create_bucket(Bucket="vhost")
    virtual.put_object(Bucket="vhost", Key="dir/a b.txt", Body=b"virtual")
    assert virtual.get_object(Bucket="vhost", Key="dir/a b.txt")["Body"].read() == b"virtual"
    assert virtual.head_object(Bucket="vhost", Key="dir/a b.txt")["ContentLength"] == 7
    listed = virtual.list_objects_v2(Bucket="vhost", Prefix="dir/")
    assert [o["Key"] for o in listed["Contents"]] == ["dir/a b.txt"]
    # multipart calls are told apart by their query: they must see the Host's bucket too
    big = os.urandom(6 * 1024 * 1024)
    mpu = virtual.create_multipart_upload(Bucket="vhost", Key="dir/big")["UploadId"]
    etags = [
        virtual.upload_part(Bucket="vhost", Key="dir/big", UploadId=mpu, PartNumber=n, Body=part)[
            "ETag"
        ]
        for n, part in ((1, big[: 5 * 1024 * 1024]), (2, big[5 * 1024 * 1024 :]))
    ]
    virtual.complete_multipart_upload(
        Bucket="vhost",
        Key="dir/big",
        UploadId=mpu,
        MultipartUpload={"Parts": [{"PartNumber": n + 1, "ETag": e} for n, e in enumerate(etags)]},
    )
    assert virtual.get_object(Bucket="vhost", Key="dir/big")["Body"].read() == big
    virtual.delete_object(Bucket="vhost", Key="dir/big")
    assert all(u.startswith(f"http://vhost.{DOMAIN}:{port}/") for u in seen), seen
    # path style keeps working, on the domain itself and on the gateway's address
    path_style = gateway.client()
    assert path_style.get_object(Bucket="vhost", Key="dir/a b.txt")["Body"].read() == b"virtual"
    with pytest.raises(ClientError) as exc:
        virtual.get_object(Bucket="vhost", Key="missing")
    assert exc.value.response["Error"]["Code"] == "NoSuchKey"
    virtual.delete_object(Bucket="vhost", Key="dir/a b.txt")
    virtual.delete_bucket(Bucket="vhost")
    assert path_style.list_buckets()["Buckets"] == []

    # unsigned GET /healthz and /readyz are health probes; signed, they are S3 calls
    for path in ("/healthz", "/readyz"):
        with urllib.request.urlopen(gateway.url + path, timeout=30) as resp:
            assert resp.status == 200
    path_style.create_bucket(Bucket="healthz")
    path_style.put_object(Bucket="healthz", Key="k", Body=b"1")
    assert [o["Key"] for o in path_style.list_objects_v2(Bucket="healthz")["Contents"]] == ["k"]
