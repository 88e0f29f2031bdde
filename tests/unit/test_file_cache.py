"""The client's files cache (dfs.client.file_cache): an entry answers only for a file listed
with the same size, mtime, ctime, inode and device; racy files are not remembered; a corrupt
cache is ignored; it is written atomically, privately and bounded."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest

from dfs.chunking import ChunkerProfile, scan_file
from dfs.client import file_cache
from dfs.client.batch_scan import scan_small
from dfs.client.file_cache import FileCache

PROFILE = ChunkerProfile.fixed(4096)


def later_run(path: Path) -> FileCache:
    """A cache loaded by a run that starts well after the files were written (none racy)."""
    cache = FileCache.load(path)
    cache.started_ns = time.time_ns() + 10 * file_cache.RACY_NS
    return cache


def stored(cache_file: Path, f: Path) -> FileCache:
    cache = later_run(cache_file)
    cache.remember(f, os.stat(f), scan_file(f, PROFILE))
    cache.save()
    return later_run(cache_file)


@pytest.mark.parametrize("size", [0, 100, 4096, 3 * 4096 + 5])
def test_an_unchanged_file_is_answered_from_the_cache(tmp_path: Path, size: int) -> None:
    f = tmp_path / "f"
    f.write_bytes(os.urandom(size))
    cache = stored(tmp_path / "c.json", f)
    assert cache.lookup(f, os.stat(f)) == scan_file(f, PROFILE) == scan_small(f, PROFILE)
    assert (cache.hits, cache.misses) == (1, 0)


def test_an_edit_keeping_size_and_mtime_is_caught_by_its_ctime(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"a" * 1000)
    before = os.stat(f)
    cache = stored(tmp_path / "c.json", f)
    time.sleep(0.01)
    f.write_bytes(b"b" * 1000)  # same size
    os.utime(f, ns=(before.st_atime_ns, before.st_mtime_ns))  # mtime restored
    now = os.stat(f)
    assert (now.st_size, now.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert now.st_ctime_ns != before.st_ctime_ns
    assert cache.lookup(f, now) is None


def test_a_file_replaced_by_another_is_caught_by_its_inode(tmp_path: Path) -> None:
    f, other = tmp_path / "f", tmp_path / "g"
    f.write_bytes(b"a" * 1000)
    other.write_bytes(b"b" * 1000)
    keep = os.stat(f)  # another file (the other inode) keeps f's other values
    holder = tmp_path / "keep"
    os.link(f, holder)  # f's inode stays alive, so it cannot be reused at once
    cache = stored(tmp_path / "c.json", f)
    os.replace(other, f)
    st = os.stat(f)
    assert st.st_ino != keep.st_ino
    assert cache.lookup(f, st) is None


def test_files_too_recent_to_trust_are_not_remembered(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"x" * 10)
    cache = FileCache.load(tmp_path / "c.json")  # this run began just now: f is racy
    cache.remember(f, os.stat(f), scan_file(f, PROFILE))
    assert len(cache) == 0
    assert cache.lookup(f, os.stat(f)) is None


@pytest.mark.parametrize(
    "content",
    [
        b"\x00\xffnot json",
        b'{"version": 1, "entries": ',
        b'{"version": 99, "entries": {}}',
        b"[1, 2, 3]",
        b'{"version": 1, "entries": []}',
    ],
)
def test_a_corrupt_cache_is_ignored(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "c.json"
    path.write_bytes(content)
    f = tmp_path / "f"
    f.write_bytes(b"x" * 10)
    cache = later_run(path)
    assert len(cache) == 0
    assert cache.lookup(f, os.stat(f)) is None
    cache.remember(f, os.stat(f), scan_file(f, PROFILE))
    cache.save()  # and replaced by a good one
    assert later_run(path).lookup(f, os.stat(f)) == scan_file(f, PROFILE)


def test_malformed_entries_are_misses(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    f = tmp_path / "f"
    f.write_bytes(b"y" * 9000)
    stored(path, f)
    doc = json.loads(path.read_text())
    ((key, entry),) = doc["entries"].items()
    bad = {
        key: [*entry[:5], "not-a-sha256", entry[6], 0],
        key + "2": ["x", *entry[1:]],
        key + "3": [*entry[:6], [1, "zz"], 0],
    }
    path.write_text(json.dumps({"version": 1, "entries": bad}))
    cache = later_run(path)
    assert cache.lookup(f, os.stat(f)) is None
    # chunks that do not add up to the size
    path.write_text(json.dumps({"version": 1, "entries": {key: [*entry[:6], [5, "a" * 64], 0]}}))
    assert later_run(path).lookup(f, os.stat(f)) is None


def test_the_cache_is_private_and_written_atomically(tmp_path: Path) -> None:
    path = tmp_path / "dir" / "c.json"
    f = tmp_path / "f"
    f.write_bytes(b"z" * 10)
    stored(path, f)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["c.json"]  # no temp file left


def test_entries_age_out_and_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.json"
    files = []
    for i in range(3):
        files.append(tmp_path / f"f{i}")
        files[-1].write_bytes(bytes([i]) * 10)
    cache = later_run(path)
    for f in files:
        cache.remember(f, os.stat(f), scan_file(f, PROFILE))
    cache.save()
    monkeypatch.setattr(file_cache, "MAX_AGE", 2)
    for _run in range(2):  # runs that see only f0
        cache = later_run(path)
        assert cache.lookup(files[0], os.stat(files[0])) is not None
        cache.save()
    assert len(later_run(path)) == 3
    cache = later_run(path)
    cache.lookup(files[0], os.stat(files[0]))
    cache.save()  # f1 and f2 unseen for 3 runs
    assert len(later_run(path)) == 1
    monkeypatch.setattr(file_cache, "MAX_ENTRIES", 2)
    cache = later_run(path)
    for f in files:
        cache.remember(f, os.stat(f), scan_file(f, PROFILE))
    cache.save()
    assert len(later_run(path)) == 2


def test_the_cache_is_per_destination() -> None:
    paths = {
        file_cache.cache_path("http://a:1", "t", "", "fixed:4096"),
        file_cache.cache_path("http://a:1/", "t", "", "fixed:4096"),
    }
    assert len(paths) == 1
    others = {
        file_cache.cache_path("http://b:1", "t", "", "fixed:4096"),
        file_cache.cache_path("http://a:1", "u", "", "fixed:4096"),
        file_cache.cache_path("http://a:1", "t", "bucket", "fixed:4096"),
        file_cache.cache_path("http://a:1", "t", "", "fixed:8192"),
    }
    assert len(others | paths) == 5


def test_a_path_that_is_not_utf8_is_remembered_across_runs(tmp_path: Path) -> None:
    """A file name's undecodable bytes (a lone surrogate in the path string), which orjson
    refuses, are written and read back by the standard library's codec."""
    name = os.fsdecode(b"caf\xe9.txt")  # Latin-1 bytes: not UTF-8
    f = tmp_path / name
    f.write_bytes(b"x" * 100)
    other = tmp_path / "plain.txt"
    other.write_bytes(b"y" * 100)
    cache_file = tmp_path / "c.json"
    cache = later_run(cache_file)
    for each in (f, other):
        cache.remember(each, os.stat(each), scan_file(each, PROFILE))
    cache.save()
    again = later_run(cache_file)
    assert len(again) == 2
    assert again.lookup(f, os.stat(f)) == scan_file(f, PROFILE)
    assert again.lookup(other, os.stat(other)) == scan_file(other, PROFILE)
