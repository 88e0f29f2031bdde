"""Metadata calls per GiB uploaded, on SQLite and on DynamoDB (moto's server on loopback).

Runs the API and 3 nodes in one process (the same apps the services run), uploads random files
with the client library, and counts the requests the API's metadata store made (SQLite
statements or transactions; DynamoDB API calls, counted by a botocore hook). Node heartbeats
go through their own stores and are not counted: they cost a fixed rate per node, not per byte.

    python -m bench.meta_calls [--size-mib 256] [--files 4] [--backends sqlite dynamodb]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from dfs.api.app import start_api
from dfs.auth import hash_token
from dfs.client import Client
from dfs.config import ApiConfig, NodeConfig
from dfs.node.app import start_node

MIB = 1 << 20
SECRET = b"bench-cluster-secret-0123456789abcdef"
TOKEN = "dfs_bench-admin-token-0123456789abcdef"
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    exe = shutil.which("moto_server")
    if exe is None:
        raise SystemExit("moto_server not found: pip install -e '.[test]'")
    port = free_port()
    proc = subprocess.Popen(
        [exe, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("moto server did not start")


async def measure(meta_url: str, base: Path, size: int, files: int) -> dict[str, Any]:
    api = await start_api(
        ApiConfig(
            port=0,
            data_dir=base / "api",
            meta_url=meta_url,
            cluster_secret=SECRET,
            admin_token_hash=hash_token(TOKEN),
        )
    )
    nodes = [
        await start_node(
            NodeConfig(
                node_id=f"node{i}",
                port=0,
                data_dir=base / f"node{i}",
                meta_url=meta_url,
                cluster_secret=SECRET,
            )
        )
        for i in (1, 2, 3)
    ]
    meta: Any = api.meta
    try:
        async with Client(api.url, token=TOKEN) as client:
            before = meta.calls
            chunks = 0
            for i in range(files):
                path = base / f"f{i}.bin"
                path.write_bytes(os.urandom(size))
                up = await client.upload(path)
                chunks += up.chunks
                path.unlink()
            calls = meta.calls - before
    finally:
        for node in nodes:
            await node.stop()
        await api.stop()
    gib = size * files / (1 << 30)
    return {"calls": calls, "chunks": chunks, "per_gib": calls / gib, "per_chunk": calls / chunks}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.meta_calls")
    p.add_argument("--size-mib", type=int, default=256)
    p.add_argument("--files", type=int, default=4)
    p.add_argument("--backends", nargs="+", default=["sqlite", "dynamodb"])
    args = p.parse_args(argv)
    rows = []
    for backend in args.backends:
        with tempfile.TemporaryDirectory(prefix="dfs-meta-bench-") as tmp:
            base = Path(tmp)
            moto = None
            if backend == "dynamodb":
                os.environ.update(AWS_ENV)
                moto, endpoint = start_moto()
                url = f"dynamodb://?endpoint_url={endpoint}&table_prefix=bench-&create_tables=1"
            else:
                url = f"sqlite:///{base / 'meta.db'}"
            try:
                r = asyncio.run(measure(url, base, args.size_mib * MIB, args.files))
            finally:
                if moto is not None:
                    moto.terminate()
                    moto.wait(10)
            rows.append((backend, r))
    total = args.size_mib * args.files
    print(f"\n{args.files} files x {args.size_mib} MiB ({total} MiB), FastCDC ~1 MiB chunks\n")
    print("| backend | metadata calls | chunks | calls per GiB | calls per chunk |")
    print("|---|---|---|---|---|")
    for backend, r in rows:
        print(
            f"| {backend} | {r['calls']} | {r['chunks']} | {r['per_gib']:.0f} "
            f"| {r['per_chunk']:.2f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
