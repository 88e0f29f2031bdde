"""``dfs-client upload DIR`` with a file changed while its upload reads it, through real
processes: the changed file is one ``Skipped:`` line (the file changed while it was being
uploaded), the rest is uploaded, and the command exits 23, as for any file left out; nothing
of the changed file is stored as a mix of its versions.

The change is made at a fixed point of the read (no timing): the CLI runs with its batch
reader wrapped so that the victim's one read is torn (half read, the file rewritten in
place with the same size, the rest read).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from dfs.localcluster import LocalCluster
from tests.e2e.conftest import CLI_TIMEOUT, run_cli

pytestmark = pytest.mark.e2e

TORN_CLI = """
import os, random, sys
from dfs.client import batch_scan
from dfs.client.cli_main import main

victim = os.stat(os.environ["DFS_TEST_VICTIM"]).st_ino
real = batch_scan._read_whole

def torn(fd, size):
    if os.fstat(fd).st_ino != victim:
        return real(fd, size)
    first = os.read(fd, size // 2)
    with open(os.environ["DFS_TEST_VICTIM"], "r+b") as f:
        f.write(random.Random(3).randbytes(size))
    return first + real(fd, size - len(first))

batch_scan._read_whole = torn
sys.exit(main(sys.argv[1:]))
"""


def test_a_file_changed_while_read_is_skipped_and_the_rest_uploaded(
    one_node: LocalCluster, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    rng = random.Random(17)
    content = {f"f{i}.bin": rng.randbytes(rng.choice([100, 3000, 70000])) for i in range(6)}
    for name, data in content.items():
        path = src / name
        path.write_bytes(data)
        st = os.stat(path)  # an hour back: the torn read's write moves it in any case
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - 3600 * 10**9))
    victim = src / "f2.bin"
    got = subprocess.run(
        [sys.executable, "-c", TORN_CLI, "upload", one_node.api_url, str(src)],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "DFS_TEST_VICTIM": str(victim)},
    )
    assert got.returncode == 23, got.stderr
    assert (
        f"Skipped: {victim}: the file changed while it was being uploaded; upload it again"
        in got.stderr.splitlines()
    )
    assert "Error: 1 file skipped (see above); the rest uploaded" in got.stderr
    stored = dict(line.split("\t")[::-1] for line in got.stdout.splitlines())
    assert sorted(stored) == sorted(set(content) - {"f2.bin"})
    for name, file_id in stored.items():
        out = tmp_path / f"out-{name}"
        run_cli("download", "--quiet", one_node.api_url, file_id, str(out))
        assert out.read_bytes() == content[name], name
