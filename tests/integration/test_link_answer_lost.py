"""A link or delete the API made, whose answer never reached the client, is sent again and
makes nothing twice (in process, SQLite).

A man in the middle in front of the real API forwards every request and, for the first
requests of a kind, waits for the API's answer (so the change is committed) and then drops
the client's connection without a byte of it: exactly an answer lost in an API restart or a
broken proxy. The client sends the request again (``dfs.transport.api_client``), and thanks
to ``unless_current`` / ``unless_deleted`` the second one answers what the first made.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from dfs.client import Client
from tests.integration.conftest import InProcessCluster
from tests.integration.test_namespace_api import tokens
from tests.local_app import serving

pytestmark = pytest.mark.integration

HOP = ("host", "content-length", "transfer-encoding", "connection")


class AnswerLost:
    """Forwards to ``upstream``; the first ``lose`` requests that ``match`` are carried
    out upstream and their answers thrown away with the client's connection."""

    def __init__(self, upstream: str, match: Callable[[web.Request], bool], lose: int) -> None:
        self.upstream, self.match, self.lose = upstream, match, lose
        self.lost: list[str] = []
        self.seen: list[str] = []
        self.app = web.Application(client_max_size=64 << 20)
        self.app.router.add_route("*", "/{tail:.*}", self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
        what = f"{request.method} {request.path}"
        self.seen.append(what)
        url = f"{self.upstream}{request.path_qs}"
        async with (
            aiohttp.ClientSession() as s,
            s.request(request.method, url, data=body, headers=headers) as r,
        ):
            answer = await r.read()
            status, ctype = r.status, r.headers.get("Content-Type", "application/json")
        if self.lose > 0 and self.match(request):
            self.lose -= 1
            self.lost.append(what)
            assert request.transport is not None
            request.transport.abort()  # committed upstream, and the client hears nothing
        return web.Response(status=status, body=answer, headers={"Content-Type": ctype})


async def _versions(c: Client, bucket: str, prefix: str) -> list[dict[str, Any]]:
    return [e async for e in c.list_all(bucket, prefix, delimiter="", versions=True)]


async def test_links_whose_answers_were_lost_make_one_version_each(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    (alice,) = await tokens(inproc.api.url, "alice")
    src = tmp_path / "src"
    src.mkdir()
    files = {f"f{i}.bin": os.urandom(100 + i) for i in range(1200)}  # several link requests
    for name, data in files.items():
        (src / name).write_bytes(data)
    mitm = AnswerLost(inproc.api.url, lambda r: r.path == "/objects-link", lose=2)
    async with (
        serving(mitm.app) as port,
        Client(f"http://127.0.0.1:{port}", token=alice, resume=False) as c,
    ):
        await c.make_bucket("lost", versioning="enabled")
        report = await c.upload_to([src], "lost", "up/")
        assert sorted(o["key"] for o in report.done) == sorted(f"up/{n}" for n in files)
        assert mitm.lost == ["POST /objects-link"] * 2
        assert mitm.seen.count("POST /objects-link") >= 5  # each lost one sent again
        versions = await _versions(c, "lost", "up/")
        assert sorted(v["key"] for v in versions) == sorted(f"up/{n}" for n in files)
        for name in list(files)[:3]:
            out = tmp_path / f"out-{name}"
            await c.download_from("lost", f"up/{name}", out)
            assert out.read_bytes() == files[name]


async def test_a_delete_whose_answer_was_lost_makes_one_marker(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    (alice,) = await tokens(inproc.api.url, "alice")
    (tmp_path / "a.txt").write_bytes(b"to be deleted")
    mitm = AnswerLost(inproc.api.url, lambda r: r.method == "DELETE", lose=1)
    async with (
        serving(mitm.app) as port,
        Client(f"http://127.0.0.1:{port}", token=alice, resume=False) as c,
    ):
        await c.make_bucket("gone", versioning="enabled")
        await c.upload_to([tmp_path / "a.txt"], "gone", "a.txt")
        removed = await c.remove("gone", "a.txt")
        assert removed["version"]["is_delete_marker"]
        assert mitm.lost == ["DELETE /objects/gone/a.txt"]
        versions = await _versions(c, "gone", "a.txt")
        assert [v["is_delete_marker"] for v in versions] == [True, False]
