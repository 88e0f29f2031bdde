"""``scripts/cluster.sh stop`` and ``start`` trust a pid file only while it names one of our
processes (``dfs.localcluster._ours``): after a reboot or a kill -9 the pid may belong to an
unrelated process by now, which ``stop`` killed (SIGTERM, then SIGKILL)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from dfs.localcluster import cmd_stop


def test_stop_leaves_an_unrelated_process_named_by_a_stale_pid_file(tmp_path: Path) -> None:
    other = subprocess.Popen(["sleep", "60"])
    try:
        (tmp_path / "pids").mkdir()
        (tmp_path / "pids" / "api.pid").write_text(str(other.pid))
        assert cmd_stop(tmp_path, timeout=1.0) == 0
        assert other.poll() is None  # still running: not ours, not stopped
        assert not (tmp_path / "pids" / "api.pid").exists()  # the stale file is gone
    finally:
        other.kill()
        other.wait(10)
