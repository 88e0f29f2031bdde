"""A heartbeat the registry does not answer is given up within its deadline.

Nodes registering through the API keep a pooled connection to one API process; with several
(``DFS_API_WORKERS``) one that stops answering (SIGSTOP, hung) held the heartbeat for the
session's read timeout, and the node expired though another process would have answered.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from dfs.chunkstore.memory import MemoryChunkStore
from dfs.config import NodeConfig
from dfs.errors import Unavailable
from dfs.meta.base import NodeRecord
from dfs.node.heartbeat import heartbeat_deadline, heartbeat_once


class Hung:
    """A registry that never answers, counting the heartbeats it was sent."""

    def __init__(self) -> None:
        self.sent = 0

    async def heartbeat(self, node: NodeRecord) -> None:
        self.sent += 1
        await asyncio.Event().wait()

    async def deregister(self, node_id: str) -> None:
        raise AssertionError("not called")


def config(tmp_path: Path, interval: float, timeout: float) -> NodeConfig:
    return NodeConfig(
        node_id="n1",
        data_dir=tmp_path,
        api_url="http://127.0.0.1:9",
        heartbeat_interval=interval,
        heartbeat_timeout=timeout,
        cluster_secret=b"s" * 32,
    )


@pytest.mark.parametrize(
    ("interval", "timeout", "deadline"),
    [(5.0, 15.0, 5.0), (1.0, 4.0, 1.0), (0.05, 600.0, 1.0), (10.0, 12.0, 4.0)],
)
def test_deadline_is_within_the_entry_lifetime(
    tmp_path: Path, interval: float, timeout: float, deadline: float
) -> None:
    # at most a third of the time an entry lives, so retries fit in it; never under 1 s
    assert heartbeat_deadline(config(tmp_path, interval, timeout)) == deadline


async def test_an_unanswered_heartbeat_fails_within_its_deadline(tmp_path: Path) -> None:
    cfg = config(tmp_path, interval=1.0, timeout=4.0)
    registry = Hung()
    started = time.monotonic()
    with pytest.raises(Unavailable, match=r"did not answer within 1\.0 s"):
        await heartbeat_once(cfg, 9000, MemoryChunkStore(), registry)
    took = time.monotonic() - started
    assert registry.sent == 1
    assert 1.0 <= took < 3.0  # the deadline, not the session's read timeout (120 s)
