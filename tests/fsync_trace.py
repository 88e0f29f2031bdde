"""A test helper that records which paths ``os.fsync`` makes durable (Linux: the path of each
descriptor, read from ``/proc/self/fd``): shared by the chunk-store and fsutil tests that check
a new directory is fsync'd into its parent."""

from __future__ import annotations

import os

import pytest


def record_fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Trace ``os.fsync`` for the rest of the test: the list fills with each fsync'd path."""
    synced: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return synced
