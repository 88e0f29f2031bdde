"""Small objects through the S3 gateway (rclone) against the native client, in one run.

    python -m bench.s3_small_objects [--files 10000] [--min-kib 1] [--max-kib 16]
                                     [--nodes 3] [--rf 2] [--transfers 4] [--profile DIR]

One local cluster (API + ``--nodes`` nodes at ``--rf``, SQLite, from the installed console
scripts) with ``dfs-s3`` beside it (``LocalCluster(s3=True)``). Two trees of ``--files``
files each (100 per folder, sizes uniform in ``--min-kib``..``--max-kib``, seeded
pseudo-random bytes; the two trees have the same sizes but different bytes, so neither
upload dedups against the other):

- native: ``dfs-client upload --prefix native/`` of the first tree, then
  ``dfs-client download --prefix native/`` into an empty folder;
- S3: Debian's ``rclone copy`` (S3 backend, ``provider Other``, path style, ListObjectsV2,
  ``--transfers``) of the second tree into a bucket, then ``rclone copy`` of the bucket into
  an empty folder. The access key comes from ``dfs-client keys create --json``.

Reported per step: seconds, objects/s, client CPU seconds (``wait4`` of the client process)
and server CPU seconds (API + nodes + gateway, from ``/proc``) per 1,000 objects, and
whether the trees read back are byte-identical. On a shared machine trust the CPU columns,
not the seconds. ``--profile DIR`` records the gateway with py-spy during the S3 steps
(``DIR/s3-put.txt``, ``DIR/s3-get.txt``: raw collapsed stacks). Prints a markdown table.
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dfs.localcluster import LocalCluster, Proc, console_script

KIB = 1024
PER_FOLDER = 100


@dataclass
class Step:
    name: str
    seconds: float
    client_cpu: float
    server_cpu: dict[str, float]
    identical: bool | None = None

    @property
    def server_total(self) -> float:
        return sum(self.server_cpu.values())


def make_tree(root: Path, sizes: list[int], seed: int) -> None:
    """A file of each of ``sizes`` bytes under ``root``, 100 per folder."""
    rnd = random.Random(seed)
    for i, size in enumerate(sizes):
        folder = root / f"d{i // PER_FOLDER:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:06d}.bin").write_bytes(rnd.randbytes(size))


def same_tree(a: Path, b: Path) -> bool:
    """Every file of ``a`` is in ``b`` with the same bytes, and ``b`` has no other file."""
    theirs = {p.relative_to(b) for p in b.rglob("*") if p.is_file()}
    ours = {p.relative_to(a) for p in a.rglob("*") if p.is_file()}
    return ours == theirs and all(filecmp.cmp(a / p, b / p, shallow=False) for p in ours)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(argv: list[str], env: dict[str, str]) -> float:
    """Run a client to success; its CPU seconds (user + system, ``wait4``)."""
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} failed: {err.decode()[-3000:]}")
    return usage.ru_utime + usage.ru_stime


def cli_out(args: list[str], token: str) -> str:
    env = {**os.environ, "DFS_TOKEN": token}
    argv = [console_script("dfs-client"), *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout


def rclone_env(base: Path, url: str, key_id: str, secret: str) -> dict[str, str]:
    """rclone's remote ``dfs:`` from the environment only (no config file, no AWS_*)."""
    remote = {
        "TYPE": "s3",
        "PROVIDER": "Other",
        "ENDPOINT": url,
        "ACCESS_KEY_ID": key_id,
        "SECRET_ACCESS_KEY": secret,
        "REGION": "us-east-1",
        "FORCE_PATH_STYLE": "true",
        "LIST_VERSION": "2",  # "Other" providers default to ListObjects v1
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))}
    env.update({f"RCLONE_CONFIG_DFS_{k}": v for k, v in remote.items()})
    env.update({"RCLONE_CONFIG": str(base / "no-rclone.conf"), "HOME": str(base / "home")})
    return env


class Spy:
    """py-spy recording ``pid`` into ``out`` until ``stop`` (SIGINT: it writes and exits)."""

    def __init__(self, pid: int, out: Path) -> None:
        argv = [
            console_script("py-spy"),
            "record",
            "-f",
            "raw",
            "-r",
            "200",
            "--nonblocking",
            "--gil",
        ]
        self.proc = subprocess.Popen(
            [*argv, "-o", str(out), "--pid", str(pid)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=60)


def server_cpu(servers: dict[str, list[int]]) -> dict[str, float]:
    return {role: sum(cpu_seconds(p) for p in pids) for role, pids in servers.items()}


def measured(name: str, servers: dict[str, list[int]], run_client: Callable[[], float]) -> Step:
    """Run ``run_client`` (it returns its CPU seconds); the servers' CPU by role meanwhile."""
    before = server_cpu(servers)
    started = time.perf_counter()
    client = run_client()
    seconds = time.perf_counter() - started
    after = server_cpu(servers)
    return Step(name, seconds, client, {r: after[r] - before[r] for r in servers})


@dataclass
class Setup:
    files: int
    min_kib: int
    max_kib: int
    nodes: int
    rf: int
    transfers: int
    profile: Path | None


def native_steps(
    base: Path, cluster: LocalCluster, token: str, servers: dict[str, list[int]]
) -> list[Step]:
    api = cluster.api_url
    env = {**os.environ, "DFS_TOKEN": token, "DFS_CACHE_DIR": str(base / "client-cache")}
    client = console_script("dfs-client")
    src, out = base / "native-src", base / "native-out"
    put = ["upload", "--quiet", "--prefix", "native/", api, str(src)]
    get = ["download", "--quiet", "--prefix", "native/", api, str(out)]
    steps = [
        measured("native PUT (dfs-client upload)", servers, lambda: run([client, *put], env)),
        measured("native GET (dfs-client download)", servers, lambda: run([client, *get], env)),
    ]
    steps[-1].identical = same_tree(src, out / "native")
    return steps


def s3_steps(
    base: Path, cluster: LocalCluster, token: str, servers: dict[str, list[int]], s: Setup
) -> list[Step]:
    assert cluster.s3_proc is not None
    assert cluster.s3_proc.popen is not None
    keys = json.loads(cli_out(["keys", "create", "--json", cluster.api_url], token))
    env = rclone_env(base, cluster.s3_proc.url, keys["access_key_id"], keys["secret_access_key"])
    rclone = ["rclone", "--retries", "1", "--low-level-retries", "2"]
    rclone += ["--transfers", str(s.transfers)]
    run([*rclone, "mkdir", "dfs:small"], env)
    src, out = base / "s3-src", base / "s3-out"
    steps = []
    for name, argv in (
        ("S3 PUT (rclone copy)", [*rclone, "copy", str(src), "dfs:small"]),
        ("S3 GET (rclone copy)", [*rclone, "copy", "dfs:small", str(out)]),
    ):
        spy = None
        if s.profile is not None:
            out_file = s.profile / f"s3-{name.split()[1].lower()}.txt"
            spy = Spy(cluster.s3_proc.popen.pid, out_file)
        try:
            steps.append(measured(name, servers, lambda argv=argv: run(argv, env)))
        finally:
            if spy is not None:
                spy.stop()
    steps[-1].identical = same_tree(src, out)
    return steps


def bench(base: Path, s: Setup, sizes: list[int]) -> list[Step]:
    make_tree(base / "native-src", sizes, 1)
    make_tree(base / "s3-src", sizes, 2)
    with LocalCluster(base / "cluster", nodes=s.nodes, replication_factor=s.rf, s3=True) as c:
        api, admin = c.api_url, c.admin_token
        cli_out(["admin", "create-tenant", api, "bench"], admin)
        token = cli_out(["admin", "create-token", api, "bench"], admin).strip()

        def pids(procs: list[Proc | None]) -> list[int]:
            return [p.popen.pid for p in procs if p is not None and p.popen is not None]

        servers = {"api": pids([c.api]), "nodes": pids(list(c.node_procs)), "s3": pids([c.s3_proc])}
        return native_steps(base, c, token, servers) + s3_steps(base, c, token, servers, s)


def report(steps: list[Step], s: Setup, total: int) -> None:
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(
        f"\n{s.files} objects of {s.min_kib}-{s.max_kib} KiB ({total / KIB / KIB:.1f} MiB); "
        f"{s.nodes} nodes, REPLICATION_FACTOR={s.rf}, SQLite; rclone --transfers "
        f"{s.transfers}; load average at the end: {load}\n"
    )
    print(
        "| step | seconds | objects/s | client CPU-s / 1,000 | server CPU-s / 1,000 "
        "| of which gateway / API / nodes | identical |"
    )
    print("|---|---:|---:|---:|---:|---|---|")
    per = 1000 / s.files
    for st in steps:
        same = "" if st.identical is None else ("yes" if st.identical else "NO")
        print(
            f"| {st.name} | {st.seconds:.1f} | {s.files / st.seconds:.0f} "
            f"| {st.client_cpu * per:.2f} | {st.server_total * per:.2f} "
            f"| {' / '.join(f'{st.server_cpu[r] * per:.2f}' for r in ('s3', 'api', 'nodes'))} "
            f"| {same} |"
        )
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.s3_small_objects")
    p.add_argument("--files", type=int, default=10_000)
    p.add_argument("--min-kib", type=int, default=1)
    p.add_argument("--max-kib", type=int, default=16)
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--rf", type=int, default=2)
    p.add_argument("--transfers", type=int, default=4, help="rclone's parallel transfers")
    p.add_argument("--profile", type=Path, default=None, help="py-spy the gateway into DIR")
    p.add_argument("--dir", default=None, help="work folder (default: a temp folder)")
    a = p.parse_args(argv)
    if a.files < 1 or not 0 < a.min_kib <= a.max_kib:
        p.error("--files must be positive and 0 < --min-kib <= --max-kib")
    s = Setup(a.files, a.min_kib, a.max_kib, a.nodes, a.rf, a.transfers, a.profile)
    if s.profile is not None:
        s.profile.mkdir(parents=True, exist_ok=True)
    rnd = random.Random(0)
    sizes = [rnd.randint(s.min_kib * KIB, s.max_kib * KIB) for _ in range(s.files)]
    with tempfile.TemporaryDirectory(prefix="dfs-s3-small-", dir=a.dir) as tmp:
        steps = bench(Path(tmp), s, sizes)
    report(steps, s, sum(sizes))
    return 0 if all(st.identical is not False for st in steps) else 1


if __name__ == "__main__":
    sys.exit(main())
