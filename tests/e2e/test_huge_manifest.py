"""A file of more than 100,000 chunks through real processes (issue 19 item 5): a client
killed (SIGKILL) mid-upload resumes the same pending file, and the file downloads intact.

The cluster (API + 1 node, SQLite) and the download (``dfs-client``) are the installed
console scripts. The CLI only cuts fixed chunks of at least 4 KiB, so the uploading client
is a small program on the ``dfs.client`` library with a tiny FastCDC profile (~320-byte
chunks): ~34 MB make over 100,000 chunks, more than one ``/init-upload`` takes, so the file
goes page by page.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dfs import protocol
from dfs.localcluster import LocalCluster, console_script, wait_for

pytestmark = pytest.mark.e2e

TINY = "fastcdc:64:256:1024"
DEADLINE = 300.0

UPLOADER = """
import asyncio, json, os, sys
from pathlib import Path
from dfs.chunking import ChunkerProfile
from dfs.client import Client

async def main() -> None:
    async with Client(sys.argv[1], token=os.environ["DFS_TOKEN"], concurrency=4) as c:
        up = await c.upload(Path(sys.argv[2]), profile=ChunkerProfile.parse(sys.argv[3]))
    print(json.dumps({"file_id": up.file_id, "chunks": up.chunks, "sha256": up.sha256}))

asyncio.run(main())
"""


def uploader(c: LocalCluster, src: Path, cache: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "DFS_CACHE_DIR": str(cache)}
    return subprocess.Popen(
        [sys.executable, "-c", UPLOADER, c.api_url, str(src), TINY],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def journal_lines(cache: Path) -> list[dict[str, object]]:
    """The one upload journal's complete lines (a torn last line is left out)."""
    found = list((cache / "uploads").glob("*.jsonl"))
    if not found:
        return []
    [path] = found
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def kill_after_a_proven_page(proc: subprocess.Popen[str], cache: Path) -> list[dict[str, object]]:
    """SIGKILL the uploader once its journal records a proven page; the journal then."""

    def proven() -> bool:
        return proc.poll() is not None or any("p" in e for e in journal_lines(cache))

    wait_for(proven, DEADLINE, "a proven page in the upload's journal")
    assert proc.poll() is None, "the uploader ended before a page was proven"
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    return journal_lines(cache)


@pytest.mark.slow  # ~110,000 chunks planned, proven, committed and read back on 2 cores
@pytest.mark.timeout(1800)  # the download alone took ~500 s at a load average of 18
def test_more_than_100000_chunks_resume_after_kill_and_download(
    one_node: LocalCluster, tmp_path: Path
) -> None:
    src = tmp_path / "many.bin"
    block = random.Random(19).randbytes(256 * 1024)  # ~800 distinct chunks, many entries
    data = (block * 136)[: 34 * protocol.MIB]
    src.write_bytes(data)
    cache = tmp_path / "cache"

    journal = kill_after_a_proven_page(uploader(one_node, src, cache), cache)
    pending = next(str(e["file_id"]) for e in journal if "file_id" in e)
    proven = {e["p"] for e in journal if "p" in e}
    assert 0 in proven

    second = uploader(one_node, src, cache)
    out, err = second.communicate(timeout=DEADLINE)
    assert second.returncode == 0, err
    up = json.loads(out.splitlines()[-1])
    assert up["chunks"] > protocol.MAX_CHUNKS_PER_FILE
    assert up["file_id"] == pending  # the killed run's pending file, finished: resumed
    assert not list((cache / "uploads").glob("*.jsonl"))  # done, the journal went

    # the CLI fetches such a file's tiny chunks in runs through /get-chunks; 110,000 of
    # them can still take a minute or two on a loaded 2-core machine, beyond run_cli's timeout
    target = tmp_path / "many.out"
    cmd = [console_script("dfs-client"), "download", "--quiet", one_node.api_url]
    got = subprocess.run(
        [*cmd, up["file_id"], str(target)], capture_output=True, text=True, timeout=3 * DEADLINE
    )
    assert got.returncode == 0, got.stderr
    assert target.read_bytes() == data
