"""Many small files and resume: files/s for a directory, and the share re-sent after a kill.

    python -m bench.ux [--files 10000] [--min-kib 1] [--max-kib 100] [--resume-mib 1024]

1. Small files: a fresh directory tree (never right after a mass delete: ext4 delays slot
   reuse, see bench/README.md, "Reference measurements") of ``--files`` random files of
   ``--min-kib``..``--max-kib``; one ``dfs-client upload`` of the directory and one
   ``dfs-client download --prefix`` back, each timed as a whole process; the tree is
   compared byte for byte.
2. Resume: a ``--resume-mib`` random file uploaded with 1 MiB fixed chunks; the CLI is killed
   (SIGKILL) once its journal holds half the receipts; the second run's ``bytes_sent``
   is reported as a share of the file (the target: < 55 %). ``0`` skips it.

Real local cluster (API + 3 nodes, SQLite, REPLICATION_FACTOR=2). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dfs.localcluster import LocalCluster, console_script, wait_for

KIB = 1024
MIB = 1024 * KIB


def make_tree(root: Path, files: int, lo: int, hi: int, seed: int = 1) -> int:
    rng = random.Random(seed)
    total = 0
    for i in range(files):
        d = root / f"d{i % 100:02d}" / f"s{(i // 100) % 10}"
        d.mkdir(parents=True, exist_ok=True)
        n = rng.randint(lo, hi)
        (d / f"f{i:05d}.bin").write_bytes(os.urandom(n))
        total += n
    return total


def cli(args: list[str], env: dict[str, str]) -> tuple[list[str], float]:
    started = time.perf_counter()
    proc = subprocess.run(
        [console_script("dfs-client"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=3600,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"dfs-client {' '.join(args[:2])} failed: {proc.stderr[-2000:]}")
    return proc.stdout.splitlines(), time.perf_counter() - started


def same_tree(a: Path, b: Path) -> bool:
    for path in a.rglob("*"):
        if path.is_file():
            other = b / path.relative_to(a)
            if not other.is_file() or not filecmp.cmp(path, other, shallow=False):
                return False
    return True


def bench_small(
    base: Path, cluster: LocalCluster, env: dict[str, str], args: argparse.Namespace
) -> dict[str, float]:
    root = base / "tree"
    total = make_tree(root, args.files, args.min_kib * KIB, args.max_kib * KIB)
    lines, up_s = cli(["upload", "--json", "--prefix", "tree/", cluster.api_url, str(root)], env)
    assert len(lines) == args.files
    out = base / "back"
    lines, down_s = cli(["download", "--json", "--prefix", "tree/", cluster.api_url, str(out)], env)
    assert len(lines) == args.files
    return {
        "files": args.files,
        "mib": total / MIB,
        "up_s": up_s,
        "down_s": down_s,
        "up_fps": args.files / up_s,
        "down_fps": args.files / down_s,
        "identical": float(same_tree(root, out / "tree")),
    }


def bench_resume(
    base: Path, cluster: LocalCluster, env: dict[str, str], mib: int
) -> dict[str, float]:
    src = base / "resume.bin"
    with open(src, "wb") as f:
        for _ in range(mib // 64):
            f.write(os.urandom(64 * MIB))
        f.write(os.urandom((mib % 64) * MIB))
    cache = Path(env["DFS_CACHE_DIR"])
    args = ["upload", "--quiet", "--chunk-size", str(MIB), cluster.api_url, str(src)]
    proc = subprocess.Popen(
        [console_script("dfs-client"), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def receipts() -> int:
        journals = list((cache / "uploads").glob("*.jsonl"))
        return sum('"c"' in ln for ln in journals[0].read_text().splitlines()) if journals else 0

    try:
        wait_for(lambda: receipts() >= mib // 2 or None, 1800.0, "half the chunks")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    before = receipts()
    lines, seconds = cli(
        ["upload", "--json", "--chunk-size", str(MIB), cluster.api_url, str(src)], env
    )
    up = json.loads(lines[-1])
    return {
        "mib": mib,
        "journal_chunks": before,
        "second_run_sent_share": up["bytes_sent"] / (mib * MIB),
        "second_run_s": seconds,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ux")
    p.add_argument("--files", type=int, default=10_000)
    p.add_argument("--min-kib", type=int, default=1)
    p.add_argument("--max-kib", type=int, default=100)
    p.add_argument("--resume-mib", type=int, default=1024)
    p.add_argument("--dir", default=None, help="work folder (default: a fresh temp folder)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dfs-bench-ux-", dir=args.dir) as tmp:
        base = Path(tmp)
        with LocalCluster(base / "cluster", nodes=3, replication_factor=2) as cluster:
            env = {
                **os.environ,
                "DFS_TOKEN": cluster.admin_token,
                "DFS_CACHE_DIR": str(base / "cache"),
            }
            small = bench_small(base, cluster, env, args)
            resume = bench_resume(base, cluster, env, args.resume_mib) if args.resume_mib else None
    print(
        f"\n{small['files']} files, {small['mib']:.0f} MiB, "
        f"{args.min_kib}-{args.max_kib} KiB each (RF=2, 3 nodes, SQLite)\n"
    )
    print("| direction | seconds | files/s | identical |")
    print("|---|---|---|---|")
    print(f"| upload | {small['up_s']:.1f} | {small['up_fps']:.0f} | |")
    print(
        f"| download | {small['down_s']:.1f} | {small['down_fps']:.0f} | {bool(small['identical'])} |"
    )
    if resume:
        print(
            f"\nresume: {resume['mib']} MiB killed after {resume['journal_chunks']} of "
            f"{resume['mib']} chunks acknowledged; the second run sent "
            f"{100 * resume['second_run_sent_share']:.1f} % of the file "
            f"in {resume['second_run_s']:.1f} s"
        )
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
