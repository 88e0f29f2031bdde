"""A huge file through dfs: bounded client memory, and the scan overlapping the sending.

    python -m bench.huge_file [--size-gib 20] [--seed 1] [--dir DIR] [--plot timeline.png]
    python -m bench.huge_file --size-mib 1024      # the same run, small enough to try
    python -m bench.huge_file --size-mib 1024 --chunker fixed:65536   # 4 pages per GiB

The file is seeded pseudo-random bytes (AES-128-CTR keystream of a key derived from
``--seed``: the same seed gives the same file, nothing in it repeats, so no chunk dedups),
written to the work folder as it is generated (the client reads a file it can seek: it
scans the file on one thread and reads each chunk back when it sends it). Its SHA-256 is
computed while it is generated.

A cluster of the API and one node (RF 1, SQLite) takes the upload from a client process
of this module (``--client``, the ``dfs.client`` library as the CLI uses it, paged upload
forced at any size so a small run takes the huge file's path); that process samples itself
every ``--every`` seconds: bytes scanned (the scanner's file position, from
``/proc/self/fdinfo``), bytes sent (the upload's progress callback) and bytes committed
(pages proven to the API). Then the source is deleted (the node holds the only copy: a
20 GiB run needs ~40 GB of disk, not 60) and ``dfs-client download ... -`` streams the
file to this process, which hashes it and compares it with the generated SHA-256. Peak
RSS of both client processes is their own ``VmHWM`` (``peak_rss`` says why not ``wait4``).

A paged upload's first page ends at 32 MiB (``dfs.client.paged_upload.FIRST_PAGE_BYTES``)
and each next one may hold twice the bytes of the last, up to ``MAX_PAGE_BYTES`` (128 MiB)
and ``PAGE_CHUNKS`` (1,024) chunks, so the nodes get bytes while the scan is still running
from the first seconds on; ``--chunker fixed:65536`` caps pages at 64 MiB.

Prints the timeline as a table and, when matplotlib is installed (the ``test`` extra pins
it), draws it to ``--plot``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from dfs.chunking import ChunkerProfile
from dfs.client import Client, paged_upload
from dfs.localcluster import LocalCluster, console_script

MIB = 1 << 20
GIB = 1 << 30
BLOCK = 4 * MIB


def peak_rss(pid: int | str = "self") -> int:
    """A process's own peak RSS in bytes (``VmHWM``), 0 once it is gone. Not ``wait4``'s
    ``ru_maxrss``: exec folds the peak of the memory it replaces into it, and a child spawned
    by this bench replaces a (v)fork of the bench, so that figure is at least the bench's own
    peak (the bench importing matplotlib made a client look ~50 MiB bigger than it was)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def generate(path: Path, size: int, seed: int) -> str:
    """Write ``size`` seeded pseudo-random bytes to ``path``; their SHA-256."""
    key = hashlib.sha256(f"dfs bench seed {seed}".encode()).digest()[:16]
    stream = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()
    zeros = bytes(BLOCK)
    whole = hashlib.sha256()
    with path.open("wb") as f:
        left = size
        while left:
            block = stream.update(zeros[: min(BLOCK, left)])
            whole.update(block)
            f.write(block)
            left -= len(block)
    return whole.hexdigest()


# --- the client process ---------------------------------------------------------------------


class Timeline:
    """What the upload did so far, sampled by a thread of the client process."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sent = 0
        self.committed = 0
        self.samples: list[tuple[float, int, int, int]] = []
        self._started = time.monotonic()
        self._stop = threading.Event()

    def scanned(self) -> int:
        """The furthest position of any descriptor of the file in this process: the
        scanner's (it reads in order; the sender reads with pread, at position 0)."""
        best = 0
        for fd in os.listdir("/proc/self/fd"):
            try:
                if os.readlink(f"/proc/self/fd/{fd}") != self.path:
                    continue
                info = Path(f"/proc/self/fdinfo/{fd}").read_text()
            except OSError:
                continue
            best = max(best, int(info.split()[1]))  # "pos: N"
        return best

    def sample(self) -> None:
        t = time.monotonic() - self._started
        last = self.samples[-1][1] if self.samples else 0
        # the scanner closes the file at its end: the furthest position seen stays
        self.samples.append((t, max(self.scanned(), last), self.sent, self.committed))

    def run(self, every: float) -> None:
        while not self._stop.wait(every):
            self.sample()

    def stop(self) -> None:
        self._stop.set()
        self.sample()


async def client_upload(api_url: str, path: Path, every: float, chunker: str) -> dict[str, Any]:
    """Upload ``path`` as the CLI does, page by page whatever its size, sampling a timeline."""
    timeline = Timeline(path)
    paged_upload.StreamingUploadPipeline.paged_bytes = 0  # the huge file's path at any size
    prove = paged_upload.PagedUpload._prove

    async def proven(self: Any, page: Any) -> None:
        await prove(self, page)
        timeline.committed += page.scan.size

    paged_upload.PagedUpload._prove = proven  # type: ignore[method-assign]

    def progress(n: int) -> None:
        timeline.sent += n

    sampler = threading.Thread(target=timeline.run, args=(every,), daemon=True)
    sampler.start()
    async with Client(api_url, token=os.environ["DFS_TOKEN"], resume=False) as client:
        profile = ChunkerProfile.parse(chunker) if chunker else None
        result = await client.upload(path, profile=profile, progress=progress)
    timeline.stop()
    return {
        "file_id": result.file_id,
        "sha256": result.sha256,
        "timeline": timeline.samples,
        "rss": peak_rss(),
    }


# --- the bench ------------------------------------------------------------------------------


def upload(
    cluster: LocalCluster, src: Path, every: float, chunker: str
) -> tuple[dict[str, Any], float]:
    """Run the client process; its answer (with its own peak RSS) and CPU seconds
    (``wait4``)."""
    cmd = [sys.executable, "-m", "bench.huge_file", "--client", cluster.api_url, str(src)]
    cmd += ["--chunker", chunker]
    env = {**os.environ, "DFS_TOKEN": cluster.admin_token}
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [*cmd, "--every", str(every)], env=env, stdout=subprocess.PIPE, stderr=err
        )
        assert proc.stdout is not None
        out = proc.stdout.read()
        _pid, status, usage = os.wait4(proc.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            err.seek(0)
            raise RuntimeError(f"upload failed: {err.read().decode()[-2000:]}")
    answer: dict[str, Any] = json.loads(out.splitlines()[-1])
    return answer, usage.ru_utime + usage.ru_stime


def download(cluster: LocalCluster, file_id: str) -> dict[str, Any]:
    """``dfs-client download FILE_ID -`` into this process: SHA-256, bytes over time,
    the client's peak RSS (its ``VmHWM``, read as its blocks arrive: it only grows) and CPU
    seconds (``wait4``)."""
    cmd = [console_script("dfs-client"), "download", "--quiet", cluster.api_url, file_id, "-"]
    env = {**os.environ, "DFS_TOKEN": cluster.admin_token}
    started = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stderr is not None
    whole, got, samples, last, rss = hashlib.sha256(), 0, [], 0.0, 0
    while block := proc.stdout.read(BLOCK):
        whole.update(block)
        got += len(block)
        rss = max(rss, peak_rss(proc.pid))
        now = time.monotonic() - started
        if now - last >= 1.0:
            samples.append((now, got))
            last = now
    err = proc.stderr.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"download failed: {err.decode()[-2000:]}")
    seconds = time.monotonic() - started
    return {
        "sha256": whole.hexdigest(),
        "bytes": got,
        "seconds": seconds,
        "rss": rss,
        "cpu": usage.ru_utime + usage.ru_stime,
        "timeline": [*samples, (seconds, got)],
    }


# --- report ---------------------------------------------------------------------------------


def overlap(samples: list[list[float]], size: int) -> dict[str, float]:
    """When the scan ended, what was sent and committed by then; when sending started."""
    scan_end = next((t for t, scanned, _s, _c in samples if scanned >= size), samples[-1][0])
    first_sent = next((t for t, _sc, sent, _c in samples if sent > 0), samples[-1][0])
    at_end = [row for row in samples if row[0] <= scan_end] or samples[:1]
    return {
        "scan_end": scan_end,
        "first_sent": first_sent,
        "sent_at_scan_end": at_end[-1][2] / size,
        "committed_at_scan_end": at_end[-1][3] / size,
    }


def timeline_table(samples: list[list[float]], rows: int = 12) -> list[str]:
    step = max(len(samples) // rows, 1)
    picked = samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else [])
    lines = ["| t (s) | scanned MiB | sent MiB | committed MiB |", "|---|---|---|---|"]
    for t, scanned, sent, committed in picked:
        lines.append(
            f"| {t:.1f} | {scanned / MIB:.0f} | {sent / MIB:.0f} | {committed / MIB:.0f} |"
        )
    return lines


def plot(path: Path, up: list[list[float]], down: list[list[float]], size: int) -> bool:
    """The upload's three curves and the download's bytes over time; False without
    matplotlib."""
    try:  # the test extra pins it; without it the timeline is a table only. Imported here,
        # not at the top: the client process runs this module too, and matplotlib with numpy
        # is ~55 MiB of RSS that the 200 MB bound would wrongly charge to the upload
        from matplotlib import pyplot
    except ImportError:  # pragma: no cover
        return False
    fig, (a, b) = pyplot.subplots(1, 2, figsize=(11, 4))
    for col, label in ((1, "scanned"), (2, "sent"), (3, "committed")):
        a.plot([r[0] for r in up], [r[col] / GIB for r in up], label=label)
    a.set(title=f"upload of {size / GIB:.1f} GiB", xlabel="seconds", ylabel="GiB")
    a.legend()
    b.plot([r[0] for r in down], [r[1] / GIB for r in down], label="received, hashed")
    b.set(title="download to a pipe", xlabel="seconds", ylabel="GiB")
    b.legend()
    fig.tight_layout()
    fig.savefig(path)
    return True


def report(
    size: int, up: dict[str, Any], down: dict[str, Any], plotted: str, chunker: str
) -> list[str]:
    samples = up["timeline"]
    o = overlap(samples, size)
    seconds = samples[-1][0]
    load = Path("/proc/loadavg").read_text().split()[:3]
    return [
        f"{size / MIB:.0f} MiB seeded pseudo-random, chunker {chunker or 'default'}, RF 1, "
        f"API + 1 node; load average "
        f"{' '.join(load)} (wall times are under it)",
        "",
        "| step | seconds | MB/s | client CPU s | client peak RSS MiB | verified |",
        "|---|---|---|---|---|---|",
        f"| upload | {seconds:.1f} | {size / seconds / 1e6:.0f} | {up['cpu']:.1f} "
        f"| {up['rss'] / MIB:.0f} | {up['sha256'] == up['expected']} |",
        f"| download | {down['seconds']:.1f} | {size / down['seconds'] / 1e6:.0f} "
        f"| {down['cpu']:.1f} | {down['rss'] / MIB:.0f} | {down['sha256'] == up['expected']} |",
        "",
        f"scan: ended at {o['scan_end']:.1f} s; first bytes sent at {o['first_sent']:.1f} s; "
        f"when the scan ended {o['sent_at_scan_end']:.0%} was sent and "
        f"{o['committed_at_scan_end']:.0%} committed; {plotted}",
        "",
        *timeline_table(samples),
    ]


def bench(args: argparse.Namespace, base: Path) -> list[str]:
    size = args.size_mib * MIB if args.size_mib else args.size_gib * GIB
    src = base / "huge.bin"
    expected = generate(src, size, args.seed)
    with LocalCluster(base / "cluster", nodes=1, replication_factor=1) as cluster:
        answer, cpu = upload(cluster, src, args.every, args.chunker)
        answer.update(cpu=cpu, expected=expected)
        src.unlink()  # the node's copy is the only one now
        down = download(cluster, answer["file_id"])
    drawn = (
        plot(Path(args.plot), answer["timeline"], down["timeline"], size) if args.plot else False
    )
    plotted = f"plot: {args.plot}" if drawn else "no plot (matplotlib missing or --plot not given)"
    return report(size, answer, down, plotted, args.chunker)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.huge_file")
    p.add_argument("--size-gib", type=int, default=20)
    p.add_argument("--size-mib", type=int, default=0, help="overrides --size-gib (a try run)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--every", type=float, default=0.5, help="seconds between timeline samples")
    p.add_argument(
        "--chunker",
        default="",
        help="a chunker profile (e.g. fixed:65536); default: the client's (FastCDC ~1 MiB)",
    )
    p.add_argument("--dir", default=None, help="work folder (default: a temp folder)")
    p.add_argument("--plot", default="huge-file-timeline.png", help="'' for none")
    p.add_argument("--client", nargs=2, metavar=("API_URL", "FILE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.client:  # the client process of ``upload``
        path = Path(args.client[1])
        got = asyncio.run(client_upload(args.client[0], path, args.every, args.chunker))
        print(json.dumps(got))
        return 0
    with tempfile.TemporaryDirectory(prefix="dfs-huge-", dir=args.dir) as tmp:
        print("\n".join(bench(args, Path(tmp))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
