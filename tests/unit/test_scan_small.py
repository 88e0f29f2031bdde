"""A batch's cheaper scan of small files gives exactly ``scan_file``'s answer, from one read
whose bytes it keeps for the send when asked to."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dfs import protocol
from dfs.chunking import ChunkerProfile, scan_file
from dfs.client import batch_scan
from dfs.client.batch_scan import read_small, scan_batch, scan_small
from dfs.client.local_files import LocalFile

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


@pytest.mark.parametrize("profile", PROFILES, ids=str)
def test_read_small_keeps_the_bytes_it_scanned(profile: ChunkerProfile, tmp_path: Path) -> None:
    """One read: the scan is ``scan_file``'s and the kept bytes are the file's, whatever
    size the listing gave (a file that grew or shrank since is read to its end); one over
    READ_WHOLE is streamed, not kept."""
    for size in (0, 1, profile.min_size, profile.min_size + 1, 3 * profile.max_size + 5):
        path = tmp_path / f"f{size}"
        data = os.urandom(size)
        path.write_bytes(data)
        kept = data if 0 < size <= batch_scan.READ_WHOLE else None
        for hint in {0, size, max(size - 1, 0), size + 10}:
            got = read_small(path, profile, hint, keep=True)
            assert got.scan == scan_file(path, profile), (size, hint)
            assert got.data == kept, (size, hint)
            assert got.take() == kept
            assert got.data is None
        assert read_small(path, profile, size).data is None  # not asked to keep them


def test_a_file_grown_past_read_whole_is_streamed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch_scan, "READ_WHOLE", 1000)
    monkeypatch.setattr(batch_scan, "_READ_MORE", 64)
    profile = ChunkerProfile.fastcdc(64, 256, 1024)
    path = tmp_path / "grown"
    path.write_bytes(os.urandom(5000))
    for hint in (10, 1000, 5000):
        got = read_small(path, profile, hint, keep=True)
        assert got.scan == scan_file(path, profile), hint
        assert got.data is None, hint


def test_scan_batch_keeps_bytes_up_to_hold_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files' bytes are kept in the batch's order until HOLD_BYTES would be passed; the
    scans of the others are the same, their bytes read again at the send."""
    monkeypatch.setattr(batch_scan, "HOLD_BYTES", 250)
    files = []
    for i, size in enumerate([100, 100, 100, 10, 0]):
        path = tmp_path / f"f{i}"
        path.write_bytes(os.urandom(size))
        files.append(LocalFile(path, f"f{i}", size, st=os.stat(path)))
    scans = scan_batch(files, ChunkerProfile.default(), None)
    assert [s.data is not None for s in scans] == [True, True, False, True, False]
    for f, s in zip(files, scans, strict=True):
        assert s.scan == scan_file(f.path, ChunkerProfile.default())
        assert not s.cached


def test_batches_start_small_and_grow_to_batch_files(tmp_path: Path) -> None:
    """The first batch is FIRST_BATCH_FILES files (nothing is planned before it is scanned),
    each next one twice as many up to BATCH_FILES; every file once, in order."""
    files = [(n, LocalFile(tmp_path / str(n), str(n), 10)) for n in range(2000)]
    got = list(batch_scan.batches(files))
    first = batch_scan.FIRST_BATCH_FILES
    assert [len(b) for b in got[:3]] == [first, 2 * first, 4 * first]
    assert max(len(b) for b in got) == batch_scan.BATCH_FILES
    assert [n for b in got for n, _f in b] == list(range(2000))


def test_batches_are_bounded_by_batch_bytes(tmp_path: Path) -> None:
    size = batch_scan.BATCH_BYTES // 4
    files = [(n, LocalFile(tmp_path / str(n), str(n), size)) for n in range(10)]
    assert [len(b) for b in batch_scan.batches(files)] == [4, 4, 2]


def test_batches_of_files_the_cache_knows_hold_up_to_cached_batch_files(tmp_path: Path) -> None:
    """A file the cache knows unchanged counts as half a file and none of its bytes: a run
    of them makes batches of CACHED_BATCH_FILES (within the API's limit), files it does not
    know still BATCH_FILES and BATCH_BYTES; every file once, in order."""
    big = batch_scan.BATCH_BYTES // 4
    known = [(n, LocalFile(tmp_path / f"k{n}", f"k{n}", big)) for n in range(3000)]
    unknown = [(n, LocalFile(tmp_path / f"u{n}", f"u{n}", 10)) for n in range(3000, 4200)]
    files = known + unknown
    got = list(
        batch_scan.batches(files, first=batch_scan.BATCH_FILES, known=lambda f: f.name[0] == "k")
    )
    assert batch_scan.CACHED_BATCH_FILES <= protocol.MAX_BATCH_FILES
    assert [len(b) for b in got] == [1000, 1000, 1000, 500, 500, 200]
    assert [n for b in got for n, _f in b] == list(range(4200))
    # 300 known files weigh as 150 unknown ones: room for 350 unknown ones beside them
    mixed = known[:300] + unknown[:700]
    sizes = [len(b) for b in batch_scan.batches(mixed, first=500, known=lambda f: f.name[0] == "k")]
    assert sizes == [650, 350]
