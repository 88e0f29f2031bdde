"""Small files uploaded while one node is hung: how long a backup waits on a SIGSTOP'd node.

A SIGSTOP'd node accepts connections and never answers. This starts a real local cluster
(API + 3 nodes, RF 2, SQLite) whose heartbeat timeout is long, so the stopped node stays
"live" to the API throughout (the worst case: a node whose heartbeats go on while its
requests hang), stops node 3, and uploads ``--files`` random small files with the library
``Client`` (batches of packed small chunks, one finalize per batch), ``--rounds`` times on
fresh clusters. Reported per round: seconds, re-plans, and the time summed over the calls
to the API's finalize and the packs' sends (``--steps``: timed by wrapping them, in
process). Every file is then downloaded (the node resumed) and compared.

    python -m bench.hung_small_files [--files 1200] [--rounds 2] [--steps] [--healthy] [--dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import random
import signal
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from dfs.client import Client
from dfs.client import upload as upload_module
from dfs.client.local_files import LocalFile
from dfs.localcluster import LocalCluster
from dfs.transport import api_client

Summed = dict[str, list[float]]  # step -> [calls, seconds]


def time_steps(steps: Summed) -> None:
    """Wrap the finalize and send calls so that each adds its count and seconds to ``steps``."""
    for owner, name in (
        (api_client.ApiClient, "finalize_uploads"),
        (api_client.ApiClient, "resume_upload"),
        (upload_module.ChunkSender, "send_all"),
    ):
        original: Callable[..., Awaitable[Any]] = getattr(owner, name)

        @functools.wraps(original)
        async def timed(*args: Any, _f: Any = original, _n: str = name, **kw: Any) -> Any:
            started = time.monotonic()
            try:
                return await _f(*args, **kw)
            finally:
                got = steps.setdefault(_n, [0, 0.0])
                got[0] += 1
                got[1] += time.monotonic() - started

        setattr(owner, name, timed)


def small_files(folder: Path, count: int) -> list[LocalFile]:
    rng = random.Random(7)
    files = []
    for i in range(count):
        path = folder / f"s{i}.bin"
        size = rng.randrange(500, 8000)
        path.write_bytes(rng.randbytes(size))
        files.append(LocalFile(path, path.name, size))
    return files


async def one_round(
    c: LocalCluster, files: list[LocalFile], out: Path, hung: bool = True
) -> tuple[float, int]:
    """The upload with node 3 stopped (seconds, re-plans); then every file read back."""
    if hung:
        c.node(3).signal(signal.SIGSTOP)
    try:
        async with Client(c.api_url, token=c.admin_token, resume=False) as cl:
            started = time.monotonic()
            ups = await cl.upload_many(files)
            took = time.monotonic() - started
            replans = cl.transfer_stats.replans
    finally:
        c.node(3).signal(signal.SIGCONT)
    async with Client(c.api_url, token=c.admin_token, resume=False) as cl:
        for f, up in zip(files, ups, strict=True):
            await cl.download(up.file_id, out / f.name)
            if (out / f.name).read_bytes() != f.path.read_bytes():
                raise SystemExit(f"{f.name}: downloaded bytes differ")
    return took, replans


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=1200)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", action="store_true", help="time the finalize and send calls")
    ap.add_argument("--healthy", action="store_true", help="no node stopped (the baseline)")
    ap.add_argument("--dir", type=Path, default=None, help="work folder (default: a temp one)")
    args = ap.parse_args()
    steps: Summed = {}
    if args.steps:
        time_steps(steps)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        base = Path(tmp)
        (base / "in").mkdir()
        files = small_files(base / "in", args.files)
        stopped = "no node stopped" if args.healthy else "node 3 SIGSTOP'd during the upload"
        print(f"{args.files} small files, API + 3 nodes, RF 2, {stopped}")
        print("| round | seconds | re-plans | steps (calls, summed s) |\n|---|---:|---:|---|")
        for n in range(1, args.rounds + 1):
            steps.clear()
            out = base / f"out{n}"
            out.mkdir()
            cluster = LocalCluster(base / f"c{n}", nodes=3, heartbeat_timeout=600.0)
            with cluster as c:
                took, replans = asyncio.run(one_round(c, files, out, not args.healthy))
            shown = ", ".join(f"{k} {int(v[0])} / {v[1]:.2f}" for k, v in sorted(steps.items()))
            print(f"| {n} | {took:.1f} | {replans} | {shown or '-'} |", flush=True)
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
