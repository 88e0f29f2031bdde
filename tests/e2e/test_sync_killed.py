"""A folder upload into a bucket killed halfway keeps what it finished (real processes).

``dfs-client upload DIR bucket/prefix/`` links its files as the upload completes them
(``dfs.client.sync_links``). The client is killed (SIGKILL) once the first keys are linked;
the same command run again finds those keys unchanged, uploads only the rest, and every
key ends up with exactly one version (a versioned bucket) holding the file's bytes.
"""

from __future__ import annotations

import filecmp
import json
import signal
import subprocess
from pathlib import Path

import pytest

from dfs.localcluster import LocalCluster, console_script, wait_for
from tests.e2e.conftest import run_cli
from tests.e2e.test_api_restart import DEADLINE, versions_under, write_tree

pytestmark = pytest.mark.e2e


def test_a_killed_folder_upload_keeps_what_it_finished(
    sqlite_cluster: LocalCluster, tmp_path: Path
) -> None:
    c = sqlite_cluster
    src = tmp_path / "src"
    rel = write_tree(src)
    run_cli("mb", "--versioning", c.api_url, "killed/")
    cmd = [console_script("dfs-client"), "upload", "--quiet", c.api_url, str(src), "killed/t/"]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL
    )
    try:
        linked = lambda: bool(versions_under(c, "killed", "t/")) or proc.poll() is not None  # noqa: E731
        wait_for(linked, DEADLINE, "the first keys linked")
        assert proc.poll() is None, "the upload ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
    before = set(versions_under(c, "killed", "t/"))
    assert 0 < len(before) < len(rel)

    again = run_cli("upload", "--json", c.api_url, str(src), "killed/t/")
    lines = [json.loads(line) for line in again.stdout.splitlines() if line.strip()]
    unchanged = {line["unchanged"] for line in lines if "unchanged" in line}
    uploaded = {line["key"] for line in lines if "key" in line}
    # what the killed run linked is not sent again (links it sent just before it died may
    # still have been landing when ``before`` was read: at least those)
    assert before <= unchanged
    assert uploaded
    assert not uploaded & unchanged
    assert uploaded | unchanged == {f"t/{p.as_posix()}" for p in rel}
    keys = versions_under(c, "killed", "t/")
    assert sorted(keys) == sorted(f"t/{p.as_posix()}" for p in rel)  # one version each
    out = tmp_path / "out"
    run_cli("download", "--quiet", c.api_url, "killed/t/", str(out))
    for p in rel:
        assert filecmp.cmp(src / p, out / p, shallow=False), p
