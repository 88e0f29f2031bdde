"""Mode and mtime through the CLI (issue 16 Friction): an upload stores each file's
permission bits and modification time, ``stat`` shows them, and a download restores them
on the written file as ``rsync -t`` without ``-p`` does (the mode less the umask).
Real subprocesses against a cluster on loopback."""

from __future__ import annotations

import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

from dfs.localcluster import LocalCluster, console_script
from tests.e2e.conftest import CLI_TIMEOUT, cli_json, run_cli

pytestmark = pytest.mark.e2e

OLD_MTIME_NS = 1_000_000_000_123_456_789  # 2001-09-09, with sub-second digits


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_upload_directory_and_download_restore_mode_and_mtime(
    sqlite_cluster: LocalCluster, tmp_path: Path
) -> None:
    api = sqlite_cluster.api_url
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    private, script = tree / "private.txt", tree / "sub" / "run.sh"
    private.write_text("secret\n" * 100)
    script.write_bytes(os.urandom(3 * 1024 * 1024))  # several chunks
    private.chmod(0o640)
    script.chmod(0o755)
    os.utime(private, ns=(OLD_MTIME_NS, OLD_MTIME_NS))
    os.utime(script, ns=(OLD_MTIME_NS + 10**9, OLD_MTIME_NS + 10**9))

    ids = {r["name"]: r["file_id"] for r in cli_json("upload", "--prefix", "m/", api, str(tree))}
    [meta] = cli_json("stat", api, ids["m/private.txt"])
    assert meta["mode"] == 0o640
    assert abs(meta["mtime"] - OLD_MTIME_NS / 1e9) < 1e-6
    text = run_cli("stat", api, ids["m/private.txt"]).stdout
    assert "0640 (-rw-r-----)" in text
    assert "2001-09-0" in text
    listed = run_cli("ls", "--long", api).stdout.splitlines()
    [line] = [x for x in listed if x.endswith("\tm/private.txt")]
    assert line.split("\t")[3:5] == ["-rw-r-----", text.split("modified:")[1].strip()[:19]]

    out = tmp_path / "out"
    run_cli("download", api, ids["m/private.txt"], ids["m/sub/run.sh"], str(out) + "/")
    got_private, got_script = out / "m" / "private.txt", out / "m" / "sub" / "run.sh"
    assert got_private.read_text() == "secret\n" * 100
    assert got_script.read_bytes() == script.read_bytes()
    mask = _umask()
    assert stat.S_IMODE(got_private.stat().st_mode) == 0o640 & ~mask
    assert stat.S_IMODE(got_script.stat().st_mode) == 0o755 & ~mask
    # microsecond agreement: the mtime travels as float seconds
    assert abs(got_private.stat().st_mtime_ns - OLD_MTIME_NS) < 1000
    assert abs(got_script.stat().st_mtime_ns - (OLD_MTIME_NS + 10**9)) < 1000


def test_standard_input_is_stored_without_mode_and_mtime(
    sqlite_cluster: LocalCluster, tmp_path: Path
) -> None:
    """stdin is spooled to a private 0600 temp file: its mode and mtime say nothing about the
    data, so none is stored, and the download gets the usual mode and the current time."""
    api = sqlite_cluster.api_url
    proc = subprocess.run(
        [console_script("dfs-client"), "upload", api, "-", "--name", "piped.txt"],
        input=b"piped\n",
        capture_output=True,
        timeout=CLI_TIMEOUT,
        check=True,
    )
    file_id = proc.stdout.decode().split("\t")[0].strip()
    [meta] = cli_json("stat", api, file_id)
    assert "mode" not in meta
    assert "mtime" not in meta
    out = tmp_path / "piped.txt"
    run_cli("download", api, file_id, str(out))
    assert out.read_bytes() == b"piped\n"
    assert stat.S_IMODE(out.stat().st_mode) == 0o644 & ~_umask()  # as downloads create files
    assert out.stat().st_mtime > time.time() - 600
