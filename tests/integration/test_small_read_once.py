"""A batch's small files are read once (issue 19): sent from the bytes their scan hashed and
kept, so an edit after the scan cannot mix versions; a file whose bytes were not kept
(past the batch's HOLD_BYTES) is read again at the send and an edit fails the upload."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from dfs.chunking import ChunkerProfile
from dfs.client import Client, batch_scan
from dfs.client.local_files import walk
from dfs.errors import IntegrityError
from tests.integration.conftest import ADMIN_TOKEN, InProcessCluster

pytestmark = pytest.mark.integration

PROFILE = ChunkerProfile.fastcdc(64, 256, 1024)  # files of a few KiB are several chunks


def _edit_after_read(monkeypatch: pytest.MonkeyPatch, victim: Path) -> None:
    """Overwrite ``victim`` with other bytes of the same size right after its scan read it."""
    real = batch_scan.read_small

    def read_then_edit(
        path: Path, profile: ChunkerProfile, size: int = 0, keep: bool = False
    ) -> Any:
        got = real(path, profile, size, keep)
        if path == victim:
            path.write_bytes(bytes(b ^ 0xFF for b in path.read_bytes()))
        return got

    monkeypatch.setattr(batch_scan, "read_small", read_then_edit)


def _tree(root: Path) -> dict[str, bytes]:
    rng = random.Random(11)
    out = {f"f{i}": rng.randbytes(rng.choice([1, 100, 3000, 9000])) for i in range(8)}
    root.mkdir()
    for name, data in out.items():
        (root / name).write_bytes(data)
    return out


async def test_kept_bytes_are_sent_as_scanned(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    content = _tree(src)
    _edit_after_read(monkeypatch, src / "f3")
    async with Client(inproc.api.url, token=ADMIN_TOKEN, concurrency=4, file_cache=False) as c:
        results = await c.upload_many(list(walk([src])), profile=PROFILE)
        for r in results:
            out = tmp_path / f"out-{r.name}"
            await c.download(r.file_id, out)
            assert out.read_bytes() == content[r.name], r.name  # f3 as it was read
    assert (src / "f3").read_bytes() != content["f3"]


async def test_bytes_not_kept_are_read_again_and_checked(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch_scan, "HOLD_BYTES", 0)
    src = tmp_path / "src"
    _tree(src)
    _edit_after_read(monkeypatch, src / "f3")
    async with Client(inproc.api.url, token=ADMIN_TOKEN, concurrency=4, file_cache=False) as c:
        with pytest.raises(IntegrityError, match="changed while it was being uploaded"):
            await c.upload_many(list(walk([src])), profile=PROFILE)
