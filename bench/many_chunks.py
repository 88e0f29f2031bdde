"""Client CPU of ``dfs-client download`` of ONE file: many small chunks, or a few big ones.

    python -m bench.many_chunks [--size-mib 8] [--chunker fastcdc:64:256:1024] [--repeat 1]
    python -m bench.many_chunks --size-mib 256 --chunker default     # a normal file

A cluster of the API and one node (RF 1, SQLite) takes the upload of a file of seeded
pseudo-random bytes from this process (the ``dfs.client`` library: the CLI only cuts fixed
chunks of at least 4 KiB); then ``dfs-client download FILE_ID OUT`` runs as a child and its
CPU-seconds (user + system, ``wait4``) are what is reported: on a shared machine wall-clock
time says little, CPU-seconds do. The downloaded file's SHA-256 is checked.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import subprocess
import tempfile
import time
from pathlib import Path

from dfs.chunking import ChunkerProfile
from dfs.client import Client
from dfs.localcluster import LocalCluster, console_script

MIB = 1 << 20


async def _upload(url: str, token: str, src: Path, chunker: str) -> tuple[str, int]:
    profile = None if chunker == "default" else ChunkerProfile.parse(chunker)
    async with Client(url, token=token, concurrency=8) as c:
        up = await c.upload(src, profile=profile)
    return up.file_id, up.chunks


def _download(cluster: LocalCluster, file_id: str, out: Path) -> tuple[float, float]:
    """CPU-seconds and wall seconds of one ``dfs-client download`` child."""
    env = {**os.environ, "DFS_TOKEN": cluster.admin_token, "DFS_CONFIG": str(out) + ".none"}
    argv = [console_script("dfs-client"), "download", "--quiet", cluster.api_url, file_id]
    started = time.monotonic()
    proc = subprocess.Popen([*argv, str(out)], env=env, stdout=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"dfs-client download failed: exit {proc.returncode}")
    return usage.ru_utime + usage.ru_stime, time.monotonic() - started


def run(size: int, chunker: str, repeat: int, work: Path) -> None:
    src = work / "src.bin"
    rng = random.Random(1)
    with src.open("wb") as f:
        for at in range(0, size, MIB):
            f.write(rng.randbytes(min(MIB, size - at)))
    want = hashlib.sha256(src.read_bytes()).hexdigest()
    cluster = LocalCluster(work / "cluster", nodes=1, replication_factor=1, heartbeat_timeout=60.0)
    with cluster:
        file_id, chunks = asyncio.run(_upload(cluster.api_url, cluster.admin_token, src, chunker))
        print(f"{size / MIB:.0f} MiB, {chunker}: {chunks} chunks")
        for n in range(repeat):
            out = work / f"out{n}.bin"
            cpu, wall = _download(cluster, file_id, out)
            ok = hashlib.sha256(out.read_bytes()).hexdigest() == want
            print(f"download {n}: client CPU {cpu:.2f} s, wall {wall:.1f} s, sha256 ok={ok}")
            out.unlink()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.many_chunks")
    p.add_argument("--size-mib", type=float, default=8)
    p.add_argument("--chunker", default="fastcdc:64:256:1024", help="'default': the server's")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--dir", default=None)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        run(int(args.size_mib * MIB), args.chunker, args.repeat, Path(d))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
