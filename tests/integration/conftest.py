"""In-process cluster: the API and N nodes as aiohttp apps in one event loop, on port 0."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dfs.api.app import RunningApi, start_api
from dfs.auth import hash_token
from dfs.chunking import ChunkerProfile
from dfs.client import batch_scan
from dfs.config import ApiConfig, NodeConfig
from dfs.node.app import RunningNode, start_node


@dataclass
class InProcessCluster:
    api: RunningApi
    nodes: list[RunningNode]
    base: Path


SECRET = b"integration-test-cluster-secret-0123456789"
ADMIN_TOKEN = "dfs_integration-admin-token-0123456789abcdef"


async def start_cluster(
    base: Path,
    n: int = 3,
    rf: int = 2,
    api_cfg: Mapping[str, Any] | None = None,
    node_cfg: Mapping[str, Any] | None = None,
) -> InProcessCluster:
    """``api_cfg``: other ApiConfig fields (e.g. ``maintenance=False``: tests drive repair);
    ``node_cfg``: other NodeConfig fields (e.g. a longer ``heartbeat_timeout`` for a test
    whose work may hold the shared event loop past the default 3 s)."""
    meta_url = f"sqlite://{base / 'meta.db'}"
    api = await start_api(
        ApiConfig(
            port=0,
            data_dir=base / "api",
            meta_url=meta_url,
            replication_factor=rf,
            cluster_secret=SECRET,
            admin_token_hash=hash_token(ADMIN_TOKEN),
            **(api_cfg or {}),
        )
    )
    nodes = []
    for i in range(1, n + 1):
        cfg = NodeConfig(
            node_id=f"node{i}",
            port=0,
            data_dir=base / f"node{i}",
            meta_url=meta_url,
            cluster_secret=SECRET,
            **{"heartbeat_interval": 0.5, "heartbeat_timeout": 3.0, **(node_cfg or {})},
        )
        nodes.append(await start_node(cfg))
    return InProcessCluster(api, nodes, base)


@contextlib.asynccontextmanager
async def running_cluster(
    base: Path,
    n: int = 3,
    rf: int = 2,
    api_cfg: Mapping[str, Any] | None = None,
    node_cfg: Mapping[str, Any] | None = None,
) -> AsyncIterator[InProcessCluster]:
    """``start_cluster``, stopped on exit."""
    c = await start_cluster(base, n, rf, api_cfg, node_cfg)
    try:
        yield c
    finally:
        for node in c.nodes:
            await node.stop()
        await c.api.stop()


@pytest.fixture
async def inproc(tmp_path: Path) -> AsyncIterator[InProcessCluster]:
    async with running_cluster(tmp_path) as c:
        yield c


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The small files an upload pipeline read and scanned (``batch_scan.read_small``)."""
    seen: list[Path] = []
    real = batch_scan.read_small

    def counting(path: Path, profile: ChunkerProfile, size: int = 0, keep: bool = False) -> object:
        seen.append(path)
        return real(path, profile, size, keep)

    monkeypatch.setattr(batch_scan, "read_small", counting)
    return seen
