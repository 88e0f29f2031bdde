"""A small PutObject's metadata writes alone, on SQLite: CPU and wall per object.

    python -m bench.put_metadata [--objects 2000] [--concurrency 4] [--mode one|two]

``two``: the file recorded complete with its copies (``create_and_commit_files``), then the
key's version (``put_object``), as a PutObject wrote them before; ``one``:
``create_and_put_object``, the one write (group-committed on SQLite) PutObject makes now.
``--concurrency`` objects at once (rclone's ``--transfers``), one-chunk files of 1,000 bytes
with two copies each, into one unversioned bucket of a fresh database in a temp folder.
Prints process CPU (both threads) and wall milliseconds per object.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import tempfile
import time
import uuid
from pathlib import Path

from dfs.meta.base import FileRecord, Location, ManifestEntry
from dfs.meta.namespace import BucketRecord, NewObject
from dfs.meta.sqlite import SqliteMetadataStore


async def run(objects: int, concurrency: int, mode: str, folder: Path) -> tuple[float, float]:
    store = await SqliteMetadataStore.open(f"sqlite:///{folder / 'meta.db'}")
    await store.create_bucket(BucketRecord("b", "t1", created_at=1.0))
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        chunk = hashlib.sha256(f"{folder}{i}".encode()).hexdigest()
        rec = FileRecord(str(uuid.uuid4()), "f", 1000, chunk, "fixed:4096", "t1", 1.0, 1)
        manifest = [ManifestEntry(0, 1000, chunk)]
        locs = [Location(chunk, "n1", 1000), Location(chunk, "n2", 1000)]
        obj = NewObject("b", f"k{i}", rec.file_id, 1000, etag="e", sha256=chunk, owner="t1")
        async with sem:
            if mode == "two":
                await store.create_and_commit_files([(rec, manifest)], 2.0, locations=locs)
                await store.put_object(obj, 2.0)
            else:
                await store.create_and_put_object(rec, manifest, locs, obj, 2.0)

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(objects)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await store.close()
    return cpu, wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--objects", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--mode", choices=("one", "two"), default="one")
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="dfs-put-metadata-") as tmp:
        cpu, wall = asyncio.run(run(a.objects, a.concurrency, a.mode, Path(tmp)))
    n = a.objects
    print(
        f"{a.mode}: {n} objects, {a.concurrency} at once: CPU {1000 * cpu / n:.3f} ms/object, "
        f"wall {1000 * wall / n:.3f} ms/object"
    )


if __name__ == "__main__":
    main()
