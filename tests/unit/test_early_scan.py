"""The scan a big upload's command line begins before it loads the client library
(``dfs.client.early_scan``): it cuts exactly what the upload's own scan cuts, is read only
for the version of the file the upload begins with, fails if the file changes while it is
read, and ends when stopped, read or not."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import pytest

from dfs.chunking import ChunkerProfile, ChunkRef, hashed_chunks
from dfs.client import early_scan
from dfs.client.early_scan import EarlyScan, ScanStopped
from dfs.errors import FileChanged

SMALL = ChunkerProfile.parse("fastcdc:64:2048:8192")  # paged from ~3.2 MB: its chunks may be many
DEFAULT = ChunkerProfile.default()
DEADLINE = 30.0


def _file(path: Path, size: int, seed: int = 1) -> bytes:
    data = random.Random(seed).randbytes(size)
    path.write_bytes(data)
    return data


def _own_scan(path: Path, profile: ChunkerProfile) -> tuple[list[ChunkRef], str]:
    whole = hashlib.sha256()
    with path.open("rb") as f:
        refs = [
            ChunkRef(c.offset, len(c.data), c.chunk_id) for c in hashed_chunks(f, profile, whole)
        ]
    return refs, whole.hexdigest()


def _touched(path: Path) -> os.stat_result:
    """A new version of ``path``: one byte rewritten in place (mtime and ctime move)."""
    before = path.stat()
    with path.open("r+b") as f:
        f.write(b"\xff")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    return path.stat()


def test_it_cuts_and_hashes_what_the_uploads_own_scan_does(tmp_path: Path) -> None:
    src = tmp_path / "f.bin"
    data = _file(src, 4 << 20)
    scan = EarlyScan.start(src, SMALL)
    assert scan is not None
    try:
        assert scan.claim(src.stat(), SMALL)
        refs = list(scan.refs())
    finally:
        scan.stop()
    own, whole = _own_scan(src, SMALL)
    assert refs == own
    assert len(refs) > 1000
    assert scan.whole.hexdigest() == whole == hashlib.sha256(data).hexdigest()


def test_only_files_that_go_page_by_page_are_scanned_early(tmp_path: Path) -> None:
    small = tmp_path / "small.bin"
    _file(small, 4 << 20)
    assert EarlyScan.start(small, DEFAULT) is None  # one /init-upload: scanned there
    assert EarlyScan.start(tmp_path, DEFAULT) is None  # a folder
    assert EarlyScan.start(tmp_path / "missing", DEFAULT) is None  # the upload reports it
    scan = EarlyScan.start(small, SMALL)  # it may hold too many chunks for one: paged
    assert scan is not None
    scan.stop()


@pytest.mark.parametrize("other", ["version", "profile"])
def test_another_version_or_chunker_is_not_claimed_and_the_scan_ends(
    tmp_path: Path, other: str
) -> None:
    src = tmp_path / "f.bin"
    _file(src, 4 << 20)
    scan = EarlyScan.start(src, SMALL)
    assert scan is not None
    if other == "version":  # changed after the scan opened it, before the upload began
        assert scan._opening.wait(DEADLINE)
        assert not scan.claim(_touched(src), SMALL)
    else:
        assert not scan.claim(src.stat(), ChunkerProfile.parse("fastcdc:64:4096:8192"))
    assert not scan._thread.is_alive()  # stopped, and waited for
    assert not scan.claim(src.stat(), SMALL)  # claimed once, whatever the answer


def test_a_file_changed_while_it_is_scanned_fails_the_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(early_scan, "AHEAD_BYTES", 1)  # the scan waits for its reader
    src = tmp_path / "f.bin"
    _file(src, 4 << 20)
    scan = EarlyScan.start(src, SMALL)
    assert scan is not None
    try:
        assert scan.claim(src.stat(), SMALL)
        refs = scan.refs()
        next(refs)  # the scan is under way, held by the one-ref queue
        _touched(src)
        with pytest.raises(FileChanged):
            list(refs)
    finally:
        scan.stop()


def test_stop_ends_a_scan_nobody_reads_and_its_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(early_scan, "AHEAD_BYTES", 1)
    src = tmp_path / "f.bin"
    _file(src, 4 << 20)
    scan = EarlyScan.start(src, SMALL)
    assert scan is not None
    assert scan.claim(src.stat(), SMALL)
    refs = scan.refs()
    first = next(refs)
    assert first.offset == 0
    scan.stop()
    assert not scan._thread.is_alive()
    with pytest.raises(ScanStopped):
        list(refs)
    scan.stop()  # again: nothing to do


def test_a_file_that_cannot_be_read_fails_its_reader(tmp_path: Path) -> None:
    src = tmp_path / "f.bin"
    _file(src, 4 << 20)
    scan = EarlyScan(tmp_path / "gone.bin", SMALL)  # not there: open fails on the thread
    assert not scan.claim(src.stat(), SMALL)  # never opened: nothing to claim
    assert not scan._thread.is_alive()


def test_a_fifo_put_at_the_path_is_not_waited_for(tmp_path: Path) -> None:
    """The path swapped for a FIFO after its stat: the scan's open does not wait for a
    writer (as the upload's does not), so the scan fails at once and its thread ends."""
    src = tmp_path / "f.bin"
    _file(src, 4 << 20)
    version = src.stat()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    scan = EarlyScan(fifo, SMALL)
    assert not scan.claim(version, SMALL)
    assert not scan._thread.is_alive()
