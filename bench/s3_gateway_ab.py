"""Two builds of the S3 gateway against one cluster, requests alternating between them.

    python -m bench.s3_gateway_ab BASE_DFS_S3 NEW_DFS_S3 [--mib 1024] [--rounds 6] [--put]

One local cluster (3 nodes, REPLICATION_FACTOR=2, SQLite; this checkout's nodes and API) and
two ``dfs-s3`` processes beside it, each run from the console script given (for example the
``dfs-s3`` of a second worktree's venv checked out at the base commit). By default one
object of ``--mib`` MiB is uploaded once and read back with a streamed ``get_object`` through
each gateway in turn, ``--rounds`` times each (the order alternating, the bytes compared);
``--put`` instead uploads through each in turn (boto3 ``upload_file``, multipart defaults) a
new object of different bytes each time (the same bytes again would dedup). The same nodes, data and moment for both builds: what a
change of the gateway alone does, with less of a shared machine's noise than two separate
runs of ``bench.s3_throughput``.

Per request: seconds, MB/s, the gateway's CPU seconds and its main thread's (event loop),
the nodes' CPU seconds, this process's (boto3) and the bytes the nodes wrote (files;
/proc/PID/io wchar) over the object's; then the medians per build.
"""

from __future__ import annotations

import argparse
import filecmp
import functools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.s3_throughput import (
    MIB,
    cli,
    cli_text,
    cpu_seconds,
    io_counters,
    make_file,
    s3_client,
    self_cpu,
)
from dfs.localcluster import LocalCluster, Proc

Row = tuple[float, float, float, float, float, float, float]
"""seconds, MB/s, gateway CPU-s, gateway loop CPU-s, nodes CPU-s, client CPU-s, the bytes the
nodes wrote (``/proc/PID/io`` wchar) over the object's"""


def gateway(cluster: LocalCluster, name: str, exe: str) -> Proc:
    env = {
        **os.environ,
        **cluster.secrets,
        "DFS_META_URL": cluster.meta_url,
        "REPLICATION_FACTOR": str(cluster.replication_factor),
        "DFS_S3_HOST": "127.0.0.1",
        "DFS_S3_PORT": "0",
        "DFS_DATA_DIR": str(cluster.base / f"s3-{name}"),
    }
    return Proc(
        name=f"s3-{name}",
        argv=[exe],
        env=env,
        log=cluster.base / "logs" / f"s3-{name}.log",
        pidfile=cluster.base / "pids" / f"s3-{name}.pid",
    )


def one(s3: Any, src: Path, out: Path, put: bool, key: str) -> None:
    if put:
        s3.upload_file(str(src), "bench", key)
        return
    body = s3.get_object(Bucket="bench", Key="object")["Body"]
    with out.open("wb") as f:
        while block := body.read(MIB):
            f.write(block)
    if not filecmp.cmp(src, out, shallow=False):
        raise SystemExit("the bytes read back differ")


def measured(gw: int, nodes: list[int], mib: int, run: Callable[[], None]) -> Row:
    g0, l0 = cpu_seconds(gw), cpu_seconds(gw, gw)
    n0, c0 = sum(cpu_seconds(p) for p in nodes), self_cpu()
    w0 = sum(io_counters(p)["wchar"] for p in nodes)
    started = time.perf_counter()
    run()
    dt = time.perf_counter() - started
    return (
        dt,
        mib * MIB / dt / 1e6,
        cpu_seconds(gw) - g0,
        cpu_seconds(gw, gw) - l0,
        sum(cpu_seconds(p) for p in nodes) - n0,
        self_cpu() - c0,
        (sum(io_counters(p)["wchar"] for p in nodes) - w0) / (mib * MIB),
    )


def bench(
    base: Path, exes: dict[str, str], mib: int, rounds: int, put: bool
) -> dict[str, list[Row]]:
    src = base / "object.bin"
    make_file(src, mib, 2)
    rows: dict[str, list[Row]] = {name: [] for name in exes}
    with LocalCluster(base / "cluster", nodes=3, replication_factor=2) as cluster:
        api, admin = cluster.api_url, cluster.admin_token
        cli_text(["admin", "create-tenant", api, "bench"], admin)
        token = cli_text(["admin", "create-token", api, "bench"], admin)[0].strip()
        keys, _ = cli(["keys", "create", "--json", api], token)
        gws = {name: gateway(cluster, name, exe) for name, exe in exes.items()}
        try:
            for g in gws.values():
                g.start()
            clients = {
                name: s3_client(
                    g.wait_listening(30.0), keys["access_key_id"], keys["secret_access_key"]
                )
                for name, g in gws.items()
            }
            nodes = [p.popen.pid for p in cluster.node_procs if p.popen]
            clients["base"].create_bucket(Bucket="bench")
            if not put:
                clients["base"].upload_file(str(src), "bench", "object")
            for r in range(rounds):
                for name in ("base", "new") if r % 2 == 0 else ("new", "base"):
                    popen = gws[name].popen
                    assert popen is not None
                    s3, key = clients[name], f"object-{name}-{r}"
                    if put:  # new bytes each time: an upload of bytes stored already dedups
                        make_file(src, mib, 1000 + 2 * r + (name == "new"))
                    run = functools.partial(one, s3, src, base / "out", put, key)
                    row = measured(popen.pid, nodes, mib, run)
                    rows[name].append(row)
                    print(
                        f"{name:4} round {r}: {row[0]:.2f} s {row[1]:.1f} MB/s, gateway {row[2]:.2f} "
                        f"(loop {row[3]:.2f}), nodes {row[4]:.2f}, client {row[5]:.2f} CPU-s, "
                        f"nodes wrote {row[6]:.2f}x the object",
                        flush=True,
                    )
        finally:
            for g in gws.values():
                g.stop()
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.s3_gateway_ab")
    p.add_argument("base", help="the base build's dfs-s3 console script")
    p.add_argument("new", help="the changed build's dfs-s3 console script")
    p.add_argument("--mib", type=int, default=1024)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--put", action="store_true", help="upload through each (default: read)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dfs-s3-ab-") as tmp:
        rows = bench(
            Path(tmp), {"base": args.base, "new": args.new}, args.mib, args.rounds, args.put
        )
    print(
        "\n| build | seconds | MB/s | gateway CPU-s | gateway loop | nodes CPU-s | client CPU-s "
        "| nodes wrote (x object) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, got in rows.items():
        cols = [statistics.median(c) for c in zip(*got, strict=True)]
        print(f"| {name} (median of {len(got)}) | " + " | ".join(f"{c:.2f}" for c in cols) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
