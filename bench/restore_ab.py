"""Restores of many small files, this checkout's client against another's, alternating.

    python -m bench.restore_ab --base CHECKOUT [--rounds 6] [--mode bucket|prefix]
                               [--tree DIR] [--dir DIR] [--out DIR]

One local cluster (this checkout's servers: API + 1 node, RF 1, SQLite) gets the tree (by
default this interpreter's standard library, as ``bench.small_files``) once: into a
versioned bucket (``--mode bucket``: ``upload SRC bench/``) or as files named by prefix
(``--mode prefix``: ``upload --prefix v1/``). Then each round restores it with both
clients, the order swapped every round: ``dfs-client download`` of this checkout, and the
same console script with ``PYTHONPATH=CHECKOUT`` (a clone of another commit, its
``dfs/`` compiled: ``python -m compileall dfs``, or each run compiles it at start).

Every restore goes into a fresh folder on tmpfs (``/dev/shm`` when there is one; ``--out``
names another place), removed after: on this machine's ext4 a restore of many small files mostly measures how many files
were deleted nearby in the last minutes (``bench.small_files``' create probe), so
alternating restores into a disk folder compare the file system's moods, not the clients.
Each restore is compared with the tree. Prints each client's wall seconds per round, and
the medians of wall and client CPU seconds (user + system, ``wait4``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.small_files import copy_tree, default_tree, same_tree
from dfs.localcluster import LocalCluster, console_script


def _upload(api: str, env: dict[str, str], src: Path, mode: str, cwd: Path) -> None:
    dfs = console_script("dfs-client")
    steps = [[dfs, "upload", "--quiet", "--prefix", "v1/", api, str(src)]]
    if mode == "bucket":
        steps = [[dfs, "mb", "--versioning", api, "bench/"]]
        steps.append([dfs, "upload", "--quiet", api, str(src), "bench/"])
    for step in steps:
        subprocess.run(step, stdout=subprocess.DEVNULL, cwd=cwd, env=env, check=True)


def _restore(api: str, env: dict[str, str], mode: str, out: Path, cwd: Path) -> tuple[float, float]:
    """One restore into ``out``: wall and client CPU seconds."""
    dfs = console_script("dfs-client")
    if mode == "bucket":
        args = [dfs, "download", "--quiet", api, "bench/", str(out)]
    else:
        args = [dfs, "download", "--quiet", "--prefix", "v1/", api, str(out)]
    start = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, cwd=cwd)
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"restore failed ({status}): {' '.join(args)}")
    return wall, usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base", type=Path, required=True, help="the other checkout")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--mode", choices=["bucket", "prefix"], default="bucket")
    p.add_argument("--tree", type=Path, default=None)
    p.add_argument("--dir", type=Path, default=None, help="where the cluster and tree go")
    p.add_argument("--out", type=Path, default=None, help="where the restores go (default: tmpfs)")
    args = p.parse_args(argv)
    shm = Path("/dev/shm")
    outs = args.out or (shm if shm.is_dir() else None)
    with tempfile.TemporaryDirectory(prefix="dfs-restore-ab-", dir=args.dir) as tmp:
        work = Path(tmp)
        src = work / "src"
        files, size = copy_tree(args.tree or default_tree(), src)
        print(f"tree: {files} files, {size / 2**20:.0f} MiB; mode {args.mode}")
        with LocalCluster(work / "cluster", nodes=1, replication_factor=1) as cluster:
            env = {**os.environ, "DFS_TOKEN": cluster.admin_token}
            env["DFS_CACHE_DIR"] = str(work / "cache")
            env.pop("PYTHONPATH", None)
            clients = {"this": env, "base": {**env, "PYTHONPATH": str(args.base.resolve())}}
            _upload(cluster.api_url, env, src, args.mode, work)
            got: dict[str, list[tuple[float, float]]] = {name: [] for name in clients}
            for r in range(args.rounds):
                for name in list(clients)[:: 1 if r % 2 == 0 else -1]:
                    out = Path(tempfile.mkdtemp(prefix="restore-", dir=outs)) / "out"
                    try:
                        got[name].append(
                            _restore(cluster.api_url, clients[name], args.mode, out, work)
                        )
                        # by prefix the stored names (v1/...) are kept under ``out``
                        restored = out / "v1" if args.mode == "prefix" else out
                        if not same_tree(src, restored):
                            raise SystemExit(f"{name}: the restore differs from the tree")
                    finally:
                        shutil.rmtree(out.parent)
    print("| client | wall s per round | median wall s | median client CPU s |")
    print("|---|---|---:|---:|")
    for name, runs in got.items():
        walls = ", ".join(f"{w:.2f}" for w, _ in runs)
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        print(f"| {name} | {walls} | {wall:.2f} | {cpu:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
