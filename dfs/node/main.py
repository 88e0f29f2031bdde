"""``dfs-node``: parse flags and environment, start the node, stop cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import logging
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

from dfs.config import NodeConfig, load_node_config
from dfs.node.app import start_node
from dfs.server import run_service, until_stopped

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
KEEP_FREED = 128 << 20
"""Freed heap memory the node keeps instead of giving back to the kernel (M_TRIM_THRESHOLD)."""
MMAP_ABOVE = 32 << 20
"""Allocations from this size on get their own mapping (M_MMAP_THRESHOLD; glibc's ceiling)."""


def keep_freed_buffers() -> bool:
    """Let chunk-sized buffers reuse freed heap memory instead of fresh pages.

    Every chunk a node receives is read into a new buffer of up to MAX_CHUNK_SIZE bytes.
    glibc's defaults hand memory of that size back to the kernel when it is freed (its
    trim threshold is twice a dynamic mmap threshold that stays at a few MiB), so the next
    body lands in fresh pages the kernel must fault in and zero: measured ~1 fault per 4 KiB
    received (~260,000 per GiB, system CPU of every copy, twice on RF 2). Keeping up to
    ``KEEP_FREED`` bytes of freed heap cut that to ~50,000 per GiB. The node's peak memory
    does not grow (the buffers existed at the peak anyway); it is simply not returned after
    a burst. Operators' own ``MALLOC_*_`` settings win; a libc without ``mallopt`` (not
    glibc) is left as it is. True when the settings were applied."""
    if any(k in os.environ for k in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_ABOVE)) and bool(
        mallopt(M_TRIM_THRESHOLD, KEEP_FREED)
    )


def default_node_id(data_dir: Path) -> str:
    """A generated id kept in the data directory, so a restarted node is the same node."""
    path = data_dir / "node_id"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    node_id = f"node-{secrets.token_hex(4)}"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(node_id + "\n")
    os.replace(tmp, path)
    return node_id


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="dfs-node", description="dfs storage node")
    p.add_argument("--port", help="listen port (NODE_PORT)")
    p.add_argument("--host", help="bind address (DFS_NODE_HOST)")
    p.add_argument("--data-dir", help="chunk directory (DFS_DATA_DIR)")
    p.add_argument("--node-id", help="node id (NODE_ID)")
    p.add_argument("--meta-url", help="metadata store URL (DFS_META_URL)")
    p.add_argument("--api-url", help="API URL for registration (DFS_API_URL)")
    return p.parse_args(argv)


def load(argv: Sequence[str] | None) -> NodeConfig:
    args = parse_args(argv)
    env = dict(os.environ)
    flags = {
        "NODE_PORT": args.port,
        "DFS_NODE_HOST": args.host,
        "DFS_DATA_DIR": args.data_dir,
        "NODE_ID": args.node_id,
        "DFS_META_URL": args.meta_url,
        "DFS_API_URL": args.api_url,
    }
    env.update({k: v for k, v in flags.items() if v is not None})
    return load_node_config(env, default_node_id)


async def serve(cfg: NodeConfig) -> None:
    node = await start_node(cfg)
    print(f"dfs-node {cfg.node_id} listening on {node.url} data={cfg.data_dir}", flush=True)
    await until_stopped()
    logging.getLogger("dfs.node").info("stopping: draining requests and deregistering")
    await node.stop()


def main(argv: Sequence[str] | None = None) -> int:
    keep_freed_buffers()
    return run_service("dfs-node", lambda: asyncio.run(serve(load(argv))))
