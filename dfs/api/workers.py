"""Several ``dfs-api`` processes on one listening socket (``DFS_API_WORKERS``).

One API process plans a request on one core (its event loop; the interpreter lock), so on a
machine of several cores one process leaves the others idle while a client waits for its
plans. With ``DFS_API_WORKERS=N`` the process started (the first worker) binds the listening
socket, then starts N - 1 more ``dfs-api`` processes that inherit it (``LISTEN_FD_ENV``):
every worker accepts on it, and the kernel hands a new connection to a worker waiting in
``epoll``, so a busy one is passed over. Nothing else is shared in memory: the API keeps its
state in the metadata store, as several API processes behind a load balancer already do.

- **One maintenance.** Repair, garbage collection and the usage sampler run in the first
  worker only (the others are started with ``DFS_MAINTENANCE=0``; the passes' leases would
  keep them apart anyway, this only saves the work).
- **Lifetimes.** The first worker restarts a worker that exits (at most once a second), and
  on SIGTERM or SIGINT stops them all (SIGTERM, then SIGKILL after ``STOP_GRACE`` seconds)
  before it drains its own requests. A worker whose parent is gone (killed with SIGKILL)
  stops itself (``watch_parent``), so none is left accepting on the port.
- **Metrics.** Each worker counts its own requests; ``/metrics`` must answer the sum of all,
  whichever worker the scrape reaches. So the first worker points every worker at one folder
  of prometheus-client's multiprocess files (``PROMETHEUS_MULTIPROC_DIR``, made empty at
  start, ``prepare_metrics``) before prometheus-client is imported, and ``dfs.metrics``
  reads them all at scrape.

Standard library only.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger("dfs.api")

LISTEN_FD_ENV = "DFS_API_LISTEN_FD"
"""The inherited listening socket's descriptor, in a worker the first one started."""
PARENT_ENV = "DFS_API_PARENT"
"""The first worker's pid, in the workers it started."""
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
STOP_GRACE = 15.0
"""Seconds a worker is given to drain after SIGTERM before it is killed."""
RESTART_EVERY = 1.0
"""Seconds at least between two restarts of a worker that keeps exiting."""
WATCH_EVERY = 0.5
"""Seconds between the first worker's looks for workers that exited."""


def is_worker() -> bool:
    """True in a worker started by the first one (it serves the inherited socket)."""
    return LISTEN_FD_ENV in os.environ


def prepare_metrics(data_dir: Path, sock: socket.socket) -> Path:
    """In the first worker, before prometheus-client is imported: an empty folder for every
    worker's metric files (``api-metrics-PORT`` in the data directory: one per listening
    port, emptied of what a killed run left), named in the environment the workers inherit.
    The caller removes it at exit (``remove_metrics``)."""
    folder = data_dir / f"api-metrics-{sock.getsockname()[1]}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, mode=0o700)
    os.environ[MULTIPROC_ENV] = str(folder)
    return folder


def listening_socket(host: str, port: int) -> socket.socket:
    """The API's listening socket, bound and listening, inheritable by the workers."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(socket.SOMAXCONN)
    sock.set_inheritable(True)
    return sock


def inherited_socket() -> socket.socket:
    """A worker's listening socket (``LISTEN_FD_ENV``)."""
    return socket.socket(fileno=int(os.environ[LISTEN_FD_ENV]))


class Workers:
    """The first worker's children: started, restarted when they exit, stopped at the end."""

    def __init__(self, sock: socket.socket, count: int, argv: Sequence[str]) -> None:
        self._sock = sock
        self._argv = [sys.executable, "-m", "dfs.api.main", *argv]
        self._procs: list[subprocess.Popen[bytes]] = []
        self._started_at: list[float] = []
        self._count = count
        self._watch: asyncio.Task[None] | None = None

    def start(self) -> None:
        for _ in range(self._count):
            self._procs.append(self._spawn())
            self._started_at.append(time.monotonic())
        self._watch = asyncio.create_task(self._restart_exited())

    def _spawn(self) -> subprocess.Popen[bytes]:
        fd = self._sock.fileno()
        env = {
            **os.environ,
            LISTEN_FD_ENV: str(fd),
            PARENT_ENV: str(os.getpid()),
            "DFS_MAINTENANCE": "0",
            "DFS_API_PORT": str(self._sock.getsockname()[1]),
        }
        return subprocess.Popen(self._argv, env=env, pass_fds=(fd,))

    async def _restart_exited(self) -> None:
        while True:
            await asyncio.sleep(WATCH_EVERY)
            for i, proc in enumerate(self._procs):
                code = proc.poll()
                if code is None or time.monotonic() - self._started_at[i] < RESTART_EVERY:
                    continue
                log.warning("API worker %d exited (%s); starting another", proc.pid, code)
                _mark_dead(proc.pid)
                self._procs[i] = self._spawn()
                self._started_at[i] = time.monotonic()

    async def stop(self) -> None:
        """SIGTERM to every worker; SIGKILL to those still running after ``STOP_GRACE``."""
        if self._watch is not None:
            self._watch.cancel()
        for proc in self._procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for proc in self._procs:
            try:
                left = max(deadline - time.monotonic(), 0.0)
                await asyncio.to_thread(proc.wait, left)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait)


def _mark_dead(pid: int) -> None:
    """Drop a dead worker's live gauges from the metric files (its counters stay summed)."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def watch_parent(stop: asyncio.Event) -> None:
    """In a worker: set ``stop`` when the first worker exits, however it ends (a pidfd
    becomes readable then; a parent already gone sets it at once)."""
    parent = int(os.environ[PARENT_ENV])
    loop = asyncio.get_running_loop()

    def gone() -> None:
        log.warning("the first API worker (%d) is gone; stopping", parent)
        stop.set()

    if os.getppid() != parent:
        gone()
        return
    fd = os.pidfd_open(parent)  # opened after the check: it names the parent, no reused pid
    loop.add_reader(fd, gone)


def remove_metrics(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
