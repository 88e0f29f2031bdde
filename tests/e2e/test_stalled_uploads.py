"""Stalled streamed uploads of some tenants do not hold up anyone else's, against a real
``dfs-api`` and a real ``dfs-s3`` (found by review). Each upload's chunker waits for the
client's bytes in a thread; it was one of the event loop's default executor, whose every
thread (six on two cores) a few stalled uploads then held until their body deadline
(~110 s for 2 MiB sent), and another tenant's upload waited for them (408). The chunkers
now have threads of their own (``dfs.api.ingest``) and the uploads run in stream slots
(``dfs.api.body_slots``)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from dfs import protocol
from dfs.api.body_slots import STREAM_PER_TENANT
from dfs.localcluster import LocalCluster
from tests.clients import s3_path_style, stall
from tests.e2e.conftest import started_gateway, tenant_key_http
from tests.integration.test_security import raw

pytestmark = pytest.mark.e2e

MIB = 1 << 20
DEADLINE = 20.0
"""Seconds the other tenant's upload may take: far under the stalled ones' body deadline."""


def stalled_count() -> tuple[int, int]:
    """One more stalled upload than the default executor has threads here, and how many
    tenants send them (each within its stream slots)."""
    count = concurrent.futures.ThreadPoolExecutor()._max_workers + 1
    return count, -(-count // STREAM_PER_TENANT)


async def stalled(url: str, head: bytes) -> asyncio.StreamWriter:
    """A connection that sends ``head`` (declaring 1 GiB), 2 MiB of body, then nothing."""
    writer = await stall(url, head, 2 * MIB)
    with contextlib.suppress(TimeoutError):  # the server takes them as its chunker asks
        await asyncio.wait_for(writer.drain(), 2.0)
    return writer


def upload_head(token: str) -> bytes:
    return (
        f"POST {protocol.UPLOAD_FILE}?filename=s HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/octet-stream\r\n"
        f"Content-Length: {1 << 30}\r\n\r\n"
    ).encode()


class _Unsigned(S3SigV4Auth):
    def payload(self, request: AWSRequest) -> str:
        return "UNSIGNED-PAYLOAD"


def put_head(url: str, creds: Credentials) -> bytes:
    """The head of a signed PutObject of 1 GiB (payload unsigned)."""
    headers = {"x-amz-content-sha256": "UNSIGNED-PAYLOAD", "Content-Length": str(1 << 30)}
    req = AWSRequest(method="PUT", url=url, headers=headers)
    _Unsigned(creds, "s3", "us-east-1").add_auth(req)
    parts = urlsplit(url)
    lines = [f"PUT {parts.path} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{k}: {v}" for k, v in req.headers.items() if k.lower() != "host"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def close_all(writers: list[asyncio.StreamWriter]) -> None:
    for w in writers:
        w.close()


async def test_stalled_api_uploads_do_not_hold_up_another_tenants(one_node: LocalCluster) -> None:
    count, tenants = stalled_count()
    tokens = [tenant_key_http(one_node, f"stall{i}")[0] for i in range(tenants)]
    (bob,) = [tenant_key_http(one_node, "bob")[0]]
    url = one_node.api_url
    writers = [await stalled(url, upload_head(tokens[i % tenants])) for i in range(count)]
    try:
        headers = {"Authorization": f"Bearer {bob}", "Content-Type": "application/octet-stream"}
        started = time.monotonic()
        async with asyncio.timeout(DEADLINE):
            path = f"{url}{protocol.UPLOAD_FILE}?filename=b"
            st, body = await raw("POST", path, headers, data=os.urandom(2 * MIB))
        assert st == 201, (st, body, time.monotonic() - started)
    finally:
        close_all(writers)


def _client(url: str, made: dict[str, str]) -> Any:
    return s3_path_style(url, made["access_key_id"], made["secret_access_key"])


async def test_stalled_s3_puts_do_not_hold_up_another_tenants(one_node: LocalCluster) -> None:
    count, tenants = stalled_count()
    with started_gateway(one_node, "bob") as gw:
        bob = _client(gw.url, {"access_key_id": gw.key_id, "secret_access_key": gw.secret})
        await asyncio.to_thread(bob.create_bucket, Bucket="bob")
        heads = []
        for i in range(tenants):
            made = tenant_key_http(one_node, f"stall{i}")[1]
            await asyncio.to_thread(_client(gw.url, made).create_bucket, Bucket=f"stall-{i}")
            creds = Credentials(made["access_key_id"], made["secret_access_key"])
            keys = [f"{gw.url}/stall-{i}/k{j}" for j in range(STREAM_PER_TENANT)]
            heads += [put_head(key, creds) for key in keys]
        writers = [await stalled(gw.url, heads[i]) for i in range(count)]
        try:
            put = {"Bucket": "bob", "Key": "k", "Body": os.urandom(2 * MIB)}
            async with asyncio.timeout(DEADLINE):
                await asyncio.to_thread(bob.put_object, **put)
        finally:
            close_all(writers)
