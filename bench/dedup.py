"""Dedup benchmark: a corpus of edited versions of one large file, FastCDC against fixed size.

Version 0 is random; each next version is the previous one with a few random edits: an
insertion, a deletion and an overwrite at random offsets, and an append at the end. Every
version is chunked the way ``dfs-client upload`` chunks it (``dfs.chunking.scan_stream``),
and the store is modelled exactly as the API decides what to send: a chunk is sent (and
stored) only if no earlier version holds a chunk with the same id. Reported per profile:

- stored / logical: unique chunk bytes over the bytes of all versions (lower is better);
- sent on re-upload: bytes sent for versions 1..N, as a share of their size (lower is better);
- time to chunk and hash the corpus.

No cluster is needed: the numbers are a property of the chunker and the edits. Seeded, so
runs are comparable.

    python -m bench.dedup [--size-mib 64] [--versions 10] [--seed 1]
"""

from __future__ import annotations

import argparse
import io
import random
import time
from dataclasses import dataclass

from dfs.chunking import ChunkerProfile, scan_stream

MIB = 1 << 20


def make_versions(size: int, versions: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    current = bytearray(rng.randbytes(size))
    out = [bytes(current)]
    for _ in range(versions - 1):
        at = rng.randrange(len(current))
        current[at:at] = rng.randbytes(rng.randint(1, 64 * 1024))  # insertion
        at = rng.randrange(len(current))
        del current[at : at + rng.randint(1, 64 * 1024)]  # deletion
        at = rng.randrange(len(current))
        n = rng.randint(1, 4096)
        current[at : at + n] = rng.randbytes(n)  # overwrite in place
        current += rng.randbytes(rng.randint(1, 256 * 1024))  # append
        out.append(bytes(current))
    return out


@dataclass(frozen=True)
class DedupResult:
    profile: str
    logical: int
    stored: int
    reupload_logical: int
    reupload_sent: int
    chunks: int
    seconds: float


def measure(corpus: list[bytes], profile: ChunkerProfile) -> DedupResult:
    seen: set[str] = set()
    stored = sent = chunks = 0
    started = time.perf_counter()
    for i, version in enumerate(corpus):
        scan = scan_stream(io.BytesIO(version), profile)
        chunks += len(scan.chunks)
        for ref in scan.chunks:
            if ref.chunk_id in seen:
                continue
            seen.add(ref.chunk_id)
            stored += ref.size
            if i:
                sent += ref.size
    return DedupResult(
        profile=str(profile),
        logical=sum(len(v) for v in corpus),
        stored=stored,
        reupload_logical=sum(len(v) for v in corpus[1:]),
        reupload_sent=sent,
        chunks=chunks,
        seconds=time.perf_counter() - started,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.dedup")
    p.add_argument("--size-mib", type=int, default=64)
    p.add_argument("--versions", type=int, default=10)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    corpus = make_versions(args.size_mib * MIB, args.versions, args.seed)
    profiles = [ChunkerProfile.default(), ChunkerProfile.fixed(1 * MIB)]
    rows = [measure(corpus, prof) for prof in profiles]
    print(
        f"\ndedup corpus: {args.versions} versions of a {args.size_mib} MiB random file, each "
        "with an insertion, a deletion, an overwrite and an append at random offsets "
        f"(seed {args.seed})\n"
    )
    print("| chunker | chunks | logical MiB | stored MiB | stored / logical | sent on re-upload |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r.profile} | {r.chunks} | {r.logical / MIB:.0f} | {r.stored / MIB:.1f} "
            f"| {r.stored / r.logical:.3f} "
            f"| {r.reupload_sent / MIB:.1f} MiB ({r.reupload_sent / r.reupload_logical:.1%}) |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
