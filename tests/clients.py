"""Clients the tests share: a boto3 S3 client that tries each call once, and a raw
connection that sends part of a request and then stalls."""

from __future__ import annotations

import asyncio
import os
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config


def s3_path_style(url: str, access_key_id: str, secret_access_key: str) -> Any:
    """boto3's S3 client for the gateway at ``url``: path-style addressing, one attempt per
    call (a test sees the first answer, never a retry's)."""
    return boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}),
    )


async def stall(url: str, head: bytes, size: int = 0) -> asyncio.StreamWriter:
    """A connection that sends ``head`` and ``size`` bytes of body, then nothing."""
    parts = urlsplit(url)
    assert parts.hostname is not None
    _reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(head + os.urandom(size))  # what the server does not read stays buffered
    return writer
