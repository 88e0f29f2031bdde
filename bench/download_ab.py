"""One large file's download (or a folder's), two or more clients alternating on one cluster
(A/B of CPU and memory).

    python -m bench.download_ab FILE --client NAME=PATH [--client NAME=PATH ...]
                                [--rounds 4] [--rf 1] [--concurrency 8] [--dir DIR]

Starts one local cluster (API + 2 nodes, SQLite; this checkout's servers), uploads FILE once
with the first client (a folder: all its files, then downloaded with ``--prefix ''``, as
many big files at once as ``--concurrency``), then downloads it ``--rounds`` times with each
client (a
``dfs-client`` console script, e.g. one of another checkout's venv), the order reversed every
other round. Before each download the nodes' chunk files are dropped from the page cache
(``POSIX_FADV_DONTNEED``), as a download right after its upload finds them, so every client
reads cold copies. Prints per download the wall seconds, the client's CPU (``wait4``: user,
system; its peak RSS) and the servers' (``/proc/PID/stat``), then medians and means per client. On a machine
shared with other work, compare CPU seconds; wall seconds are what the neighbours left.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.large_files import cpu_split
from dfs.localcluster import LocalCluster


def drop_cached(base: Path) -> None:
    """Drop every stored chunk file of the cluster under ``base`` from the page cache."""
    for folder, _dirs, names in os.walk(base):
        if f"{os.sep}chunks" not in folder:
            continue
        for name in names:
            fd = os.open(os.path.join(folder, name), os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def servers_cpu(pids: Sequence[int]) -> float:
    return sum(sum(cpu_split(p)) for p in pids)


def download(
    client: str, env: dict[str, str], args: list[str], pids: Sequence[int]
) -> tuple[float, float, float, float, float]:
    """(wall s, client user s, client system s, servers s, client peak RSS MiB) of one
    download."""
    before = servers_cpu(pids)
    started = time.monotonic()
    proc = subprocess.Popen([client, "download", *args], env=env, stdout=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    if status != 0:
        raise RuntimeError(f"{client} download failed: status {status}")
    rss = usage.ru_maxrss / 1024  # KiB on Linux
    return wall, usage.ru_utime, usage.ru_stime, servers_cpu(pids) - before, rss


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _upload(client: str, env: dict[str, str], args: list[str], folder: bool) -> str:
    """Upload; the id of the file it stored (a folder: "", it is read by ``--prefix ''``)."""
    up = subprocess.run([client, "upload", "--json", *args], env=env, capture_output=True)
    if up.returncode != 0:
        raise RuntimeError(f"upload failed: {up.stderr.decode(errors='replace')[-500:]}")
    return "" if folder else str(json.loads(up.stdout.splitlines()[-1])["file_id"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.download_ab")
    p.add_argument("file", type=Path)
    p.add_argument("--client", action="append", required=True, help="NAME=PATH of dfs-client")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--rf", type=int, default=1)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--dir", default=None, help="work folder (default: a temp folder)")
    args = p.parse_args(argv)
    clients = [(c.split("=", 1)[0], c.split("=", 1)[1]) for c in args.client]
    gib = _size(args.file) / (1 << 30)
    folder = args.file.is_dir()
    rows: dict[str, list[tuple[float, float, float, float, float]]] = {n: [] for n, _ in clients}
    with (
        tempfile.TemporaryDirectory(prefix="dfs-download-ab-", dir=args.dir) as tmp,
        LocalCluster(Path(tmp) / "cluster", nodes=2, replication_factor=args.rf) as cluster,
    ):
        pids = [q.popen.pid for q in cluster.node_procs if q.popen]
        if cluster.api and cluster.api.popen:
            pids.append(cluster.api.popen.pid)
        env = {**os.environ, "DFS_TOKEN": cluster.admin_token}
        conc = ["--concurrency", str(args.concurrency)]
        file_id = _upload(clients[0][1], env, [*conc, cluster.api_url, str(args.file)], folder)
        out = Path(tmp) / ("out" if folder else "out.bin")
        what = ["--prefix", "", str(out)] if folder else [file_id, str(out)]
        for r in range(args.rounds):
            for name, client in clients if r % 2 == 0 else clients[::-1]:
                drop_cached(Path(tmp) / "cluster")
                got = download(client, env, [*conc, cluster.api_url, *what], pids)
                if _size(out) != _size(args.file):
                    raise RuntimeError(f"{name} downloaded {_size(out)} bytes")
                shutil.rmtree(out) if folder else out.unlink()
                rows[name].append(got)
                wall, user, sys_s, servers, rss = got
                print(
                    f"{name} round {r}: {wall:.2f} s, client {(user + sys_s) / gib:.2f} "
                    f"({user / gib:.2f} + {sys_s / gib:.2f}), servers {servers / gib:.2f} "
                    f"CPU-s/GiB, client peak RSS {rss:.0f} MiB; load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
    for name, runs in rows.items():
        walls = [row[0] for row in runs]
        client_cpu = [(row[1] + row[2]) / gib for row in runs]
        servers_cpu_gib = [row[3] / gib for row in runs]
        print(
            f"{name}: median {statistics.median(walls):.2f} s, client "
            f"{statistics.median(client_cpu):.2f} (mean {statistics.mean(client_cpu):.2f}), "
            f"servers {statistics.median(servers_cpu_gib):.2f} CPU-s/GiB, client peak RSS "
            f"{statistics.median(row[4] for row in runs):.0f} MiB"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
