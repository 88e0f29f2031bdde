"""A paged upload resumes a proven page only when the file's page is still the one proven.

The journal of a paged upload is keyed by the file's stat (its sha256 is known only at the
end), and each proven page is recorded with a digest of its chunks. Where the stat does not
tell (a file system whose ctime does not move, simulated here), a page changed in place
does not match its digest, and the run starts a new upload instead of committing the
killed run's pages beside the new ones; a journal line without a digest (an older client's)
is not trusted either. Against an in-process cluster; the real-process case (ctime moves)
is ``tests/e2e/test_resume_changed_file.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path
from typing import Any

import pytest

from dfs import protocol
from dfs.chunking import ChunkerProfile
from dfs.client import Client
from dfs.client.file_upload import UploadResult
from dfs.transport.api_client import ApiClient
from tests.integration.conftest import ADMIN_TOKEN, InProcessCluster, running_cluster

pytestmark = pytest.mark.integration

TINY = ChunkerProfile.parse("fastcdc:64:256:1024")  # ~320-byte chunks: pages of ~300 KiB


def periodic(path: Path, size: int, seed: int) -> bytes:
    block = random.Random(seed).randbytes(64 * 1024)
    data = (block * (size // len(block) + 1))[:size]
    path.write_bytes(data)
    return data


def edit_page_0(src: Path, data: bytes) -> bytes:
    """32 bytes of ``src`` overwritten inside page 0, where FastCDC's cuts do not look (the
    first ``min_size`` bytes of a chunk): every chunk keeps its offset and size, so the
    pages do too, and only page 0's content differs. Size, inode and mtime as they were."""
    before = os.stat(src)
    cuts = [(c.offset, len(c.data)) for c in TINY.cut_buffer(data)]
    start = next(o for o, n in cuts if o >= 64 * protocol.KIB and n >= TINY.min_size) + 8
    edit = random.Random(5).randbytes(32)
    with open(src, "r+b") as f:
        f.seek(start)
        f.write(edit)
    os.utime(src, ns=(before.st_atime_ns, before.st_mtime_ns))
    now = data[:start] + edit + data[start + len(edit) :]
    assert [(c.offset, len(c.data)) for c in TINY.cut_buffer(now)] == cuts
    return now


def frozen_ctime(monkeypatch: pytest.MonkeyPatch, src: Path) -> None:
    """``os.stat`` and ``os.fstat`` of ``src`` answer its ctime as it is now from here on,
    as a file system without a ctime would (the rest of its stat as it is)."""
    was = os.stat(src)
    real_stat, real_fstat = os.stat, os.fstat

    def frozen(st: os.stat_result) -> os.stat_result:
        if (st.st_dev, st.st_ino) != (was.st_dev, was.st_ino):
            return st
        fields = {n: getattr(st, n) for n in dir(st) if n.startswith("st_")}
        fields.update(st_ctime=was.st_ctime, st_ctime_ns=was.st_ctime_ns)
        seq = [fields[n] for n in ("st_mode", "st_ino", "st_dev", "st_nlink", "st_uid")]
        seq += [fields[n] for n in ("st_gid", "st_size")]
        seq += [int(st.st_atime), int(st.st_mtime), int(was.st_ctime)]
        return os.stat_result(seq, fields)

    def stat(*args: Any, **kwargs: Any) -> os.stat_result:
        return frozen(real_stat(*args, **kwargs))

    def fstat(fd: int) -> os.stat_result:
        return frozen(real_fstat(fd))

    monkeypatch.setattr(os, "stat", stat)
    monkeypatch.setattr(os, "fstat", fstat)


def failing_third_proof(monkeypatch: pytest.MonkeyPatch) -> tuple[list[int], dict[str, bool]]:
    """The proof of page 2 fails (the network went away) while ``fail["on"]``; the pages
    whose proofs were asked for."""
    prove_page = ApiClient.prove_page
    proofs: list[int] = []
    fail = {"on": True}

    async def failing_third(
        self: ApiClient, file_id: str, page: int, receipts: Any, *rest: Any
    ) -> Any:
        proofs.append(page)
        if page == 2 and fail["on"]:
            raise ConnectionResetError("the network went away")
        return await prove_page(self, file_id, page, receipts, *rest)

    monkeypatch.setattr(ApiClient, "prove_page", failing_third)
    return proofs, fail


async def interrupted(cluster: InProcessCluster, src: Path) -> tuple[Path, str]:
    """A paged upload of ``src`` stopped at page 2's proof: its journal and pending file."""
    async with Client(cluster.api.url, token=ADMIN_TOKEN) as c:
        with pytest.raises(ConnectionResetError):
            await c.upload(src, profile=TINY)
    [journal] = (Path(os.environ["DFS_CACHE_DIR"]) / "uploads").glob("*.jsonl")
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    assert [e["p"] for e in lines if "p" in e] == [0, 1]
    return journal, next(str(e["file_id"]) for e in lines if "file_id" in e)


async def upload_and_download(cluster: InProcessCluster, src: Path, out: Path) -> UploadResult:
    async with Client(cluster.api.url, token=ADMIN_TOKEN) as c:
        up = await c.upload(src, profile=TINY)
        await c.download(up.file_id, out)
    return up


async def test_a_proven_page_that_changed_in_place_starts_a_new_upload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "big.bin"
    data = periodic(src, 4 * protocol.MIB + 512 * protocol.KIB, seed=9)
    proofs, fail = failing_third_proof(monkeypatch)
    async with running_cluster(tmp_path / "cluster", n=1, rf=1) as cluster:
        journal, pending = await interrupted(cluster, src)
        frozen_ctime(monkeypatch, src)
        now = edit_page_0(src, data)
        proofs.clear()
        fail["on"] = False
        up = await upload_and_download(cluster, src, tmp_path / "out.bin")
    assert up.sha256 == hashlib.sha256(now).hexdigest()
    assert (tmp_path / "out.bin").read_bytes() == now
    assert up.file_id != pending  # not the pending file with the old page 0
    assert proofs[0] == 0  # every page proven again, in the new upload
    assert not journal.exists()


async def test_a_journal_line_without_a_digest_is_not_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An older client's ``{"p": N}`` lines name no chunks: the upload starts over."""
    src = tmp_path / "big.bin"
    data = periodic(src, 4 * protocol.MIB + 512 * protocol.KIB, seed=13)
    proofs, fail = failing_third_proof(monkeypatch)
    async with running_cluster(tmp_path / "cluster", n=1, rf=1) as cluster:
        journal, pending = await interrupted(cluster, src)
        lines = [json.loads(line) for line in journal.read_text().splitlines()]
        old = [{"p": e["p"]} if "p" in e else e for e in lines]
        journal.write_text("".join(json.dumps(e) + "\n" for e in old))
        proofs.clear()
        fail["on"] = False
        up = await upload_and_download(cluster, src, tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == data
    assert up.file_id != pending
    assert proofs[0] == 0
    assert not journal.exists()
