"""A batch finalize's metadata writes alone, on SQLite: the copies the has-chunks round found
and the files' commit, as two transactions (``add_locations`` then ``commit_files``, as
finalize wrote them before) or as one (``commit_files(..., locations=)``).

    python -m bench.finalize_commit [--files 7733] [--batch 500] [--rounds 4]

Each round makes a fresh database in a temp folder per mode, the modes alternating, and
creates ``--files`` pending one-chunk files in batches (untimed), then finalizes each batch:
its chunks' copies on one node, then the commit. Prints per round and mode the process CPU
(both threads) and the wall seconds of the finalizes (each commit's fsync included).
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
from dfs.meta.sqlite import SqliteMetadataStore


async def run(files: int, batch: int, together: bool, folder: Path) -> tuple[float, float]:
    store = await SqliteMetadataStore.open(f"sqlite:///{folder / 'meta.db'}")
    batches = []
    for start in range(0, files, batch):
        made, locs = [], []
        for i in range(start, min(files, start + batch)):
            chunk = hashlib.sha256(f"{folder}{i}".encode()).hexdigest()
            rec = FileRecord(str(uuid.uuid4()), f"f{i}", 1000, chunk, "fixed:4096", "t1", 1.0, 1)
            made.append((rec, [ManifestEntry(0, 1000, chunk)]))
            locs.append(Location(chunk, "n1", 1000))
        await store.create_files(made)
        batches.append(([rec.file_id for rec, _ in made], locs))
    cpu, wall = time.process_time(), time.perf_counter()
    for ids, locs in batches:
        if together:
            await store.commit_files(ids, 2.0, locations=locs)
        else:
            await store.add_locations(locs, 2.0)
            await store.commit_files(ids, 2.0)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await store.close()
    return cpu, wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--files", type=int, default=7733)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--rounds", type=int, default=4)
    a = p.parse_args()
    for r in range(a.rounds):
        for together in (False, True) if r % 2 == 0 else (True, False):
            with tempfile.TemporaryDirectory(prefix="dfs-finalize-commit-") as tmp:
                cpu, wall = asyncio.run(run(a.files, a.batch, together, Path(tmp)))
            mode = "one transaction" if together else "two transactions"
            print(f"round {r + 1}, {mode}: CPU {cpu:.3f} s, wall {wall:.3f} s")


if __name__ == "__main__":
    main()
