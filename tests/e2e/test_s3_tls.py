"""dfs-s3 over TLS with a certificate authority made here: current boto3 with its default
settings sends PutObject bodies as ``aws-chunked`` with ``STREAMING-UNSIGNED-PAYLOAD-TRAILER``
and a trailing CRC32 over HTTPS, which the gateway decodes and verifies."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from dfs.localcluster import LocalCluster, wait_for
from tests.e2e.conftest import gateway_proc, tenant_key
from tests.tls_certs import make_tls


@pytest.fixture
def tls_gateway(sqlite_cluster: LocalCluster, tmp_path: Path) -> Iterator[tuple[Any, str]]:
    _, made = tenant_key(sqlite_cluster.api_url, "tls")
    ca, cert, key = make_tls(tmp_path / "tls")
    proc = gateway_proc(sqlite_cluster)
    proc.env.update({"DFS_S3_TLS_CERT": str(cert), "DFS_S3_TLS_KEY": str(key)})
    proc.start()
    try:

        def listening() -> str | None:
            found = re.findall(r"listening on (https://\S+)", proc.log.read_text(errors="replace"))
            return found[-1] if found else None

        url = str(wait_for(listening, 30.0, "dfs-s3 to listen"))
        s3 = boto3.client(
            "s3",
            endpoint_url=url,
            aws_access_key_id=made["access_key_id"],
            aws_secret_access_key=made["secret_access_key"],
            region_name="us-east-1",
            verify=str(ca),
            config=Config(s3={"addressing_style": "path"}),
        )
        yield s3, url
    finally:
        proc.stop()
        print(f"===== s3.log\n{proc.log.read_text(errors='replace')[-4000:]}")


def test_boto3_defaults_over_tls_send_aws_chunked_bodies(tls_gateway: tuple[Any, str]) -> None:
    s3, _ = tls_gateway
    sent: list[dict[str, str]] = []
    s3.meta.events.register(
        "before-send.s3.PutObject",
        lambda request, **_: sent.append({k.lower(): str(v) for k, v in request.headers.items()}),
    )
    s3.create_bucket(Bucket="secure")
    body = os.urandom(2 * 1024 * 1024 + 3)
    put = s3.put_object(Bucket="secure", Key="k.bin", Body=body)
    assert put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    assert s3.get_object(Bucket="secure", Key="k.bin")["Body"].read() == body
    # what this boto3 sent by default over HTTPS: the streaming trailer form
    assert "STREAMING-UNSIGNED-PAYLOAD-TRAILER" in sent[0]["x-amz-content-sha256"]
    assert "x-amz-checksum-crc32" in sent[0]["x-amz-trailer"]
