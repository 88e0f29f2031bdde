"""Re-planning an upload around failed nodes, against a stand-in API (issue 12, item 4)."""

from __future__ import annotations

import asyncio
import dataclasses
import types
from collections.abc import Collection
from typing import Any

import pytest

from dfs.client.avoid import AvoidList, TransferStats
from dfs.client.chunk_sender import ChunkSender
from dfs.client.connection import Connection
from dfs.client.replan import Replanner, blame_forwards
from dfs.errors import Unavailable

NODES = ["n1", "n2", "n3"]


def entry(chunk: str, targets: list[str]) -> dict[str, Any]:
    return {
        "sha256": chunk,
        "size": 1,
        "targets": [{"node_id": n, "url": f"http://{n}"} for n in targets],
        "caps": ["c"] * len(targets),
    }


class FakeApi:
    """``/resume-upload``: every chunk not receipted, on the first two nodes not excluded."""

    def __init__(self, chunks: list[str]) -> None:
        self.chunks = chunks
        self.calls: list[list[str]] = []

    async def resume_upload(
        self, file_id: str, receipts: dict[str, str], exclude_nodes: Collection[str]
    ) -> dict[str, Any]:
        self.calls.append(sorted(exclude_nodes))
        await asyncio.sleep(0.01)
        left = [n for n in NODES if n not in exclude_nodes]
        if len(left) < 2:
            raise Unavailable("only 1 live storage node(s) besides the excluded")
        todo = [c for c in self.chunks if c not in receipts]
        return {"file_id": file_id, "upload": [entry(c, left[:2]) for c in todo]}


def setup(chunks: list[str]) -> tuple[FakeApi, Connection, dict[str, str]]:
    api = FakeApi(chunks)
    conn = Connection(
        api=api,  # type: ignore[arg-type]
        nodes=None,  # type: ignore[arg-type]
        api_url="http://api",
        token=None,
        concurrency=4,
        proxy=False,
        resume=False,
        avoid=AvoidList(),
        stats=TransferStats(),
    )
    return api, conn, {}


async def test_no_failed_node_no_replan() -> None:
    api, conn, receipts = setup(["a"])
    item = entry("a", ["n1", "n2"])
    assert await Replanner(conn, "f", receipts).entry(item) is item
    assert api.calls == []


async def test_one_replan_around_a_failed_node_for_every_waiting_chunk() -> None:
    chunks = [f"c{i}" for i in range(6)]
    api, conn, receipts = setup(chunks)
    receipts["c5"] = "r"  # proven: the new plan does not ask for it
    replanner = Replanner(conn, "f", receipts)
    conn.avoid.failed("n1")
    got = await asyncio.gather(*(replanner.entry(entry(c, ["n1", "n2"])) for c in chunks))
    assert api.calls == [["n1"]]
    assert conn.stats.replans == 1
    assert all(
        g is not None and [t["node_id"] for t in g["targets"]] == ["n2", "n3"] for g in got[:5]
    )
    assert got[5] is None
    # a chunk whose entry avoids the failed nodes is sent as it is
    assert await replanner.entry(entry("c0", ["n2", "n3"])) is not None
    assert api.calls == [["n1"]]


async def test_a_refused_replan_keeps_the_plan_and_is_not_asked_again() -> None:
    api, conn, receipts = setup(["a"])
    replanner = Replanner(conn, "f", receipts)
    item = entry("a", ["n1", "n2"])
    conn.avoid.failed("n1")
    conn.avoid.failed("n2")
    assert await replanner.entry(item) is item
    assert await replanner.entry(item) is item
    assert api.calls == [["n1", "n2"]]
    assert conn.stats.replans == 0


def test_a_502_blames_the_replicas_the_client_already_knows_failed() -> None:
    avoid = AvoidList()
    blame_forwards(avoid, ["n2", "n3"])
    assert avoid.excluded() == {"n2", "n3"}
    avoid = AvoidList()
    avoid.failed("n3")
    blame_forwards(avoid, ["n2", "n3"])
    assert avoid.excluded() == {"n3"}


async def test_finalize_replan_falls_back_to_every_live_node() -> None:
    api, conn, receipts = setup(["a", "b"])
    conn.avoid.failed("n1")
    conn.avoid.failed("n2")
    entries = await Replanner(conn, "f", receipts).replan()
    assert api.calls == [["n1", "n2"], []]
    assert [e["sha256"] for e in entries] == ["a", "b"]


def packed(chunk: str, targets: list[str]) -> dict[str, Any]:
    """An /init-uploads entry of a small chunk: no capabilities (its pack carries one)."""
    item = entry(chunk, targets)
    del item["caps"]
    return item


class FinalizingApi(FakeApi):
    """``/finalize-uploads``: every file complete; the exclusions each call sent."""

    def __init__(self) -> None:
        super().__init__([])
        self.finalized: list[tuple[list[str], list[str]]] = []

    async def finalize_uploads(
        self, uploads: list[dict[str, Any]], exclude_nodes: Collection[str]
    ) -> list[dict[str, Any]]:
        self.finalized.append(([str(u["file_id"]) for u in uploads], sorted(exclude_nodes)))
        return [{"file_id": u["file_id"], "state": "complete"} for u in uploads]


async def test_a_batch_finalize_does_not_ask_the_nodes_that_just_failed() -> None:
    """A hung node would hold /finalize-uploads for its has-chunks deadline: the batch's
    finalize names the client's failed nodes (and none once they are forgotten)."""
    api = FinalizingApi()
    conn = dataclasses.replace(setup([])[1], api=api)
    sender = ChunkSender(conn, None)
    uploads: Any = [
        types.SimpleNamespace(file_id=f, receipts={}, committed=None) for f in ("f1", "f2")
    ]
    await sender.finalize_batch([*uploads])
    conn.avoid.failed("n3")
    conn.avoid.failed("n1")
    done = await sender.finalize_batch([*uploads])
    assert [d["state"] for d in done] == ["complete", "complete"]
    assert api.finalized == [(["f1", "f2"], []), (["f1", "f2"], ["n1", "n3"])]


async def test_packed_chunks_sent_alone_replan_once() -> None:
    chunks = [f"c{i}" for i in range(5)]
    api, conn, receipts = setup(chunks)
    receipts["c4"] = "r"  # proven: the new plan does not ask for it
    replanner = Replanner(conn, "f", receipts)
    got = await asyncio.gather(*(replanner.entry(packed(c, ["n1", "n2"])) for c in chunks))
    assert api.calls == [[]]  # one plan with capabilities, nothing excluded
    assert all(g is not None and g["caps"] for g in got[:4])
    assert got[4] is None


async def test_packed_chunk_replans_over_every_node_when_too_few_are_left() -> None:
    api, conn, receipts = setup(["a"])
    conn.avoid.failed("n1")
    conn.avoid.failed("n2")
    got = await Replanner(conn, "f", receipts).entry(packed("a", ["n1", "n2"]))
    # around n1 and n2 only n3 is left (Unavailable): a plan over every node instead
    assert api.calls == [["n1", "n2"], []]
    assert got is not None
    assert got["caps"]


async def test_the_first_failed_write_to_a_node_overtakes_the_others_in_flight() -> None:
    """``AvoidList.guard``: once a write to a node fails, the writes in flight to it give up
    at once with an ``Unavailable`` naming it (``overtaken_by``); others go on."""
    avoid = AvoidList()
    never = asyncio.Event()  # a hung node: its writes never answer

    async def hung() -> str:
        await never.wait()
        return "never"

    async def fine() -> str:
        await asyncio.sleep(0.05)
        return "receipt"

    waiting = [asyncio.create_task(avoid.guard(t, hung())) for t in (["n1"], ["n2", "n1"])]
    other = asyncio.create_task(avoid.guard(["n2", "n3"], fine()))
    await asyncio.sleep(0)  # every write is in flight
    avoid.failed("n1")  # the first write to n1 missed its deadline
    for task in waiting:
        with pytest.raises(Unavailable, match="overtaken") as info:
            await asyncio.wait_for(task, 1.0)
        assert info.value.overtaken_by == "n1"
    assert await asyncio.wait_for(other, 1.0) == "receipt"
    # a write that fails on its own is its own error, not an overtaken one
    with pytest.raises(Unavailable) as own:
        await avoid.guard(["n3"], _unavailable())
    assert own.value.overtaken_by is None


async def _unavailable() -> str:
    raise Unavailable("timed out")


def test_a_guard_works_under_a_later_event_loop() -> None:
    """An ``AvoidList`` outlives its event loop when a library user runs one ``Client``
    under several ``asyncio.run`` calls: its pending failure signals belong to the old
    loop, and a guarded write under the new one must neither fail on them nor miss a
    failure signalled there."""
    avoid = AvoidList()

    async def write() -> str:
        return "receipt"

    assert asyncio.run(avoid.guard(["n1"], write())) == "receipt"

    async def later() -> None:
        never = asyncio.Event()

        async def hung() -> str:
            await never.wait()
            return "never"

        assert await avoid.guard(["n1"], write()) == "receipt"
        task = asyncio.create_task(avoid.guard(["n1"], hung()))
        await asyncio.sleep(0)
        avoid.failed("n1")
        with pytest.raises(Unavailable, match="overtaken"):
            await asyncio.wait_for(task, 1.0)

    asyncio.run(later())
