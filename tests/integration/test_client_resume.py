"""The client library's resume of an interrupted download, against an in-process cluster."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from dfs.chunking import ChunkerProfile
from dfs.client import Client
from tests.integration.conftest import ADMIN_TOKEN, InProcessCluster

pytestmark = pytest.mark.integration

CHUNK = 64 * 1024


class Stop(Exception):
    pass


def parts(directory: Path) -> list[Path]:
    """The temp file and sidecar an interrupted download keeps."""
    return list(directory.glob(".d.out.*"))


def spoil_first_byte(path: Path) -> None:
    with open(path, "r+b") as f:
        byte = f.read(1)
        f.seek(0)
        f.write(bytes([byte[0] ^ 0xFF]))


async def test_resumed_download_rewrites_a_written_chunk_that_no_longer_verifies(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    """The sidecar is only a hint: a chunk it lists whose bytes on disk went bad is fetched
    and written again, never left bad in the finished file."""
    data = random.Random(5).randbytes(16 * CHUNK)
    src = tmp_path / "d.bin"
    src.write_bytes(data)
    out = tmp_path / "d.out"
    async with Client(inproc.api.url, token=ADMIN_TOKEN, concurrency=1) as c:
        up = await c.upload(src, profile=ChunkerProfile.fixed(CHUNK))
        written = 0

        def stop_halfway(n: int) -> None:
            nonlocal written
            written += n
            if written >= len(data) // 2:
                raise Stop

        with pytest.raises(Stop):
            await c.download(up.file_id, out, progress=stop_halfway)
        [part] = [p for p in parts(tmp_path) if p.name.endswith(".dfs-part")]
        spoil_first_byte(part)  # the first chunk, written and listed in the sidecar, goes bad
        down = await c.download(up.file_id, out)
    assert out.read_bytes() == data
    assert down.sha256 == up.sha256
    assert not parts(tmp_path)
