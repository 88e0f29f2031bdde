"""Repair after node loss: 3 nodes, REPLICATION_FACTOR=2, SIZE MiB uploaded, kill -9 of the node
holding the most chunk bytes, time until every chunk has 2 good copies on live nodes again
(the target: within DFS_REPAIR_GRACE + 60 s), with a download checked during repair
and after.

    python -m bench.repair [--size-mib 256] [--grace 10] [--dir /tmp/dfs-bench-repair]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from dfs.chunkstore.fan_out import is_chunk_name, read_fan_out
from dfs.localcluster import LocalCluster, console_script, http_json

MIB = 1 << 20


def _cli(*args: str, token: str) -> str:
    proc = subprocess.run(
        [console_script("dfs-client"), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={"DFS_TOKEN": token, "PATH": "/usr/bin:/bin"},
        check=True,
    )
    return proc.stdout


def _good_copies(c: LocalCluster, chunk_id: str) -> int:
    n = 0
    for i in range(1, c.nodes + 1):
        if not c.node(i).alive:
            continue
        p = Path(read_fan_out(os.fspath(c.base / f"node{i}" / "chunks")).path(chunk_id))
        with contextlib.suppress(FileNotFoundError):
            n += hashlib.sha256(p.read_bytes()).hexdigest() == chunk_id
    return n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--grace", type=float, default=10.0)
    ap.add_argument("--dir", default="")
    args = ap.parse_args()
    base = Path(args.dir or tempfile.mkdtemp(prefix="dfs-bench-repair-"))
    env = {
        "DFS_REPAIR_GRACE": str(args.grace),
        "DFS_REPAIR_INTERVAL": "1",
        "DFS_MIN_FREE_BYTES": "0",
    }
    c = LocalCluster(base / "cluster", env=env)
    c.start()
    try:
        src = base / "big.bin"
        rng = random.Random(256)
        data = b"".join(rng.randbytes(MIB) for _ in range(args.size_mib))
        src.write_bytes(data)
        file_id = _cli("upload", c.api_url, str(src), token=c.admin_token).strip()
        plan = http_json(f"{c.api_url}/download-plan?file_id={file_id}", c.admin_token)
        ids = {ch["sha256"] for ch in plan["chunks"]}
        held = {
            i: sum(
                f.stat().st_size
                for f in (c.base / f"node{i}" / "chunks").rglob("*")
                if is_chunk_name(f.name)
            )
            for i in range(1, 4)
        }
        victim = max(held, key=lambda i: held[i])
        c.node(victim).kill()
        killed = time.monotonic()
        out = base / "during.bin"
        _cli("download", c.api_url, file_id, str(out), token=c.admin_token)
        intact_during = out.read_bytes() == data
        deadline = killed + args.grace + 600
        while time.monotonic() < deadline:
            if all(_good_copies(c, x) == 2 for x in ids):
                break
            time.sleep(0.5)
        healed = time.monotonic() - killed
        _cli("download", c.api_url, file_id, str(out), token=c.admin_token)
        intact_after = out.read_bytes() == data
        result = {
            "size_mib": args.size_mib,
            "chunks": len(ids),
            "killed_node_bytes": held[victim],
            "grace_s": args.grace,
            "seconds_to_2_copies": round(healed, 1),
            "within_grace_plus_60s": healed <= args.grace + 60,
            "download_intact_during_repair": intact_during,
            "download_intact_after": intact_after,
        }
        print(json.dumps(result))
    finally:
        c.stop()
        if not args.dir:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
