"""A big file's chunks checked by its whole-file sha256 (``dfs.client.part_mend``), on real
processes: a chunk altered on the way from its first replica is written, found wrong when the
whole file does not match, fetched again from the other replica, and the file is named only
once it is right; to standard output every chunk is still checked before it is written."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from dfs import protocol
from dfs.client import Client
from dfs.client.download import RUN_CHUNK_MAX
from dfs.client.part_file import STDOUT
from dfs.localcluster import LocalCluster
from tests.local_app import serving

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("meta_url", ["sqlite"], indirect=True)]


@contextlib.asynccontextmanager
async def altering_proxy(upstream: str, bad_chunk: str) -> AsyncIterator[str]:
    """A man in the middle in front of a node's ``/get-chunk``: flips the first byte of
    ``bad_chunk`` (the node itself serves it intact)."""

    async def handle(request: web.Request) -> web.Response:
        headers = {protocol.CAPABILITY: request.headers.get(protocol.CAPABILITY, "")}
        url = f"{upstream}{protocol.GET_CHUNK}"
        async with (
            aiohttp.ClientSession() as s,
            s.get(url, params=request.query, headers=headers) as resp,
        ):
            body = await resp.read()
            status = resp.status
        if status == 200 and request.query.get("chunk_id") == bad_chunk:
            body = bytes([body[0] ^ 0xFF]) + body[1:]
        return web.Response(body=body, status=status)

    app = web.Application()
    app.router.add_get(protocol.GET_CHUNK, handle)
    async with serving(app) as port:
        yield f"http://127.0.0.1:{port}"


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _route_through(plan: dict[str, Any], node_id: str, url: str) -> None:
    for chunk in plan["chunks"]:
        for replica in chunk["replicas"]:
            if replica["node_id"] == node_id:
                replica["url"] = url


async def _big_file(cl: Client, path: Path) -> tuple[bytes, dict[str, Any], dict[str, Any]]:
    """A 4 MiB file of chunks fetched alone (not in runs), its plan and the chunk to alter."""
    data = random.Random(19).randbytes(4 * 1024 * 1024)
    await asyncio.to_thread(path.write_bytes, data)
    up = await cl.upload(path)
    plan = await cl.api.download_plan(up.file_id)
    assert len(plan["chunks"]) >= 2
    assert all(int(c["size"]) >= RUN_CHUNK_MAX for c in plan["chunks"])
    return data, plan, plan["chunks"][1]


async def test_an_altered_big_chunk_is_fetched_again_before_the_file_is_named(
    cluster: LocalCluster, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "out"
    async with Client(cluster.api_url, token=cluster.admin_token, resume=False) as cl:
        data, plan, bad = await _big_file(cl, tmp_path / "big.bin")
        bad_node = str(bad["replicas"][0]["node_id"])
        async with altering_proxy(str(bad["replicas"][0]["url"]), str(bad["sha256"])) as mitm:
            _route_through(plan, bad_node, mitm)
            r = await asyncio.wait_for(cl.download(plan["file_id"], out, plan=plan), 60)
    assert out.read_bytes() == data
    assert r.failovers >= 1
    assert "whole-file sha256 did not match; 1 chunk(s) fetched again" in caplog.text
    assert f"a source returned bad bytes for chunk {str(bad['sha256'])[:12]}" in caplog.text
    assert [n for n in _names(tmp_path) if "dfs-part" in n] == []  # no temp file left


async def test_to_standard_output_each_big_chunk_is_checked_before_it_is_written(
    cluster: LocalCluster,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfdbinary: pytest.CaptureFixture[bytes],
) -> None:
    """Bytes written to standard output cannot be taken back, so no chunk is deferred: the
    altered one is refused on arrival and read from the other replica; nothing is mended."""
    async with Client(cluster.api_url, token=cluster.admin_token, resume=False) as cl:
        data, plan, bad = await _big_file(cl, tmp_path / "big.bin")
        bad_node = str(bad["replicas"][0]["node_id"])
        capfdbinary.readouterr()  # what the set-up printed, if anything
        async with altering_proxy(str(bad["replicas"][0]["url"]), str(bad["sha256"])) as mitm:
            _route_through(plan, bad_node, mitm)
            r = await asyncio.wait_for(cl.download(plan["file_id"], STDOUT, plan=plan), 60)
    assert capfdbinary.readouterr().out == data
    assert r.failovers >= 1
    assert f"a source returned bad bytes for chunk {str(bad['sha256'])[:12]}" in caplog.text
    assert "whole-file sha256 did not match" not in caplog.text
