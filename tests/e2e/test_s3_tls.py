"""dfs-s3 over TLS with a certificate authority made here: current boto3 with its default
settings sends PutObject bodies as ``aws-chunked`` with ``STREAMING-UNSIGNED-PAYLOAD-TRAILER``
and a trailing CRC32 over HTTPS, which the gateway decodes and verifies."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dfs.localcluster import LocalCluster, wait_for
from tests.e2e.conftest import gateway_proc, tenant_key


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_tls(base: Path) -> tuple[Path, Path, Path]:
    """A CA, and a certificate for 127.0.0.1 signed by it: (ca.pem, cert.pem, key.pem)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("dfs test CA"))
        .issuer_name(_name("dfs test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(san, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    base.mkdir(parents=True, exist_ok=True)
    paths = base / "ca.pem", base / "cert.pem", base / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


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
