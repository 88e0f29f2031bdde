"""A paged upload killed after a proven page, then resumed after the file changed in place
keeping its size, inode and mtime (as ``cp -p``, ``rsync --inplace -t`` or ``touch -r``
leave it), through real processes: the resumed run must not finish the killed run's pending
file with the old page (a file whose whole-file sha256 matches none of its bytes); it starts
a new upload, and the file downloads as it is now.

The uploading client is a small program on the ``dfs.client`` library with a tiny FastCDC
profile (~320-byte chunks), as in ``test_huge_manifest``: a few MiB make a paged upload of
several pages. Its first run kills itself (SIGKILL) right after it journals page 0 proven.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dfs import protocol
from dfs.chunking import ChunkerProfile
from dfs.localcluster import LocalCluster, console_script

pytestmark = pytest.mark.e2e

TINY = "fastcdc:64:256:1024"
DEADLINE = 300.0

UPLOADER = """
import asyncio, json, os, signal, sys
from pathlib import Path
from dfs.chunking import ChunkerProfile
from dfs.client import Client
from dfs.client.resume import UploadJournal

if sys.argv[4:] == ["--killed-after-page-0"]:
    proven = UploadJournal.page_proven

    def proven_then_killed(self, page, *args, **kwargs):
        proven(self, page, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)  # a kill -9 right after the page is journaled

    UploadJournal.page_proven = proven_then_killed

async def main() -> None:
    async with Client(sys.argv[1], token=os.environ["DFS_TOKEN"], concurrency=4) as c:
        up = await c.upload(Path(sys.argv[2]), profile=ChunkerProfile.parse(sys.argv[3]))
    print(json.dumps({"file_id": up.file_id, "chunks": up.chunks, "sha256": up.sha256}))

asyncio.run(main())
"""


def upload(
    c: LocalCluster, src: Path, cache: Path, *flags: str
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DFS_CACHE_DIR": str(cache)}
    return subprocess.run(
        [sys.executable, "-c", UPLOADER, c.api_url, str(src), TINY, *flags],
        env=env,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )


def journal_entries(cache: Path) -> list[dict[str, object]]:
    """The lines of every upload journal under ``cache``."""
    return [
        json.loads(line)
        for path in (cache / "uploads").glob("*.jsonl")
        for line in path.read_text().splitlines()
    ]


def edit_in_place(src: Path, data: bytes, near: int) -> bytes:
    """Overwrite 32 bytes of ``src`` (whose bytes are ``data``) in the first chunk from
    ``near`` on, inside its first ``min_size`` bytes, which FastCDC's cuts do not look at:
    the file's chunks keep their offsets and sizes, so its pages (cut by chunk counts) too,
    and only that chunk's id changes. The new bytes."""
    profile = ChunkerProfile.parse(TINY)
    cuts = [(c.offset, len(c.data)) for c in profile.cut_buffer(data)]
    start = next(o for o, n in cuts if o >= near and n >= profile.min_size) + 8
    edit = random.Random(31).randbytes(32)
    with open(src, "r+b") as f:
        f.seek(start)
        f.write(edit)
    now = data[:start] + edit + data[start + len(edit) :]
    assert [(c.offset, len(c.data)) for c in profile.cut_buffer(now)] == cuts
    return now


def test_a_resumed_upload_of_a_file_changed_in_place_stores_the_file_as_it_is(
    one_node: LocalCluster, tmp_path: Path
) -> None:
    src = tmp_path / "big.bin"
    block = random.Random(29).randbytes(256 * protocol.KIB)
    data = (block * 20)[: 4 * protocol.MIB]  # ~13,000 chunks: ~13 pages of 1024
    src.write_bytes(data)
    cache = tmp_path / "cache"

    first = upload(one_node, src, cache, "--killed-after-page-0")
    assert first.returncode == -signal.SIGKILL, first.stderr
    journal = journal_entries(cache)
    pending = next(str(e["file_id"]) for e in journal if "file_id" in e)
    assert [e["p"] for e in journal if "p" in e] == [0]

    # changed in place inside page 0 (~300 KiB); size, inode and mtime as they were
    before = os.stat(src)
    now = edit_in_place(src, data, 64 * protocol.KIB)
    os.utime(src, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(src)
    assert (after.st_size, after.st_ino, after.st_mtime_ns) == (
        before.st_size,
        before.st_ino,
        before.st_mtime_ns,
    )

    second = upload(one_node, src, cache)
    assert second.returncode == 0, second.stderr
    up = json.loads(second.stdout.splitlines()[-1])
    assert up["sha256"] == hashlib.sha256(now).hexdigest()

    target = tmp_path / "big.out"
    cmd = [console_script("dfs-client"), "download", "--quiet", one_node.api_url]
    got = subprocess.run(
        [*cmd, up["file_id"], str(target)], capture_output=True, text=True, timeout=DEADLINE
    )
    assert got.returncode == 0, got.stderr
    assert target.read_bytes() == now
    assert up["file_id"] != pending  # a new upload, not the killed run's pending file
