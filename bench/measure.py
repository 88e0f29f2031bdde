"""A command's own CPU seconds and peak RSS, as the kernel counts them.

``wait4`` on a child this bench spawns directly overstates its peak RSS: the child starts as a
(v)fork of the bench, and exec folds the memory it replaces into the new program's
``ru_maxrss``, so the figure is at least the bench's own peak (tens of MiB of interpreter,
cluster handles, plotting libraries). ``run`` therefore starts the command from a small
launcher (an interpreter started with ``-S``, a few MiB) that forks and execs it, waits for
it and hands its ``wait4`` figures back over a pipe: the command's peak is then its own,
or the launcher's few MiB if that were larger. Its CPU seconds are its own and its reaped
children's, as ``wait4`` always gave.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_LAUNCHER = """
import json, os, sys
fd = int(sys.argv[1])
pid = os.fork()
if pid == 0:
    os.close(fd)
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
os.write(fd, json.dumps([usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024]).encode())
sys.exit(os.waitstatus_to_exitcode(status) & 0xFF)
"""


@dataclass
class Measured:
    """What ``run`` saw: the exit code, wall seconds, CPU seconds, peak RSS in bytes and the
    output (``None`` for a stream not captured)."""

    code: int
    seconds: float
    cpu: float
    rss: int
    stdout: bytes | None
    stderr: bytes


def run(
    cmd: Sequence[str],
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    capture_stdout: bool = False,
) -> Measured:
    """Run ``cmd`` to its end from the launcher; stderr is always captured."""
    read, write = os.pipe()
    started = time.perf_counter()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-S", "-c", _LAUNCHER, str(write), *cmd],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE if capture_stdout else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            pass_fds=(write,),
        )
    finally:
        os.close(write)
    with os.fdopen(read, "rb") as figures:
        out, err = proc.communicate()
        seconds = time.perf_counter() - started
        reported = figures.read()
    cpu, rss = json.loads(reported) if reported else (0.0, 0)
    return Measured(proc.returncode, seconds, cpu, rss, out, err)
