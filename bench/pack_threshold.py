"""Where pack files stop paying: batched chunk writes, one file per chunk vs pack appends.

For each chunk size, stores the same random chunks with ``put_many`` in batches (as a node's
``/store-chunks`` does) into ``FsChunkStore`` (a file per chunk: write, fsync, rename, fsync
of the directory, per chunk) and into ``PackChunkStore`` with every chunk packed (one write
and one fsync per batch), on a temporary directory of the disk given. Prints chunks/s, MB/s
and bytes on disk per stored byte for both, and the ratio; the pack threshold is the size
from which packing stops being clearly faster (the ``DEFAULT_PACK_THRESHOLD`` choice in
``dfs/chunkstore/pack.py``). Small by default (a few seconds): a quick measurement, not a
benchmark to leave running.

    python -m bench.pack_threshold [--dir PATH] [--mib-per-size 16] [--batch-mib 8]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

from dfs.chunkstore.base import ChunkStore
from dfs.chunkstore.fs import FsChunkStore
from dfs.chunkstore.pack import PackChunkStore
from dfs.ids import ChunkId

KIB = 1024
SIZES = [1 * KIB, 4 * KIB, 16 * KIB, 64 * KIB, 128 * KIB, 256 * KIB, 512 * KIB, 1024 * KIB]
MAX_BATCH = 256  # protocol.MAX_STORE_BATCH


def chunks_of(size: int, total: int, seed: int) -> list[tuple[ChunkId, bytes]]:
    rng = random.Random(seed)
    out = []
    for _ in range(max(total // size, 4)):
        data = rng.randbytes(size)
        out.append((ChunkId(hashlib.sha256(data).hexdigest()), data))
    return out


def disk_bytes(root: Path) -> int:
    return sum(
        os.stat(os.path.join(d, f)).st_blocks * 512 for d, _, fs in os.walk(root) for f in fs
    )


async def timed(store: ChunkStore, chunks: list[tuple[ChunkId, bytes]], batch_bytes: int) -> float:
    per = max(1, min(MAX_BATCH, batch_bytes // len(chunks[0][1])))
    started = time.perf_counter()
    for i in range(0, len(chunks), per):
        await store.put_many(chunks[i : i + per])
    return time.perf_counter() - started


async def one_size(base: Path, size: int, total: int, batch_bytes: int) -> dict[str, float]:
    chunks = chunks_of(size, total, seed=size)
    stored = sum(len(d) for _, d in chunks)
    row: dict[str, float] = {"size": size, "chunks": len(chunks)}
    for name in ("file", "pack"):
        root = base / f"{name}-{size}"
        store: ChunkStore
        if name == "file":
            store = await FsChunkStore.open(root)
        else:
            store = await PackChunkStore.open(root, threshold=1 << 40)
        seconds = await timed(store, chunks, batch_bytes)
        row[f"{name}_s"] = seconds
        row[f"{name}_disk"] = disk_bytes(root / "chunks") / stored
        if isinstance(store, PackChunkStore):
            await store.close()
        shutil.rmtree(root)
    return row


async def main(directory: Path, mib: int, batch_mib: int) -> None:
    base = Path(tempfile.mkdtemp(prefix="pack-threshold-", dir=directory))
    try:
        print(
            "| chunk | chunks | file: chunks/s | MB/s | disk/byte | pack: chunks/s | MB/s | disk/byte | pack speed-up |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for size in SIZES:
            r = await one_size(base, size, mib << 20, batch_mib << 20)
            n, mb = r["chunks"], r["chunks"] * size / 1e6
            print(
                f"| {size // KIB} KiB | {int(n)} | {n / r['file_s']:.0f} | {mb / r['file_s']:.0f}"
                f" | {r['file_disk']:.2f} | {n / r['pack_s']:.0f} | {mb / r['pack_s']:.0f}"
                f" | {r['pack_disk']:.2f} | {r['file_s'] / r['pack_s']:.1f}x |"
            )
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path.cwd())
    parser.add_argument("--mib-per-size", type=int, default=16)
    parser.add_argument("--batch-mib", type=int, default=8)
    args = parser.parse_args()
    asyncio.run(main(args.dir, args.mib_per_size, args.batch_mib))
