"""A big file's upload reads the scan its command line began before the library loaded
(``dfs.client.early_scan``), against an in-process cluster: the file stored is the file's,
the upload does not scan it again, and a file changed between the two scans is scanned
again and stored as it is now."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path
from typing import Any

import pytest

from dfs.chunking import ChunkerProfile
from dfs.client import Client, paged_upload
from dfs.client.early_scan import EarlyScan
from dfs.client.local_files import LocalFile
from dfs.client.paged_upload import StreamingUploadPipeline
from tests.integration.conftest import ADMIN_TOKEN, InProcessCluster

pytestmark = pytest.mark.integration

PROFILE = ChunkerProfile.parse("fastcdc:16384:65536:262144")
SIZE = 10 << 20  # over SMALL_FILE: uploaded alone, not in a batch


@pytest.fixture
def paged_from_1_mib(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files from 1 MiB go page by page (the default, 64 MiB, would make the test slow);
    those up to 8 MiB still go in batches (``SMALL_FILE``)."""
    monkeypatch.setattr(StreamingUploadPipeline, "paged_bytes", 1 << 20)


def _scans_of_its_own(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The files the upload's own page scanner cuts (it cuts none it read early)."""
    own: list[Path] = []
    real = paged_upload.hashed_chunks

    def counted(stream: Any, *args: Any) -> Any:
        own.append(Path(stream.name))
        return real(stream, *args)

    monkeypatch.setattr(paged_upload, "hashed_chunks", counted)
    return own


async def _upload_and_read_back(
    inproc: InProcessCluster, src: Path, scan: EarlyScan, out: Path
) -> str:
    listed = [LocalFile(src, "big.bin", SIZE)]
    async with Client(inproc.api.url, token=ADMIN_TOKEN) as c:
        [up] = await c.upload_many(listed, profile=PROFILE, early=scan)
        await c.download(up.file_id, out)
    return up.sha256


@pytest.mark.usefixtures("paged_from_1_mib")
async def test_the_upload_reads_the_early_scan_and_stores_the_file(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "big.bin"
    data = random.Random(3).randbytes(SIZE)
    src.write_bytes(data)
    own = _scans_of_its_own(monkeypatch)
    scan = EarlyScan(src, PROFILE)
    try:
        sha256 = await _upload_and_read_back(inproc, src, scan, tmp_path / "out.bin")
    finally:
        scan.stop()
    assert own == []  # not scanned again: the early scan was read to the file's end
    assert scan.opened is not None
    assert scan.ended is not None
    assert sha256 == hashlib.sha256(data).hexdigest()
    assert (tmp_path / "out.bin").read_bytes() == data


@pytest.mark.usefixtures("paged_from_1_mib")
async def test_a_file_changed_after_the_early_scan_opened_it_is_scanned_again(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(random.Random(4).randbytes(SIZE))
    own = _scans_of_its_own(monkeypatch)
    scan = EarlyScan(src, PROFILE)
    assert scan._opening.wait(30)  # the scan has the version it opened
    data = random.Random(5).randbytes(SIZE)  # saved again before the upload begins
    with src.open("r+b") as f:
        f.write(data)
    st = src.stat()
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    try:
        sha256 = await _upload_and_read_back(inproc, src, scan, tmp_path / "out.bin")
    finally:
        scan.stop()
    assert own == [src]  # the version the upload began with, scanned by the upload itself
    assert sha256 == hashlib.sha256(data).hexdigest()
    assert (tmp_path / "out.bin").read_bytes() == data
