"""The client library's resume of an interrupted download, against an in-process cluster."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from dfs.chunking import ChunkerProfile
from dfs.client import Client
from dfs.client.download import SMALL_FILE
from dfs.client.file_names import temp_name
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


async def test_a_longer_file_at_the_temp_name_leaves_no_tail_in_the_download(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    """A temp file found at the download's fixed name (with a sidecar, so it is resumed)
    that is longer than the file: what lies past the file's end is hashed by nothing, so it
    is cut off, never left at the end of the target."""
    data = random.Random(6).randbytes(4 * CHUNK)
    src = tmp_path / "d.bin"
    src.write_bytes(data)
    out = tmp_path / "d.out"
    async with Client(inproc.api.url, token=ADMIN_TOKEN) as c:
        up = await c.upload(src, profile=ChunkerProfile.fixed(CHUNK))
        part = tmp_path / temp_name(out.name, up.file_id)
        part.write_bytes(data + b"a tail no hash covers")
        part.with_name(part.name + ".done").write_text("0\n")
        await c.download(up.file_id, out)
    assert out.read_bytes() == data


async def test_keys_named_as_a_temp_file_never_add_to_a_restored_file(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    """Someone who writes to a bucket names two keys as the temp file (and its sidecar) of
    a bigger key's download, ``.big.FILE_ID.dfs-part``: a restore of the bucket writes them
    as files, and the next one resumes the download of ``big`` into them. ``big`` holds
    its object's bytes, nothing after them: the planted keys are skipped (reported), and
    were they written, the download's commit would refuse a temp file replaced under it
    (``tests/unit/test_part_commit.py``)."""
    big = random.Random(7).randbytes(SMALL_FILE + CHUNK)  # through the one-file pipeline
    async with Client(inproc.api.url, token=ADMIN_TOKEN) as c:
        await c.make_bucket("shared")
        src = tmp_path / "big"
        src.write_bytes(big)
        file_id = (await c.upload(src)).file_id
        planted = temp_name("big", file_id)
        for key, body in ((planted, b"X" * (len(big) + CHUNK)), (f"{planted}.done", b"0\n")):
            (tmp_path / "p").write_bytes(body)
            await c.link("shared", f"d/{key}", (await c.upload(tmp_path / "p")).file_id)
        out = tmp_path / "out"
        await c.download_from("shared", "d/", out)  # the planted files land
        await c.link("shared", "d/big", file_id)
        report = await c.download_from("shared", "d/", out)
    assert (out / "big").read_bytes() == big
    assert sorted(s.what for s in report.skipped) == [f"d/{planted}", f"d/{planted}.done"]
    assert sorted(os.listdir(out)) == ["big"]
