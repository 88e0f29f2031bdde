"""``dfs-client upload BIG`` killed with SIGKILL once its first page is proven, then run
again, through real processes: it resumes (the proven page is not sent again) and the file
downloads byte-identical. The command begins the file's scan before it loads the client
library (``dfs.client.early_scan``), so both runs cut their pages from that scan when it
read the version uploaded: a scan that cut other pages than the journal proved would make
the second run start afresh and send every byte. (That the upload reads the early scan at
all is checked in tests/integration/test_early_scan_upload.py.)"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
from pathlib import Path

import pytest

from dfs.localcluster import LocalCluster, console_script, wait_for
from tests.e2e.conftest import CLI_TIMEOUT, run_cli

pytestmark = pytest.mark.e2e

SIZE = 200 << 20  # paged (over 64 MiB): a first page of ~32 MiB, then two more
FIRST_PAGE = 32 << 20
DEADLINE = 120.0


def _page_0_proven(uploads: Path) -> bool:
    return any('"p": 0' in p.read_text() for p in uploads.glob("*.jsonl"))


def test_a_big_upload_killed_after_a_page_resumes(
    sqlite_cluster: LocalCluster, tmp_path: Path
) -> None:
    c = sqlite_cluster
    src = tmp_path / "big.bin"
    data = random.Random(55).randbytes(SIZE)
    src.write_bytes(data)
    cache = tmp_path / "cache"
    env = {**os.environ, "DFS_CACHE_DIR": str(cache)}
    cmd = [console_script("dfs-client"), "upload", "--json", c.api_url, str(src)]
    # one chunk in flight: the run is still sending when its page 0 is journaled (the
    # journal's key has no concurrency in it: the second run, at the default, resumes it)
    slow = [*cmd[:2], "--concurrency", "1", *cmd[2:]]
    first = subprocess.Popen(slow, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: _page_0_proven(cache / "uploads"), DEADLINE, "page 0 proven")
        assert first.poll() is None, "the first run finished before it could be killed"
        first.send_signal(signal.SIGKILL)
    finally:
        first.kill()
        first.communicate(timeout=CLI_TIMEOUT)
    assert first.returncode == -signal.SIGKILL
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT)
    assert done.returncode == 0, done.stderr
    up = json.loads(done.stdout)
    assert up["sha256"] == hashlib.sha256(data).hexdigest()
    assert up["bytes_sent"] <= SIZE - FIRST_PAGE  # the proven page was not sent again
    out = tmp_path / "out.bin"
    run_cli("download", c.api_url, up["file_id"], str(out))
    assert out.read_bytes() == data
