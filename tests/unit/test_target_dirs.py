"""A restore's folders swapped for symbolic links while it runs: no file lands outside the
restore's folder (``dfs.client.target_dirs``, ``dfs.client.file_writer``). The checks of
what stands above each target run once, before the writes; the writes then went by path,
so a folder replaced by a link meanwhile sent the files wherever it pointed. Each case runs
with unnamed files and with temp names (the ``mode`` fixture of test_file_writer)."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest

from dfs.client import file_writer, target_dirs
from dfs.client.file_names import Overwrite
from dfs.client.file_writer import GroupWriter, Pending, commit, write_temps
from dfs.client.target_dirs import TargetDirs
from dfs.errors import Conflict
from tests.unit.test_file_writer import _plan, _ready, mode  # noqa: F401 (the fixture)


def _restored(root: Path) -> int:
    return sum(1 for _ in root.glob("d*/f"))


def _is_open(fd: int) -> bool:
    return os.path.exists(f"/proc/self/fd/{fd}")


def _files(root: Path, names: list[str]) -> list[file_writer.SmallFile]:
    return [_ready(_plan(n, [n.encode()]), root / n, [n.encode()]) for n in names]


def test_a_folder_replaced_by_a_link_before_the_writes_gets_nothing(tmp_path: Path) -> None:
    root, outside = tmp_path / "restore", tmp_path / "elsewhere"
    (root / "sub").mkdir(parents=True)  # what the checks saw
    outside.mkdir()
    (root / "sub").rmdir()
    (root / "sub").symlink_to(outside)  # swapped after them
    pending = Pending()
    with pytest.raises(Conflict, match="symbolic link"):
        write_temps(_files(root, ["sub/a", "sub/b"]), False, pending, dirs=TargetDirs(root))
    assert list(outside.iterdir()) == []
    assert pending.fds == []  # nothing held open
    assert pending.temps == []


def test_a_folder_moved_and_replaced_by_a_link_before_the_commit(tmp_path: Path) -> None:
    """The files written, the folder moved away and a link put in its place before the
    commit names them: they are named in the folder they were written in (moved), never in
    the link's target."""
    root, outside = tmp_path / "restore", tmp_path / "elsewhere"
    outside.mkdir()
    pending = Pending()
    write_temps(_files(root, ["deep/sub/a", "deep/sub/b"]), False, pending, TargetDirs(root))
    (root / "deep" / "sub").rename(root / "moved")
    (root / "deep" / "sub").symlink_to(outside)
    assert commit(pending, overwrite=False) == []
    assert list(outside.iterdir()) == []
    assert sorted(p.name for p in (root / "moved").iterdir()) == ["a", "b"]
    assert (root / "moved" / "a").read_bytes() == b"deep/sub/a"
    assert pending.fds == []  # the folders' descriptors closed


async def test_a_group_writer_walks_from_its_root(tmp_path: Path) -> None:
    """Folders made as the walk goes (none through a link); a link above a target, put
    there after the checks, fails the restore instead of being written through."""
    root, outside = tmp_path / "restore", tmp_path / "elsewhere"
    root.mkdir()
    outside.mkdir()
    done: list[str] = []
    writer = GroupWriter(False, False, lambda f: done.append(f.target.name), root)
    for f in _files(root, ["x/y/z", "x/w", "top"]):
        writer.add(f)
    await writer.close()
    assert sorted(done) == ["top", "w", "z"]
    assert (root / "x" / "y" / "z").read_bytes() == b"x/y/z"
    (root / "link").symlink_to(outside)
    writer = GroupWriter(False, False, lambda f: None, root)
    writer.add(_files(root, ["link/f"])[0])
    with pytest.raises(Conflict):
        await writer.close()
    assert list(outside.iterdir()) == []


def test_targets_outside_the_root_are_refused(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="not under"):
        TargetDirs(tmp_path / "root").open(str(tmp_path / "other"))
    fd = TargetDirs(None).open(str(tmp_path / "made" / "here"))  # no root: by path
    try:
        assert os.path.samefile(f"/proc/self/fd/{fd}", tmp_path / "made" / "here")
    finally:
        os.close(fd)


async def test_a_commit_holds_a_bounded_number_of_folders_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each file in a folder of its own: a commit comes once ``COMMIT_DIRS`` folders are
    held open, not only after ``COMMIT_FILES`` files (the descriptors per process)."""
    monkeypatch.setattr(file_writer, "GROUP_FILES", 2)
    monkeypatch.setattr(file_writer, "COMMIT_DIRS", 4)
    held: list[int] = []
    real = file_writer.commit

    def counted(pending: Pending, overwrite: Overwrite) -> list[file_writer.SmallFile]:
        held.append(len(pending.fds))
        return real(pending, overwrite)

    monkeypatch.setattr(file_writer, "commit", counted)
    writer = GroupWriter(False, False, lambda f: None, tmp_path)
    for f in _files(tmp_path, [f"d{i}/f" for i in range(24)]):
        writer.add(f)
    await writer.close()
    assert len(held) >= 4
    assert max(held) <= 4 + 2 * file_writer.WRITERS  # the groups merged while one commits
    assert _restored(tmp_path) == 24


async def test_a_cancelled_open_leaves_no_descriptor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started, release = threading.Event(), threading.Event()
    opened: list[int] = []
    real = TargetDirs.open

    def slow(self: TargetDirs, parent: str) -> int:
        started.set()
        assert release.wait(10)
        opened.append(real(self, parent))
        return opened[-1]

    closed = asyncio.Event()
    close_opened = target_dirs._close_opened

    def closing(opening: asyncio.Future[int]) -> None:
        close_opened(opening)
        closed.set()

    monkeypatch.setattr(TargetDirs, "open", slow)
    monkeypatch.setattr(target_dirs, "_close_opened", closing)
    task = asyncio.create_task(TargetDirs(tmp_path).open_async(str(tmp_path / "a")))
    assert await asyncio.to_thread(started.wait, 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    release.set()
    await asyncio.wait_for(closed.wait(), 10)  # the thread's open done, its callback run
    assert opened
    assert not _is_open(opened[0])
