"""``GET /files?prefix=``: a listing bounded to the names under a prefix, which a restore of
``download --prefix P`` pages through instead of every file of the tenant (issue 19)."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from dfs import protocol
from dfs.api.routes_files import MAX_PREFIX_CHARS
from dfs.client import Client
from dfs.client.cli_transfer import all_files
from dfs.client.local_files import LocalFile
from dfs.client.plans import EarlyPlans
from tests.integration.conftest import ADMIN_TOKEN, InProcessCluster

pytestmark = pytest.mark.integration


async def test_a_prefix_lists_only_the_files_under_it(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    names = ["v1/a", "v1/b", "v2/a", "v2/b", "v2x/c", "w/v2/d"]
    files = []
    for n, name in enumerate(names):
        path = src / f"{n}.txt"
        path.write_bytes(f"{name} bytes".encode())
        files.append(LocalFile(path, name, path.stat().st_size))
    again = src / "again.txt"
    again.write_bytes(b"v2/a, newer")
    async with Client(inproc.api.url, token=ADMIN_TOKEN, resume=False) as cl:
        ups = await cl.upload_many(files)
        [newer] = await cl.upload_many([LocalFile(again, "v2/a", again.stat().st_size)])
        first = await cl.ls(limit=2, prefix="v2/")
        rest = await cl.ls(limit=2, after=first["next_after"], prefix="v2/")
        listed = [f["file_id"] for f in first["files"] + rest["files"]]
        by_name = {u.file_id: name for u, name in zip(ups, names, strict=True)}
        by_name[newer.file_id] = "v2/a"
        assert sorted(listed) == sorted(i for i, name in by_name.items() if name[:3] == "v2/")
        assert rest["next_after"] is None
        everything = await cl.ls(limit=100)
        assert len(everything["files"]) == len(names) + 1
        # the newest file of each name under the prefix, by name
        restore = await all_files(cl, "v2/")
        assert [(f["name"], f["file_id"]) for f in restore] == [
            ("v2/a", newer.file_id),
            ("v2/b", ups[3].file_id),
        ]
        # a download's early plans: the first page's files, asked for while listing
        early = EarlyPlans(cl.api, True, 2)
        assert await all_files(cl, "v2/", early.start) == restore
        plans = await early.take()
        assert set(plans) == set(listed)  # the older v2/a too (the download leaves it out)
        assert all(plans[f["file_id"]]["sha256"] == f["sha256"] for f in restore)
    async with aiohttp.ClientSession() as s:
        url = f"{inproc.api.url}{protocol.FILES}"
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        longest = "\U0001e7b5" * MAX_PREFIX_CHARS  # 4-byte characters: 12 bytes each in the URL
        async with s.get(url, params={"prefix": longest}, headers=headers) as r:
            assert r.status == 200
        for bad in ("a\x00b", "x" * (MAX_PREFIX_CHARS + 1), "\U0001e7b5" * (MAX_PREFIX_CHARS + 1)):
            async with s.get(url, params={"prefix": bad}, headers=headers) as r:
                assert r.status == 400
                assert "prefix" in (await r.json())["error"]["message"]
