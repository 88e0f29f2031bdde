"""aws-chunked trailers the request did not declare (a review's finding), through the S3
gateway in process: a trailing ``x-amz-checksum-*`` that ``x-amz-trailer`` does not name
was ignored, so a client that sent its checksum there believed a body verified that was
not; S3 refuses it (``MalformedTrailerError``), as it refuses a declared trailer that never
came. Nothing is stored in either case."""

from __future__ import annotations

import base64
import hashlib
import zlib

import aiohttp
import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.integration.conftest import InProcessCluster
from tests.integration.test_namespace_api import tokens
from tests.integration.test_s3_multipart_calls import _access_key, _client, _TrailerAuth
from tests.integration.test_s3_tenancy import gateway, run

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning"),
]

DATA = b"the bytes of an object sent in aws-chunked form"
CRC32 = base64.b64encode(zlib.crc32(DATA).to_bytes(4, "big")).decode()
WRONG_SHA256 = base64.b64encode(hashlib.sha256(b"other bytes").digest()).decode()


async def _chunked_put(
    url: str, creds: Credentials, trailers: list[str], declared: str | None
) -> tuple[int, str]:
    """PUT ``DATA`` in the unsigned trailer form with these trailer lines, ``x-amz-trailer``
    set to ``declared`` (None: not sent); the status and the answer's text."""
    framing = f"{len(DATA):x}\r\n".encode() + DATA + b"\r\n0\r\n"
    body = framing + "".join(f"{t}\r\n" for t in trailers).encode() + b"\r\n"
    headers = {
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(DATA)),
        "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "Content-Length": str(len(body)),
    }
    if declared is not None:
        headers["x-amz-trailer"] = declared
    req = AWSRequest(method="PUT", url=url, data=body, headers=headers)
    _TrailerAuth(creds, "s3", "us-east-1").add_auth(req)
    async with (
        aiohttp.ClientSession() as s,
        s.put(url, data=body, headers=dict(req.headers.items())) as r,
    ):
        return r.status, await r.text()


def _keys(s3: object, bucket: str) -> list[str]:
    listed = s3.list_objects_v2(Bucket=bucket)  # type: ignore[attr-defined]
    return [o["Key"] for o in listed.get("Contents", [])]


async def test_trailers_must_be_the_ones_declared(inproc: InProcessCluster) -> None:
    (alice,) = await tokens(inproc.api.url, "alice")
    async with gateway(inproc) as url:
        creds = await _access_key(inproc.api.url, alice)
        s3 = _client(url, creds)
        await run(s3.create_bucket, Bucket="bkt")
        crc, sha = f"x-amz-checksum-crc32:{CRC32}", f"x-amz-checksum-sha256:{WRONG_SHA256}"
        for key, trailers, declared in (
            ("undeclared", [sha], None),  # a wrong SHA-256 nobody said would come
            ("extra", [crc, sha], "x-amz-checksum-crc32"),
            ("other", [sha], "x-amz-checksum-crc32"),
            ("missing", [], "x-amz-checksum-crc32"),
        ):
            status, text = await _chunked_put(f"{url}/bkt/{key}", creds, trailers, declared)
            assert (status, "<Code>MalformedTrailerError</Code>" in text) == (400, True), text
        assert await run(_keys, s3=s3, bucket="bkt") == []  # none of them stored
        status, text = await _chunked_put(f"{url}/bkt/ok", creds, [crc], "x-amz-checksum-crc32")
        assert status == 200, text
        status, text = await _chunked_put(f"{url}/bkt/plain", creds, [], None)
        assert status == 200, text
        assert await run(_keys, s3=s3, bucket="bkt") == ["ok", "plain"]
