"""A transfer rides out its API restarting (real processes).

The API is killed (SIGKILL) in the middle of a CLI upload, and again in the middle of a CLI
download, of thousands of files (by name, and into a bucket's keys); the client finds no API for a while (it says so, and keeps
trying: ``dfs.transport.api_client``), the API is started again on its port, and the run
finishes as if nothing had happened: every file once, byte-identical. To strike mid-run
without a guess at timing, the client is stopped (SIGSTOP) while the API is killed and
continued into the outage. A client that never reached the API fails at once, as before.
"""

from __future__ import annotations

import filecmp
import signal
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from dfs.localcluster import LocalCluster, console_script, http_json, wait_for
from tests.conftest import random_bytes
from tests.e2e.conftest import run_cli

pytestmark = pytest.mark.e2e

DEADLINE = 60.0
FILES = 3000
TRIES = "the API did not answer"
BACK = "the API answers again"


def write_tree(root: Path) -> list[Path]:
    """FILES small files in 30 folders and two of 3 MiB; their paths under ``root``."""
    paths = []
    for i in range(FILES):
        path = root / f"d{i % 30}" / f"f{i}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(random_bytes(i, 100 + (i * 37) % 3000))
        paths.append(path)
    for i in range(2):
        path = root / f"big{i}.bin"
        path.write_bytes(random_bytes(10_000 + i, 3 * 1024 * 1024))
        paths.append(path)
    return [p.relative_to(root) for p in paths]


def names_under(c: LocalCluster, prefix: str) -> list[str]:
    """The names of every stored file under ``prefix``, one entry per file (not per name)."""
    names: list[str] = []
    after = ""
    for _ in range(100):  # bounded: a page per 1000 files
        page = http_json(
            f"{c.api_url}/files?limit=1000&prefix={prefix}{f'&after={after}' if after else ''}",
            c.admin_token,
        )
        names += [str(f["name"]) for f in page["files"]]
        after = page.get("next_after") or ""
        if not after:
            return names
    raise AssertionError("more pages than the test wrote files")


def restart_api_under(c: LocalCluster, proc: subprocess.Popen[str], err: Path) -> None:
    """Kill the API while ``proc`` (a CLI run under way) is stopped, continue it into the
    outage, and start the API again on its port once the client says it keeps trying."""
    assert c.api is not None
    proc.send_signal(signal.SIGSTOP)
    try:
        assert proc.poll() is None, "the run ended before the API could be killed under it"
        c.api.kill()
    finally:
        proc.send_signal(signal.SIGCONT)
    wait_for(lambda: TRIES in err.read_text() or proc.poll() is not None, DEADLINE, "a retry")
    assert proc.poll() is None, f"the run ended without the API: {err.read_text()[-2000:]}"
    c.api.start()
    c.api.wait_listening(DEADLINE)


def run_through_restart(
    c: LocalCluster, args: list[str], under_way: Callable[[], bool], err: Path
) -> None:
    """``dfs-client ARGS``, the API restarted under it once ``under_way()``; it must succeed."""
    with err.open("w") as stderr:
        proc = subprocess.Popen(
            [console_script("dfs-client"), *args],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            text=True,
        )
    try:
        wait_for(lambda: under_way() or proc.poll() is not None, DEADLINE, "the run under way")
        restart_api_under(c, proc, err)
        assert proc.wait(DEADLINE * 2) == 0, err.read_text()[-4000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert BACK in err.read_text()


def chunk_bytes(c: LocalCluster) -> int:
    return sum(
        f.stat().st_size for f in c.base.glob("node*/**/*") if f.is_file() and "chunk" in str(f)
    )


def test_upload_and_download_ride_out_an_api_restart(
    sqlite_cluster: LocalCluster, tmp_path: Path
) -> None:
    c = sqlite_cluster
    src = tmp_path / "src"
    rel = write_tree(src)
    before = chunk_bytes(c)
    # under way: chunks arrive at the nodes, so the API has answered the first plans
    upload = ["upload", "--quiet", "--prefix", "t/", c.api_url, str(src)]
    run_through_restart(c, upload, lambda: chunk_bytes(c) > before, tmp_path / "up.err")
    names = names_under(c, "t/")
    assert sorted(names) == sorted(f"t/{p.as_posix()}" for p in rel)  # each once, no duplicate

    out = tmp_path / "out"
    # under way: the download made its folder, so it has listed the files through the API
    download = ["download", "--quiet", "--prefix", "t/", c.api_url, str(out)]
    run_through_restart(c, download, out.exists, tmp_path / "down.err")
    for p in rel:
        assert filecmp.cmp(src / p, out / "t" / p, shallow=False), p


def test_a_namespace_download_rides_out_an_api_restart(
    sqlite_cluster: LocalCluster, tmp_path: Path
) -> None:
    """``bucket/prefix/`` to a folder: the keys are listed and the files planned through
    the namespace's reads, which are sent again as the transfers' are."""
    c = sqlite_cluster
    src = tmp_path / "src"
    rel = write_tree(src)
    run_cli("mb", c.api_url, "restarts/")
    run_cli("upload", "--quiet", c.api_url, str(src), "restarts/t/")
    out = tmp_path / "out"
    download = ["download", "--quiet", c.api_url, "restarts/t/", str(out)]
    run_through_restart(c, download, out.exists, tmp_path / "down.err")
    for p in rel:
        assert filecmp.cmp(src / p, out / p, shallow=False), p


def versions_under(c: LocalCluster, bucket: str, prefix: str) -> list[str]:
    """The key of every version (and delete marker) under ``prefix``, one entry each."""
    keys: list[str] = []
    token = ""
    for _ in range(100):  # bounded: a page per 1000 versions
        q = f"prefix={prefix}&limit=1000&versions=true{f'&token={token}' if token else ''}"
        page = http_json(f"{c.api_url}/buckets/{bucket}/objects?{q}", c.admin_token)
        keys += [str(o["key"]) for o in page["objects"]]
        token = page.get("next_token") or ""
        if not token:
            return keys
    raise AssertionError("more pages than the test wrote versions")


def test_a_namespace_upload_rides_out_an_api_restart(
    sqlite_cluster: LocalCluster, tmp_path: Path
) -> None:
    """``DIR bucket/prefix/`` into a versioned bucket: the files are uploaded, then linked
    to their keys. The API is killed once keys appear, so links are under way; a link whose
    answer was lost is sent again and makes no second version (``unless_current``)."""
    c = sqlite_cluster
    src = tmp_path / "src"
    rel = write_tree(src)
    run_cli("mb", "--versioning", c.api_url, "restarts/")
    upload = ["upload", "--quiet", c.api_url, str(src), "restarts/t/"]
    linking = lambda: bool(versions_under(c, "restarts", "t/"))  # noqa: E731
    run_through_restart(c, upload, linking, tmp_path / "up.err")
    keys = versions_under(c, "restarts", "t/")
    assert sorted(keys) == sorted(f"t/{p.as_posix()}" for p in rel)  # one version each
    out = tmp_path / "out"
    run_cli("download", "--quiet", c.api_url, "restarts/t/", str(out))
    for p in rel:
        assert filecmp.cmp(src / p, out / p, shallow=False), p


def test_a_client_that_never_reached_the_api_fails_at_once() -> None:
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
        proc = run_cli("ls", url, check=False, env={"DFS_TOKEN": "x"})
    assert proc.returncode == 7, proc.stderr
    assert "ClientConnectorError" in proc.stderr  # the cause, told plainly
    assert TRIES not in proc.stderr  # no retries: a wrong URL is told at once


def test_a_retry_window_that_is_not_one_is_refused() -> None:
    proc = run_cli("ls", "http://127.0.0.1:1", check=False, env={"DFS_API_RETRY_SECONDS": "1h"})
    assert proc.returncode == 2, proc.stderr
    assert "DFS_API_RETRY_SECONDS must be a number of seconds" in proc.stderr
