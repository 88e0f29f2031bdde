"""A download's temp file (``PartFile``: a big file, a grantee's streamed object) is made
0600: the bytes of a private file are never open to other users of the machine while they
are written beside the target, nor while an interrupted download keeps them for a resume.
The file ends with its stored mode less the umask (0644 less the umask without one), set
before it takes its name."""

from __future__ import annotations

import asyncio
import os
import random
import stat
from pathlib import Path
from typing import Any

import pytest

from dfs.client import Client, download, part_file
from dfs.client.file_writer import UMASK
from tests.e2e.test_deferred_verify import _route_through, altering_proxy
from tests.integration.conftest import ADMIN_TOKEN, InProcessCluster
from tests.integration.test_namespace_api import tokens

pytestmark = pytest.mark.integration


def _modes_while_written(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """The mode of each temp file at its first write, by its target's name."""
    seen: dict[str, int] = {}
    real = part_file.PartFile.write

    async def write(self: part_file.PartFile, *args: Any) -> None:
        seen.setdefault(self.target.name, stat.S_IMODE(os.fstat(self.fd).st_mode))
        await real(self, *args)

    monkeypatch.setattr(part_file.PartFile, "write", write)
    return seen


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_a_private_file_is_never_open_to_others_while_it_is_written(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(download, "SMALL_FILE", 0)  # through download_file, as > 8 MiB are
    alice, bob = await tokens(inproc.api.url, "alice", "bob")
    src = tmp_path / "src"
    src.mkdir()
    rng = random.Random(4)
    for name, mode in (("id_secret", 0o600), ("public.txt", 0o644)):
        (src / name).write_bytes(rng.randbytes(3000))
        os.chmod(src / name, mode)
    seen = _modes_while_written(monkeypatch)
    async with Client(inproc.api.url, token=alice) as a, Client(inproc.api.url, token=bob) as b:
        await a.make_bucket("bkt")
        await a.upload_to([src], "bkt", "home/")
        await a.download_from("bkt", "home/", tmp_path / "own")
        await a.set_bucket("bkt", grants={"bob": "read"})  # streamed through the API
        await b.download_from("bkt", "home/", tmp_path / "bob")
    assert seen == {"id_secret": 0o600, "public.txt": 0o600}
    assert _mode(tmp_path / "own" / "id_secret") == 0o600 & ~UMASK
    assert _mode(tmp_path / "own" / "public.txt") == 0o644 & ~UMASK
    for name in ("id_secret", "public.txt"):  # a grantee's listing holds no mode: the usual
        assert _mode(tmp_path / "bob" / name) == 0o644 & ~UMASK


async def test_a_mended_file_keeps_its_stored_mode_and_mtime(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    """A big file whose whole-file sha256 did not match has its wrong chunk written again
    (``part_mend``) after its mode and mtime were set: they are set again after, so the
    mend's writes leave no mtime of their own."""
    src = tmp_path / "big.bin"
    data = random.Random(19).randbytes(4 * 1024 * 1024)
    src.write_bytes(data)
    os.chmod(src, 0o640)
    os.utime(src, (1_500_000_000, 1_500_000_000))
    out = tmp_path / "out"
    async with Client(inproc.api.url, token=ADMIN_TOKEN, resume=False) as cl:
        plan = await cl.api.download_plan((await cl.upload(src)).file_id)
        bad = plan["chunks"][1]
        async with altering_proxy(str(bad["replicas"][0]["url"]), str(bad["sha256"])) as mitm:
            _route_through(plan, str(bad["replicas"][0]["node_id"]), mitm)
            got = await asyncio.wait_for(cl.download(plan["file_id"], out, plan=plan), 60)
    assert got.failovers >= 1  # the altered chunk was fetched again
    assert out.read_bytes() == data
    assert out.stat().st_mtime == 1_500_000_000
    assert _mode(out) == 0o640 & ~UMASK


async def test_a_link_put_at_the_target_after_the_rename_is_never_followed(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mode and mtime are set on the file's descriptor before it takes its name, and
    nothing is done by the target's path after: a link someone puts there right after the
    rename (to a file of the user's elsewhere) leaves that file's mode and mtime alone."""
    monkeypatch.setattr(download, "SMALL_FILE", 0)  # through download_file's rename
    src = tmp_path / "a.bin"
    src.write_bytes(random.Random(7).randbytes(5000))
    os.chmod(src, 0o600)
    os.utime(src, (1_500_000_000, 1_500_000_000))
    victim = tmp_path / "victim"
    victim.write_bytes(b"mine")
    os.chmod(victim, 0o640)
    os.utime(victim, (1_700_000_000, 1_700_000_000))
    real = part_file.link_or_replace

    def then_planted(tmp: Path, target: Path, overwrite: Any, *at: Any) -> None:
        real(tmp, target, overwrite, *at)
        full = Path(at[1]) if at else target  # (the names are in the folder's descriptor)
        os.replace(full, tmp_path / "renamed")  # the downloaded file, moved aside
        os.symlink(victim, full)

    monkeypatch.setattr(part_file, "link_or_replace", then_planted)
    out = tmp_path / "out"
    async with Client(inproc.api.url, token=ADMIN_TOKEN, resume=False) as cl:
        await cl.download((await cl.upload(src)).file_id, out)
    assert (_mode(victim), victim.stat().st_mtime) == (0o640, 1_700_000_000)
    assert _mode(tmp_path / "renamed") == 0o600 & ~UMASK
    assert (tmp_path / "renamed").stat().st_mtime == 1_500_000_000
