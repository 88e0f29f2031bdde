"""The threaded scan gives exactly the one-thread scan's answer (chunk list, size, digest)."""

from __future__ import annotations

import io
import random

import pytest

from dfs.chunking import ChunkerProfile, scan_stream, scan_stream_threaded


@pytest.mark.parametrize("profile", ["fastcdc:4096:16384:65536", "fixed:65536"])
@pytest.mark.parametrize("size", [0, 1, 65536, 65537, 3_000_000])
def test_threaded_scan_matches_one_thread(profile: str, size: int) -> None:
    data = random.Random(size).randbytes(size)
    p = ChunkerProfile.parse(profile)
    assert scan_stream_threaded(io.BytesIO(data), p) == scan_stream(io.BytesIO(data), p)
