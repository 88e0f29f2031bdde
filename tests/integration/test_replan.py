"""Re-planning an upload around failed nodes (``/resume-upload`` with ``exclude_nodes``):
the exclusion shapes only the caller's own plan (issue 12, item 4)."""

from __future__ import annotations

import hashlib
import random
from typing import Any

import pytest

from dfs.client import Client
from dfs.errors import InvalidRequest, Unavailable
from tests.integration.conftest import InProcessCluster
from tests.integration.test_security import tenant_tokens

pytestmark = pytest.mark.integration


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def init(c: Client, chunks: list[bytes]) -> dict[str, Any]:
    return await c.api.init_upload(
        name="r",
        size=sum(map(len, chunks)),
        sha256=sha(b"".join(chunks)),
        chunker="fixed:8192",
        chunks=[{"sha256": sha(d), "size": len(d)} for d in chunks],
    )


def target_ids(plan: dict[str, Any]) -> set[str]:
    return {t["node_id"] for item in plan["upload"] for t in item["targets"]}


async def test_exclude_nodes_replans_only_the_callers_upload(inproc: InProcessCluster) -> None:
    api = inproc.api.url
    alice, bob = await tenant_tokens(api, "alice3", "bob3")
    chunks = [random.Random(i).randbytes(8192) for i in range(24)]
    async with Client(api, token=alice) as a, Client(api, token=bob) as b:
        plan = await init(a, chunks)
        assert "node1" in target_ids(plan)  # 24 chunks over 3 nodes at RF 2
        again = await a.api.resume_upload(plan["file_id"], {}, exclude_nodes=["node1"])
        assert len(again["upload"]) == 24
        assert target_ids(again) == {"node2", "node3"}
        for item in again["upload"]:  # the new plan's capabilities work
            data = next(d for d in chunks if sha(d) == item["sha256"])
            await a.send_chunk(plan["file_id"], item["sha256"], data, item)
        # nothing was recorded: the next plans (the same tenant's and another's) use node1
        assert "node1" in target_ids(await init(a, chunks[:12]))
        assert "node1" in target_ids(await init(b, chunks))
        # fewer than REPLICATION_FACTOR nodes left, bad or too many ids
        with pytest.raises(Unavailable, match="besides the 2 excluded"):
            await a.api.resume_upload(plan["file_id"], {}, exclude_nodes=["node1", "node2"])
        for bad in (["no/de"], [f"n{i}" for i in range(65)]):
            with pytest.raises(InvalidRequest):
                await a.api.resume_upload(plan["file_id"], {}, exclude_nodes=bad)
