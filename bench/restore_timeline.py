"""The timeline of a restore of many small files: what runs when, and how much at once.

One cluster (API + 1 node, RF 1, SQLite), one upload of the tree (this machine's CPython
standard library by default, as ``bench.small_files``), then ``--rounds`` restores with
``dfs-client download --prefix`` into fresh folders, each in a child process that times the
steps of the restore path (wrapping them, so the client's figures include that overhead):
``/download-plans`` requests, ``/get-chunks`` requests, ``write_temps`` (a group of files to
temp names, on a worker thread), ``commit`` (sync, renames), ``drain`` (a batch waiting for
the writer), ``list-page`` (a page of the listing), ``targets`` (the listed names mapped to
local paths), ``check`` (the targets checked, before anything is written), and the cyclic
GC's passes by generation. Per restore: the span from the
first plan request to the end, then per step when it first started (from the child's
start) and when its last one ended, its count, summed seconds, the seconds at
least one ran, and the seconds with 0, 1, 2... of them at once; and the seconds in which
nothing of the restore ran at all (neither a read, a plan request, a write nor a commit:
idle gaps). Wall figures are only as good as the machine is idle.

``--existing``: each restore goes into a folder made empty beforehand (a user's ``mkdir``
first), not one the download creates.

    python -m bench.restore_timeline [--rounds 2] [--tree DIR] [--existing]
"""

from __future__ import annotations

import argparse
import collections
import functools
import gc
import inspect
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.small_files import copy_tree, default_tree, run
from dfs.localcluster import LocalCluster, console_script

Event = tuple[str, float, float]  # step, start, end (seconds since the child started)
STEPS = ("plans", "get-chunks", "write_temps", "commit", "drain")


def _timed(owner: Any, name: str, step: str, log: list[Event], t0: float) -> None:
    fn = getattr(owner, name)
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def timed_async(*args: Any, **kwargs: Any) -> Any:
            started = time.monotonic()
            try:
                return await fn(*args, **kwargs)
            finally:
                log.append((step, started - t0, time.monotonic() - t0))

        setattr(owner, name, timed_async)
        return

    @functools.wraps(fn)
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        try:
            return fn(*args, **kwargs)
        finally:
            log.append((step, started - t0, time.monotonic() - t0))

    setattr(owner, name, timed)


def child(trace: Path, args: list[str]) -> int:
    """Run ``dfs-client args`` here with the restore's steps timed; the events to ``trace``."""
    from dfs.client import cli, cli_transfer, file_writer
    from dfs.transport import api_client, node_client

    t0 = time.monotonic()
    log: list[Event] = []
    lock = threading.Lock()
    gc_started: dict[int, float] = {}

    def on_gc(phase: str, info: dict[str, int]) -> None:
        now = time.monotonic() - t0
        if phase == "start":
            gc_started[threading.get_ident()] = now
        else:
            with lock:
                log.append((f"gc{info['generation']}", gc_started[threading.get_ident()], now))

    gc.callbacks.append(on_gc)
    _timed(api_client.ApiClient, "download_plans", "plans", log, t0)
    _timed(node_client.NodeClient, "get_chunk_batch", "get-chunks", log, t0)
    _timed(file_writer, "write_temps", "write_temps", log, t0)
    _timed(file_writer, "commit", "commit", log, t0)
    _timed(file_writer.GroupWriter, "drain", "drain", log, t0)
    _timed(cli_transfer.Download, "check", "check", log, t0)
    _timed(api_client.ApiClient, "list_files", "list-page", log, t0)
    _timed(cli_transfer, "download_targets", "targets", log, t0)
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (the line per file restored)
    try:
        return cli.main(args)
    finally:
        log.append(("cli-returned", time.monotonic() - t0, time.monotonic() - t0))
        trace.write_text(json.dumps(log))


def _at_once(events: list[tuple[float, float]], start: float, end: float) -> dict[int, float]:
    """Seconds of [start, end] with 0, 1, 2... of ``events`` running."""
    edges = sorted([(b, 1) for b, _e in events] + [(e, -1) for _b, e in events])
    seconds: dict[int, float] = collections.defaultdict(float)
    running, last = 0, start
    for at, step in edges:
        seconds[running] += max(0.0, at - last)
        running, last = running + step, max(last, at)
    seconds[running] += max(0.0, end - last)
    return dict(sorted(seconds.items()))


def report(log: list[Event]) -> None:
    plans = [b for s, b, _e in log if s == "plans"]
    start, end = (min(plans) if plans else 0.0), max(e for _s, _b, e in log)
    returned = max((b for s, b, _e in log if s == "cli-returned"), default=end)
    log = [event for event in log if event[0] != "cli-returned"]
    end = max(e for _s, _b, e in log)
    print(
        f"\nfirst plan request at {start:.2f} s, last step ended at {end:.2f} s, "
        f"the client's main returned at {returned:.2f} s (from the child's start)\n"
    )
    print(
        "| step | first at s | last ended at s | count | summed s | running s "
        "| s with 0, 1, 2... at once |"
    )
    print("|---|---|---|---|---|---|---|")
    steps = sorted({s for s, _b, _e in log}, key=lambda s: (s.startswith("gc"), s))
    for step in steps:
        spans = [(b, e) for s, b, e in log if s == step]
        at_once = _at_once(spans, start, end)
        busy = sum(v for k, v in at_once.items() if k > 0)
        shares = ", ".join(f"{k}: {v:.2f}" for k, v in at_once.items())
        total = sum(e - b for b, e in spans)
        first, last = min(b for b, _e in spans), max(e for _b, e in spans)
        print(
            f"| {step} | {first:.2f} | {last:.2f} | {len(spans)} | {total:.2f} | {busy:.2f} "
            f"| {shares} |"
        )
    work = [(b, e) for s, b, e in log if s in ("plans", "get-chunks", "write_temps", "commit")]
    print(f"\nnothing of the restore running: {_at_once(work, start, end).get(0, 0.0):.2f} s")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tree", type=Path, default=default_tree())
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--existing", action="store_true", help="restore into empty folders")
    p.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    args, rest = p.parse_known_args(argv)
    if args.child is not None:
        return child(args.child, rest)
    with tempfile.TemporaryDirectory(prefix="dfs-timeline-") as tmp:
        base = Path(tmp)
        files, size = copy_tree(args.tree, base / "src")
        print(f"tree: {args.tree} ({files} files, {size >> 20} MiB)")
        with LocalCluster(base / "cluster", nodes=1, replication_factor=1) as cluster:
            env = {**os.environ, "DFS_TOKEN": cluster.admin_token, "DFS_CACHE_DIR": str(base)}
            upload = ["upload", "--quiet", "--prefix", "v/", cluster.api_url, str(base / "src")]
            run([console_script("dfs-client"), *upload], env)
            for n in range(args.rounds):
                trace = base / f"trace{n}.json"
                out = base / f"out{n}"
                if args.existing:
                    out.mkdir()
                download = ["download", "--quiet", "--prefix", "v/", cluster.api_url, str(out)]
                me = [sys.executable, "-m", "bench.restore_timeline", "--child", str(trace)]
                step = run([*me, *download], env)
                print(f"\n## restore {n + 1}: {step.seconds:.2f} s, client CPU {step.cpu:.2f} s")
                report(json.loads(trace.read_text()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
