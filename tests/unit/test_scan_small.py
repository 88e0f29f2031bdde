"""A batch's cheaper scan of small files gives exactly ``scan_file``'s answer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dfs.chunking import ChunkerProfile, scan_file
from dfs.client.batch_scan import scan_small

PROFILES = [
    ChunkerProfile.default(),
    ChunkerProfile.fastcdc(64, 256, 1024),
    ChunkerProfile.fixed(4096),
]


@pytest.mark.parametrize("profile", PROFILES, ids=str)
def test_scan_small_matches_scan_file(profile: ChunkerProfile, tmp_path: Path) -> None:
    lo = profile.min_size
    for size in sorted({0, 1, 100, lo - 1, lo, lo + 1, 2 * lo + 7, 3 * profile.max_size + 5}):
        path = tmp_path / f"f{size}"
        path.write_bytes(os.urandom(size))
        assert scan_small(path, profile) == scan_file(path, profile), size
