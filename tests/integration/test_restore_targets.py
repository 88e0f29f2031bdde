"""What a restore finds at or above its targets (``dfs.client.namespace_sync``'s bucket
restores, ``dfs.client.download``'s downloads by file id): a directory where a key lands is
skipped and reported, never written into; a symbolic link there is replaced, never written
through; a link where a directory must be is never followed out of OUT; the rest is still
written. Names as long
as a file system takes are restored (their temp names are bounded), an object's ``mtime``
metadata that is no time is not set, and ``download BUCKET/KEY NEWDIR/`` makes a folder."""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from dfs.client import Client, cli, download, file_writer
from dfs.client.cli_transfer import Download
from dfs.errors import Conflict
from tests.integration.conftest import InProcessCluster
from tests.integration.test_namespace_api import tokens

pytestmark = pytest.mark.integration


def _files(root: Path) -> list[str]:
    """Every name under ``root`` but its folders (a link to one is listed, not entered)."""
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_symlink() or not p.is_dir()
    )


async def _cli(monkeypatch: pytest.MonkeyPatch, url: str, token: str, *args: str) -> int:
    """``dfs-client ARGS`` against the cluster, on a thread (it runs its own event loop)."""
    monkeypatch.setenv("DFS_API_URL", url)
    monkeypatch.setenv("DFS_TOKEN", token)

    def main(argv: Sequence[str]) -> int:
        try:
            return cli.main(list(argv))
        except SystemExit as exc:
            return int(exc.code or 0)

    return await asyncio.to_thread(main, args)


@pytest.mark.parametrize("big", [True, False], ids=["big", "small"])
async def test_a_directory_at_a_keys_target_is_skipped_a_link_replaced_the_rest_written(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, big: bool
) -> None:
    if big:  # every file through the one-file pipeline (download_file), as one > 8 MiB is
        monkeypatch.setattr(download, "SMALL_FILE", 0)
    (alice,) = await tokens(inproc.api.url, "alice")
    src = tmp_path / "src"
    (src / "docs").mkdir(parents=True)
    for name in ("data", "docs/linked.bin", "docs/plain.txt", "f1", "f2"):
        (src / name).write_bytes(f"bytes of {name}".encode())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    (out / "data").mkdir(parents=True)  # a folder of the user's where the key 'data' lands
    (out / "data" / "keep.txt").write_text("mine")
    (out / "docs").mkdir()
    os.symlink(elsewhere, out / "docs" / "linked.bin")  # a link to a folder outside OUT
    async with Client(inproc.api.url, token=alice) as a:
        await a.make_bucket("bkt")
        await a.upload_to([src], "bkt", "backup/")
    code = await _cli(monkeypatch, inproc.api.url, alice, "download", "bkt/backup/", f"{out}/")
    assert code == 23  # a key skipped (a Skipped: line), the rest downloaded
    assert _files(out) == ["data/keep.txt", "docs/linked.bin", "docs/plain.txt", "f1", "f2"]
    assert (out / "f2").read_bytes() == b"bytes of f2"
    assert (out / "data" / "keep.txt").read_text() == "mine"
    assert not (out / "docs" / "linked.bin").is_symlink()
    assert (out / "docs" / "linked.bin").read_bytes() == b"bytes of docs/linked.bin"
    assert _files(elsewhere) == []


async def test_a_linked_folder_under_out_is_not_written_through(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    (alice,) = await tokens(inproc.api.url, "alice")
    src = tmp_path / "src"
    (src / "docs").mkdir(parents=True)
    (src / "docs" / "small.txt").write_bytes(b"small")
    (src / "top.txt").write_bytes(b"top")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    async with Client(inproc.api.url, token=alice, overwrite=False) as a:
        await a.make_bucket("bkt")
        await a.upload_to([src], "bkt", "")
        out = tmp_path / "outa"
        out.mkdir()
        os.symlink(elsewhere, out / "docs")
        got = await a.download_from("bkt", "", out)
        assert [s.what for s in got.skipped] == ["docs/small.txt"]
        assert "symbolic link" in got.skipped[0].reason
        assert (out / "top.txt").read_bytes() == b"top"
        assert _files(elsewhere) == []

        # by file id, into a folder holding a link where a stored name needs a folder:
        # refused before anything is written
        ids = [str(f["file_id"]) for f in (await a.ls())["files"]]
        out = tmp_path / "outb"
        out.mkdir()
        (out / "keep").write_text("x")
        os.symlink(elsewhere, out / "docs")
        with pytest.raises(Conflict, match="in the way"):
            await Download(False, True, True).run(a, ids, None, f"{out}/")
        assert _files(elsewhere) == []
        assert _files(out) == ["docs", "keep"]


async def test_a_link_at_a_big_files_target_is_replaced_by_id_never_followed(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(download, "SMALL_FILE", 0)
    (alice,) = await tokens(inproc.api.url, "alice")
    src = tmp_path / "src"
    (src / "docs").mkdir(parents=True)
    (src / "docs" / "big.bin").write_bytes(b"the big file")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    (out / "docs").mkdir(parents=True)
    os.symlink(elsewhere, out / "docs" / "big.bin")
    async with Client(inproc.api.url, token=alice) as a:
        await a.make_bucket("bkt")
        await a.upload_to([src], "bkt", "")  # its file is stored as docs/big.bin
        ids = [str(f["file_id"]) for f in (await a.ls())["files"]]
        # --force replaces what is at the target: the link itself, not a file inside it
        await Download(False, True, True).run(a, ids, None, f"{out}/")
    assert not (out / "docs" / "big.bin").is_symlink()
    assert (out / "docs" / "big.bin").read_bytes() == b"the big file"
    assert _files(elsewhere) == []


async def test_names_as_long_as_the_file_system_takes_are_restored(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(file_writer, "UNNAMED", False)  # small files through temp names too
    (alice,) = await tokens(inproc.api.url, "alice")
    src = tmp_path / "src"
    src.mkdir()
    big = "\u6587" * 75 + ".bin"  # 229 bytes in UTF-8
    small = "s" * 250
    empty = "e" * 255
    data = random.Random(2).randbytes(9 << 20)
    (src / big).write_bytes(data)
    (src / small).write_bytes(b"small")
    (src / empty).write_bytes(b"")
    async with Client(inproc.api.url, token=alice) as a:
        await a.make_bucket("bkt")
        await a.upload_to([src], "bkt", "")
        out = tmp_path / "out1"
        got = await a.download_from("bkt", "", out)
        assert got.skipped == []
        assert (out / big).read_bytes() == data
        assert (out / small).read_bytes() == b"small"
        assert (out / empty).read_bytes() == b""
        (out / small).write_bytes(b"other")  # replaced: through a temp name beside it
        await a.download_from("bkt", "", out)
        assert (out / small).read_bytes() == b"small"
        assert _files(out) == sorted([big, small, empty])
        fid = next(f["file_id"] for f in (await a.ls())["files"] if f["name"] == big)
        (tmp_path / "out2").mkdir()
        await a.download(fid, tmp_path / "out2")
        assert (tmp_path / "out2" / big).read_bytes() == data


async def test_a_name_longer_than_the_file_system_takes_is_skipped_not_the_restore(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    """A key may be 1,024 bytes; a segment of it over 255 can be no file or folder name. Any
    uploader (an S3 client, a tenant the bucket is shared with) may write one: it is skipped
    and reported, and the restore of the other keys goes on, into an empty folder or not."""
    (alice,) = await tokens(inproc.api.url, "alice")
    long_file, long_dir = "x" * 256, "\u00e9" * 128  # 256 bytes; 128 characters
    keys = {"d/a.txt": b"a", f"d/{long_file}": b"b", f"d/{long_dir}/c.txt": b"c", "d/z": b"z"}
    async with Client(inproc.api.url, token=alice) as a:
        await a.make_bucket("bkt")
        for key, body in keys.items():
            (tmp_path / "p").write_bytes(body)
            await a.link("bkt", key, (await a.upload(tmp_path / "p")).file_id)
        for out in (tmp_path / "fresh", tmp_path / "used"):
            if out.name == "used":
                out.mkdir()
                (out / "mine").write_bytes(b"kept")
            got = await a.download_from("bkt", "d/", out)
            assert sorted(s.what for s in got.skipped) == sorted(list(keys)[1:3])
            assert all("longer than 255 bytes" in s.reason for s in got.skipped)
            assert (out / "a.txt").read_bytes() == b"a"
            assert (out / "z").read_bytes() == b"z"


async def test_an_mtime_metadata_that_is_no_time_is_not_set(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    alice, bob = await tokens(inproc.api.url, "alice", "bob")
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"hello")
    async with Client(inproc.api.url, token=alice) as a, Client(inproc.api.url, token=bob) as b:
        await a.make_bucket("bkt")
        await a.upload_to([src], "bkt", "docs/")
        fid = (await a.object_info("bkt", "docs/a.txt"))["file_id"]
        await a.link("bkt", "docs/empty", "", metadata={"mtime": "yesterday"})
        await a.link("bkt", "docs/huge", fid, metadata={"mtime": "1e300"})
        await a.link("bkt", "docs/nan", fid, metadata={"mtime": "nan"})
        got = await a.download_from("bkt", "docs/", tmp_path / "own")
        assert len(got.done) == 4
        assert _files(tmp_path / "own") == ["a.txt", "empty", "huge", "nan"]
        await a.set_bucket("bkt", grants={"bob": "read"})  # streamed through the API
        got = await b.download_from("bkt", "docs/", tmp_path / "bob")
    assert _files(tmp_path / "bob") == ["a.txt", "empty", "huge", "nan"]
    assert (tmp_path / "bob" / "huge").read_bytes() == b"hello"


@pytest.mark.parametrize("big", [False, True], ids=["small", "big"])
async def test_the_mtime_set_is_the_objects_so_the_next_sync_finds_it_unchanged(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, big: bool
) -> None:
    """An object whose ``mtime`` metadata is not its file's stored mtime (an S3 client's
    object, a key linked with metadata of its own): the restored file has the metadata's,
    which the next sync compares, so a download again skips it, and an upload of the
    restored folder makes no new version."""
    if big:  # every file through the one-file pipeline (download_file), as one > 8 MiB is
        monkeypatch.setattr(download, "SMALL_FILE", 0)
    (alice,) = await tokens(inproc.api.url, "alice")
    src = tmp_path / "a.txt"
    src.write_bytes(b"hello")
    os.utime(src, (1_500_000_000, 1_500_000_000))  # the file's stored mtime
    out = tmp_path / "out"
    async with Client(inproc.api.url, token=alice) as a:
        await a.make_bucket("bkt")
        fid = (await a.upload(src)).file_id
        await a.link("bkt", "docs/a.txt", fid, metadata={"mtime": "1600000000.250000"})
        first = await a.download_from("bkt", "docs/", out)
        again = await a.download_from("bkt", "docs/", out)
        back = await a.upload_to([out], "bkt", "docs/")
    assert [d["key"] for d in first.done] == ["docs/a.txt"]
    assert (out / "a.txt").stat().st_mtime == 1_600_000_000.25
    assert (again.done, again.unchanged) == ([], [str(out / "a.txt")])
    assert (back.done, back.unchanged) == ([], ["docs/a.txt"])


@pytest.mark.parametrize("big", [False, True], ids=["small", "big"])
async def test_an_mtime_comes_back_to_the_nanosecond_its_float_holds(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, big: bool
) -> None:
    """An upload stores ``st_mtime_ns`` as seconds divided exactly (``ns / 1e9`` made
    x.25 s into x.2499998), and a download sets it back from them to the nanosecond."""
    if big:
        monkeypatch.setattr(download, "SMALL_FILE", 0)
    (alice,) = await tokens(inproc.api.url, "alice")
    src = tmp_path / "a.txt"
    src.write_bytes(b"hello")
    os.utime(src, ns=(1_600_000_000_250_000_000, 1_600_000_000_250_000_000))
    out = tmp_path / "out"
    async with Client(inproc.api.url, token=alice) as a:
        fid = (await a.upload(src)).file_id
        out.mkdir()
        await a.download(fid, out / "a.txt")
    assert (out / "a.txt").stat().st_mtime_ns == 1_600_000_000_250_000_000


@pytest.mark.parametrize("big", [False, True], ids=["small", "big"])
async def test_one_file_at_keys_of_different_mtimes_gets_each_keys_own(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, big: bool
) -> None:
    """Three keys name one file: one with the file's own mtime, two with ``mtime`` metadata
    of their own. Each restored target has its key's (set before the file gets its name:
    one plan per target where they differ, the shared plan left as it was)."""
    if big:
        monkeypatch.setattr(download, "SMALL_FILE", 0)
    (alice,) = await tokens(inproc.api.url, "alice")
    src = tmp_path / "a.txt"
    src.write_bytes(b"hello")
    os.utime(src, (1_500_000_000, 1_500_000_000))
    out = tmp_path / "out"
    async with Client(inproc.api.url, token=alice) as a:
        await a.make_bucket("bkt")
        fid = (await a.upload(src)).file_id
        await a.link("bkt", "docs/own", fid)
        await a.link("bkt", "docs/x", fid, metadata={"mtime": "1600000000.25"})
        await a.link("bkt", "docs/y", fid, metadata={"mtime": "1700000000.5"})
        got = await a.download_from("bkt", "docs/", out)
    assert sorted(d["key"] for d in got.done) == ["docs/own", "docs/x", "docs/y"]
    times = {p.name: p.stat().st_mtime for p in out.iterdir()}
    assert times == {"own": 1_500_000_000, "x": 1_600_000_000.25, "y": 1_700_000_000.5}
    assert all(p.read_bytes() == b"hello" for p in out.iterdir())


async def test_a_key_ending_in_a_slash_that_holds_bytes_is_reported_not_left_out(
    inproc: InProcessCluster, tmp_path: Path
) -> None:
    """S3 lets a key ending in "/" hold bytes; no file can have its name, so a restore
    cannot write it, and says so (exit 23), as it does for every key it cannot write. An
    empty folder marker is no object to restore: left out, unsaid."""
    (alice,) = await tokens(inproc.api.url, "alice")
    (tmp_path / "p").write_bytes(b"bytes under a folder-like key")
    async with Client(inproc.api.url, token=alice) as a:
        await a.make_bucket("bkt")
        file_id = (await a.upload(tmp_path / "p")).file_id
        await a.link("bkt", "d/sub/", file_id)
        await a.link("bkt", "d/empty/", "")
        await a.link("bkt", "d/x", file_id)
        now = await a.download_from("bkt", "d/", tmp_path / "now")
        then = await a.download_from("bkt", "d/", tmp_path / "then", at=time.time() + 1)
    for got in (now, then):
        assert [d["key"] for d in got.done] == ["d/x"]
        assert [(s.what, "holds bytes" in s.reason) for s in got.skipped] == [("d/sub/", True)]


async def test_download_of_a_key_to_dash_is_refused_not_a_file_named_dash(
    inproc: InProcessCluster,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``download BUCKET/KEY -`` wrote a file named "-" and printed "downloaded" on standard
    output, exit 0: ``... - | psql`` read that line instead of the object. '-' is standard
    output for a FILE_ID only; for a key it is refused (exit 2), and ``./-`` names the file."""
    (alice,) = await tokens(inproc.api.url, "alice")
    (tmp_path / "p").write_bytes(b"SELECT 1;\n")
    async with Client(inproc.api.url, token=alice) as a:
        await a.make_bucket("bkt")
        await a.link("bkt", "db.sql", (await a.upload(tmp_path / "p")).file_id)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    code = await _cli(monkeypatch, inproc.api.url, alice, "download", "bkt/db.sql", "-")
    assert code == 2
    assert "standard output" in capsys.readouterr().err
    assert _files(work) == []
    code = await _cli(monkeypatch, inproc.api.url, alice, "download", "bkt/db.sql", "./-")
    assert code == 0
    assert (work / "-").read_bytes() == b"SELECT 1;\n"


async def test_download_of_a_key_to_a_new_folder_named_with_a_slash(
    inproc: InProcessCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (alice,) = await tokens(inproc.api.url, "alice")
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"hello")
    async with Client(inproc.api.url, token=alice) as a:
        await a.make_bucket("bkt")
        await a.upload_to([src], "bkt", "docs/")
    new = tmp_path / "newdir"
    code = await _cli(monkeypatch, inproc.api.url, alice, "download", "bkt/docs/a.txt", f"{new}/")
    assert code == 0
    assert new.is_dir()
    assert (new / "a.txt").read_bytes() == b"hello"
    (tmp_path / "file").write_text("x")  # a file named as a folder: refused, left alone
    code = await _cli(
        monkeypatch, inproc.api.url, alice, "download", "bkt/docs/a.txt", f"{tmp_path}/file/"
    )
    assert code != 0
    assert (tmp_path / "file").read_text() == "x"
