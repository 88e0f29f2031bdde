"""``dfs-client upload`` through real processes, with files it cannot send: each one is a
``Skipped: PATH: REASON`` line, the rest is uploaded, and the command exits 23.

- names the API refuses: a file name of bytes that are not UTF-8 (the whole upload failed
  with "body must be JSON (invalid high surrogate...)", exit 2, nothing uploaded) and a
  stored name over 1,024 characters;
- a file removed between its listing and its read (the whole upload failed with exit 1),
  to file ids and into a bucket. The removal is made at a fixed point (the CLI runs with
  its batch reader wrapped to remove the victim first), no timing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dfs.localcluster import LocalCluster
from tests.e2e.conftest import CLI_TIMEOUT, run_cli

pytestmark = pytest.mark.e2e

VANISH_CLI = """
import os, sys
from pathlib import Path
from dfs.client import batch_scan
from dfs.client.cli_main import main

victim = Path(os.environ["DFS_TEST_VICTIM"])
real = batch_scan.read_small

def read_small(path, *args, **kwargs):
    if path == victim:
        path.unlink()  # the tree's owner removed it after the listing
    return real(path, *args, **kwargs)

batch_scan.read_small = read_small
sys.exit(main(sys.argv[1:]))
"""


def _stored(stdout: str) -> list[str]:
    """The names of ``ID<TAB>NAME`` lines."""
    return sorted(line.split("\t")[1] for line in stdout.splitlines())


def test_names_the_api_refuses_are_skipped_and_the_rest_uploaded(
    one_node: LocalCluster, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"plain")
    bad = Path(os.fsdecode(bytes(src) + b"/caf\xe9.txt"))  # Latin-1, not UTF-8
    bad.write_bytes(b"latin-1 name")
    deep = src
    for i in range(6):  # 6 x 201 characters: a stored name over 1,024
        deep = deep / (f"{i}" * 200)
    deep.mkdir(parents=True)
    (deep / "far.txt").write_bytes(b"too deep")
    got = run_cli("upload", one_node.api_url, str(src), check=False)
    assert got.returncode == 23, got.stderr
    lines = got.stderr.splitlines()
    not_utf8 = "name is not valid UTF-8 (the API stores names as UTF-8 text)"
    assert f"Skipped: {src}/caf\\udce9.txt: {not_utf8}" in lines
    too_long = "stored name would be longer than 1024 characters (the API's limit)"
    assert f"Skipped: {deep / 'far.txt'}: {too_long}" in lines
    assert "Error: 2 files skipped (see above); the rest uploaded" in lines
    assert _stored(got.stdout) == ["a.txt"]


@pytest.mark.parametrize("into_bucket", [False, True])
def test_a_file_gone_since_its_listing_is_skipped_and_the_rest_uploaded(
    one_node: LocalCluster, tmp_path: Path, into_bucket: bool
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(20):
        (src / f"f{i:02d}.txt").write_text(f"vanish test {i}")
    victim = src / "f10.txt"
    dest = []
    if into_bucket:
        run_cli("mb", one_node.api_url, "vanish/")
        dest = ["vanish/up/"]
    got = subprocess.run(
        [sys.executable, "-c", VANISH_CLI, "upload", one_node.api_url, str(src), *dest],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "DFS_TEST_VICTIM": str(victim)},
    )
    assert got.returncode == 23, got.stderr
    lines = got.stderr.splitlines()
    why = "No such file or directory when it was read, after it was listed"
    assert f"Skipped: {victim}: {why}" in lines
    assert "Error: 1 file skipped (see above); the rest uploaded" in lines
    names = sorted(f"f{i:02d}.txt" for i in range(20) if i != 10)
    if into_bucket:
        uploaded = sorted(line.split("\t")[1] for line in got.stdout.splitlines())
        assert uploaded == [f"vanish/up/{n}" for n in names]
    else:
        assert _stored(got.stdout) == names
