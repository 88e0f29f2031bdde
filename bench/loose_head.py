"""Bytes of a multipart object cut again around its part edges, with and without loose heads.

    python -m bench.loose_head [--parts 24] [--part-mib 8] [--seeds 4]

An object of ``--parts`` parts of ``--part-mib`` MiB of pseudo-random bytes, chunked as the
gateway chunks parts (the default profile; the parts after the first either as a stream, or
with ``ChunkerProfile.split_loose_head``), spliced by ``dfs.api.splice.Splicer`` as Complete
splices it. Per edge: the MiB and the chunks cut again (new chunks, stored a second time
beside the parts' own); each run checks that the object's chunks are the single stream's.
No cluster: the splice alone, in this process.
"""

from __future__ import annotations

import argparse
import io
import random
import sys

from dfs.api.splice import Own, Splicer
from dfs.chunking import ChunkerProfile

MIB = 1 << 20


def recut(data: bytes, part: int, loose: bool) -> tuple[int, int]:
    """(bytes, chunks) the splice cuts again for ``data`` in parts of ``part`` bytes."""
    profile = ChunkerProfile.default()
    owns: list[Own] = []
    windows: set[int] = set()
    for base in range(0, len(data), part):
        body = io.BytesIO(data[base : base + part])
        split = profile.split_loose_head if loose and base else profile.split
        mine = [Own(base + c.offset, c.chunk_id, bytes(c.data)) for c in split(body)]
        windows.add(mine[0].offset)
        if base + part < len(data):
            windows.add(mine[-1].offset)
        owns += mine
    splicer = Splicer(profile, windows, {o.offset for o in owns}, len(data))
    pieces = [p for o in owns for p in splicer.feed(o)] + splicer.finish()
    stream = [(c.offset, c.chunk_id) for c in profile.split(io.BytesIO(data))]
    if [(p.offset, p.chunk_id) for p in pieces] != stream:
        raise SystemExit("the object's chunks are not the single stream's")
    new = [p for p in pieces if p.data is not None]
    return sum(p.size for p in new), len(new)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.loose_head")
    p.add_argument("--parts", type=int, default=24)
    p.add_argument("--part-mib", type=int, default=8)
    p.add_argument("--seeds", type=int, default=4)
    args = p.parse_args(argv)
    part, edges = args.part_mib * MIB, args.parts - 1
    print(
        "| seed | MiB cut again per edge (stream heads) | (loose heads) | chunks per edge | (loose) |"
    )
    print("|---:|---:|---:|---:|---:|")
    for seed in range(args.seeds):
        data = random.Random(seed).randbytes(args.parts * part)
        (sb, sn), (lb, ln) = recut(data, part, False), recut(data, part, True)
        print(
            f"| {seed} | {sb / edges / MIB:.2f} | {lb / edges / MIB:.2f} "
            f"| {sn / edges:.2f} | {ln / edges:.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
