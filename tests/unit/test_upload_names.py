"""What an upload's listing leaves out before anything is sent (``dfs.client.local_files``):
stored names the API would refuse (``name_problem``, ``storable``), and a listed file that is
gone by its read (``reopen``: reported as changed by a pipeline that goes on)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dfs import protocol
from dfs.client.local_files import (
    LocalFile,
    Skipped,
    name_problem,
    open_to_read,
    reopen,
    storable,
    walk,
)
from dfs.errors import FileChanged
from dfs.namespace_rules import MAX_KEY_BYTES

NOT_UTF8 = "name is not valid UTF-8 (the API stores names as UTF-8 text)"


def test_names_the_api_takes_pass() -> None:
    for name in ("a", "dir/sub/file.txt", "ü" * protocol.MAX_FILE_NAME, "x" * 1024):
        assert name_problem(name) is None, name
    assert name_problem("é" * (MAX_KEY_BYTES // 2), as_key=True) is None  # 1,024 bytes


def test_names_the_api_refuses_say_why() -> None:
    assert name_problem(os.fsdecode(b"caf\xe9")) == NOT_UTF8
    assert name_problem(os.fsdecode(b"caf\xe9"), as_key=True) == NOT_UTF8
    too_long = "stored name would be longer than 1024 characters (the API's limit)"
    assert name_problem("x" * 1025) == too_long
    # 513 characters are a file name the API takes, but a key of 1,026 bytes
    assert name_problem("é" * 513) is None
    key = "key would be longer than 1024 bytes of UTF-8 (the API's limit)"
    assert name_problem("é" * 513, as_key=True) == key


def test_storable_reports_the_refused_names_by_path_and_keeps_the_rest(tmp_path: Path) -> None:
    (tmp_path / "ok").write_bytes(b"1")
    bad = Path(os.fsdecode(bytes(tmp_path) + b"/b\xff"))
    bad.write_bytes(b"2")
    skipped: list[Skipped] = []
    kept = list(storable(walk([tmp_path], "pre/"), skipped))
    assert [f.name for f in kept] == ["pre/ok"]
    assert skipped == [Skipped(str(bad), NOT_UTF8)]
    # the final name is what counts (--name renames a file whatever its own name)
    renamed = LocalFile(bad, "good-name", 1)
    assert list(storable([renamed], skipped)) == [renamed]


def test_a_listed_file_gone_by_its_read(tmp_path: Path) -> None:
    gone = tmp_path / "gone"
    with pytest.raises(FileNotFoundError):  # one file named alone: the error itself
        reopen(open_to_read, gone, droppable=False)
    with pytest.raises(FileChanged) as exc:  # reported, the rest of the upload goes on
        reopen(os.stat, gone, droppable=True)
    assert exc.value.message == "No such file or directory when it was read, after it was listed"
    there = tmp_path / "there"
    there.write_bytes(b"x")
    fd = reopen(open_to_read, there, droppable=True)
    try:
        assert os.read(fd, 2) == b"x"
    finally:
        os.close(fd)
