"""The files cache through the upload pipeline, against an in-process cluster: unchanged
files are not read again, and the cache is only ever a hint (an edit it cannot see through
is caught by ctime or inode; content the servers no longer hold is sent again; a cache naming
other bytes than the file's, or a corrupt one, changes nothing stored)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
from pathlib import Path

import pytest

from dfs.chunking import ChunkerProfile
from dfs.client import Client, file_cache
from dfs.client import upload as upload_mod
from dfs.client.file_upload import UploadResult
from dfs.client.local_files import walk
from tests.integration.conftest import ADMIN_TOKEN, InProcessCluster

pytestmark = pytest.mark.integration

PROFILE = ChunkerProfile.fixed(4096)


@pytest.fixture(autouse=True)
def trust_fresh_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """The files here are seconds old: let the cache trust them (the racy rule is unit-tested)."""
    monkeypatch.setattr(file_cache, "RACY_NS", -60 * 10**9)


def tree(root: Path, n: int = 12) -> dict[str, bytes]:
    rng = random.Random(7)
    out = {}
    for i in range(n):
        data = rng.randbytes(rng.choice([0, 100, 3000, 9000]))
        (root / f"d{i % 3}").mkdir(parents=True, exist_ok=True)
        (root / f"d{i % 3}" / f"f{i}").write_bytes(data)
        out[f"d{i % 3}/f{i}"] = data
    return out


async def upload(url: str, root: Path, prefix: str, **kw: bool) -> dict[str, UploadResult]:
    files = list(walk([root], prefix))
    async with Client(url, token=ADMIN_TOKEN, concurrency=4, **kw) as c:
        results = await c.upload_many(files, profile=PROFILE)
    return {r.name.removeprefix(prefix): r for r in results}


async def stored_bytes(url: str, result: UploadResult, tmp: Path) -> bytes:
    out = tmp / f"out-{result.file_id}"
    async with Client(url, token=ADMIN_TOKEN) as c:
        await c.download(result.file_id, out)
    return out.read_bytes()


async def test_unchanged_files_are_not_read_again(
    inproc: InProcessCluster, tmp_path: Path, reads: list[Path]
) -> None:
    src = tmp_path / "src"
    content = tree(src)
    url = inproc.api.url
    first = await upload(url, src, "v1/")
    assert len(reads) == len(content)
    reads.clear()
    second = await upload(url, src, "v2/")
    assert reads == []  # every file from the cache
    for name, data in content.items():
        assert second[name].sha256 == hashlib.sha256(data).hexdigest() == first[name].sha256
        assert second[name].bytes_sent == 0
    assert await stored_bytes(url, second["d1/f1"], tmp_path) == content["d1/f1"]
    reads.clear()
    await upload(url, src, "v3/", file_cache=False)  # --no-cache reads them all
    assert len(reads) == len(content)


async def test_an_edit_restoring_size_and_mtime_is_uploaded(
    inproc: InProcessCluster, tmp_path: Path, reads: list[Path]
) -> None:
    src = tmp_path / "src"
    content = tree(src)
    url = inproc.api.url
    await upload(url, src, "v1/")
    victim = src / "d2" / "f2"
    before = os.stat(victim)
    await asyncio.sleep(0.01)
    edited = bytes(b ^ 0xFF for b in content["d2/f2"])
    victim.write_bytes(edited)
    os.utime(victim, ns=(before.st_atime_ns, before.st_mtime_ns))
    reads.clear()
    second = await upload(url, src, "v2/")
    assert reads == [victim]  # its ctime changed: read again; no other file was
    assert second["d2/f2"].sha256 == hashlib.sha256(edited).hexdigest()
    assert await stored_bytes(url, second["d2/f2"], tmp_path) == edited


async def test_content_the_servers_no_longer_hold_is_sent_again(
    inproc: InProcessCluster, tmp_path: Path, reads: list[Path]
) -> None:
    src = tmp_path / "src"
    content = tree(src)
    url = inproc.api.url
    first = await upload(url, src, "v1/")
    async with Client(url, token=ADMIN_TOKEN) as c:
        for r in first.values():
            await c.delete(r.file_id)  # the tenant references none of those chunks now
    reads.clear()
    second = await upload(url, src, "v2/")
    # each planned from the cache, then read to be sent (an empty file has nothing to send)
    assert len(reads) == sum(1 for data in content.values() if data)
    for name, data in content.items():
        assert second[name].sha256 == hashlib.sha256(data).hexdigest()
        if data:
            assert second[name].bytes_sent == len(data)
            assert await stored_bytes(url, second[name], tmp_path) == data


async def test_a_cache_naming_other_bytes_stores_the_files_own(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    content = tree(src)
    url = inproc.api.url
    await upload(url, src, "v1/")
    (cache,) = (Path(os.environ["DFS_CACHE_DIR"]) / "files").glob("*.json")
    doc = json.loads(cache.read_text())
    lie = "ab" * 32  # a sha256 nobody stored
    for entry in doc["entries"].values():
        if entry[0]:
            entry[5], entry[6] = lie, [entry[0], lie]
    cache.write_text(json.dumps(doc))
    second = await upload(url, src, "v2/")
    for name, data in content.items():
        assert second[name].sha256 == hashlib.sha256(data).hexdigest()
    assert await stored_bytes(url, second["d0/f0"], tmp_path) == content["d0/f0"]


async def test_a_corrupt_cache_is_ignored(
    inproc: InProcessCluster, tmp_path: Path, reads: list[Path]
) -> None:
    src = tmp_path / "src"
    content = tree(src)
    url = inproc.api.url
    await upload(url, src, "v1/")
    (cache,) = (Path(os.environ["DFS_CACHE_DIR"]) / "files").glob("*.json")
    cache.write_bytes(cache.read_bytes()[:-40] + b"\x00garbage")
    reads.clear()
    second = await upload(url, src, "v2/")
    assert len(reads) == len(content)
    assert all(second[n].sha256 == hashlib.sha256(d).hexdigest() for n, d in content.items())
    reads.clear()
    await upload(url, src, "v3/")  # rewritten whole by the run that ignored it
    assert reads == []


async def test_big_unchanged_files_are_not_read_again(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files over SMALL_FILE (each alone, threaded scan) take the cache too: planned from the
    cached scan, read only when the servers lack some chunk."""
    monkeypatch.setattr(upload_mod, "SMALL_FILE", 5000)  # the 9000-byte files go alone
    big: list[Path] = []
    real = upload_mod.scan_file_threaded

    def counting(path: Path, profile: ChunkerProfile) -> object:
        big.append(path)
        return real(path, profile)

    monkeypatch.setattr(upload_mod, "scan_file_threaded", counting)
    src = tmp_path / "src"
    content = tree(src, 24)
    alone = {n for n, data in content.items() if len(data) > 5000}
    assert alone
    url = inproc.api.url
    first = await upload(url, src, "v1/")
    assert len(big) == len(alone)
    big.clear()
    second = await upload(url, src, "v2/")
    assert big == []
    for name in alone:
        assert second[name].sha256 == hashlib.sha256(content[name]).hexdigest()
        assert second[name].bytes_sent == 0
        assert second[name].file_id != first[name].file_id
    async with Client(url, token=ADMIN_TOKEN) as c:
        for r in [*first.values(), *second.values()]:
            await c.delete(r.file_id)  # the servers no longer hold the cached content
    third = await upload(url, src, "v3/")
    assert len(big) == len(alone)  # read again, and sent in full
    for name in alone:
        assert third[name].bytes_sent == len(content[name])
        assert await stored_bytes(url, third[name], tmp_path) == content[name]
