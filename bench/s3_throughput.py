"""S3 PUT/GET throughput (boto3, multipart defaults) against the native client, in one run.

    python -m bench.s3_throughput [--mib 1024] [--nodes 3] [--rf 2] [--profile DIR] [--fresh-fs GIB]

One local cluster (API + ``--nodes`` nodes at ``--rf``, SQLite, from the installed console
scripts) with ``dfs-s3`` beside it. Two files of ``--mib`` MiB of different pseudo-random
bytes (so neither upload dedups against the other):

- native: ``dfs-client upload --json`` then ``dfs-client download --json`` of the first
  (client CPU from ``wait4``);
- S3: boto3's ``upload_file`` (default TransferConfig: 8 MiB parts above 8 MiB, 10 threads)
  of the second, then ``get_object`` streamed to a file (client CPU of this process).
  Multipart PUT includes CompleteMultipartUpload, which re-chunks the object around the
  part edges as one stream would (``dfs.api.multipart``).

Both GETs write their copy into one tmpfs folder (``/dev/shm``; ``--disk-outputs``: beside
the cluster, as before stop 47). On this VM, a writer's first GiB into fresh page-cache pages of
a disk file cost 0.2 to 4.4 CPU-s of system time from one run to the next (more the more was
already dirty), and the two clients write differently (the native client drops its output
behind it, boto3's loop here does not), so a disk output measured the VM's writeback more
than either GET (bench/README.md, "Stop 47").

Reported per step: seconds, MB/s, client CPU seconds, server CPU seconds (API, nodes and
gateway, from ``/proc``, in all and per role), the CPU seconds of the gateway's main thread
(its event loop: work no other core can take over, so on an idle machine the gateway's rate
is bounded by about the bytes over these seconds) and whether the bytes read back are
identical. CPU seconds are less sensitive to a loaded machine than wall time. Prints a
markdown table.
``--profile DIR`` records every server process with py-spy during each step (collapsed
stacks, ``STEP-ROLE-PID.txt``; py-spy's sampling costs some CPU of its own).
"""

from __future__ import annotations

import argparse
import contextlib
import filecmp
import json
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from bench import scratch_fs
from dfs.localcluster import LocalCluster, Proc, console_script

MIB = 1 << 20


@dataclass
class Step:
    name: str
    seconds: float
    client_cpu: float
    server_cpu: float
    roles: dict[str, float]
    loops: dict[str, float]
    """CPU seconds of each role's main thread (its event loop): the thread no other core
    can help, so what bounds a server's rate once it is saturated."""
    identical: bool | None = None
    io: dict[str, dict[str, int]] | None = None
    """Each role's ``/proc/PID/io`` counters over the step (rchar, wchar, syscr, syscw)."""


def make_file(path: Path, mib: int, seed: int) -> None:
    rnd = random.Random(seed)
    with path.open("wb") as f:
        for _ in range(mib):
            f.write(rnd.randbytes(MIB))


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """CPU seconds of process ``pid`` (all its threads), or of its thread ``thread``."""
    stat = Path(f"/proc/{pid}/task/{thread}/stat" if thread else f"/proc/{pid}/stat")
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


IO_FIELDS = ("rchar", "wchar", "syscr", "syscw")


def io_counters(pid: int) -> dict[str, int]:
    """``/proc/PID/io``'s bytes and syscalls through read and write calls (sockets too)."""
    lines = Path(f"/proc/{pid}/io").read_text().splitlines()
    fields = dict(line.split(": ") for line in lines)
    return {k: int(fields[k]) for k in IO_FIELDS}


def self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def children_cpu() -> float:
    """CPU seconds of the child processes waited for so far."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def cli_text(args: list[str], token: str) -> tuple[str, float]:
    """dfs-client's output and its CPU seconds (it must succeed)."""
    before = children_cpu()
    proc = subprocess.run(
        [console_script("dfs-client"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "DFS_TOKEN": token},
        check=False,
    )
    if proc.returncode:
        raise RuntimeError(f"dfs-client {' '.join(args[:2])} failed: {proc.stderr[-2000:]}")
    return proc.stdout, children_cpu() - before


def cli(args: list[str], token: str) -> tuple[dict[str, Any], float]:
    """dfs-client's last JSON line and its CPU seconds."""
    out, cpu = cli_text(args, token)
    return json.loads(out.splitlines()[-1]), cpu


def gateway(cluster: LocalCluster) -> Proc:
    env = {
        **os.environ,
        **cluster.secrets,
        "DFS_META_URL": cluster.meta_url,
        "REPLICATION_FACTOR": str(cluster.replication_factor),
        "DFS_S3_HOST": "127.0.0.1",
        "DFS_S3_PORT": "0",
        "DFS_DATA_DIR": str(cluster.base / "s3"),
    }
    return Proc(
        name="s3",
        argv=[console_script("dfs-s3")],
        env=env,
        log=cluster.base / "logs" / "s3.log",
        pidfile=cluster.base / "pids" / "s3.pid",
    )


Servers = dict[int, str]
"""Server pid -> its role (``gateway``, ``api``, ``nodes``)."""


def spies(profile: Path | None, step: str, servers: Servers) -> list[subprocess.Popen[bytes]]:
    """py-spy recording each server during ``step`` (until interrupted), if profiling."""
    if profile is None:
        return []
    spy = [console_script("py-spy"), "record", "-f", "raw", "-r", "100", "--nonblocking"]
    name = step.split(" (")[0].replace(" ", "-")
    return [
        subprocess.Popen(
            [*spy, "-o", str(profile / f"{name}-{role}-{pid}.txt"), "--pid", str(pid)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid, role in servers.items()
    ]


def measured(
    name: str, servers: Servers, run: Callable[[], float], profile: Path | None = None
) -> Step:
    """``run`` returns its client CPU seconds. Every step starts with nothing dirty in the
    page cache (``os.sync``): left unsynced, a step paid for the writeback of the one
    before (the files written at the start, the previous download's output), which moved
    the S3 GET from 0.46x to 1.0x native between runs of the same code (bench/README.md)."""
    os.sync()
    recording = spies(profile, name, servers)
    before = {p: cpu_seconds(p) for p in servers}
    loop_before = {p: cpu_seconds(p, p) for p in servers}
    io_before = {p: io_counters(p) for p in servers}
    started = time.perf_counter()
    client = run()
    seconds = time.perf_counter() - started
    roles: dict[str, float] = {}
    loops: dict[str, float] = {}
    io: dict[str, dict[str, int]] = {}
    for pid, role in servers.items():
        roles[role] = roles.get(role, 0.0) + cpu_seconds(pid) - before[pid]
        loops[role] = loops.get(role, 0.0) + cpu_seconds(pid, pid) - loop_before[pid]
        now = io_counters(pid)
        mine = io.setdefault(role, dict.fromkeys(IO_FIELDS, 0))
        for k in IO_FIELDS:
            mine[k] += now[k] - io_before[pid][k]
    for s in recording:
        s.send_signal(signal.SIGINT)  # py-spy writes its profile and exits
        s.wait()
    return Step(name, seconds, client, sum(roles.values()), roles, loops, io=io)


def s3_client(url: str, key_id: str, secret: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}),
    )


def bench(
    base: Path, mib: int, nodes: int, rf: int, profile: Path | None, outs: Path
) -> list[Step]:
    """``outs``: the folder both GETs write their copy into."""
    native_src, s3_src = base / "native.bin", base / "s3.bin"
    make_file(native_src, mib, 1)
    make_file(s3_src, mib, 2)
    steps: list[Step] = []
    with LocalCluster(base / "cluster", nodes=nodes, replication_factor=rf) as cluster:
        api, admin = cluster.api_url, cluster.admin_token
        cli_text(["admin", "create-tenant", api, "bench"], admin)
        token = cli_text(["admin", "create-token", api, "bench"], admin)[0].strip()
        keys, _ = cli(["keys", "create", "--json", api], token)
        gw = gateway(cluster)
        gw.start()
        try:
            url = gw.wait_listening(30.0)
            servers: Servers = {p.popen.pid: "nodes" for p in cluster.node_procs if p.popen}
            if cluster.api and cluster.api.popen:
                servers[cluster.api.popen.pid] = "api"
            if gw.popen:
                servers[gw.popen.pid] = "gateway"
            up: dict[str, Any] = {}

            def native_put() -> float:
                answer, cpu = cli(["upload", "--json", api, str(native_src)], token)
                up.update(answer)
                return cpu

            def native_get() -> float:
                _, cpu = cli(["download", "--json", api, up["file_id"], str(outs / "n.out")], token)
                return cpu

            steps.append(measured("native PUT", servers, native_put, profile))
            steps.append(measured("native GET", servers, native_get, profile))
            steps[-1].identical = filecmp.cmp(native_src, outs / "n.out", shallow=False)
            s3 = s3_client(url, keys["access_key_id"], keys["secret_access_key"])
            s3.create_bucket(Bucket="bench")

            def s3_put() -> float:
                cpu = self_cpu()
                s3.upload_file(str(s3_src), "bench", "s3.bin")
                return self_cpu() - cpu

            def s3_get() -> float:
                cpu = self_cpu()
                body = s3.get_object(Bucket="bench", Key="s3.bin")["Body"]
                with (outs / "s.out").open("wb") as f:
                    while block := body.read(MIB):
                        f.write(block)
                return self_cpu() - cpu

            steps.append(measured("S3 PUT (boto3 multipart)", servers, s3_put, profile))
            steps.append(measured("S3 GET (boto3)", servers, s3_get, profile))
            steps[-1].identical = filecmp.cmp(s3_src, outs / "s.out", shallow=False)
        finally:
            gw.stop()
    return steps


def report(steps: list[Step], mib: int, nodes: int, rf: int) -> None:
    print(f"\n{mib} MiB per transfer; {nodes} nodes, REPLICATION_FACTOR={rf}, SQLite\n")
    print(
        "| step | seconds | MB/s | client CPU-s | server CPU-s "
        "| gateway | API | nodes | gateway loop | identical |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for s in steps:
        rate = mib * MIB / s.seconds / 1e6
        same = "" if s.identical is None else ("yes" if s.identical else "NO")
        roles = " | ".join(f"{s.roles.get(r, 0.0):.2f}" for r in ("gateway", "api", "nodes"))
        print(
            f"| {s.name} | {s.seconds:.2f} | {rate:.1f} | {s.client_cpu:.2f} "
            f"| {s.server_cpu:.2f} | {roles} | {s.loops.get('gateway', 0.0):.2f} | {same} |"
        )
    print("\nPer GiB of file, through read/write calls (sockets and files; /proc/PID/io):\n")
    print("| step | role | GiB read | GiB written | reads | writes |")
    print("|---|---|---:|---:|---:|---:|")
    per = 1024 / mib
    for s in steps:
        for role, c in sorted((s.io or {}).items()):
            print(
                f"| {s.name} | {role} | {c['rchar'] * per / 2**30:.2f} "
                f"| {c['wchar'] * per / 2**30:.2f} | {c['syscr'] * per:.0f} | {c['syscw'] * per:.0f} |"
            )
    native = {s.name.split()[1]: s for s in steps if s.name.startswith("native")}
    for s in steps:
        if s.name.startswith("S3"):
            op = s.name.split()[1]
            print(f"\nS3 {op} / native {op} (MB/s): {native[op].seconds / s.seconds:.2f}x")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.s3_throughput")
    p.add_argument("--mib", type=int, default=1024, help="size of each file (MiB)")
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--rf", type=int, default=2)
    p.add_argument(
        "--profile", type=Path, default=None, help="py-spy profiles of the servers per step"
    )
    p.add_argument(
        "--disk-outputs",
        action="store_true",
        help="write the GETs' copies beside the cluster, not into tmpfs (/dev/shm)",
    )
    scratch_fs.add_option(p, 8)
    args = p.parse_args(argv)
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    shm = Path("/dev/shm")
    with contextlib.ExitStack() as stack:
        parent = stack.enter_context(scratch_fs.work_folder(None, args.fresh_fs))
        tmp = Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="dfs-s3-bench-", dir=parent))
        )
        outs = tmp
        if shm.is_dir() and not args.disk_outputs:
            outs = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=shm)))
        steps = bench(tmp, args.mib, args.nodes, args.rf, args.profile, outs)
    report(steps, args.mib, args.nodes, args.rf)
    return 0 if all(s.identical is not False for s in steps) else 1


if __name__ == "__main__":
    sys.exit(main())
