"""Core data-path benchmark: upload and download MB/s of one large random file.

Starts a real local cluster (API + 3 nodes, SQLite) for each replication factor, and measures
in the same run, on the same file, the baselines that bound it: Python's hashlib sha256 rate
and a plain file copy (with fsync). Peak RSS comes from the kernel: ``wait4`` for the client
process (its own, through ``bench.measure``), ``VmHWM`` for each node. Prints a markdown table.

    python -m bench.core [--size-mib 1024] [--rf 1 2] [--concurrency 8] [--repeat 1]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench import measure
from dfs.localcluster import LocalCluster, console_script

MIB = 1 << 20


def make_file(path: Path, size: int) -> None:
    block = 64 * MIB
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(block, left)
            f.write(os.urandom(n))
            left -= n


def sha256_rate(path: Path) -> float:
    h = hashlib.sha256()
    buf = bytearray(4 * MIB)
    view = memoryview(buf)
    started = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
    return path.stat().st_size / (time.perf_counter() - started)


def copy_rate(src: Path, dst: Path) -> float:
    started = time.perf_counter()
    shutil.copyfile(src, dst)
    fd = os.open(dst, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    rate = src.stat().st_size / (time.perf_counter() - started)
    dst.unlink()
    return rate


def chunk_write_rate(base: Path, total: int = 256 * MIB, threads: int = 4) -> float:
    """MB/s of what a node's disk does per chunk: 4 MiB files, each written, fsync'd and its
    directory fsync'd, ``threads`` at a time. On a slow or shared disk this, not sha256, is
    the ceiling of every upload (RF copies each) and of every download (one fsync'd copy)."""
    folder = base / "fsync-probe"
    folder.mkdir()
    block = os.urandom(4 * MIB)
    count = total // len(block)

    def one(i: int) -> None:
        fd = os.open(folder / str(i), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, block)
            os.fsync(fd)
        finally:
            os.close(fd)
        dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(count)))
    rate = count * len(block) / (time.perf_counter() - started)
    shutil.rmtree(folder)
    return rate


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a live process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_client(
    args: list[str], token: str, wrap: Sequence[str] = ()
) -> tuple[dict[str, Any], float, int, float]:
    """Run dfs-client (under ``wrap``, e.g. a profiler's command line ending in ``--``);
    return its JSON answer, wall seconds, peak RSS in bytes, CPU seconds."""
    got = measure.run(
        [*wrap, console_script("dfs-client"), *args],
        {**os.environ, "DFS_TOKEN": token},
        capture_stdout=True,
    )
    if got.code != 0:
        raise RuntimeError(f"dfs-client {' '.join(args)} failed: {got.stderr.decode()}")
    assert got.stdout is not None
    # the last JSON line: a profiler in ``wrap`` may print its own lines after the client's
    answer = next(ln for ln in reversed(got.stdout.splitlines()) if ln.startswith(b"{"))
    return json.loads(answer), got.seconds, got.rss, got.cpu


def vm_hwm(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def bench_rf(base: Path, src: Path, rf: int, concurrency: int, run: int = 0) -> dict[str, Any]:
    # a fresh cluster folder per run: a second upload into the same one would be all dedup
    with LocalCluster(base / f"rf{rf}-run{run}", nodes=3, replication_factor=rf) as cluster:
        conc = ["--concurrency", str(concurrency)]
        servers = [p.popen.pid for p in cluster.node_procs if p.popen]
        if cluster.api and cluster.api.popen:
            servers.append(cluster.api.popen.pid)
        cpu0 = sum(cpu_seconds(pid) for pid in servers)
        up, up_s, up_rss, up_cpu = run_client(
            ["upload", "--json", *conc, cluster.api_url, str(src)], cluster.admin_token
        )
        cpu1 = sum(cpu_seconds(pid) for pid in servers)
        out = base / f"out-rf{rf}.bin"
        _down, down_s, down_rss, down_cpu = run_client(
            ["download", "--json", *conc, cluster.api_url, up["file_id"], str(out)],
            cluster.admin_token,
        )
        cpu2 = sum(cpu_seconds(pid) for pid in servers)
        ok = out.stat().st_size == src.stat().st_size
        out.unlink()
        node_rss = [vm_hwm(p.popen.pid) for p in cluster.node_procs if p.popen]
        api_rss = vm_hwm(cluster.api.popen.pid) if cluster.api and cluster.api.popen else 0
    return {
        "rf": rf,
        "upload_mbs": src.stat().st_size / up_s / 1e6,
        "download_mbs": src.stat().st_size / down_s / 1e6,
        # CPU seconds per GiB moved: stabler than MB/s on a shared machine
        "up_cpu": (up_cpu, cpu1 - cpu0),
        "down_cpu": (down_cpu, cpu2 - cpu1),
        "client_rss_mib": max(up_rss, down_rss) / MIB,
        "node_rss_mib": max(node_rss) / MIB,
        "api_rss_mib": api_rss / MIB,
        "verified": ok,
    }


def median_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-column medians of several runs of one RF (peak RSS: the maximum)."""
    row = dict(runs[0])
    for key in ("upload_mbs", "download_mbs"):
        row[key] = statistics.median(r[key] for r in runs)
    for key in ("client_rss_mib", "node_rss_mib", "api_rss_mib"):
        row[key] = max(r[key] for r in runs)
    for key in ("up_cpu", "down_cpu"):
        row[key] = tuple(statistics.median(r[key][i] for r in runs) for i in (0, 1))
    row["verified"] = all(r["verified"] for r in runs)
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.core")
    p.add_argument("--size-mib", type=int, default=1024)
    p.add_argument("--rf", type=int, nargs="+", default=[1, 2])
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--dir", default=None, help="work folder (default: a temp folder)")
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs per RF, each on a fresh cluster; the table shows medians (shared disks are noisy)",
    )
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dfs-bench-", dir=args.dir) as tmp:
        base = Path(tmp)
        src = base / "random.bin"
        make_file(src, args.size_mib * MIB)
        sha = sha256_rate(src) / 1e6
        cp = copy_rate(src, base / "copy.bin") / 1e6
        disk = chunk_write_rate(base) / 1e6
        rows = [
            median_row([bench_rf(base, src, rf, args.concurrency, i) for i in range(args.repeat)])
            for rf in args.rf
        ]
    print(
        f"\nfile: {args.size_mib} MiB random; sha256 {sha:.0f} MB/s; copy+fsync {cp:.0f} MB/s; "
        f"4 MiB fsync'd chunk writes (4 threads) {disk:.0f} MB/s\n"
    )
    print(
        "| RF | upload MB/s | up / sha256 | up x RF / disk | download MB/s | down / sha256 "
        "| down / disk | client peak RSS MiB | node peak RSS MiB | API peak RSS MiB | verified |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['rf']} | {r['upload_mbs']:.0f} | {r['upload_mbs'] / sha:.2f} "
            f"| {r['upload_mbs'] * r['rf'] / disk:.2f} "
            f"| {r['download_mbs']:.0f} | {r['download_mbs'] / sha:.2f} "
            f"| {r['download_mbs'] / disk:.2f} "
            f"| {r['client_rss_mib']:.0f} | {r['node_rss_mib']:.0f} | {r['api_rss_mib']:.0f} "
            f"| {r['verified']} |"
        )
    gib = args.size_mib / 1024
    print(
        "\nCPU seconds per GiB (client / API + nodes), user + system: "
        "what the work costs, whatever else shares the machine\n"
    )
    print("| RF | upload client | upload servers | download client | download servers |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['rf']} | {r['up_cpu'][0] / gib:.2f} | {r['up_cpu'][1] / gib:.2f} "
            f"| {r['down_cpu'][0] / gib:.2f} | {r['down_cpu'][1] / gib:.2f} |"
        )
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
