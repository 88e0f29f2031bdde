"""A folder upload into a bucket killed halfway keeps what it finished and leaves nothing
behind (real processes).

``dfs-client upload DIR bucket/prefix/`` links its files as the upload completes them
(``dfs.client.sync_links``). The client is killed (SIGKILL) once the first keys are linked;
its link journal (``dfs.client.link_journal``) then names files it uploaded and never
linked. The same command run again finds the linked keys unchanged, uploads only the rest,
deletes the files the killed run left unlinked, and every key ends up with exactly one
version (a versioned bucket) holding the file's bytes, and the tenant with one file per key.
"""

from __future__ import annotations

import filecmp
import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from dfs.client.link_journal import open_ids
from dfs.localcluster import LocalCluster, console_script, http_json, wait_for
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
    journals = list((Path(os.environ["DFS_CACHE_DIR"]) / "links").glob("*/*.log"))
    assert len(journals) == 1
    assert open_ids(journals[0].read_text()), "the killed run left no file unlinked"

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
    # no file of the killed run's left unlinked: one file per key, the one its version links
    linked = {o["file_id"] for o in _current(c, "killed", "t/")}
    assert _files_named(c, "t/") == linked
    assert not list((Path(os.environ["DFS_CACHE_DIR"]) / "links").glob("*/*.log"))
    out = tmp_path / "out"
    run_cli("download", "--quiet", c.api_url, "killed/t/", str(out))
    for p in rel:
        assert filecmp.cmp(src / p, out / p, shallow=False), p


def _current(c: LocalCluster, bucket: str, prefix: str) -> list[dict[str, Any]]:
    objs: list[dict[str, Any]] = []
    token = ""
    for _ in range(100):  # bounded: a page per 1000 keys
        q = f"prefix={prefix}&limit=1000&delimiter={f'&token={token}' if token else ''}"
        page = http_json(f"{c.api_url}/buckets/{bucket}/objects?{q}", c.admin_token)
        objs += page["objects"]
        token = page.get("next_token") or ""
        if not token:
            return objs
    raise AssertionError("more pages than the test wrote keys")


def _files_named(c: LocalCluster, prefix: str) -> set[str]:
    """The ids of the tenant's complete files named ``prefix...``."""
    ids: set[str] = set()
    after = ""
    for _ in range(100):  # bounded: a page per 1000 files
        q = f"prefix={prefix}&limit=1000{f'&after={after}' if after else ''}"
        page = http_json(f"{c.api_url}/files?{q}", c.admin_token)
        ids |= {f["file_id"] for f in page["files"] if f.get("state", "complete") == "complete"}
        after = page.get("next_after") or ""
        if not after:
            return ids
    raise AssertionError("more pages than the test wrote files")
