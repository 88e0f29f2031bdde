"""A file changed while its upload scans it fails with CHANGED instead of storing a mix.

The chunks the servers already hold from an earlier version are not sent again, so the
nodes' hash check cannot see a change made during the scan: a region already scanned
rewritten (its old chunk is held) and a region not yet scanned rewritten (its new chunk is
sent as scanned) made a file of neither version. The client compares the file's stat from
before the scan with its stat after it (and before the commit). Each case below changes the
file at a fixed point of the scan (no timing): a big file alone, a paged one, and a small
file of a batch torn by its one read; in a directory upload that reports failures per file
(``Client.upload_many(failed=...)``) the changed file is reported and the rest stored.
"""

from __future__ import annotations

import io
import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dfs import chunking, protocol
from dfs.chunking import ChunkerProfile
from dfs.client import Client, batch_scan, paged_upload, upload
from dfs.client.local_files import LocalFile, walk
from dfs.errors import DfsError, IntegrityError
from tests.integration.conftest import ADMIN_TOKEN, InProcessCluster

pytestmark = pytest.mark.integration

MIB = protocol.MIB
FIXED = ChunkerProfile.fixed(MIB)
CHANGED = "changed while it was being uploaded"
AN_HOUR_AGO = 3600 * 10**9


def written_long_ago(path: Path, data: bytes) -> None:
    """``data`` in ``path``, its mtime an hour back: any later write moves it, whatever the
    file system's timestamp granularity."""
    path.write_bytes(data)
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - AN_HOUR_AGO))


def rewrite(path: Path, at: int, size: int, seed: int) -> None:
    """``size`` other bytes at ``at`` in ``path``, in place (its size as it was)."""
    with open(path, "r+b") as f:
        f.seek(at)
        f.write(random.Random(seed).randbytes(size))


def both_regions(path: Path) -> Callable[[], None]:
    """The change made mid-scan: the second MiB (scanned already) and the eleventh (not yet)."""

    def edit() -> None:
        rewrite(path, MIB, MIB, 1)
        rewrite(path, 10 * MIB, MIB, 2)

    return edit


class EditMidway(io.RawIOBase):
    """A file read unbuffered that runs ``edit`` once the reads pass ``at`` bytes."""

    def __init__(self, path: Path, at: int, edit: Callable[[], None]) -> None:
        self.raw = open(path, "rb", buffering=0)  # noqa: SIM115 (closed with the wrapper)
        self.at, self.edit, self.pos, self.done = at, edit, 0, False

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if not self.done and self.pos >= self.at:
            self.done = True
            self.edit()
        n = self.raw.readinto(b) or 0
        self.pos += n
        return n

    def close(self) -> None:
        self.raw.close()
        super().close()


def edit_during_big_scan(monkeypatch: pytest.MonkeyPatch, victim: Path) -> None:
    """The scan of a big file sent alone changes ``victim`` once it has read 4 MiB of it."""
    real = chunking.scan_file_threaded  # what upload calls (its own name is patched)

    def scan(path: Path, profile: ChunkerProfile) -> Any:
        if Path(path) != victim:
            return real(path, profile)
        with EditMidway(victim, 4 * MIB, both_regions(victim)) as stream:
            return chunking.scan_stream_threaded(stream, profile)  # type: ignore[arg-type]

    monkeypatch.setattr(upload, "scan_file_threaded", scan)


def edit_during_paged_scan(monkeypatch: pytest.MonkeyPatch, victim: Path) -> None:
    """A paged upload's scan changes ``victim`` once it has cut its chunk at 2 MiB (the
    scanner's 4 MiB read buffer then holds nothing past 4 MiB)."""
    real = chunking.hashed_chunks  # what paged_upload calls (its own name is patched)

    def chunks(stream: Any, profile: ChunkerProfile, whole: Any) -> Iterator[chunking.Chunk]:
        edit = both_regions(victim)
        for c in real(stream, profile, whole):
            yield c
            if c.offset == 2 * MIB:
                edit()

    monkeypatch.setattr(paged_upload, "hashed_chunks", chunks)


def tear_read(monkeypatch: pytest.MonkeyPatch, victim: Path) -> None:
    """A batch's one read of ``victim`` is torn: its first half read, then the whole file
    rewritten (same size), then the rest read."""
    real = batch_scan._read_whole
    ino = os.stat(victim).st_ino

    def read(fd: int, size: int) -> bytes | None:
        if os.fstat(fd).st_ino != ino:
            return real(fd, size)
        first = os.read(fd, size // 2)
        rewrite(victim, 0, size, 3)
        rest = real(fd, size - len(first))
        assert rest is not None
        return first + rest

    monkeypatch.setattr(batch_scan, "_read_whole", read)


def journals() -> list[Path]:
    return list((Path(os.environ["DFS_CACHE_DIR"]) / "uploads").glob("*.jsonl"))


async def upload_twice(inproc: InProcessCluster, src: Path, edit: Callable[[], None]) -> None:
    """``src`` uploaded, then ``edit`` set up, then uploaded again: CHANGED."""
    async with Client(inproc.api.url, token=ADMIN_TOKEN, concurrency=2) as c:
        await c.upload(src, profile=FIXED)  # the servers hold every chunk of this version
        edit()
        with pytest.raises(IntegrityError, match=CHANGED):
            await c.upload(src, profile=FIXED)
    assert journals() == []  # nothing can resume it


async def test_a_big_file_changed_during_its_scan_fails(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "big.bin"
    written_long_ago(src, random.Random(7).randbytes(12 * MIB))
    await upload_twice(inproc, src, lambda: edit_during_big_scan(monkeypatch, src))


async def test_a_paged_file_changed_during_its_scan_fails(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(paged_upload.StreamingUploadPipeline, "paged_bytes", MIB)
    src = tmp_path / "big.bin"
    written_long_ago(src, random.Random(8).randbytes(12 * MIB))
    await upload_twice(inproc, src, lambda: edit_during_paged_scan(monkeypatch, src))


def small_tree(root: Path) -> dict[str, bytes]:
    rng = random.Random(11)
    out = {f"f{i}": rng.randbytes(rng.choice([100, 3000, 9000])) for i in range(8)}
    root.mkdir()
    for name, data in out.items():
        written_long_ago(root / name, data)
    return out


async def test_a_small_file_torn_by_its_read_fails(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    small_tree(src)
    tear_read(monkeypatch, src / "f3")
    async with Client(inproc.api.url, token=ADMIN_TOKEN, file_cache=False) as c:
        with pytest.raises(IntegrityError, match=CHANGED):
            await c.upload_many(list(walk([src])), profile=ChunkerProfile.fastcdc(64, 256, 1024))


async def test_a_directory_upload_reports_changed_files_and_stores_the_rest(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    content = small_tree(src)
    written_long_ago(src / "big.bin", random.Random(9).randbytes(12 * MIB))
    async with Client(inproc.api.url, token=ADMIN_TOKEN, file_cache=False) as c:
        await c.upload(src / "big.bin", profile=FIXED)  # its chunks held: not sent again
        tear_read(monkeypatch, src / "f3")
        edit_during_big_scan(monkeypatch, src / "big.bin")
        failed: list[tuple[str, DfsError]] = []

        def report(f: LocalFile, exc: DfsError) -> None:
            failed.append((f.name, exc))

        results = await c.upload_many(list(walk([src])), profile=FIXED, failed=report)
        assert sorted(name for name, _ in failed) == ["big.bin", "f3"]
        assert all(isinstance(exc, IntegrityError) for _, exc in failed)
        assert all(CHANGED in exc.message for _, exc in failed)
        assert sorted(r.name for r in results) == sorted(set(content) - {"f3"})
        for r in results:
            out = tmp_path / f"out-{r.name}"
            await c.download(r.file_id, out)
            assert out.read_bytes() == content[r.name], r.name
    assert journals() == []


async def test_a_file_changed_after_its_read_is_reported_when_its_send_finds_it(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch's file whose bytes were not kept (HOLD_BYTES 0) is read again at its send;
    changed after its scan, the node refuses those bytes: the file is reported and left
    out of the batch, whose other files are stored (their pack sent chunk by chunk)."""
    monkeypatch.setattr(batch_scan, "HOLD_BYTES", 0)
    src = tmp_path / "src"
    content = small_tree(src)
    victim = src / "f3"
    real = batch_scan.read_small

    def read_then_edit(
        path: Path, profile: ChunkerProfile, size: int = 0, keep: bool = False
    ) -> Any:
        got = real(path, profile, size, keep)
        if path == victim:
            rewrite(victim, 0, len(content["f3"]), 4)
        return got

    monkeypatch.setattr(batch_scan, "read_small", read_then_edit)
    failed: list[str] = []
    async with Client(inproc.api.url, token=ADMIN_TOKEN, file_cache=False) as c:
        results = await c.upload_many(
            list(walk([src])),
            profile=ChunkerProfile.fastcdc(64, 256, 1024),
            failed=lambda f, exc: failed.append(f"{f.name}: {exc.message}"),
        )
        assert failed == [f"f3: the file {CHANGED}; upload it again"]
        assert sorted(r.name for r in results) == sorted(set(content) - {"f3"})
        for r in results:
            out = tmp_path / f"out-{r.name}"
            await c.download(r.file_id, out)
            assert out.read_bytes() == content[r.name], r.name


async def test_a_bucket_upload_skips_a_file_torn_by_its_read_and_links_the_rest(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``upload DIR bucket/prefix/`` (a sync): the torn file is reported skipped (the CLI
    exits 23) and gets no object; the others are linked (before, the run failed)."""
    src = tmp_path / "src"
    content = small_tree(src)
    tear_read(monkeypatch, src / "f3")
    async with Client(inproc.api.url, token=ADMIN_TOKEN, file_cache=False) as c:
        await c.make_bucket("torn")
        report = await c.upload_to([src], "torn", "up/")
        assert [(Path(s.what).name, CHANGED in s.reason) for s in report.skipped] == [("f3", True)]
        keys = [e["key"] async for e in c.list_all("torn", "up/")]
        assert sorted(keys) == sorted(f"up/{n}" for n in content if n != "f3")
        out = tmp_path / "out"
        await c.download_from("torn", "up/", out)
        assert {p.name: p.read_bytes() for p in out.iterdir()} == {
            n: d for n, d in content.items() if n != "f3"
        }
