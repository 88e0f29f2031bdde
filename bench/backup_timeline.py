"""The timeline of a backup of many small files: scans, plans, packs sent, finalizes.

One cluster (API + 1 node, RF 1, SQLite), the tree (this machine's CPython standard library by
default, as ``bench.small_files``) copied once; then a first backup (every file read and
sent), and ``--rounds`` backups of the same tree under new prefixes with the files cache the
first one filled (what ``bench.small_files`` calls backup v2: nothing read, nothing sent, a
chain of ``/init-uploads`` that commit the files). Each ``dfs-client upload`` runs in a
child process that times, by wrapping them (so the client's figures include that overhead):
``scan`` (a batch's scan, on a worker thread), ``plan`` (``/init-uploads``), ``store-chunks``
(a pack sent), ``finalize`` (``/finalize-uploads``) and ``all`` (the whole pipeline, start-up
and listing excluded). Per backup: wall and client CPU seconds, then per step its count,
summed seconds, the seconds at least one ran, and the seconds with 0, 1, 2... of them at
once. Wall figures are only as good as the machine is idle: compare versions back to back.

    python -m bench.backup_timeline [--rounds 3] [--tree DIR] [--events]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.restore_timeline import _at_once, _timed
from bench.small_files import copy_tree, default_tree, run
from dfs.client.file_cache import RACY_NS
from dfs.localcluster import LocalCluster

Event = tuple[str, float, float]  # step, start, end (seconds since the child started)


def child(trace: Path, args: list[str]) -> int:
    """Run ``dfs-client args`` here with the backup's steps timed; the events to ``trace``."""
    from dfs.client import batch_scan, cli, upload
    from dfs.transport import api_client, node_client

    t0 = time.monotonic()
    log: list[Event] = []
    _timed(batch_scan, "scan_batch", "scan", log, t0)
    _timed(api_client.ApiClient, "plan_uploads", "plan", log, t0)
    _timed(api_client.ApiClient, "finalize_uploads", "finalize", log, t0)
    _timed(node_client.NodeClient, "store_chunks", "store-chunks", log, t0)
    _timed(upload.UploadPipeline, "upload_files", "all", log, t0)
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (the line per file uploaded)
    try:
        return cli.main(args)
    finally:
        trace.write_text(json.dumps(log))


def report(log: list[Event]) -> None:
    end = max(e for _s, _b, e in log)
    print("\n| step | count | summed s | running s | s with 0, 1, 2... at once |")
    print("|---|---|---|---|---|")
    for step in sorted({s for s, _b, _e in log}):
        spans = [(b, e) for s, b, e in log if s == step]
        at_once = _at_once(spans, 0.0, end)
        busy = sum(v for k, v in at_once.items() if k > 0)
        shares = ", ".join(f"{k}: {v:.2f}" for k, v in at_once.items())
        total = sum(e - b for b, e in spans)
        print(f"| {step} | {len(spans)} | {total:.2f} | {busy:.2f} | {shares} |")


def print_events(log: list[Event]) -> None:
    """Every timed step, by its start: what ran when, for the gaps the table only sums."""
    print("\n| step | start s | end s |\n|---|---:|---:|")
    for step, begin, end in sorted(log, key=lambda e: e[1]):
        print(f"| {step} | {begin:.3f} | {end:.3f} |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tree", type=Path, default=default_tree())
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--events", action="store_true", help="also print every timed step")
    p.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    args, rest = p.parse_known_args(argv)
    if args.child is not None:
        return child(args.child, rest)
    with tempfile.TemporaryDirectory(prefix="dfs-backup-timeline-") as tmp:
        base = Path(tmp)
        files, size = copy_tree(args.tree, base / "src")
        print(f"tree: {args.tree} ({files} files, {size >> 20} MiB)")
        time.sleep(RACY_NS / 1e9)  # the files cache does not trust files changed just now
        with LocalCluster(base / "cluster", nodes=1, replication_factor=1) as cluster:
            env = {**os.environ, "DFS_TOKEN": cluster.admin_token, "DFS_CACHE_DIR": str(base)}
            for n in range(args.rounds + 1):
                trace = base / f"trace{n}.json"
                prefix = f"r{n}/"
                upload = [
                    "upload",
                    "--quiet",
                    "--prefix",
                    prefix,
                    cluster.api_url,
                    str(base / "src"),
                ]
                me = [sys.executable, "-m", "bench.backup_timeline", "--child", str(trace)]
                step = run([*me, *upload], env)
                what = "first backup" if n == 0 else f"cached re-backup {n}"
                print(f"\n## {what}: {step.seconds:.2f} s, client CPU {step.cpu:.2f} s")
                events = json.loads(trace.read_text())
                report(events)
                if args.events:
                    print_events(events)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
