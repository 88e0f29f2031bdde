"""``dfs.client.link_journal``: a run's journal names the files it uploaded and has not
linked; the next run takes only the journals of runs that are gone (their lock is free)."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

import pytest

from dfs.client.link_journal import (
    UNNAMED_AGE,
    LinkJournal,
    journal_folder,
    open_ids,
    running_ids,
    take_leftovers,
)


def test_a_settled_run_leaves_no_journal(tmp_path: Path) -> None:
    j = LinkJournal.create(tmp_path)
    j.up(["a", "b"])
    j.done(["a", "b", "never-up"])
    j.close()
    assert not list(tmp_path.glob("*.log"))


def test_an_unsettled_run_leaves_what_it_did_not_finish(tmp_path: Path) -> None:
    j = LinkJournal.create(tmp_path)
    j.up(["a", "b", "c"])
    j.up(["a"])  # named again: once
    j.done(["b"])
    j.close()
    (path,) = tmp_path.glob("*.log")
    assert open_ids(path.read_text()) == ["a", "c"]
    left = take_leftovers(tmp_path)
    assert left.file_ids == ["a", "c"]
    left.release(remove=False)  # the releases failed: kept for the next run
    again = take_leftovers(tmp_path)
    assert again.file_ids == ["a", "c"]
    again.release(remove=True)
    assert not list(tmp_path.glob("*.log"))


def test_a_running_clients_journal_is_not_taken(tmp_path: Path) -> None:
    running = LinkJournal.create(tmp_path)  # locked while its run goes on
    running.up(["mine"])
    assert take_leftovers(tmp_path).file_ids == []
    taken = take_leftovers(tmp_path / "elsewhere")
    assert taken.file_ids == []
    running.close()
    left = take_leftovers(tmp_path)
    assert left.file_ids == ["mine"]
    # a journal taken by one run is not taken by another at the same time
    assert take_leftovers(tmp_path).file_ids == []
    left.release(remove=True)


def test_a_torn_last_line_is_no_id(tmp_path: Path) -> None:
    assert open_ids("+a\n+b\n-a\n+c") == ["b"]
    assert open_ids("+a\n+b\n-a\n+c\n") == ["b", "c"]


def test_journals_are_kept_per_api_and_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DFS_CACHE_DIR", str(tmp_path))
    a = journal_folder("http://127.0.0.1:1/", "t1")
    assert a == journal_folder("http://127.0.0.1:1", "t1")
    assert a != journal_folder("http://127.0.0.1:1", "t2")
    assert a != journal_folder("http://127.0.0.1:2", "t1")
    j = LinkJournal.create(a)
    assert a.stat().st_mode & 0o777 == 0o700
    assert j.path.stat().st_mode & 0o777 == 0o600
    fd = os.open(j.path, os.O_RDONLY)
    try:
        with pytest.raises(BlockingIOError):  # held by its run
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)
        j.close()


def test_a_journal_never_named_is_swept_once_old(tmp_path: Path) -> None:
    """A run killed between creating its journal and naming it ``.log`` leaves an empty
    ``.new``: removed once older than ``UNNAMED_AGE``, not while its run may still name it."""
    old, fresh = tmp_path / "1-aa.new", tmp_path / "2-bb.new"
    old.write_bytes(b"")
    fresh.write_bytes(b"")
    past = time.time() - UNNAMED_AGE - 5
    os.utime(old, (past, past))
    assert take_leftovers(tmp_path).file_ids == []
    assert not old.exists()
    assert fresh.exists()
    assert take_leftovers(tmp_path / "missing").file_ids == []


def test_running_ids_are_those_of_journals_held_by_their_runs(tmp_path: Path) -> None:
    dead = LinkJournal.create(tmp_path)
    dead.up(["d"])
    dead.close()
    (tmp_path / "odd.log").mkdir()  # not a journal: skipped, never blocks a clean-up
    left = take_leftovers(tmp_path)
    assert left.file_ids == ["d"]
    live = LinkJournal.create(tmp_path)
    live.up(["l", "d"])
    live.done(["l"])
    assert running_ids(tmp_path, left) == {"d"}  # not the taken journal's own ids
    live.close()
    left.release(remove=True)
    assert running_ids(tmp_path, take_leftovers(tmp_path)) == set()
