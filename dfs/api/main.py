"""``dfs-api``: parse flags and environment, serve the coordinator, stop cleanly on SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import secrets
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from dfs.api import workers
from dfs.auth import hash_token, new_token
from dfs.config import ApiConfig, load_api_config
from dfs.meta.init_tables import init_tables_main
from dfs.server import run_service, until_stopped


def load(argv: Sequence[str] | None) -> ApiConfig:
    p = argparse.ArgumentParser(prog="dfs-api", description="dfs API coordinator")
    p.add_argument("--port", help="listen port (DFS_API_PORT)")
    p.add_argument("--host", help="bind address (DFS_API_HOST)")
    p.add_argument("--meta-url", help="metadata store URL (DFS_META_URL)")
    p.add_argument("--data-dir", help="data directory (DFS_DATA_DIR)")
    args = p.parse_args(argv)
    env = dict(os.environ)
    flags = {
        "DFS_API_PORT": args.port,
        "DFS_API_HOST": args.host,
        "DFS_META_URL": args.meta_url,
        "DFS_DATA_DIR": args.data_dir,
    }
    env.update({k: v for k, v in flags.items() if v is not None})
    return load_api_config(env)


ADMIN_TOKEN_FILE = "admin_token"
API_SECRET_FILE = "api_secret"


def _read_or_create(path: Path, make: Callable[[], str]) -> tuple[str, bool]:
    """The secret kept in ``path``, or a new one from ``make`` written there (mode 0600);
    True if it was just generated."""
    try:
        return path.read_text().strip(), False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    value = make()
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return value, True


def ensure_admin_token(cfg: ApiConfig) -> tuple[ApiConfig, str | None]:
    """Without DFS_ADMIN_TOKEN, use the token kept in the data directory, generating it (mode
    0600) at first start. Returns the config and the token if it was just generated."""
    if cfg.admin_token_hash is not None:
        return cfg, None
    token, generated = _read_or_create(cfg.data_dir / ADMIN_TOKEN_FILE, new_token)
    return dataclasses.replace(
        cfg, admin_token_hash=hash_token(token)
    ), token if generated else None


def ensure_api_secret(cfg: ApiConfig) -> ApiConfig:
    """Without DFS_API_SECRET, use the secret kept in the data directory (generated at first
    start): right for one API process; several must share DFS_API_SECRET."""
    if cfg.api_secret:
        return cfg
    secret, _ = _read_or_create(cfg.data_dir / API_SECRET_FILE, lambda: secrets.token_hex(32))
    return dataclasses.replace(cfg, api_secret=secret.encode())


async def serve(cfg: ApiConfig, argv: Sequence[str], sock: socket.socket | None) -> None:
    """Serve until SIGTERM or SIGINT: alone, or as the first of ``cfg.workers`` processes
    on the listening ``sock`` (``dfs.api.workers``), or as one the first started."""
    from dfs.api.app import start_api  # after workers.prepare_metrics: imports prometheus

    # a worker reads the secret and the token its first worker kept (or generated) there
    cfg, generated = ensure_admin_token(ensure_api_secret(cfg))
    if workers.is_worker():
        api = await start_api(cfg, workers.inherited_socket())
        # the first worker's log then says when each worker it started takes connections
        print(f"dfs-api worker {os.getpid()} serving on {api.url}", flush=True)
        stop = asyncio.Event()
        workers.watch_parent(stop)
        await until_stopped(stop)
        await api.stop()
        return
    if generated:
        print(
            f"dfs-api: generated the admin token (shown once; kept in "
            f"{cfg.data_dir / ADMIN_TOKEN_FILE}, mode 0600): {generated}",
            flush=True,
        )
    api = await start_api(cfg, sock)
    others = workers.Workers(sock, cfg.workers - 1, argv) if sock is not None else None
    if others is not None:
        others.start()
    print(
        f"dfs-api listening on {api.url} meta={cfg.meta_url} "
        f"replication_factor={cfg.replication_factor} workers={cfg.workers}",
        flush=True,
    )
    await until_stopped()
    logging.getLogger("dfs.api").info("stopping: draining in-flight requests")
    if others is not None:
        await others.stop()
    await api.stop()


def run(args: Sequence[str]) -> None:
    cfg = load(args)
    if cfg.workers == 1 or workers.is_worker():
        asyncio.run(serve(cfg, args, None))
        return
    with workers.listening_socket(cfg.host, cfg.port) as sock:
        folder = workers.prepare_metrics(cfg.data_dir, sock)
        try:
            asyncio.run(serve(cfg, args, sock))
        finally:
            workers.remove_metrics(folder)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["init-tables"]:
        return init_tables_main(args[1:])
    return run_service("dfs-api", lambda: run(args))


if __name__ == "__main__":  # the workers ``dfs.api.workers`` starts
    sys.exit(main())
