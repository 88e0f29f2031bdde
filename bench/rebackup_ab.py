"""Cached re-backups of many small files, this checkout's client against another's, alternating.

    python -m bench.rebackup_ab --base CHECKOUT [--rounds 10] [--tree DIR] [--dir DIR]
                                [--fresh-fs GIB]

One local cluster (this checkout's servers: API + 1 node, RF 1, SQLite) gets the tree (by
default this interpreter's standard library, as ``bench.small_files``) once, with
``dfs-client upload --prefix v1/``, which fills the files cache. Then each round backs the
tree up again under a new prefix with both clients, the order swapped every round: this
checkout's ``dfs-client``, and the same console script with ``PYTHONPATH=CHECKOUT`` (a
clone of another commit, its ``dfs/`` compiled: ``python -m compileall dfs``). Nothing is
read or sent (the cache knows every file and the servers hold every chunk): what is timed
is ``bench.small_files``' "backup v2", a chain of ``/init-uploads`` that commit the files,
which the API's CPU bounds once the client has started.

The copy is made 2 s before the first upload (the files cache does not trust a file changed
within 2 s of a run's start). Prints each client's wall seconds per round, and the medians
of wall, client CPU (user + system, ``bench.measure``) and API CPU (``/proc``) seconds. Wall
figures on a shared VM move by 15% within an hour: compare the medians of one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench import measure, scratch_fs
from bench.core import cpu_seconds
from bench.small_files import copy_tree, default_tree
from dfs.client.file_cache import RACY_NS
from dfs.localcluster import LocalCluster, console_script

Row = tuple[float, float, float]  # wall, client CPU, API CPU (seconds)


def _backup(api: str, env: dict[str, str], src: Path, prefix: str, api_pid: int) -> Row:
    args = [console_script("dfs-client"), "upload", "--quiet", "--prefix", prefix, api, str(src)]
    api_before = cpu_seconds(api_pid)
    got = measure.run(args, env)
    if got.code != 0:
        raise SystemExit(f"backup failed ({got.code}): {got.stderr.decode()[-500:]}")
    return got.seconds, got.cpu, cpu_seconds(api_pid) - api_before


def _api_pid(cluster: LocalCluster) -> int:
    assert cluster.api is not None
    assert cluster.api.popen is not None
    return cluster.api.popen.pid


def _rounds(
    cluster: LocalCluster, clients: dict[str, dict[str, str]], src: Path, rounds: int
) -> dict[str, list[Row]]:
    api_pid = _api_pid(cluster)
    got: dict[str, list[Row]] = {name: [] for name in clients}
    for r in range(rounds):
        for name in list(clients)[:: 1 if r % 2 == 0 else -1]:
            row = _backup(cluster.api_url, clients[name], src, f"r{r}-{name}/", api_pid)
            got[name].append(row)
    return got


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base", type=Path, required=True, help="the other checkout")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--tree", type=Path, default=None)
    p.add_argument("--dir", type=str, default=None, help="where the cluster and tree go")
    scratch_fs.add_option(p, 0)
    args = p.parse_args(argv)
    with (
        scratch_fs.work_folder(args.dir, args.fresh_fs) as parent,
        tempfile.TemporaryDirectory(prefix="dfs-rebackup-ab-", dir=parent) as tmp,
    ):
        work = Path(tmp)
        src = work / "src"
        files, size = copy_tree(args.tree or default_tree(), src)
        print(f"tree: {files} files, {size / 2**20:.0f} MiB")
        time.sleep(RACY_NS / 1e9)  # the files cache trusts files older than this
        with LocalCluster(work / "cluster", nodes=1, replication_factor=1) as cluster:
            env = {**os.environ, "DFS_TOKEN": cluster.admin_token}
            env["DFS_CACHE_DIR"] = str(work / "cache")
            env.pop("PYTHONPATH", None)
            clients = {"this": env, "base": {**env, "PYTHONPATH": str(args.base.resolve())}}
            _backup(cluster.api_url, env, src, "v1/", _api_pid(cluster))
            got = _rounds(cluster, clients, src, args.rounds)
    print("| client | wall s per round | median wall s | median client CPU s | median API CPU s |")
    print("|---|---|---:|---:|---:|")
    for name, runs in got.items():
        walls = ", ".join(f"{w:.2f}" for w, _c, _a in runs)
        wall = statistics.median(w for w, _c, _a in runs)
        cpu = statistics.median(c for _w, c, _a in runs)
        api = statistics.median(a for _w, _c, a in runs)
        print(f"| {name} | {walls} | {wall:.2f} | {cpu:.2f} | {api:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
