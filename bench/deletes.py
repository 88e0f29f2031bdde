"""Deleting many keys: a folder removed natively and through S3, and old versions pruned.

    python -m bench.deletes [--keys 10000]

One local cluster (API + 1 node, RF 1, SQLite, from the installed console scripts) with
``dfs-s3`` beside it, a tenant and its access key. Three versioned buckets each get the same
``--keys`` small files under ``d/`` (``dfs-client upload``, linked in batches); then:

- ``rm -r``: ``dfs-client rm -r nat/d/`` (``DELETE /buckets/nat/objects?prefix=d/``: a
  delete marker on every key);
- ``DeleteObjects``: boto3's ``delete_objects`` of every key of ``s3b``, 1,000 a request;
- ``prune``: the files uploaded again with other bytes into ``old`` (a second version of
  each key), then ``dfs-client prune --before T old/`` (T right after): every first
  version removed.

Reported per step: seconds, keys/s, and the CPU seconds of the API and of the gateway over
the step (the gateway reaches the metadata store itself). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import boto3
from botocore.config import Config

from dfs.localcluster import LocalCluster, console_script


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def write_files(folder: Path, keys: int, tag: bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(keys):
        (folder / f"f{i:06d}").write_bytes(tag + b" %d" % i)


def bench(base: Path, keys: int) -> list[tuple[str, float, float, float]]:
    cli = console_script("dfs-client")
    rows: list[tuple[str, float, float, float]] = []
    with LocalCluster(base / "cluster", nodes=1, replication_factor=1, s3=True) as cluster:
        api = cluster.api_url
        env = {**os.environ, "DFS_TOKEN": cluster.admin_token, "DFS_CACHE_DIR": str(base / "c")}

        def run(*args: str) -> str:
            done = subprocess.run([cli, *args], env=env, check=True, capture_output=True)
            return done.stdout.decode()

        run("admin", "create-tenant", api, "bench")
        env["DFS_TOKEN"] = run("admin", "create-token", api, "bench").strip()
        key = json.loads(run("keys", "create", "--json", api))
        assert cluster.api is not None
        assert cluster.api.popen is not None
        assert cluster.s3_proc is not None
        assert cluster.s3_proc.popen is not None
        pids = {"api": cluster.api.popen.pid, "gateway": cluster.s3_proc.popen.pid}
        s3 = boto3.client(
            "s3",
            endpoint_url=cluster.s3_proc.url,
            aws_access_key_id=key["access_key_id"],
            aws_secret_access_key=key["secret_access_key"],
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}),
        )
        write_files(base / "v1", keys, b"first")
        write_files(base / "v2", keys, b"second")
        for bucket in ("nat", "s3b", "old"):
            run("mb", "--versioning", api, f"{bucket}/")
            run("upload", "--quiet", api, str(base / "v1"), f"{bucket}/d/")
        run("upload", "--quiet", api, str(base / "v2"), "old/d/")
        before = time.time()
        names = [f"d/f{i:06d}" for i in range(keys)]

        def delete_objects() -> None:
            for i in range(0, keys, 1000):
                objects = [{"Key": k} for k in names[i : i + 1000]]
                got = s3.delete_objects(Bucket="s3b", Delete={"Objects": objects, "Quiet": True})
                assert not got.get("Errors"), got["Errors"]

        steps: list[tuple[str, Callable[[], object]]] = [
            ("rm -r", lambda: run("rm", "-r", api, "nat/d/")),
            ("DeleteObjects", delete_objects),
            ("prune", lambda: run("prune", "--before", f"{before:.6f}", api, "old/")),
        ]
        for name, step in steps:
            cpu = {role: cpu_seconds(pid) for role, pid in pids.items()}
            started = time.perf_counter()
            step()
            took = time.perf_counter() - started
            used = {role: cpu_seconds(pid) - cpu[role] for role, pid in pids.items()}
            rows.append((name, took, used["api"], used["gateway"]))
        versions = s3.list_object_versions(Bucket="old", Prefix="d/f000000")
        assert len(versions.get("Versions", [])) == 1, "prune left the first version"
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.deletes")
    p.add_argument("--keys", type=int, default=10_000)
    p.add_argument("--dir", default=None, help="work folder (default: a temp folder)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dfs-bench-deletes-", dir=args.dir) as tmp:
        rows = bench(Path(tmp), args.keys)
    print(f"\n{args.keys} keys, API + 1 node, RF 1, SQLite\n")
    print("| step | seconds | keys/s | API CPU-s | gateway CPU-s |")
    print("|---|---:|---:|---:|---:|")
    for name, took, api_cpu, gw_cpu in rows:
        print(f"| {name} | {took:.2f} | {args.keys / took:.0f} | {api_cpu:.2f} | {gw_cpu:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
