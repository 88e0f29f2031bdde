"""``dfs-node``: parse flags and environment, start the node, stop cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

from dfs.config import NodeConfig, load_node_config
from dfs.errors import ConfigError, InvalidRequest
from dfs.fsutil import write_atomically
from dfs.ids import parse_node_id
from dfs.malloc import keep_freed_buffers
from dfs.node.app import start_node
from dfs.server import run_service, until_stopped


def default_node_id(data_dir: Path) -> str:
    """A generated id kept in the data directory, so a restarted node is the same node.

    Written durably (``write_atomically``: temp file, fsync, rename, fsync of the directory):
    an id lost in a crash made the node come back as another one, every copy it held counted
    lost and repaired elsewhere. A file that does not hold a node id is a ConfigError, never
    replaced by a new id."""
    path = data_dir / "node_id"
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except FileNotFoundError:
        pass
    else:
        try:
            return parse_node_id(text, "node_id")
        except InvalidRequest:
            raise ConfigError(str(path), text[:80], "not a node id: set NODE_ID") from None
    node_id = f"node-{secrets.token_hex(4)}"
    write_atomically(path, node_id)
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
