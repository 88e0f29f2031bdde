"""Shared fixtures: seeded random bytes, and moto's DynamoDB server on loopback."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from hypothesis import settings

# property tests: no per-example deadline (a shared CI machine is noisy) and no example
# database (failing examples are printed); under CI the examples are derandomized, so a run
# is repeatable and a red CI is never a roll of the dice (developers' runs keep exploring)
settings.register_profile("dfs", deadline=None, database=None)
settings.register_profile("ci", deadline=None, database=None, derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "dfs")

DYNAMODB_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_REGION": "us-east-1",
}
MOTO_START_TIMEOUT = 30.0


def random_bytes(seed: int, n: int) -> bytes:
    """Deterministic pseudo-random bytes (restic's test.Random idea)."""
    return random.Random(seed).randbytes(n)


@pytest.fixture
def rng_bytes() -> object:
    return random_bytes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's DynamoDB server as a subprocess; its log is shown if it fails to start."""
    port = _free_port()
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    script = Path(__file__).parent / "contract" / "moto_server.py"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, str(script), str(port)], stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + MOTO_START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"moto server exited {proc.returncode}: {log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/moto-api/", timeout=1.0):
                    break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    pytest.fail(f"moto server not up after {MOTO_START_TIMEOUT}s")
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(autouse=True)
def _client_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Resume journals of every client a test runs (in-process or CLI subprocess) go under
    the test's tmp dir, never the user's ~/.cache."""
    cache = tmp_path / "client-cache"
    monkeypatch.setenv("DFS_CACHE_DIR", str(cache))
    return cache


@pytest.fixture(autouse=True)
def _close_boto3_clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every boto3 client a test makes is closed when the test ends. A client sits in
    reference cycles, so without this its pooled keep-alive sockets are freed whenever the
    cyclic collector next runs, often inside a later test, which then fails on an
    unclosed-socket ResourceWarning that is not its own."""
    made: list[Any] = []
    real = boto3.client

    def tracked(*args: Any, **kwargs: Any) -> Any:
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(boto3, "client", tracked)
    yield
    for client in made:
        client.close()
