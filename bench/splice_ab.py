"""The S3 gateway's splice ahead (``dfs.api.multipart_ahead``) of two checkouts, alternating.

    python -m bench.splice_ab BASE_CHECKOUT [--parts 48] [--rounds 10]

No cluster: one process loads ``dfs/api/splice.py`` and ``dfs/api/multipart_ahead.py``
(``_slice``) of BASE_CHECKOUT and of this checkout side by side and feeds each, in turns
(the order alternating), the same pseudo-random object of ``--parts`` 8 MiB parts the way
``Ahead.feed`` does: each part's own chunks (FastCDC, the default profile) and its bytes as
socket reads of 64 KiB to 1 MiB. The object's chunks must come out the same from both.
Per build: the splice's CPU seconds per GiB of object (medians and minimums), and, from
this checkout, what the re-cut around the part edges costs: FastCDC passes per edge, bytes
given to FastCDC, new (re-cut, hashed, sent) bytes and chunks per edge. glibc's malloc is
tuned as the gateway tunes it (``dfs.malloc``).
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from dfs.chunking import ChunkerProfile
from dfs.malloc import keep_freed_buffers

PART = 8 << 20
READS = (64 << 10, 256 << 10, 1 << 20, 1 << 20, 1 << 20)
Part = tuple[list[bytes], list[int], list[tuple[int, int, str]]]


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _parts(n: int, profile: ChunkerProfile) -> list[Part]:
    rng = random.Random(3)
    out: list[Part] = []
    for _ in range(n):
        data = rng.randbytes(PART)
        own = [(c.offset, len(c.data), f"own{c.offset}") for c in profile.cut_buffer(data)]
        pieces, starts, at = [], [], 0
        while at < len(data):
            starts.append(at)
            pieces.append(data[at : at + rng.choice(READS)])
            at += len(pieces[-1])
        out.append((pieces, starts, own))
    return out


def _own(splice: ModuleType, slicer: Any, part: Part, offset: int, e: tuple[int, int, str]) -> Any:
    """The own chunk as this build's ``Ahead.feed`` gives it: views in pieces where ``Own``
    takes them (``more``), else the bytes ``_slice`` returns."""
    got = slicer(part[0], part[1], e[0], e[1])
    if isinstance(got, list):
        return splice.Own(offset, e[2], got[0], e[1], tuple(got[1:]))
    return splice.Own(offset, e[2], got, e[1])


def run(splice: ModuleType, slicer: Any, parts: list[Part], profile: ChunkerProfile) -> Any:
    splicer = splice.Splicer.streaming(profile)
    out, base = [], 0
    for part in parts:
        splicer.add_part([base + e[0] for e in part[2]])
        for e in part[2]:
            offset = base + e[0]
            if splicer.wants(offset):
                out += splicer.feed(_own(splice, slicer, part, offset, e))
            else:
                out += splicer.feed(splice.Own(offset, e[2], None, e[1]))
        base += PART
    return out + splicer.finish(base)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("base", type=Path)
    ap.add_argument("--parts", type=int, default=48)
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    keep_freed_buffers()
    here = Path(__file__).resolve().parent.parent
    profile = ChunkerProfile.default()
    builds = {}
    for tag, root in (("base", args.base), ("new", here)):
        splice = _load(f"splice_{tag}", root / "dfs/api/splice.py")
        ahead = _load(f"ahead_{tag}", root / "dfs/api/multipart_ahead.py")
        builds[tag] = (splice, ahead._slice)
    parts = _parts(args.parts, profile)
    gib = args.parts * PART / (1 << 30)
    cpu: dict[str, list[float]] = {"base": [], "new": []}
    want = None
    for i in range(args.rounds):
        for tag in ("base", "new") if i % 2 == 0 else ("new", "base"):
            started = time.process_time()
            pieces = run(*builds[tag], parts, profile)
            cpu[tag].append((time.process_time() - started) / gib)
            got = [(p.offset, p.size, p.chunk_id) for p in pieces]
            if want is None:
                want = got
            if got != want:
                raise SystemExit("the two builds cut the object differently")
    for tag, values in cpu.items():
        print(
            f"{tag}: splice CPU-s per GiB, median {statistics.median(values):.3f}, "
            f"min {min(values):.3f}"
        )
    _costs(builds["new"], parts, profile)


def _costs(build: tuple[ModuleType, Any], parts: list[Part], profile: ChunkerProfile) -> None:
    """What the re-cut around the edges costs, from this checkout's splicer."""
    scanned: list[int] = []

    class Counting(ChunkerProfile):
        def cut_buffer(self, buf: bytes | bytearray) -> Any:
            scanned.append(len(buf))
            return super().cut_buffer(buf)

    counting = Counting(profile.kind, profile.min_size, profile.avg_size, profile.max_size)
    pieces = run(*build, parts, counting)
    total, edges = len(parts) * PART, len(parts) - 1
    new = [p for p in pieces if p.data is not None]
    print(
        f"{edges} edges: {len(scanned) / edges:.2f} FastCDC passes per edge, "
        f"{sum(scanned) / total:.3f} of the object's bytes given to FastCDC, "
        f"new (re-cut, hashed, sent) {sum(p.size for p in new) / total:.3f} of them "
        f"({sum(p.size for p in new) / edges / (1 << 20):.2f} MiB, "
        f"{len(new) / edges:.2f} chunks per edge; the last part's last chunk included)"
    )


if __name__ == "__main__":
    main()
