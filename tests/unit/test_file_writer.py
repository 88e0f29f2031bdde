"""Small files written in groups (dfs.client.file_writer): unnamed files (or temp names where
those are refused), one sync, links (renames); never a partial or unverified file at a
target, never a file that appeared there replaced. Every test runs both ways."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from dfs.client import file_names, file_writer
from dfs.client.file_writer import UMASK, GroupWriter, SmallFile, write_group
from dfs.errors import Conflict, IntegrityError


@pytest.fixture(autouse=True, params=["unnamed", "named"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Unnamed files (O_TMPFILE, this machine's file systems have it) or temp names."""
    if request.param == "unnamed":
        assert file_writer.UNNAMED  # Linux with /proc: the default
    monkeypatch.setattr(file_writer, "UNNAMED", request.param == "unnamed")
    return str(request.param)


@pytest.fixture
def named(monkeypatch: pytest.MonkeyPatch) -> None:
    """Temp names: what a file system without O_TMPFILE gets (resume's fixed names)."""
    monkeypatch.setattr(file_writer, "UNNAMED", False)


def _plan(file_id: str, parts: list[bytes], **extra: Any) -> dict[str, Any]:
    data = b"".join(parts)
    chunks, offset = [], 0
    for p in parts:
        chunks.append({"offset": offset, "size": len(p), "sha256": hashlib.sha256(p).hexdigest()})
        offset += len(p)
    return {
        "file_id": file_id,
        "name": file_id,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "chunks": chunks,
        **extra,
    }


def _ready(plan: dict[str, Any], target: Path, parts: list[bytes]) -> SmallFile:
    f = SmallFile(plan, target)
    f.parts = list(parts)
    f.missing = 0
    return f


def test_a_group_lands_with_its_attrs_and_leaves_no_temp_file(tmp_path: Path) -> None:
    one = _ready(
        _plan("a", [b"x" * 10], mode=0o4755, mtime=1_000_000.5), tmp_path / "d/a", [b"x" * 10]
    )
    two = _ready(_plan("b", [b"12", b"345"]), tmp_path / "d/e/b", [b"12", b"345"])
    empty = _ready(_plan("c", []), tmp_path / "c", [])
    assert write_group([one, two, empty], overwrite=True, resume=True) == []
    assert (tmp_path / "d/a").read_bytes() == b"x" * 10
    assert (tmp_path / "d/e/b").read_bytes() == b"12345"
    assert (tmp_path / "c").read_bytes() == b""
    st = os.stat(tmp_path / "d/a")
    assert st.st_mode & 0o7777 == 0o755 & ~UMASK  # no set-uid, less the umask
    assert st.st_mtime_ns == 1_000_000_500_000_000
    assert not list(tmp_path.rglob("*.dfs-part*"))


def test_a_file_that_appeared_at_its_target_is_kept_without_overwrite(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("someone else's")
    taken = _ready(_plan("t", [b"new"]), tmp_path / "taken", [b"new"])
    free = _ready(_plan("f", [b"free"]), tmp_path / "free", [b"free"])
    assert write_group([taken, free], overwrite=False, resume=False) == [taken]
    assert (tmp_path / "taken").read_text() == "someone else's"
    assert (tmp_path / "free").read_bytes() == b"free"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["free", "taken"]


def test_bytes_that_do_not_match_the_whole_file_sha256_are_never_written(tmp_path: Path) -> None:
    good = _ready(_plan("g", [b"good"]), tmp_path / "g", [b"good"])
    plan = _plan("b", [b"ab", b"cd"])
    bad = _ready(plan, tmp_path / "b", [b"ab", b"xx"])  # chunks as delivered, whole file wrong
    with pytest.raises(IntegrityError):
        write_group([good, bad], overwrite=True, resume=False)
    assert list(tmp_path.iterdir()) == []  # the group's temp files are gone too


@pytest.mark.usefixtures("named")
def test_a_link_planted_at_the_resume_temp_name_is_not_written_through(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / ".t.fid.dfs-part").symlink_to(victim)
    f = _ready(_plan("fid", [b"payload"]), tmp_path / "t", [b"payload"])
    assert write_group([f], overwrite=True, resume=True) == []
    assert (tmp_path / "t").read_bytes() == b"payload"
    assert victim.read_text() == "precious"


async def test_the_group_writer_reports_conflicts_after_writing_the_rest(tmp_path: Path) -> None:
    (tmp_path / "f3").write_text("mine")
    written: list[str] = []
    writer = GroupWriter(False, False, lambda f: written.append(f.target.name))
    for i in range(600):  # more than one group
        data = str(i).encode()
        writer.add(_ready(_plan(f"id{i}", [data]), tmp_path / f"f{i}", [data]))
    with pytest.raises(Conflict, match="changed during the download"):
        await writer.close()
    assert len(written) == 599
    assert "f3" not in written
    assert (tmp_path / "f3").read_text() == "mine"
    assert (tmp_path / "f599").read_text() == "599"


@pytest.mark.usefixtures("named")
def test_a_temp_file_an_interrupted_run_left_is_reused(tmp_path: Path) -> None:
    (tmp_path / ".t.fid.dfs-part").write_bytes(b"half of an older write, longer")
    f = _ready(_plan("fid", [b"payload"]), tmp_path / "t", [b"payload"])
    assert write_group([f], overwrite=True, resume=True) == []
    assert (tmp_path / "t").read_bytes() == b"payload"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]


async def test_the_group_writer_syncs_once_per_commit_not_per_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = file_names.SYNCFS
    assert real is not None  # Linux's libc has it
    calls: list[int] = []

    def counting(fd: int) -> int:
        calls.append(fd)
        return real(fd)

    monkeypatch.setattr(file_names, "SYNCFS", counting)
    written: list[str] = []
    writer = GroupWriter(False, False, lambda f: written.append(f.target.name))
    for i in range(3 * file_writer.GROUP_FILES):  # three groups, one commit
        data = str(i).encode()
        writer.add(_ready(_plan(f"id{i}", [data]), tmp_path / f"d{i % 3}/f{i}", [data]))
    await writer.close()
    assert len(written) == 3 * file_writer.GROUP_FILES
    assert len(calls) == 2  # the data of every temp file, then the directory entries
    assert (tmp_path / "d2/f767").read_text() == "767"
    assert not _temps(tmp_path)


async def test_files_written_before_a_bad_group_are_still_committed(tmp_path: Path) -> None:
    written: list[str] = []
    writer = GroupWriter(True, False, lambda f: written.append(f.target.name))
    for i in range(file_writer.GROUP_FILES):  # a whole group, handed to the thread
        data = str(i).encode()
        writer.add(_ready(_plan(f"id{i}", [data]), tmp_path / f"f{i}", [data]))
    bad = _ready(_plan("bad", [b"ab", b"cd"]), tmp_path / "bad", [b"ab", b"xx"])
    writer.add(bad)
    with pytest.raises(IntegrityError):
        await writer.close()
    assert len(written) == file_writer.GROUP_FILES
    assert (tmp_path / "f0").read_text() == "0"
    assert not (tmp_path / "bad").exists()
    assert not _temps(tmp_path)


def _temps(root: Path) -> list[Path]:
    return list(root.rglob("*.dfs-part*"))


async def test_drain_waits_until_little_enough_is_left_in_memory(tmp_path: Path) -> None:
    written: list[str] = []
    writer = GroupWriter(True, False, lambda f: written.append(f.target.name))
    files = []
    for i in range(3 * file_writer.GROUP_FILES):  # three groups handed to the thread
        data = b"x" * 100
        files.append(_ready(_plan(f"id{i}", [data]), tmp_path / f"f{i}", [data]))
        writer.add(files[-1])
    await writer.drain(0)
    assert all(f.parts == [] for f in files)  # every file's bytes are in its temp file
    assert written == []  # not committed yet: nothing under a final name
    assert not (tmp_path / "f0").exists()
    await writer.close()
    assert len(written) == 3 * file_writer.GROUP_FILES
    assert (tmp_path / "f767").read_bytes() == b"x" * 100


async def test_drain_raises_what_failed_a_group(tmp_path: Path) -> None:
    writer = GroupWriter(True, False, lambda f: None)
    good = _ready(_plan("good", [b"ok"]), tmp_path / "good", [b"ok"])
    writer.add(good)
    writer.add(_ready(_plan("bad", [b"ab", b"cd"]), tmp_path / "bad", [b"ab", b"xx"]))
    with pytest.raises(IntegrityError):
        await writer.drain(0)
    await writer.abandon()  # what was written before is committed, the bad file never
    assert not (tmp_path / "bad").exists()
    assert not _temps(tmp_path)


def test_a_relative_target_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    f = _ready(_plan("fid", [b"here"]), Path("t"), [b"here"])
    assert write_group([f], overwrite=False, resume=True) == []
    assert (tmp_path / "t").read_bytes() == b"here"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]


async def test_the_group_writer_writes_several_groups_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # every group's write waits at a barrier for the others: written one after the
    # other, the first would break it (its deadline) and fail the restore
    barrier = threading.Barrier(file_writer.WRITERS, timeout=30)
    real = file_writer.write_temps

    def meeting(group: list[SmallFile], resume: bool, into: file_writer.Pending, *a: Any) -> None:
        barrier.wait()
        real(group, resume, into, *a)

    monkeypatch.setattr(file_writer, "write_temps", meeting)
    written: list[str] = []
    writer = GroupWriter(False, False, lambda f: written.append(f.target.name))
    for i in range(file_writer.WRITERS * file_writer.GROUP_FILES):
        writer.add(_ready(_plan(f"id{i}", [b"ab", b"cd"]), tmp_path / f"f{i}", [b"ab", b"cd"]))
    await writer.close()
    assert len(written) == file_writer.WRITERS * file_writer.GROUP_FILES
    assert (tmp_path / "f0").read_bytes() == b"abcd"  # two chunks, one writev
    assert not _temps(tmp_path)


def test_overwrite_replaces_a_file_at_the_target_and_leaves_no_temp_file(tmp_path: Path) -> None:
    (tmp_path / "old").write_text("old bytes")
    f = _ready(_plan("o", [b"new bytes"]), tmp_path / "old", [b"new bytes"])
    assert write_group([f], overwrite=True, resume=False) == []
    assert (tmp_path / "old").read_bytes() == b"new bytes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]


def test_files_written_but_not_committed_are_not_visible_and_dropped_on_failure(
    tmp_path: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = [_ready(_plan(f"id{i}", [b"x"]), tmp_path / f"f{i}", [b"x"]) for i in range(3)]
    pending = file_writer.Pending()
    file_writer.write_temps(files, False, pending)
    visible = sorted(p.name for p in tmp_path.iterdir())
    assert not [n for n in visible if not n.endswith(".dfs-part")]  # nothing at a target
    assert len(visible) == (0 if mode == "unnamed" else 3)  # unnamed: no name at all

    def failing(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EIO, "the disk went away")

    monkeypatch.setattr(file_writer, "link_unnamed", failing)
    monkeypatch.setattr(file_writer, "link_or_replace", failing)
    with pytest.raises(OSError, match="disk went away"):
        file_writer.commit(pending, overwrite=False)
    assert list(tmp_path.iterdir()) == []  # every file written dropped, descriptors closed
    if mode == "unnamed":
        assert all(fd >= 0 for _f, _tmp, fd in pending.temps)
        with pytest.raises(OSError, match="Bad file descriptor"):
            os.fstat(pending.temps[-1][2])


def test_a_file_system_without_unnamed_files_gets_temp_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(file_writer, "UNNAMED", True)
    real_open = os.open

    def no_tmpfile(path: str, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        if flags & os.O_TMPFILE == os.O_TMPFILE:
            raise OSError(errno.EOPNOTSUPP, "not supported", path)
        return real_open(path, flags, mode, dir_fd=dir_fd)

    monkeypatch.setattr(file_writer.os, "open", no_tmpfile)
    f = _ready(_plan("fid", [b"payload"]), tmp_path / "t", [b"payload"])
    assert write_group([f], overwrite=False, resume=True) == []
    assert (tmp_path / "t").read_bytes() == b"payload"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]
    assert file_writer.UNNAMED is False  # not asked again in this process


async def test_too_few_descriptors_for_unnamed_files_means_temp_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(*args: Any) -> None:
        raise ValueError("not allowed")

    monkeypatch.setattr(file_writer.resource, "getrlimit", lambda _r: (1024, 1024))
    monkeypatch.setattr(file_writer.resource, "setrlimit", refused)
    writer = GroupWriter(False, False, lambda f: None)
    assert writer.unnamed is False
    writer.add(_ready(_plan("fid", [b"payload"]), tmp_path / "t", [b"payload"]))
    await writer.close()
    assert (tmp_path / "t").read_bytes() == b"payload"
    assert os.listdir(tmp_path) == ["t"]


async def test_no_files_are_written_while_a_commit_waits_behind_a_slow_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each commit holds its files open (unnamed: a descriptor each) until it is done; behind
    a sync that does not return, neither the writes nor ``drain`` go on past one commit
    waiting behind it, so the files held stay bounded (they ran the process out of
    descriptors: EMFILE)."""
    monkeypatch.setattr(file_writer, "GROUP_FILES", 8)
    monkeypatch.setattr(file_writer, "COMMIT_FILES", 32)
    bound = 3 * 32 + file_writer.WRITERS * 8  # two commits, what builds up for a third
    gate = threading.Event()
    real_sync = file_writer.syncfs_each

    def held_sync(fds: Any) -> bool:
        assert gate.wait(60)
        return real_sync(fds)

    lock = threading.Lock()
    held = {"now": 0, "peak": 0, "groups": 0}
    real_write = file_writer.write_temps

    def counted(group: list[SmallFile], *a: Any) -> None:
        real_write(group, *a)
        with lock:
            held["now"] += len(group)
            held["peak"] = max(held["peak"], held["now"])
            held["groups"] += 1

    def committed(f: SmallFile) -> None:
        with lock:
            held["now"] -= 1

    waited = asyncio.Event()
    real_room = GroupWriter._room_for_files

    async def watched(self: GroupWriter) -> None:
        task = asyncio.ensure_future(real_room(self))
        await asyncio.sleep(0)  # one turn: done unless it must wait for a commit
        if not task.done():
            waited.set()
        await task

    monkeypatch.setattr(file_writer, "syncfs_each", held_sync)
    monkeypatch.setattr(file_writer, "write_temps", counted)
    monkeypatch.setattr(GroupWriter, "_room_for_files", watched)
    writer = GroupWriter(True, False, committed)
    groups = 40
    for i in range(groups * 8):  # handed over at once, as a batch's small files are
        writer.add(_ready(_plan(f"id{i}", [b"%d" % i]), tmp_path / f"d{i % 5}/f{i}", [b"%d" % i]))
    deadline = time.monotonic() + 30
    while not waited.is_set() and held["groups"] < groups:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.005)
    drained = asyncio.ensure_future(writer.drain(1 << 30))
    await asyncio.sleep(0)
    assert not drained.done()  # the reader waits too, however few bytes are in memory
    gate.set()
    await drained
    await writer.close()
    assert held["peak"] <= bound, held
    assert held["now"] == 0
    assert (tmp_path / "d4" / "f319").read_bytes() == b"319"


@pytest.mark.usefixtures("named")
def test_a_name_as_long_as_the_file_system_takes_gets_a_bounded_temp_name(tmp_path: Path) -> None:
    name = "\u00e9" * 127  # 254 bytes: the temp name's additions would pass NAME_MAX
    for resume in (True, False):
        f = _ready(_plan("fid", [b"payload"]), tmp_path / name, [b"payload"])
        assert write_group([f], overwrite=True, resume=resume) == []
        assert (tmp_path / name).read_bytes() == b"payload"
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_temp_names_are_bounded_stable_and_apart() -> None:
    short = file_names.temp_name("a.txt", "TAG")
    assert short == ".a.txt.TAG.dfs-part"  # as before: a resume finds what it left
    long_a = "\u6587" * 80 + "a"
    long_b = "\u6587" * 80 + "b"
    tag = "0" * 36
    got = file_names.temp_name(long_a, tag)
    assert got == file_names.temp_name(long_a, tag)
    assert got != file_names.temp_name(long_b, tag)
    assert len((got + ".done").encode()) <= 255
    got.encode()  # cut between characters: valid UTF-8
    assert got.startswith(".\u6587")


@pytest.mark.parametrize("resume", [True, False])
def test_a_named_temp_file_is_open_to_no_one_else_while_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str, resume: bool
) -> None:
    """A temp file beside its target can be opened by anyone who may list the folder: it is
    made 0600, so that a private file's bytes are never open to others while written, and
    given its final mode before it is named (stored less the umask, else 0644 less it)."""
    seen: list[int] = []
    real = file_writer._write_all

    def write_all(fd: int, parts: Any) -> None:
        seen.append(os.fstat(fd).st_mode & 0o777)
        real(fd, parts)

    monkeypatch.setattr(file_writer, "_write_all", write_all)
    private = _ready(_plan("p", [b"secret"], mode=0o600), tmp_path / "p", [b"secret"])
    plain = _ready(_plan("q", [b"plain"]), tmp_path / "q", [b"plain"])
    write_group([private, plain], overwrite=False, resume=resume)
    if mode == "named":  # an unnamed file has no name to open it by until it is linked
        assert seen == [0o600, 0o600]
    assert (tmp_path / "p").stat().st_mode & 0o777 == 0o600 & ~UMASK
    assert (tmp_path / "q").stat().st_mode & 0o777 == 0o644 & ~UMASK


@pytest.mark.usefixtures("named")
@pytest.mark.parametrize("resume", [False, True])
def test_a_temp_file_replaced_under_its_name_before_the_commit_is_not_renamed(
    tmp_path: Path, resume: bool
) -> None:
    """A named temp file is written and closed, and renamed by its name at the commit, up to
    ``COMMIT_FILES`` files later. Another file put at that name meanwhile (by whoever can
    write in the folder: the name is predictable with resume) was renamed over the target,
    bytes no hash checked; as ``PartFile.commit`` does, the commit refuses it."""
    target = tmp_path / "t"
    target.write_bytes(b"the user's file")
    f = _ready(_plan("fid", [b"payload"]), target, [b"payload"])
    pending = file_writer.Pending()
    file_writer.write_temps([f], resume, pending)
    [(_f, tmp, _fd)] = pending.temps
    assert tmp is not None  # its name in the target's folder
    other = tmp_path / "other"
    other.write_bytes(b"bytes no hash checked")
    os.replace(other, tmp_path / tmp)
    with pytest.raises(IntegrityError, match="was replaced"):
        file_writer.commit(pending, overwrite=True)
    assert target.read_bytes() == b"the user's file"
