"""A hostile or buggy API in front of a real cluster (``rewriting``: a proxy that forwards
every request and rewrites the JSON answers of the routes a test names): whatever it
answers, a restore writes nothing outside its folder, and only the keys it asked for."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from dfs import protocol
from dfs.client import Client
from dfs.client.download import SMALL_FILE
from dfs.errors import IntegrityError
from tests.integration.conftest import ADMIN_TOKEN, InProcessCluster
from tests.local_app import serving

pytestmark = pytest.mark.integration

Rewrite = Callable[[dict[str, Any]], None]
"""Changes a JSON answer in place."""

HOP_HEADERS = {"content-length", "transfer-encoding", "content-encoding", "connection"}


@contextlib.asynccontextmanager
async def rewriting(api_url: str, rewrites: dict[str, Rewrite]) -> AsyncIterator[str]:
    """An API at the URL yielded that forwards every request to ``api_url`` and answers
    what it answered, the JSON answers of the paths in ``rewrites`` changed by them."""
    async with aiohttp.ClientSession(auto_decompress=False) as session:

        async def forward(request: web.Request) -> web.Response:
            headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
            async with session.request(
                request.method,
                f"{api_url.rstrip('/')}{request.path_qs}",
                headers=headers,
                data=await request.read(),
            ) as resp:
                body = await resp.read()
                out = {k: v for k, v in resp.headers.items() if k.lower() not in HOP_HEADERS}
                rewrite = rewrites.get(request.path)
                if rewrite is not None and resp.status == 200:
                    doc = await resp.json()
                    rewrite(doc)
                    return web.json_response(doc, status=resp.status)
                return web.Response(body=body, status=resp.status, headers=out)

        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", forward)
        async with serving(app) as port:
            yield f"http://127.0.0.1:{port}"


async def test_a_file_id_in_a_plan_never_names_a_temp_file_outside_the_folder(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    """The temp file of a download is named after the file id its plan gives, so that a
    resumed run finds it again. An API that gives ``x/../../escape`` there, into a folder
    that holds a directory ``.big.x`` (left by an earlier restore of the same bucket), had
    the temp file opened outside the folder, at ``escape.dfs-part``: one of ours there was
    taken for an interrupted download, emptied, written and moved into the restore."""
    big = random.Random(11).randbytes(SMALL_FILE + 4096)  # through the one-file pipeline
    src = tmp_path / "big"
    src.write_bytes(big)
    out = tmp_path / "a" / "out"
    (out / ".big.x").mkdir(parents=True)
    precious = tmp_path / "a" / "escape.dfs-part"
    precious.write_bytes(b"a file of the user's, outside the restore")

    def spoof(doc: dict[str, Any]) -> None:
        for plan in doc["plans"]:
            plan["file_id"] = "x/../../escape"

    async with Client(inproc.api.url, token=ADMIN_TOKEN) as c:
        await c.make_bucket("bkt")
        await c.upload_to([src], "bkt", "d/")
    async with (
        rewriting(inproc.api.url, {protocol.DOWNLOAD_PLANS: spoof}) as url,
        Client(url, token=ADMIN_TOKEN) as c,
    ):
        await c.download_from("bkt", "d/", out)
    assert (out / "big").read_bytes() == big
    assert precious.read_bytes() == b"a file of the user's, outside the restore"
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["escape.dfs-part", "out"]


async def test_keys_listed_outside_the_prefix_are_not_restored_under_it(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    """A restore of ``d/`` lands each key under the folder by its name after ``d/``. A
    listing that also answers keys outside the prefix (an API with a listing bug) had
    them cut as if they were under it: ``e/x/secret``'s bytes written to ``x/secret``,
    where ``d/x/secret`` belongs (both then refused as landing on one path). A key
    outside the prefix is skipped and reported; the keys under it are restored."""
    async with Client(inproc.api.url, token=ADMIN_TOKEN) as c:
        await c.make_bucket("bkt")
        for key, body in (("d/x/secret", b"d's"), ("e/x/secret", b"e's"), ("e/other", b"o")):
            (tmp_path / "f").write_bytes(body)
            await c.link("bkt", key, (await c.upload(tmp_path / "f")).file_id)
        everything = [o async for o in c.list_all("bkt", "", delimiter="")]

    def leak(doc: dict[str, Any]) -> None:
        doc["objects"] = sorted(
            {o["key"]: o for o in doc["objects"] + everything}.values(), key=lambda o: o["key"]
        )

    out = tmp_path / "out"
    listing = protocol.BUCKET_OBJECTS.format(bucket="bkt")
    async with (
        rewriting(inproc.api.url, {listing: leak}) as url,
        Client(url, token=ADMIN_TOKEN) as c,
    ):
        report = await c.download_from("bkt", "d/", out)
    assert (out / "x" / "secret").read_bytes() == b"d's"
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == ["x", "x/secret"]
    assert sorted(s.what for s in report.skipped) == ["e/other", "e/x/secret"]


def _spoil_layout(how: str) -> Rewrite:
    """A plan whose chunks do not lay out the file: the second chunk said to be at offset
    0 (over the first), or the file said to be longer than its chunks."""

    def spoil(doc: dict[str, Any]) -> None:
        for plan in doc["plans"]:
            if how == "overlap":
                plan["chunks"][1]["offset"] = 0
            else:
                plan["size"] += 4096

    return spoil


@pytest.mark.parametrize("how", ["overlap", "longer"])
async def test_a_plan_whose_chunks_do_not_lay_out_the_file_writes_nothing(
    inproc: InProcessCluster, tmp_path: Path, how: str
) -> None:
    """The whole-file sha256 is of the chunks in their order, the file on disk is what they
    were written at their offsets, cut at the plan's size. A plan whose chunks overlap,
    leave a gap, or end before (or after) its size had a file written that was not the
    bytes hashed (the second chunk over the first and zeros after it; a tail of zeros),
    under the target's name as verified. Such a plan is refused: nothing is written."""
    big = random.Random(12).randbytes(SMALL_FILE + 4096)
    src = tmp_path / "big"
    src.write_bytes(big)
    async with Client(inproc.api.url, token=ADMIN_TOKEN) as c:
        await c.make_bucket("bkt")
        await c.upload_to([src], "bkt", "d/")
    out = tmp_path / "out"
    async with (
        rewriting(inproc.api.url, {protocol.DOWNLOAD_PLANS: _spoil_layout(how)}) as url,
        Client(url, token=ADMIN_TOKEN) as c,
    ):
        with pytest.raises(IntegrityError):
            await c.download_from("bkt", "d/", out)
    assert not (out / "big").exists()


async def test_a_file_replaced_by_a_fifo_after_its_listing_is_left_out_not_waited_on(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    """A listed file replaced by a FIFO before the upload reads it: its open waited for a
    writer that never comes, the whole upload hung. It is left out as a file that changed,
    the others are stored."""
    from dfs.client.local_files import walk
    from dfs.errors import DfsError

    src = tmp_path / "src"
    src.mkdir()
    for name in ("a", "b"):
        (src / name).write_bytes(name.encode() * 100)
    files = list(walk([src]))
    (src / "a").unlink()
    os.mkfifo(src / "a")
    changed: list[str] = []

    def failed(f: Any, exc: DfsError) -> None:
        changed.append(f.name)

    async with Client(inproc.api.url, token=ADMIN_TOKEN, file_cache=False) as c:
        upload = asyncio.ensure_future(c.upload_many(files, failed=failed))
        try:
            done = await asyncio.wait_for(asyncio.shield(upload), 20)
        except TimeoutError:
            os.close(os.open(src / "a", os.O_WRONLY | os.O_NONBLOCK))  # let the reader go
            await asyncio.gather(upload, return_exceptions=True)
            pytest.fail("the upload waited on the FIFO")
    assert [r.name for r in done] == ["b"]
    assert changed == ["a"]
