"""Re-planning an upload around failed nodes (``/resume-upload`` with ``exclude_nodes``):
the exclusion shapes only the caller's own plan (issue 12, item 4)."""

from __future__ import annotations

import hashlib
import random
from typing import Any

import pytest

from dfs.client import Client
from dfs.errors import IncompleteUpload, InvalidRequest, Unavailable
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


async def test_a_page_proof_skips_excluded_nodes_while_enough_are_left(
    inproc: InProcessCluster,
) -> None:
    """``/paged-upload/prove``'s ``exclude_nodes``: those nodes are not asked for copies
    (a hung one would hold the proof for its deadline) unless too few would be left to hold
    REPLICATION_FACTOR copies; then every live node is asked."""
    chunks = [random.Random(100 + i).randbytes(8192) for i in range(24)]
    (token,) = await tenant_tokens(inproc.api.url, "carol3")
    async with Client(inproc.api.url, token=token) as c:
        file_id = (await c.api.paged_upload({"name": "p", "chunker": "fixed:8192"}))["file_id"]
        refs = [{"sha256": sha(d), "size": len(d)} for d in chunks]
        plan = await c.api.upload_page(file_id, 0, 0, refs)
        assert "node1" in target_ids(plan)  # 24 chunks over 3 nodes at RF 2
        receipts: dict[str, str] = {}
        for item in plan["upload"]:
            data = next(d for d in chunks if sha(d) == item["sha256"])
            receipts[item["sha256"]] = await c.send_chunk(file_id, item["sha256"], data, item)
        too_many = [f"n{i}" for i in range(65)]
        for bad, why in ((["no/de"], "exclude_nodes entry"), (too_many, "exclude_nodes must")):
            with pytest.raises(InvalidRequest, match=why):
                await c.api.prove_page(file_id, 0, receipts, exclude_nodes=bad)
        # node1's copies are not counted: the chunks it holds have one copy of two
        with pytest.raises(IncompleteUpload):
            await c.api.prove_page(file_id, 0, receipts, exclude_nodes=["node1"])
        # one node would be left of the two needed: every live node is asked
        proven = await c.api.prove_page(file_id, 0, receipts, exclude_nodes=["node1", "node2"])
        assert proven == {"file_id": file_id, "page": 0, "proven": True}


async def test_finalize_skips_excluded_nodes_while_enough_are_left(
    inproc: InProcessCluster,
) -> None:
    """``/finalize-upload`` and ``/finalize-uploads`` take ``exclude_nodes`` as a page's
    proof does: those nodes are not asked for copies unless too few would be left."""
    chunks = [random.Random(200 + i).randbytes(8192) for i in range(24)]
    (token,) = await tenant_tokens(inproc.api.url, "dave3")
    async with Client(inproc.api.url, token=token) as c:
        plan = await init(c, chunks)
        file_id = plan["file_id"]
        assert "node1" in target_ids(plan)  # 24 chunks over 3 nodes at RF 2
        receipts: dict[str, str] = {}
        for item in plan["upload"]:
            data = next(d for d in chunks if sha(d) == item["sha256"])
            receipts[item["sha256"]] = await c.send_chunk(file_id, item["sha256"], data, item)
        with pytest.raises(InvalidRequest, match="exclude_nodes entry"):
            await c.api.finalize_upload(file_id, receipts, exclude_nodes=["no/de"])
        with pytest.raises(IncompleteUpload):  # node1's copies are not counted
            await c.api.finalize_upload(file_id, receipts, exclude_nodes=["node1"])
        (short,) = await c.api.finalize_uploads(
            [{"file_id": file_id, "receipts": receipts}], exclude_nodes=["node1"]
        )
        assert short["error"]["code"] == IncompleteUpload.code
        # one node would be left of the two needed: every live node is asked
        (done,) = await c.api.finalize_uploads(
            [{"file_id": file_id, "receipts": receipts}], exclude_nodes=["node1", "node2"]
        )
        assert done["file_id"] == file_id
        assert done["state"] == "complete"
        # committed: asking again (any exclusion) answers the file
        again = await c.api.finalize_upload(file_id, receipts, exclude_nodes=["node1"])
        assert again["file_id"] == file_id
        assert again["state"] == "complete"


async def test_a_batch_plan_places_nothing_on_excluded_nodes_while_enough_are_left(
    inproc: InProcessCluster,
) -> None:
    """``/init-uploads``' ``exclude_nodes``: the batch's chunks (packs and single chunks)
    go to the other nodes, unless too few would be left: then to every live node."""
    (token,) = await tenant_tokens(inproc.api.url, "erin3")

    def bodies(seed: int) -> list[dict[str, Any]]:
        out = []
        for i in range(12):
            data = random.Random(seed + i).randbytes(3000)
            out.append(
                {
                    "name": f"f{i}",
                    "size": len(data),
                    "sha256": sha(data),
                    "chunker": "fixed:8192",
                    "chunks": [{"sha256": sha(data), "size": len(data)}],
                }
            )
        return out

    def placed(plans: list[dict[str, Any]], packs: list[dict[str, Any]]) -> set[str]:
        nodes = {t["node_id"] for p in plans for item in p["upload"] for t in item["targets"]}
        return nodes | {t["node_id"] for pack in packs for t in pack["targets"]}

    async with Client(inproc.api.url, token=token) as c:
        assert "node1" in placed(*await c.api.plan_uploads(bodies(300)))
        plans, packs = await c.api.plan_uploads(bodies(400), exclude_nodes=["node1"])
        assert packs
        assert placed(plans, packs) == {"node2", "node3"}
        # one node would be left of the two needed: placed over every live node
        plans, packs = await c.api.plan_uploads(bodies(500), exclude_nodes=["node1", "node2"])
        assert "node1" in placed(plans, packs)
        with pytest.raises(InvalidRequest, match="exclude_nodes entry"):
            await c.api.plan_uploads(bodies(600), exclude_nodes=["no/de"])
