"""``dfs-s3``: the S3 gateway's entry point. Configured like ``dfs-api`` (``DFS_META_URL``,
``DFS_CLUSTER_SECRET``, ``DFS_API_SECRET``, the same replication settings) plus its address,
``DFS_S3_HOST`` (default 127.0.0.1) and ``DFS_S3_PORT`` (default 9100), optional TLS
(``DFS_S3_TLS_CERT``, ``DFS_S3_TLS_KEY``: PEM files) for deployments without a load
balancer, and ``DFS_S3_DOMAIN`` for virtual-host-style buckets (``BUCKET.DOMAIN``). Without
``DFS_API_SECRET`` it reads the secret ``dfs-api`` keeps in ``DFS_DATA_DIR/api_secret``."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import re
import ssl
from collections.abc import Sequence
from pathlib import Path

from dfs.config import ApiConfig, load_api_config
from dfs.errors import ConfigError
from dfs.malloc import keep_freed_buffers
from dfs.s3.app import start_s3
from dfs.server import run_service, until_stopped

DEFAULT_PORT = 9100
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
API_SECRET_FILE = "api_secret"  # as dfs-api keeps it (dfs.api.main)


def load(argv: Sequence[str] | None) -> ApiConfig:
    p = argparse.ArgumentParser(prog="dfs-s3", description="dfs S3 gateway")
    p.add_argument("--port", help="listen port (DFS_S3_PORT)")
    p.add_argument("--host", help="bind address (DFS_S3_HOST)")
    p.add_argument("--meta-url", help="metadata store URL (DFS_META_URL)")
    args = p.parse_args(argv)
    env = dict(os.environ)
    if args.meta_url is not None:
        env["DFS_META_URL"] = args.meta_url
    cfg = load_api_config(env)
    host = args.host or env.get("DFS_S3_HOST") or "127.0.0.1"
    port = int(args.port or env.get("DFS_S3_PORT") or DEFAULT_PORT)
    cfg = dataclasses.replace(cfg, host=host, port=port, maintenance=False)
    if not cfg.api_secret:
        kept = Path(cfg.data_dir) / API_SECRET_FILE
        if kept.exists():
            cfg = dataclasses.replace(cfg, api_secret=kept.read_text().strip().encode())
    return cfg


def tls_context(env: dict[str, str]) -> ssl.SSLContext | None:
    cert, key = env.get("DFS_S3_TLS_CERT", ""), env.get("DFS_S3_TLS_KEY", "")
    if not cert and not key:
        return None
    if not cert or not key:
        raise ConfigError("DFS_S3_TLS_CERT", cert, "TLS needs both DFS_S3_TLS_CERT and _KEY")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


def s3_domain(env: dict[str, str]) -> str:
    """``DFS_S3_DOMAIN``: the host name whose sub-domains name buckets ("" for none)."""
    domain = env.get("DFS_S3_DOMAIN", "").strip().rstrip(".").lower()
    if domain:
        labels = domain.split(".")
        if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels):
            raise ConfigError("DFS_S3_DOMAIN", domain, "a host name such as s3.example.com")
    return domain


async def serve(cfg: ApiConfig) -> None:
    env = dict(os.environ)
    s3 = await start_s3(cfg, tls_context(env), s3_domain(env))
    print(f"dfs-s3 listening on {s3.url} meta={cfg.meta_url}", flush=True)
    await until_stopped()
    logging.getLogger("dfs.s3").info("stopping: draining in-flight requests")
    await s3.stop()


def main(argv: Sequence[str] | None = None) -> int:
    # bodies pass through in blocks of up to a chunk (MiBs): reusing freed heap memory for
    # them spares the page faults and zeroing of fresh mappings (dfs.malloc)
    keep_freed_buffers()
    return run_service("dfs-s3", lambda: asyncio.run(serve(load(argv))))
