"""A fresh ext4 file system *with a journal* for a benchmark's work folder (``--fresh-fs``).

Why: the machine these benchmarks were written on has its root on ext4 without a journal,
and there ext4 will not hand out an inode freed in the last minutes while it can find
another (``recently_deleted`` in ``fs/ext4/ialloc.c``: 60 s after the delete, 360 s while
the inode's table block is still dirty). Every create scans the block group's free inodes
past each recently freed one, reading its inode table entry: after 20,000 files are
deleted, creating files near them took 895 us each against 30-35 us on a journaled ext4
(``perf``: ``find_get_block_common`` and ``recently_deleted`` under ``__ext4_new_inode``).
A test run or the previous tool's tree deleted minutes before a step is enough, so the
small-file steps measured the file system's recent past more than the tools (the create
probes of ``bench.small_files`` moved between 30 and 690 us per file from run to run).
A journaled ext4 (``mkfs.ext4``'s default, and what a deployment runs on) does not make
that check.

The file system lives in an image file beside the work folder, attached by ``losetup
--direct-io=on`` so its blocks are cached once (by the loop file system, not again as the
image's pages). Needs root (``losetup``, ``mount``); every tool of a run works in it, so
they are still compared side by side on the same disk.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

GIB = 1 << 30


def _run(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"--fresh-fs: {' '.join(argv)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


@contextlib.contextmanager
def journaled_ext4(parent: str | None, gib: int) -> Iterator[Path]:
    """A journaled ext4 of ``gib`` GiB mounted on a fresh folder (in ``parent``, else the
    temp folder); unmounted and its image removed on the way out, whatever happened."""
    if os.geteuid() != 0:
        raise SystemExit("--fresh-fs needs root (losetup and mount)")
    with tempfile.TemporaryDirectory(prefix="dfs-bench-fs-", dir=parent) as tmp:
        image, mount = Path(tmp) / "ext4.img", Path(tmp) / "mnt"
        mount.mkdir()
        with open(image, "wb") as f:
            f.truncate(gib * GIB)  # sparse: blocks are taken as the run writes them
        _run("mkfs.ext4", "-q", "-F", str(image))
        device = _run("losetup", "--find", "--show", "--direct-io=on", str(image))
        try:
            _run("mount", device, str(mount))
            try:
                yield mount
            finally:
                _run("umount", str(mount))
        finally:
            _run("losetup", "--detach", device)


@contextlib.contextmanager
def work_folder(parent: str | None, fresh_gib: int) -> Iterator[str | None]:
    """Where a benchmark makes its temporary work folder: on a fresh journaled ext4 when
    ``fresh_gib`` is set, else in ``parent`` (None: the temp folder) as before."""
    if not fresh_gib:
        yield parent
        return
    with journaled_ext4(parent, fresh_gib) as mount:
        yield str(mount)


def add_option(parser: argparse.ArgumentParser, default_gib: int) -> None:
    """The ``--fresh-fs GIB`` option (0: work where ``--dir`` says, as before)."""
    parser.add_argument(
        "--fresh-fs",
        type=int,
        default=0,
        metavar="GIB",
        help=f"work on a fresh journaled ext4 of GIB GiB (root; e.g. {default_gib})",
    )
