"""``dfs-client rm --recursive`` deletes the keys of the folder it is given, never the keys
beside it that only start like its name: ``rm -r BUCKET/docs`` is the key ``docs`` and the
folder ``docs/`` (as ``download`` and ``prune`` take a path without its slash), not
``docs2/...`` nor ``docs-old.txt``, which the API's prefix delete would take too."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from dfs.client import Client, cli
from tests.integration.conftest import InProcessCluster
from tests.integration.test_namespace_api import tokens

pytestmark = pytest.mark.integration

KEYS = ["docs", "docs/a", "docs/b/c", "docs-old.txt", "docs2/b", "other"]


async def _rm(monkeypatch: pytest.MonkeyPatch, url: str, token: str, *args: str) -> int:
    """``dfs-client rm ARGS`` on a thread (it runs its own event loop)."""
    monkeypatch.setenv("DFS_API_URL", url)
    monkeypatch.setenv("DFS_TOKEN", token)

    def main(argv: Sequence[str]) -> int:
        try:
            return cli.main(list(argv))
        except SystemExit as exc:
            return int(exc.code or 0)

    return await asyncio.to_thread(main, ["rm", *args])


@pytest.mark.parametrize(
    ("path", "left"),
    [
        ("bkt/docs", ["docs-old.txt", "docs2/b", "other"]),
        ("bkt/docs/", ["docs", "docs-old.txt", "docs2/b", "other"]),
        ("bkt/docs/b", ["docs", "docs-old.txt", "docs/a", "docs2/b", "other"]),
    ],
)
async def test_rm_recursive_deletes_the_folder_named_and_nothing_beside_it(
    inproc: InProcessCluster, monkeypatch: pytest.MonkeyPatch, path: str, left: list[str]
) -> None:
    (alice,) = await tokens(inproc.api.url, "alice")
    async with Client(inproc.api.url, token=alice) as a:
        await a.make_bucket("bkt")
        for key in KEYS:
            await a.link("bkt", key, "")  # empty objects: keys are all this needs
    assert await _rm(monkeypatch, inproc.api.url, alice, "-r", path) == 0
    async with Client(inproc.api.url, token=alice) as a:
        assert sorted([o["key"] async for o in a.list_all("bkt", "", delimiter="")]) == left
