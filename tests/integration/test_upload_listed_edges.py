"""Uploads of files that change, vanish or carry odd names between their listing and their
send (``dfs.client.namespace_sync``, ``dfs.client.upload``, ``dfs.client.local_files``).

- One file to ``bucket/key``: the mtime linked is the file's when it was listed, before its
  read; a save after the read (same size) must not make the next sync call the old bytes
  unchanged.
- Two local files for one key: the last one given is the key's, on every run (not flipping).
- A file removed between its listing and its read (a temp file in a live tree) is reported
  (``failed``: the bucket upload's ``Skipped``) and the rest stored, wherever the read is:
  a batch's scan, a big file's open, a paged file's open, the send of bytes not kept.
- A file whose key the API would refuse (not UTF-8, over 1,024 bytes) is skipped while
  listing, not sent: the API refused the whole link request carrying it.
- ``ChunkSender`` forgets each upload's replanner (with its receipts) once it is finalized.

Each change is made at a fixed point (a wrapped step of the client), no timing.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from dfs import protocol
from dfs.chunking import ChunkerProfile
from dfs.client import Client, batch_scan, paged_upload, sync_links
from dfs.client import upload as upload_mod
from dfs.client.file_upload import UploadResult
from dfs.client.local_files import LocalFile, walk
from dfs.client.paged_upload import StreamingUploadPipeline
from dfs.errors import DfsError
from tests.integration.conftest import ADMIN_TOKEN, InProcessCluster

pytestmark = pytest.mark.integration

MIB = protocol.MIB
GONE = "No such file or directory when it was read, after it was listed"


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def _object(url: str, bucket: str, key: str) -> bytes:
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"{url}/objects/{bucket}/{key}", headers=_auth()) as r,
    ):
        assert r.status == 200, await r.text()
        return await r.read()


async def test_a_file_saved_after_its_read_is_not_called_unchanged(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is saved again (same size, new mtime) once it was read and sent, before its
    link: the key holds the bytes read, with the mtime they had, so the next run uploads
    the new bytes (it called them unchanged: the link had taken the new mtime)."""
    f = tmp_path / "db.bin"
    f.write_bytes(b"A" * 1000)
    os.utime(f, (1_700_000_000, 1_700_000_000))
    real_add = sync_links.UploadLinker.add

    def save_then_add(self: sync_links.UploadLinker, n: int, result: UploadResult) -> None:
        f.write_bytes(b"B" * 1000)
        real_add(self, n, result)

    async with Client(inproc.api.url, token=ADMIN_TOKEN, file_cache=False) as c:
        await c.make_bucket("saved")
        monkeypatch.setattr(sync_links.UploadLinker, "add", save_then_add)
        await c.upload_to([f], "saved", "k/db.bin")
        monkeypatch.setattr(sync_links.UploadLinker, "add", real_add)
        assert await _object(inproc.api.url, "saved", "k/db.bin") == b"A" * 1000
        again = await c.upload_to([f], "saved", "k/db.bin")
        assert again.unchanged == []
        assert [d["key"] for d in again.done] == ["k/db.bin"]
        assert await _object(inproc.api.url, "saved", "k/db.bin") == b"B" * 1000
        third = await c.upload_to([f], "saved", "k/db.bin")
        assert third.unchanged == ["k/db.bin"]
        assert third.done == []


async def test_two_files_for_one_key_keep_the_last_on_every_run(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    d1, d2 = tmp_path / "d1", tmp_path / "d2"
    d1.mkdir()
    d2.mkdir()
    (d1 / "x").write_bytes(b"first dir's x")
    (d2 / "x").write_bytes(b"second dir's x, longer")
    async with Client(inproc.api.url, token=ADMIN_TOKEN, file_cache=False) as c:
        await c.make_bucket("twice")
        reports = []
        for _run in range(3):
            reports.append(await c.upload_to([d1, d2], "twice", ""))
            assert await _object(inproc.api.url, "twice", "x") == b"second dir's x, longer"
        assert [d["key"] for d in reports[0].done] == ["x"]
        for again in reports[1:]:  # the same file each time: nothing sent again
            assert again.done == []
            assert again.unchanged == ["x"]


def _tree(root: Path) -> dict[str, bytes]:
    rng = random.Random(23)
    out = {f"f{i}.bin": rng.randbytes(rng.choice([100, 3000, 9000])) for i in range(8)}
    root.mkdir()
    for name, data in out.items():
        (root / name).write_bytes(data)
    return out


def _remove_after_read(monkeypatch: pytest.MonkeyPatch, victim: Path) -> None:
    """``victim`` removed right after its scan read it (its bytes not kept: read again at
    the send, which finds it gone)."""
    monkeypatch.setattr(batch_scan, "HOLD_BYTES", 0)
    real = batch_scan.read_small

    def read_then_remove(
        path: Path, profile: ChunkerProfile, size: int = 0, keep: bool = False
    ) -> Any:
        got = real(path, profile, size, keep)
        if path == victim:
            path.unlink()
        return got

    monkeypatch.setattr(batch_scan, "read_small", read_then_remove)


def _remove_before_open(monkeypatch: pytest.MonkeyPatch, victim: Path, paged: bool) -> None:
    """``victim``, a file sent alone (``paged``: page by page), removed once its size was
    looked at, just before the upload opens it."""
    monkeypatch.setattr(upload_mod, "SMALL_FILE", 1000)
    if paged:
        monkeypatch.setattr(StreamingUploadPipeline, "paged_bytes", 1000)
    real = paged_upload.wants_pages

    def look_then_remove(size: int, profile: ChunkerProfile, paged_bytes: int = 0) -> bool:
        answer = real(size, profile, paged_bytes)
        if victim.exists() and size == victim.stat().st_size:
            victim.unlink()
        return answer

    monkeypatch.setattr(paged_upload, "wants_pages", look_then_remove)


@pytest.mark.parametrize("where", ["listed", "sent", "alone", "paged", "alone-listed"])
async def test_a_file_gone_since_its_listing_is_reported_and_the_rest_stored(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """Removed after the listing: before its batch's scan ("listed"), between the scan and
    the send of bytes not kept ("sent"), before the open of a file sent alone ("alone"),
    page by page ("paged"), or before a file alone is looked at ("alone-listed")."""
    src = tmp_path / "src"
    content = _tree(src)
    victim = src / "f3.bin"
    content["f3.bin"] = random.Random(5).randbytes(3001)  # its size alone in the tree
    victim.write_bytes(content["f3.bin"])
    files = list(walk([src]))
    if where in ("listed", "alone-listed"):
        victim.unlink()
        if where == "alone-listed":
            monkeypatch.setattr(upload_mod, "SMALL_FILE", 1000)
    elif where == "sent":
        _remove_after_read(monkeypatch, victim)
    else:
        _remove_before_open(monkeypatch, victim, paged=where == "paged")
    failed: list[str] = []

    def report(f: LocalFile, exc: DfsError) -> None:
        failed.append(f"{f.name}: {exc.message}")

    async with Client(inproc.api.url, token=ADMIN_TOKEN, file_cache=False) as c:
        profile = ChunkerProfile.fastcdc(64, 256, 1024)
        results = await c.upload_many(files, profile=profile, failed=report)
        assert failed == [f"f3.bin: {GONE}"]
        assert sorted(r.name for r in results) == sorted(set(content) - {"f3.bin"})
        for r in results:
            out = tmp_path / f"out-{r.name}"
            await c.download(r.file_id, out)
            assert out.read_bytes() == content[r.name], r.name


async def test_a_bucket_upload_skips_a_file_gone_since_its_listing(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    content = _tree(src)
    victim = src / "f5.bin"
    real = batch_scan.read_small

    def remove_then_read(path: Path, *args: Any) -> Any:
        if path == victim:
            path.unlink()  # the tree's owner removed it after the listing
        return real(path, *args)

    monkeypatch.setattr(batch_scan, "read_small", remove_then_read)
    async with Client(inproc.api.url, token=ADMIN_TOKEN, file_cache=False) as c:
        await c.make_bucket("vanish")
        report = await c.upload_to([src], "vanish", "up/")
        assert [(s.what, s.reason) for s in report.skipped] == [(str(victim), GONE)]
        keys = sorted([e["key"] async for e in c.list_all("vanish", "up/")])
        assert keys == sorted(f"up/{n}" for n in content if n != "f5.bin")


def _odd_names(src: Path) -> tuple[Path, Path]:
    """``src`` with ``ok.txt``, a file named in Latin-1 (not UTF-8) and one of 40
    characters; the last two."""
    src.mkdir()
    (src / "ok.txt").write_bytes(b"fine")
    bad = Path(os.fsdecode(bytes(src) + b"/caf\xe9.txt"))
    bad.write_bytes(b"latin-1 name")
    long_name = src / ("n" * 40)
    long_name.write_bytes(b"its key is too long")
    return bad, long_name


async def test_keys_the_api_would_refuse_are_skipped_and_the_rest_linked(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    """A name of bytes that are not UTF-8, and a key over 1,024 bytes (a long prefix): each
    one ``Skipped`` line, the others linked (before: the link request carrying them was
    refused whole, or the upload failed before a byte was sent)."""
    src = tmp_path / "src"
    bad, long_name = _odd_names(src)
    prefix = "p" * 1000 + "/"  # "ok.txt" fits under it, the 40-character name does not
    async with Client(inproc.api.url, token=ADMIN_TOKEN, file_cache=False) as c:
        await c.make_bucket("names")
        report = await c.upload_to([src], "names", prefix)
        reasons = {s.what: s.reason for s in report.skipped}
        assert reasons == {
            str(bad): "name is not valid UTF-8 (the API stores names as UTF-8 text)",
            str(long_name): "key would be longer than 1024 bytes of UTF-8 (the API's limit)",
        }
        assert [d["key"] for d in report.done] == [prefix + "ok.txt"]
        single = await c.upload_to([src / "ok.txt"], "names", "k" * 1025)
        assert [s.what for s in single.skipped] == [str(src / "ok.txt")]
        assert single.done == []


async def test_replanners_are_forgotten_once_their_uploads_are_finalized(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files sent alone (each chunk through a ``Replanner``), then a paged one: once each
    is complete, the sender holds no replanner of it (it kept one per file for the run)."""
    monkeypatch.setattr(upload_mod, "SMALL_FILE", 1000)
    monkeypatch.setattr(StreamingUploadPipeline, "paged_bytes", MIB)
    src = tmp_path / "src"
    src.mkdir()
    rng = random.Random(29)
    for i in range(8):
        (src / f"f{i}.bin").write_bytes(rng.randbytes(5000 + 1000 * i))
    (src / "z-paged.bin").write_bytes(rng.randbytes(3 * MIB))
    async with Client(inproc.api.url, token=ADMIN_TOKEN, file_cache=False) as c:
        pipeline = StreamingUploadPipeline(c._connection(), ChunkerProfile.fixed(4096), None)
        held: list[int] = []
        asked: set[str] = set()  # the uploads a replanner was made or taken for
        real = pipeline.sender.replanner

        def counted(upload: Any) -> Any:
            asked.add(upload.file_id)
            return real(upload)

        monkeypatch.setattr(pipeline.sender, "replanner", counted)
        results = await pipeline.upload_files(
            list(walk([src])), done=lambda n, r: held.append(len(pipeline.sender._replanners))
        )
    assert len(results) == 9
    assert len(asked) >= 8  # each file alone sent its chunks through one
    assert held == [0] * 9  # none kept past its file
    assert pipeline.sender._replanners == {}
