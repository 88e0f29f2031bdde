"""One large file's upload, two or more clients alternating (A/B of CPU).

    python -m bench.upload_ab FILE --client NAME=PATH [--client NAME=PATH ...]
                              [--rounds 4] [--rf 1] [--concurrency 8] [--dir DIR]
                              [--aged-stores]

Each upload gets a fresh local cluster (API + 2 nodes, SQLite; this checkout's servers), as
the upload in ``bench.large_files`` does: a second upload of the same bytes into one cluster
would find its chunks stored and send nothing. The clients are ``dfs-client`` console scripts
(e.g. one of another checkout's venv), the order reversed every other round. Prints per
upload the wall seconds, the client's CPU (``wait4``: user, system) and the servers'
(``/proc/PID/stat``), then medians and means per client. On a machine shared with other
work, compare CPU seconds; wall seconds are what the neighbours left.

``--aged-stores``: before each upload, create in every node's store the fan-out folders
(``chunks/ab/cd`` or ``chunks/ab``) the file's chunks will land in, as a node that has stored
a few hundred thousand chunks has them all. A fresh store of layout 2 (``dfs.chunkstore.fan_out``) made a
folder (and fsynced its parent) for nearly every chunk it was sent, which on this machine's
file system was ~1 CPU-s per GiB of an RF 2 upload's server CPU (bench/README.md): with the
flag, the servers' figures are a long-lived node's. A fresh node's store is of layout 1, its
256 folders made with it: there the flag changes nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.large_files import age_stores, chunk_ids_of, servers_cpu
from dfs.localcluster import LocalCluster

Row = tuple[float, float, float, float, float]
"""(wall s, client user s, client system s, servers user s, servers system s) of one upload."""


def upload_once(
    client: str, file: Path, base: Path, rf: int, concurrency: int, aged: list[str] | None = None
) -> Row:
    """Upload ``file`` with ``client`` into a fresh cluster under ``base``; with ``aged``
    (the file's chunk ids), into stores that hold their fan-out folders already."""
    with LocalCluster(base / "cluster", nodes=2, replication_factor=rf) as cluster:
        if aged is not None:
            age_stores(cluster, aged)
        pids = [q.popen.pid for q in cluster.node_procs if q.popen]
        if cluster.api and cluster.api.popen:
            pids.append(cluster.api.popen.pid)
        env = {**os.environ, "DFS_TOKEN": cluster.admin_token}
        cmd = [client, "upload", "--concurrency", str(concurrency), cluster.api_url, str(file)]
        before = servers_cpu(pids)
        started = time.monotonic()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - started
        if status != 0:
            raise RuntimeError(f"{client} upload failed: status {status}")
        after = servers_cpu(pids)
        return wall, usage.ru_utime, usage.ru_stime, after[0] - before[0], after[1] - before[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.upload_ab")
    p.add_argument("file", type=Path)
    p.add_argument("--client", action="append", required=True, help="NAME=PATH of dfs-client")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--rf", type=int, default=1)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--dir", default=None, help="work folder (default: a temp folder)")
    p.add_argument("--aged-stores", action="store_true", help="fan-out folders made first")
    args = p.parse_args(argv)
    aged = chunk_ids_of(args.file) if args.aged_stores else None
    clients = [(c.split("=", 1)[0], c.split("=", 1)[1]) for c in args.client]
    gib = args.file.stat().st_size / (1 << 30)
    rows: dict[str, list[Row]] = {n: [] for n, _ in clients}
    for r in range(args.rounds):
        for name, client in clients if r % 2 == 0 else clients[::-1]:
            with tempfile.TemporaryDirectory(prefix="dfs-upload-ab-", dir=args.dir) as tmp:
                got = upload_once(client, args.file, Path(tmp), args.rf, args.concurrency, aged)
            rows[name].append(got)
            wall, user, sys_s, s_user, s_sys = got
            print(
                f"{name} round {r}: {wall:.2f} s, {gib * 1024 / wall:.0f} MiB/s, client "
                f"{(user + sys_s) / gib:.2f} ({user / gib:.2f} + {sys_s / gib:.2f}), servers "
                f"{(s_user + s_sys) / gib:.2f} ({s_user / gib:.2f} + {s_sys / gib:.2f}) "
                f"CPU-s/GiB; load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    for name, runs in rows.items():
        client_cpu = [(row[1] + row[2]) / gib for row in runs]
        servers_gib = [(row[3] + row[4]) / gib for row in runs]
        print(
            f"{name}: median {statistics.median(row[0] for row in runs):.2f} s, client "
            f"{statistics.median(client_cpu):.2f} (mean {statistics.mean(client_cpu):.2f}), "
            f"servers {statistics.median(servers_gib):.2f} "
            f"(mean {statistics.mean(servers_gib):.2f}) CPU-s/GiB"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
