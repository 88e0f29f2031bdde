"""A download that may not overwrite (the CLI without --force) never replaces a file that
appeared at its target while it ran (issue 16 Broken 3), against an in-process cluster."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from dfs.chunking import ChunkerProfile
from dfs.client import Client
from dfs.errors import Conflict
from tests.integration.conftest import ADMIN_TOKEN, InProcessCluster

pytestmark = pytest.mark.integration

CHUNK = 64 * 1024


async def test_a_file_that_appears_at_the_target_is_kept(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    data = random.Random(8).randbytes(8 * CHUNK)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    out = tmp_path / "dl" / "out.bin"
    out.parent.mkdir()

    def someone_writes(n: int) -> None:
        if not out.exists():
            out.write_text("someone else's")

    async with Client(inproc.api.url, token=ADMIN_TOKEN, overwrite=False) as c:
        up = await c.upload(src, profile=ChunkerProfile.fixed(CHUNK))
        with pytest.raises(Conflict, match="changed during the download"):
            await c.download(up.file_id, out, progress=someone_writes)
        assert out.read_text() == "someone else's"
        assert [p.name for p in out.parent.glob("*")] == ["out.bin"]  # no temp file left
        out.unlink()
        await c.download(up.file_id, out)  # nothing there: written as usual
    assert out.read_bytes() == data
    async with Client(inproc.api.url, token=ADMIN_TOKEN) as c:  # the library's default
        await c.download(up.file_id, out, progress=someone_writes)
    assert out.read_bytes() == data
