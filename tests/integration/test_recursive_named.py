"""``dfs-client rm --recursive``, ``cp -r`` and ``mv -r`` take the folder they are given,
never the keys beside it that only start like its name, which the API's prefix delete and
recursive copy would take too: ``rm -r BUCKET/docs`` is the key ``docs`` and the folder
``docs/`` (as ``download`` and ``prune`` take a path without its slash), ``mv -r
BUCKET/docs BUCKET/old`` the folder ``docs/``; never ``docs2/...`` nor ``docs-old.txt``."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from dfs.client import Client, cli
from tests.integration.conftest import InProcessCluster
from tests.integration.test_namespace_api import tokens

pytestmark = pytest.mark.integration

KEYS = ["docs", "docs/a", "docs/b/c", "docs-old.txt", "docs2/b", "other"]


async def _cli(monkeypatch: pytest.MonkeyPatch, url: str, token: str, *args: str) -> int:
    """``dfs-client ARGS`` on a thread (it runs its own event loop)."""
    monkeypatch.setenv("DFS_API_URL", url)
    monkeypatch.setenv("DFS_TOKEN", token)

    def main(argv: Sequence[str]) -> int:
        try:
            return cli.main(list(argv))
        except SystemExit as exc:
            return int(exc.code or 0)

    return await asyncio.to_thread(main, args)


async def _bucket(url: str) -> str:
    """A bucket ``bkt`` of ``KEYS`` (empty objects: keys are all this needs); the token."""
    (alice,) = await tokens(url, "alice")
    async with Client(url, token=alice) as a:
        await a.make_bucket("bkt")
        for key in KEYS:
            await a.link("bkt", key, "")
    return alice


async def _keys(url: str, token: str) -> list[str]:
    async with Client(url, token=token) as a:
        return sorted([o["key"] async for o in a.list_all("bkt", "", delimiter="")])


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
    alice = await _bucket(inproc.api.url)
    assert await _cli(monkeypatch, inproc.api.url, alice, "rm", "-r", path) == 0
    assert await _keys(inproc.api.url, alice) == left


@pytest.mark.parametrize("verb", ["cp", "mv"])
async def test_cp_and_mv_recursive_take_the_folder_named_and_nothing_beside_it(
    inproc: InProcessCluster, monkeypatch: pytest.MonkeyPatch, verb: str
) -> None:
    alice = await _bucket(inproc.api.url)
    assert await _cli(monkeypatch, inproc.api.url, alice, verb, "-r", "bkt/docs", "bkt/old") == 0
    moved = ["old/a", "old/b/c"]
    sources = ["docs/a", "docs/b/c"] if verb == "cp" else []
    beside = ["docs", "docs-old.txt", "docs2/b", "other"]
    assert await _keys(inproc.api.url, alice) == sorted(beside + sources + moved)
