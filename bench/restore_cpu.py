"""Where a restore of many small files spends CPU: client, API and node, per restore.

One cluster (API + 1 node, RF 1, SQLite), one upload of the tree (this machine's CPython
standard library by default, as ``bench.small_files``), then ``--rounds`` restores of it with
``dfs-client download --prefix`` into fresh folders (never one deleted before the next:
ext4 reuses freed slots slowly). Per restore: wall seconds, files/s, the client's CPU
seconds (``wait4``) and the API's and the node's (``/proc``) apart, which
``bench.small_files`` sums. ``--profile DIR``: py-spy records of the API and the node
during the last restore (``DIR/api.txt``, ``DIR/node.txt``, ``py-spy record -f raw``).

    python -m bench.restore_cpu [--rounds 3] [--tree DIR] [--profile DIR]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from bench.small_files import copy_tree, cpu_seconds, default_tree, run
from dfs.localcluster import LocalCluster, console_script


def _spies(profile: Path, pids: dict[str, int]) -> list[subprocess.Popen[bytes]]:
    spy = console_script("py-spy")
    out = []
    for name, pid in pids.items():
        cmd = [spy, "record", "-f", "raw", "-r", "200", "--pid", str(pid)]
        out.append(
            subprocess.Popen(
                [*cmd, "-o", str(profile / f"{name}.txt")],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    time.sleep(1.0)  # py-spy attaches
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.restore_cpu")
    p.add_argument("--tree", type=Path, default=default_tree())
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--profile", type=Path, default=None, help="py-spy of API and node")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dfs-bench-restore-") as tmp:
        base = Path(tmp)
        files, _size = copy_tree(args.tree, base / "src")
        with LocalCluster(base / "c", nodes=1, replication_factor=1) as cluster:
            assert cluster.api is not None
            assert cluster.api.popen is not None
            node_proc = cluster.node_procs[0].popen
            assert node_proc is not None
            pids = {"api": cluster.api.popen.pid, "node": node_proc.pid}
            env = {**os.environ, "DFS_TOKEN": cluster.admin_token, "DFS_CACHE_DIR": str(base / "k")}
            cli = console_script("dfs-client")
            api = cluster.api_url
            up = run([cli, "upload", "--quiet", "--prefix", "t/", api, str(base / "src")], env)
            print(f"{files} files uploaded in {up.seconds:.2f} s")
            print("| restore | seconds | files/s | client CPU s | API CPU s | node CPU s | load |")
            print("|---|---|---|---|---|---|---|")
            for n in range(args.rounds):
                before = {k: cpu_seconds(v) for k, v in pids.items()}
                last = n == args.rounds - 1
                spies = _spies(args.profile, pids) if args.profile and last else []
                out = base / f"out{n}"
                step = run([cli, "download", "--quiet", "--prefix", "t/", api, str(out)], env)
                used = {k: cpu_seconds(v) - before[k] for k, v in pids.items()}
                for spy in spies:
                    spy.send_signal(signal.SIGINT)
                    spy.wait()
                load = Path("/proc/loadavg").read_text().split()[0]
                print(
                    f"| {n + 1} | {step.seconds:.2f} | {files / step.seconds:.0f} | {step.cpu:.2f} "
                    f"| {used['api']:.2f} | {used['node']:.2f} | {load} |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
