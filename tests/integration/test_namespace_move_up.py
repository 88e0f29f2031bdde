"""A recursive copy or move of a prefix up into its parent (``a/b/`` to ``a/``) never writes
a key onto a source key it has not copied yet: with ``a/b/b/x`` beside ``a/b/x``, the copy
of ``a/b/b/x`` landed on ``a/b/x`` first and the original bytes of ``a/b/x`` were lost (an
unversioned bucket, every request answered 200). Such a copy is refused, and moves up that
overwrite nothing not yet copied still work."""

from __future__ import annotations

from pathlib import Path

import pytest

from dfs.client import Client
from dfs.errors import InvalidRequest
from tests.integration.conftest import InProcessCluster
from tests.integration.test_namespace_api import tokens

pytestmark = pytest.mark.integration


async def _put(a: Client, tmp_path: Path, bucket: str, files: dict[str, bytes]) -> None:
    for n, (key, data) in enumerate(files.items()):
        src = tmp_path / f"in{n}"
        src.write_bytes(data)
        await a.upload_to([src], bucket, key)


async def _contents(a: Client, tmp_path: Path, bucket: str) -> dict[str, bytes]:
    got: dict[str, bytes] = {}
    keys = [o["key"] async for o in a.list_all(bucket, "", delimiter="")]
    for key in keys:
        out = tmp_path / "out"
        await a.download_from(bucket, key, out)
        got[key] = out.read_bytes()
    return got


@pytest.mark.parametrize("move", [False, True])
async def test_a_copy_up_that_would_overwrite_a_source_first_is_refused(
    inproc: InProcessCluster, tmp_path: Path, move: bool
) -> None:
    (alice,) = await tokens(inproc.api.url, "alice")
    files = {"a/b/x": b"ORIGINAL a/b/x", "a/b/b/x": b"ORIGINAL a/b/b/x"}
    async with Client(inproc.api.url, token=alice) as a:
        await a.make_bucket("bkt")
        await _put(a, tmp_path, "bkt", files)
        with pytest.raises(InvalidRequest, match="'a/b/b/x' would overwrite 'a/b/x'"):
            await a.copy("bkt/a/b/", "bkt/a/", recursive=True, move=move)
        assert await _contents(a, tmp_path, "bkt") == files  # nothing copied, nothing lost


async def test_moves_up_that_overwrite_no_uncopied_source_still_work(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    (alice,) = await tokens(inproc.api.url, "alice")
    async with Client(inproc.api.url, token=alice) as a:
        await a.make_bucket("bkt")
        # no target is a source key
        await _put(a, tmp_path, "bkt", {"a/c/x": b"cx", "a/c/d/y": b"cdy"})
        await a.copy("bkt/a/c/", "bkt/a/", recursive=True, move=True)
        assert await _contents(a, tmp_path, "bkt") == {"a/x": b"cx", "a/d/y": b"cdy"}
        # a/b/b/a lands on a/b/a after a/b/a itself was moved (it sorts first)
        await _put(a, tmp_path, "bkt", {"a/b/a": b"ba", "a/b/b/a": b"bba"})
        await a.copy("bkt/a/b/", "bkt/a/", recursive=True, move=True)
        assert await _contents(a, tmp_path, "bkt") == {
            "a/x": b"cx",
            "a/d/y": b"cdy",
            "a/a": b"ba",
            "a/b/a": b"bba",
        }
