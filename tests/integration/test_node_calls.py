"""Heartbeat and deregistration capabilities cannot be replayed (issue 12, item 7).

A node registering through the API (DFS_API_URL mode) is played by the real ``ApiRegistrar``
against a real API process's routes; a recording client keeps what it sent, as an attacker
on the path would, and the test replays it by hand.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from dfs import auth, protocol
from dfs.client import Client
from dfs.meta.base import NODE_UP, NodeRecord
from dfs.node.disk_identity import next_boot
from dfs.node.heartbeat import ApiRegistrar
from dfs.transport.api_client import ApiClient
from dfs.transport.http import make_session
from tests.integration.conftest import ADMIN_TOKEN, SECRET, InProcessCluster

pytestmark = pytest.mark.integration


class Recording(ApiClient):
    """An ApiClient that keeps every registry call's body and capability."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        super().__init__(session, url)
        self.sent: list[tuple[str, dict[str, Any], str]] = []

    async def heartbeat(self, node: dict[str, Any], *, cap: str) -> None:
        self.sent.append((protocol.NODE_HEARTBEAT, dict(node), cap))
        await super().heartbeat(node, cap=cap)

    async def deregister(self, node_id: str, *, cap: str, boot: str, seq: int) -> None:
        body = {"node_id": node_id, "boot": boot, "seq": seq}
        self.sent.append((protocol.NODE_DEREGISTER, body, cap))
        await super().deregister(node_id, cap=cap, boot=boot, seq=seq)


def record(node_id: str, port: int, disk_id: str = "disk-0123") -> NodeRecord:
    now = time.time()
    return NodeRecord(
        node_id, "127.0.0.1", port, "", 1 << 30, 0, NODE_UP, now, now + 10, disk_id=disk_id
    )


async def post(url: str, body: dict[str, Any], cap: str) -> int:
    async with (
        aiohttp.ClientSession() as s,
        s.post(url, json=body, headers={protocol.CAPABILITY: cap}) as r,
    ):
        return r.status


async def entry(api_url: str, node_id: str) -> dict[str, Any] | None:
    async with Client(api_url, token=ADMIN_TOKEN) as admin:
        nodes = (await admin.list_nodes())["nodes"]
    return next((n for n in nodes if n["node_id"] == node_id), None)


async def test_captured_node_calls_cannot_be_replayed(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    api = inproc.api.url
    async with make_session() as session:
        wire = Recording(session, api)
        node = ApiRegistrar(wire, SECRET, next_boot(tmp_path))
        await node.heartbeat(record("n9", 9009))
        await node.heartbeat(record("n9", 9009))
        path, beat, cap = wire.sent[-1]
        assert (await entry(api, "n9") or {})["url"] == "http://127.0.0.1:9009"

        # the same heartbeat again: refused, on this API process and on any other (the
        # last accepted sequence is in the metadata store)
        assert await post(api + path, beat, cap) == 403
        # at another address, with more capacity or another disk: the capability binds what
        # it announces
        changes: list[dict[str, Any]] = [
            {"port": 9999},
            {"host": "10.9.9.9"},
            {"capacity_bytes": 1 << 50},
            {"disk_id": "disk-other"},
            {"seq": beat["seq"] + 1, "boot": beat["boot"] + 1},
        ]
        for change in changes:
            assert await post(api + path, {**beat, **change}, cap) == 403
        # a newer sequence number cannot be put on an old capability either
        assert await post(api + path, {**beat, "seq": beat["seq"] + 100}, cap) == 403
        assert (await entry(api, "n9") or {})["url"] == "http://127.0.0.1:9009"

        # deregistration is its own operation: a heartbeat's capability cannot do it
        bye = {"node_id": "n9", "boot": beat["boot"], "seq": beat["seq"] + 1}
        assert await post(api + protocol.NODE_DEREGISTER, bye, cap) == 403
        assert (await entry(api, "n9") or {})["live"]

        await node.deregister("n9")
        assert not (await entry(api, "n9") or {"live": True})["live"]
        _, bye_body, bye_cap = wire.sent[-1]
        # a captured deregistration cannot be replayed, nor the old heartbeats after it
        assert await post(api + protocol.NODE_DEREGISTER, bye_body, bye_cap) == 403
        assert await post(api + path, beat, cap) == 403

        # the node restarts: a new boot registers at once
        restarted = ApiRegistrar(Recording(session, api), SECRET, next_boot(tmp_path))
        await restarted.heartbeat(record("n9", 9010))
        got = await entry(api, "n9") or {}
        assert got["live"]
        assert got["url"] == "http://127.0.0.1:9010"


async def test_calls_captured_before_a_restart_are_refused_after_it(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    """The boot number the node keeps on its disk grows at every start, and the API refuses
    a boot lower than the last it accepted: a heartbeat (or deregistration) captured before
    the node restarted is refused within its 60 s life, however high its seq."""
    api = inproc.api.url
    async with make_session() as session:
        before = Recording(session, api)
        node = ApiRegistrar(before, SECRET, next_boot(tmp_path))
        for _ in range(5):
            await node.heartbeat(record("n7", 9007))
        path, beat, cap = before.sent[-1]
        # a deregistration captured on the way, never delivered (the attacker dropped it)
        bye_seq = beat["seq"] + 1
        bye_cap = auth.mint_deregister(SECRET, "n7", beat["boot"], bye_seq)
        bye = {"node_id": "n7", "boot": beat["boot"], "seq": bye_seq}

        # the node restarts (a new process, the same data directory) and registers once
        after = Recording(session, api)
        restarted = ApiRegistrar(after, SECRET, next_boot(tmp_path))
        await restarted.heartbeat(record("n7", 9017))
        assert after.sent[-1][1]["boot"] > beat["boot"]
        assert after.sent[-1][1]["seq"] < beat["seq"]  # a new boot starts its count again

        # the old boot's calls are still within their capabilities' life: refused anyway
        assert await post(api + path, beat, cap) == 403
        assert await post(api + protocol.NODE_DEREGISTER, bye, bye_cap) == 403
        got = await entry(api, "n7") or {}
        assert got["live"]
        assert got["url"] == "http://127.0.0.1:9017"
        await restarted.heartbeat(record("n7", 9017))  # the new boot goes on


async def test_a_heartbeat_without_boot_and_seq_is_refused(inproc: InProcessCluster) -> None:
    body = dataclasses.asdict(record("n8", 9008))
    del body["boot"], body["seq"]  # the record's, which only the store reads
    cap = auth.mint(SECRET, auth.OP_HEARTBEAT, auth.ANY_CHUNK, "n8", ttl=60)  # the old form
    assert await post(inproc.api.url + protocol.NODE_HEARTBEAT, body, cap) == 400
    old_form = {**body, "boot": "0" * 32, "seq": 1}  # a per-boot nonce of before
    assert await post(inproc.api.url + protocol.NODE_HEARTBEAT, old_form, cap) == 400
    numbered = {**body, "boot": 1_700_000_000_000, "seq": 1}
    assert await post(inproc.api.url + protocol.NODE_HEARTBEAT, numbered, cap) == 403


async def test_a_heartbeat_written_after_the_deregistration_leaves_the_node_down(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A heartbeat whose sequence the store accepted, then whose entry write stalled (an API
    process paused, a slow store) until after the node's deregistration was written, must
    not bring the entry back up: the node left, and plans would name it until it expired."""
    api = inproc.api.url
    meta = inproc.api.meta
    write_entry = meta.upsert_node
    stalled, release = asyncio.Event(), asyncio.Event()

    async def stall_the_late_beat(node: NodeRecord) -> bool:
        if node.node_id == "n6" and node.seq == 2:
            stalled.set()
            await release.wait()
        return await write_entry(node)

    monkeypatch.setattr(meta, "upsert_node", stall_the_late_beat)
    async with make_session() as session:
        node = ApiRegistrar(ApiClient(session, api), SECRET, next_boot(tmp_path))
        await node.heartbeat(record("n6", 9006))
        late = asyncio.create_task(node.heartbeat(record("n6", 9006)))
        await asyncio.wait_for(stalled.wait(), 10)
        await node.deregister("n6")
        assert not (await entry(api, "n6") or {"live": True})["live"]
        release.set()
        await asyncio.wait_for(late, 10)  # answered: the node is not told to retry
        got = await entry(api, "n6") or {}
        assert got["status"] == "down"
        assert not got["live"]
