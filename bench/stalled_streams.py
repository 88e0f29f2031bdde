"""What stalled streaming uploads cost the API and the S3 gateway: N connections each send a
few MiB of a big declared body (``POST /upload``; S3 PutObject and UploadPart), then send
nothing more, and the services' resident memory (VmRSS) is read as N grows.

    python -m bench.stalled_streams [--counts 8 32 128] [--mib 4] [--kind upload put part]

Each stream's bytes are distinct (no dedup), on one tenant. The memory is read once it has
settled (the servers have taken what they were sent); the connections are then closed and
the next N opened. A stream the server refuses (a limit: 503) shows in ``refused``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import boto3
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from dfs.localcluster import LocalCluster, http_json

MIB = 1 << 20
DECLARED = 1 << 30
DRAIN_WAIT = 10.0


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def settled_rss(pid: int, quiet: float = 3.0, limit: float = 120.0) -> float:
    """VmRSS once it has not moved by more than 1 MiB for ``quiet`` seconds."""
    end = time.monotonic() + limit
    last, since = rss_mib(pid), time.monotonic()
    while time.monotonic() < end:
        time.sleep(0.5)
        now = rss_mib(pid)
        if abs(now - last) > 1.0:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return now
    return rss_mib(pid)


class _Unsigned(S3SigV4Auth):
    def payload(self, request: AWSRequest) -> str:
        return "UNSIGNED-PAYLOAD"


def s3_head(url: str, creds: Credentials, size: int) -> bytes:
    """The head of a signed S3 PUT of ``size`` bytes (payload unsigned)."""
    headers = {"x-amz-content-sha256": "UNSIGNED-PAYLOAD", "Content-Length": str(size)}
    req = AWSRequest(method="PUT", url=url, headers=headers)
    _Unsigned(creds, "s3", "us-east-1").add_auth(req)
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"PUT {target} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{k}: {v}" for k, v in req.headers.items() if k.lower() != "host"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def upload_head(api: str, token: str, name: str) -> bytes:
    parts = urlsplit(api)
    return (
        f"POST /upload?filename={name} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/octet-stream\r\n"
        f"Content-Length: {DECLARED}\r\n\r\n"
    ).encode()


async def open_stream(
    url: str, head: bytes, mib: int
) -> tuple[asyncio.StreamWriter, asyncio.StreamReader]:
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(head)
    block = os.urandom(MIB)
    for i in range(mib):
        writer.write(i.to_bytes(8, "big") + os.urandom(16) + block[24:])
    # a server that does not read them yet (no room for the stream) leaves them buffered
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(writer.drain(), DRAIN_WAIT)
    return writer, reader


async def answered(reader: asyncio.StreamReader) -> str | None:
    """The status line if the server answered already (a refusal), else None."""
    try:
        line = await asyncio.wait_for(reader.readline(), 0.01)
    except TimeoutError:
        return None
    return line.decode(errors="replace").strip() or "closed"


async def measure(
    label: str,
    pid: int,
    heads: Callable[[int], list[tuple[str, bytes]]],
    counts: list[int],
    mib: int,
    hold: float,
) -> None:
    for n in counts:
        base = await asyncio.to_thread(settled_rss, pid)
        streams = await asyncio.gather(*(open_stream(u, h, mib) for u, h in heads(n)))
        try:
            rss = await asyncio.to_thread(settled_rss, pid)
            if hold:  # streams waiting for a slot are answered 503 meanwhile
                await asyncio.sleep(hold)
                rss = max(rss, await asyncio.to_thread(settled_rss, pid))
            refused = [s for s in [await answered(r) for _, r in streams] if s]
            per = (rss - base) / n
            print(
                f"{label:8} N={n:4}  RSS {base:7.0f} -> {rss:7.0f} MiB  "
                f"(+{rss - base:6.0f}, {per:5.1f} MiB/stream)  refused {len(refused)}"
                + (f" e.g. {refused[0]!r}" if refused else ""),
                flush=True,
            )
        finally:
            for w, _ in streams:
                w.close()
            for w, _ in streams:
                with contextlib.suppress(ConnectionError):
                    await w.wait_closed()


def tenant(c: LocalCluster, name: str) -> tuple[str, Credentials]:
    http_json(f"{c.api_url}/admin/tenants", c.admin_token, 30.0, {"tenant": name})
    body = {"tenant": name, "role": "user", "label": ""}
    token = str(http_json(f"{c.api_url}/admin/tokens", c.admin_token, 30.0, body)["token"])
    made = http_json(f"{c.api_url}/access-keys", token, 30.0, {"label": ""})
    return token, Credentials(made["access_key_id"], made["secret_access_key"])


async def run_kind(kind: str, counts: list[int], mib: int, tenants: int, hold: float) -> None:
    """One fresh cluster for ``kind``; ``counts`` measured in turn, the streams spread over
    ``tenants`` tenants."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        LocalCluster(Path(tmp), nodes=1, replication_factor=1, s3=True) as c,
    ):
        assert c.api is not None
        assert c.api.popen is not None
        assert c.s3_proc is not None
        assert c.s3_proc.popen is not None
        s3url = c.s3_proc.url
        who = [tenant(c, f"streams{t}") for t in range(tenants)]
        uploads = []
        for _, creds in who:
            s3 = boto3.client(
                "s3",
                endpoint_url=s3url,
                aws_access_key_id=creds.access_key,
                aws_secret_access_key=creds.secret_key,
                region_name="us-east-1",
                config=Config(s3={"addressing_style": "path"}),
            )
            bucket = f"bkt-{creds.access_key.lower()[:12]}"
            s3.create_bucket(Bucket=bucket)
            uploads.append(
                (bucket, s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"])
            )

        def heads(n: int) -> list[tuple[str, bytes]]:
            out = []
            for i in range(n):
                token, creds = who[i % tenants]
                bucket, uid = uploads[i % tenants]
                if kind == "upload":
                    out.append((c.api_url, upload_head(c.api_url, token, f"f{i}")))
                    continue
                path = (
                    f"{bucket}/k{i}"
                    if kind == "put"
                    else f"{bucket}/mp?partNumber={i + 1}&uploadId={uid}"
                )
                out.append((s3url, s3_head(f"{s3url}/{path}", creds, DECLARED)))
            return out

        pid = c.api.popen.pid if kind == "upload" else c.s3_proc.popen.pid
        await measure(kind, pid, heads, counts, mib, hold)


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--counts", type=int, nargs="+", default=[8, 32, 128])
    p.add_argument("--mib", type=int, default=4)
    p.add_argument("--tenants", type=int, default=1)
    p.add_argument("--hold", type=float, default=0.0, help="seconds to keep them open, then RSS")
    p.add_argument("--kind", nargs="+", default=["upload", "put", "part"])
    args = p.parse_args()
    for kind in args.kind:
        await run_kind(kind, args.counts, args.mib, args.tenants, args.hold)


if __name__ == "__main__":
    asyncio.run(main())
