"""What one ``dfs-client`` start costs: CPU seconds per invocation, and the imports behind them.

    python -m bench.startup [--runs 15] [--importtime-runs 5] [--top 15] [--no-cluster]

Every ``dfs-client`` run pays the interpreter's start-up and the imports of the CLI and the
client library before its first request: a fixed cost in every small-files backup and restore
figure, and all of a script's cost when it calls ``dfs-client`` once per file. This bench runs
the installed console script ``--runs`` times per command and reports CPU seconds (user +
system, ``wait4`` through ``bench.measure``'s launcher) per start, median and minimum, and the
median wall seconds (noise on a shared machine: judge by CPU):

- ``--help``: start-up, the imports the command table needs, click's help text; no cluster;
- ``config ls``: a command that reads the profile file (the bench's own, under a temporary
  folder) and sends nothing;
- ``whoami``: one API request (an API + 1 node cluster, RF 1, SQLite, from the console
  scripts);
- ``upload`` of one 1 KiB file the cluster already stores (a backup with nothing new: the
  files cache's answer and one request);
- ``download`` of that file into a new path (a one-file restore: plan, one chunk, fsync).

The cluster's commands find it through a profile (``config set``), as a user's would.
``--no-cluster`` runs only the first two.

Then ``python -X importtime`` of ``dfs-client --help`` and of ``dfs-client whoami`` (``--no-cluster``:
``--help`` only), ``--importtime-runs`` times each: the median of every module's own import
microseconds, printed as the top offenders summed per top-level package and per module, and
the total. Prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import measure
from dfs.localcluster import LocalCluster, console_script

OLD = 1_000_000_000  # mtime of the uploaded file: far older than the files cache's 2 s window


@dataclass
class Figures:
    command: str
    cpu: list[float]
    wall: list[float]

    def row(self) -> str:
        cpu, wall = statistics.median(self.cpu), statistics.median(self.wall)
        return (
            f"| `{self.command}` | {len(self.cpu)} | {cpu:.3f} | {min(self.cpu):.3f} | {wall:.3f} |"
        )


def timed(label: str, argvs: Sequence[Sequence[str]], env: dict[str, str]) -> Figures:
    """Run each argv (one per run) from the measuring launcher; every run must succeed."""
    fig = Figures(label, [], [])
    for argv in argvs:
        got = measure.run([console_script("dfs-client"), *argv], env)
        if got.code != 0:
            raise SystemExit(f"{label} exited {got.code}: {got.stderr.decode(errors='replace')}")
        fig.cpu.append(got.cpu)
        fig.wall.append(got.seconds)
    return fig


def import_times(argv: Sequence[str], env: dict[str, str], runs: int) -> dict[str, float]:
    """module -> median own import microseconds over ``runs`` runs of ``dfs-client argv``."""
    samples: dict[str, list[float]] = defaultdict(list)
    for _ in range(runs):
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", console_script("dfs-client"), *argv],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            check=True,
        )
        for line in proc.stderr.splitlines():
            if not line.startswith("import time:") or "self [us]" in line:
                continue
            own, _cumulative, name = line.removeprefix("import time:").split("|")
            samples[name.strip()].append(float(own))
    # a module missing from some runs counts as 0 there
    return {m: statistics.median(v + [0.0] * (runs - len(v))) for m, v in samples.items()}


def importtime_report(title: str, times: dict[str, float], top: int) -> None:
    packages: dict[str, float] = defaultdict(float)
    for module, us in times.items():
        packages[module.partition(".")[0]] += us
    total = sum(times.values())
    print(f"\n### imports of `{title}`: {len(times)} modules, {total / 1000:.1f} ms (medians)\n")
    print("| package | own ms (sum of its modules) | module | own ms |")
    print("|---|---|---|---|")
    by_package = sorted(packages.items(), key=lambda kv: -kv[1])[:top]
    by_module = sorted(times.items(), key=lambda kv: -kv[1])[:top]
    for (package, p_us), (module, m_us) in zip(by_package, by_module, strict=False):
        print(f"| {package} | {p_us / 1000:.1f} | {module} | {m_us / 1000:.1f} |")


def offline(env: dict[str, str], runs: int) -> list[Figures]:
    return [
        timed("dfs-client --help", [["--help"]] * runs, env),
        timed("dfs-client config ls", [["config", "ls"]] * runs, env),
    ]


def online(
    base: Path, env: dict[str, str], runs: int, importtime_runs: int
) -> tuple[list[Figures], dict[str, float]]:
    """The commands that talk to a cluster (started and stopped here), and the import times
    of ``whoami``."""
    src = base / "one.bin"
    src.write_bytes(os.urandom(1024))
    os.utime(src, (OLD, OLD))
    cli = console_script("dfs-client")
    with LocalCluster(base / "cluster", nodes=1, replication_factor=1) as cluster:
        setup = [cli, "config", "set", "bench", cluster.api_url, "--token", cluster.admin_token]
        subprocess.run(setup, env=env, check=True, stdout=subprocess.DEVNULL)
        up = [cli, "upload", "--json", "--quiet", str(src)]
        first = subprocess.run(up, env=env, check=True, capture_output=True, text=True)
        file_id = json.loads(first.stdout.splitlines()[-1])["file_id"]
        out = base / "out"
        out.mkdir()
        rows = [
            timed("dfs-client whoami", [["whoami"]] * runs, env),
            timed("dfs-client upload (stored)", [["upload", "--quiet", str(src)]] * runs, env),
            timed(
                "dfs-client download",
                [["download", "--quiet", file_id, str(out / str(i))] for i in range(runs)],
                env,
            ),
        ]
        return rows, import_times(["whoami"], env, importtime_runs)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.startup")
    p.add_argument("--runs", type=int, default=15, help="runs of each command")
    p.add_argument("--importtime-runs", type=int, default=5)
    p.add_argument("--top", type=int, default=15, help="rows of the import tables")
    p.add_argument("--no-cluster", action="store_true", help="only --help and config ls")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dfs-bench-startup-") as tmp:
        base = Path(tmp)
        env = {
            **os.environ,
            "DFS_CONFIG": str(base / "config.toml"),
            "DFS_CACHE_DIR": str(base / "cache"),
        }
        for name in ("DFS_TOKEN", "DFS_API_URL", "DFS_PROFILE"):
            env.pop(name, None)
        rows = offline(env, args.runs)
        whoami_times: dict[str, float] = {}
        if not args.no_cluster:
            more, whoami_times = online(base, env, args.runs, args.importtime_runs)
            rows += more
        help_times = import_times(["--help"], env, args.importtime_runs)
    print("| command | runs | CPU s per start (median) | min | wall s (median) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(r.row())
    importtime_report("dfs-client --help", help_times, args.top)
    if whoami_times:
        importtime_report("dfs-client whoami", whoami_times, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
