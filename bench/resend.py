"""Re-send benchmark: is an upload write of a chunk the node already holds distinguishable in
time from a new one? (issue 12 item 5, the dedup timing oracle)

Starts a real local cluster (API + 1 node, factor 1, SQLite). Per chunk size, tenant
``owner`` uploads N random chunks (the held set); then tenant ``prober`` uploads one file
made of those N chunks mixed with N chunks nobody has, one
``PUT /store-chunk`` at a time, as an attacker guessing "does anyone store these bytes?"
would, and times each request from the client. The two kinds are shuffled together (seeded),
which keeps drifts of the disk or the machine out of the comparison. The first
2 x ``--warmup`` requests are not counted.

Reported per chunk size and kind: p50/p90/p99/mean latency in ms, and the accuracy of the
best single threshold on the latency as a guess of "held" (50% is a coin toss, and with 200
+ 200 samples the best threshold finds ~54% in noise alone; before the fix, with a utime fast
path for held chunks, it was 94% per chunk). The last rows group the requests by the kind of
the request before them: work a rewrite defers (freeing the replaced copy) must not show in
the next request either.

    python -m bench.resend [--chunks 200] [--sizes-kib 64 1024] [--warmup 5] [--dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import random
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from dfs.client import Client
from dfs.localcluster import LocalCluster

KIB = 1 << 10


def chunk_bytes(tag: str, i: int, size: int) -> bytes:
    """Chunk ``i`` of set ``tag``: seeded, so it is regenerated instead of kept in memory."""
    return random.Random(f"{tag}:{i}:{size}").randbytes(size)


@dataclass(frozen=True)
class Ref:
    tag: str
    i: int
    size: int
    chunk_id: str

    def data(self) -> bytes:
        return chunk_bytes(self.tag, self.i, self.size)


def refs(tag: str, n: int, size: int) -> list[Ref]:
    return [
        Ref(tag, i, size, hashlib.sha256(chunk_bytes(tag, i, size)).hexdigest()) for i in range(n)
    ]


async def upload_timed(client: Client, name: str, order: list[Ref]) -> dict[str, float]:
    """Upload one file made of ``order``'s chunks, sending them one at a time in that order;
    the seconds each ``/store-chunk`` took, by chunk id."""
    whole = hashlib.sha256()
    for ref in order:
        whole.update(ref.data())
    size = order[0].size
    plan = await client.api.init_upload(
        name=name,
        size=size * len(order),
        sha256=whole.hexdigest(),
        chunker=f"fixed:{size}",
        chunks=[{"sha256": r.chunk_id, "size": r.size} for r in order],
    )
    items = {item["sha256"]: item for item in plan["upload"]}
    took: dict[str, float] = {}
    receipts: dict[str, str] = {}
    for ref in order:
        data = ref.data()
        started = time.perf_counter()
        receipts[ref.chunk_id] = await client.send_chunk(
            plan["file_id"], ref.chunk_id, data, items[ref.chunk_id]
        )
        took[ref.chunk_id] = time.perf_counter() - started
    await client.api.finalize_upload(plan["file_id"], receipts)
    return took


def best_threshold_accuracy(held: list[float], new: list[float]) -> float:
    """The share of chunks a single latency threshold classifies right (held below it, or
    above it, whichever is better): what an attacker gets from timing alone."""
    points = sorted([(t, 1) for t in held] + [(t, 0) for t in new])
    total = len(points)
    best = below_held = below_new = 0
    for _t, is_held in [(float("-inf"), -1), *points]:
        below_held += is_held == 1
        below_new += is_held == 0
        # guess "held" below the threshold, "new" above it (or the other way round)
        right = below_held + (len(new) - below_new)
        best = max(best, right, total - right)
    return best / total


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


async def measure(cluster: LocalCluster, n: int, size: int, warmup: int) -> dict[str, list[float]]:
    async with Client(cluster.api_url, token=cluster.admin_token) as admin:
        tokens = {}
        for tenant in (f"owner{size}", f"prober{size}"):
            await admin.api.create_tenant(tenant)
            tokens[tenant] = (await admin.api.create_token(tenant, "user", "bench"))["token"]
    held, new = refs(f"held{size}", n + warmup, size), refs(f"new{size}", n + warmup, size)
    async with Client(cluster.api_url, token=tokens[f"owner{size}"]) as owner:
        await upload_timed(owner, "held.bin", held)
    order = [*held, *new]
    random.Random(size).shuffle(order)
    async with Client(cluster.api_url, token=tokens[f"prober{size}"]) as prober:
        took = await upload_timed(prober, "probe.bin", order)
    counted = {r.chunk_id for r in order[2 * warmup :]}
    kind = {r.chunk_id: "held" if r.tag.startswith("held") else "new" for r in order}
    out: dict[str, list[float]] = {"held": [], "new": [], "after held": [], "after new": []}
    for before, ref in itertools.pairwise(order):
        if ref.chunk_id in counted:
            out[kind[ref.chunk_id]].append(took[ref.chunk_id])
            out[f"after {kind[before.chunk_id]}"].append(took[ref.chunk_id])
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.resend")
    p.add_argument("--chunks", type=int, default=200, help="chunks of each kind per size")
    p.add_argument("--sizes-kib", type=int, nargs="+", default=[64, 1024])
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--dir", default=None, help="where the cluster keeps its data")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        cluster = LocalCluster(Path(tmp) / "cluster", nodes=1, replication_factor=1)
        cluster.start()
        try:
            results = {
                kib: asyncio.run(measure(cluster, args.chunks, kib * KIB, args.warmup))
                for kib in args.sizes_kib
            }
        finally:
            cluster.stop()
    print(
        f"\nre-sent vs new chunk writes: 1 node, factor 1, {args.chunks} of each kind per size, "
        "shuffled together, one PUT /store-chunk at a time, latency seen by the client\n"
    )
    print("| chunk | kind | p50 ms | p90 ms | p99 ms | mean ms | best-threshold guess |")
    print("|---|---|---|---|---|---|---|")
    rows = (
        ("new", "held", "new write", "re-sent (held)"),
        ("after new", "after held", "any, after a new write", "any, after a re-sent one"),
    )
    for first, second, first_label, second_label in rows:
        for kib, r in results.items():
            accuracy = best_threshold_accuracy(r[second], r[first])
            for kind, label in ((first, first_label), (second, second_label)):
                ms = [t * 1000 for t in r[kind]]
                print(
                    f"| {kib} KiB | {label} | {pct(ms, 50):.2f} | {pct(ms, 90):.2f} "
                    f"| {pct(ms, 99):.2f} | {statistics.fmean(ms):.2f} | {accuracy:.1%} |"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
