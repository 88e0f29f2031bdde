"""Run every benchmark with one command and print their markdown tables.

    python -m bench [--size-mib 1024] [--repeat 1] [--concurrency 8] [--dedup-mib 64]
                    [--meta-backends sqlite dynamodb] [--small-files 2000]

``--small-files 10000`` gives the many-small-files figure (files/s up and down, 1-100
KiB each, RF 2); ``0`` skips it. The resume measurement of ``bench.ux`` runs on its own.

``--resend-chunks 200`` gives the re-sent vs new chunk write latencies (``bench.resend``, the
dedup timing oracle); ``0`` skips it.

``--size-mib 4096 --rf 1`` gives the peak RSS of the client and nodes for a 4 GiB upload
and download (the core table's RSS columns).
"""

from __future__ import annotations

import argparse

from bench import core, dedup, meta_calls, resend, ux


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench")
    p.add_argument("--size-mib", type=int, default=1024)
    p.add_argument("--rf", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--dir", default=None)
    p.add_argument("--dedup-mib", type=int, default=64)
    p.add_argument("--dedup-versions", type=int, default=10)
    p.add_argument("--meta-backends", nargs="*", default=["sqlite", "dynamodb"])
    p.add_argument("--small-files", type=int, default=2000, help="0 skips the small files table")
    p.add_argument("--resend-chunks", type=int, default=200, help="0 skips the re-send table")
    args = p.parse_args(argv)
    core_args = [
        "--size-mib",
        str(args.size_mib),
        "--repeat",
        str(args.repeat),
        "--concurrency",
        str(args.concurrency),
        "--rf",
        *(str(rf) for rf in args.rf),
    ]
    if args.dir:
        core_args += ["--dir", args.dir]
    status = core.main(core_args)
    dedup_args = ["--size-mib", str(args.dedup_mib), "--versions", str(args.dedup_versions)]
    status = status or dedup.main(dedup_args)
    if args.small_files and not status:
        small_args = ["--files", str(args.small_files), "--resume-mib", "0"]
        status = ux.main(small_args + (["--dir", args.dir] if args.dir else []))
    if args.meta_backends and not status:
        status = meta_calls.main(["--backends", *args.meta_backends])
    if args.resend_chunks and not status:
        resend_args = ["--chunks", str(args.resend_chunks)]
        status = resend.main(resend_args + (["--dir", args.dir] if args.dir else []))
    return status


if __name__ == "__main__":
    raise SystemExit(main())
