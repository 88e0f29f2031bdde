"""The client's local-file rules without a cluster: escaped names in text output, download
targets (collisions, a file inside another's path, unsafe names), what lies at a target,
opening predictable temp names, and the documented curl commands (issue 16, issue 12 item 10)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

import dfs
from dfs.client.cli_output import listing_line, printable
from dfs.client.local_files import (
    Existing,
    Skipped,
    download_targets,
    existing,
    hash_file,
    holds_nothing,
    in_the_way,
    local_path,
    walk,
)
from dfs.client.resume import DownloadSidecar, open_own
from dfs.errors import InvalidRequest

ROOT = Path(dfs.__file__).parent.parent


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain name.txt", "plain name.txt"),
        ("été/ü.txt", "été/ü.txt"),
        ("a\x1b[2Jb", "a\\x1b[2Jb"),
        ("tab\there\nnew", "tab\\there\\nnew"),
        ("back\\slash", "back\\\\slash"),
        ("rtl\u202etxt.exe", "rtl\\u202etxt.exe"),
        ("c1\x9bx", "c1\\x9bx"),
    ],
)
def test_printable_escapes_what_a_terminal_acts_on(raw: str, shown: str) -> None:
    assert printable(raw) == shown


def test_listing_line_escapes_the_name_only() -> None:
    f = {"file_id": "id", "size": 3, "sha256": "ab" * 32, "name": "x\ty\x1b"}
    assert listing_line(f) == f"id\t3\t{'ab' * 6}\tx\\ty\\x1b"


def test_download_targets_keep_relative_names_and_refuse_collisions(tmp_path: Path) -> None:
    pairs, skipped = download_targets(
        tmp_path, [("1", "a/x.txt"), ("2", "b/x.txt"), ("1", "a/x.txt"), ("3", "../up")]
    )
    assert pairs == [("1", tmp_path / "a" / "x.txt"), ("2", tmp_path / "b" / "x.txt")]
    assert [s.what for s in skipped] == ["../up"]
    with pytest.raises(InvalidRequest, match="would both be written"):
        download_targets(tmp_path, [("1", "a/x.txt"), ("2", "a\\x.txt")])
    with pytest.raises(InvalidRequest, match="inside"):
        download_targets(tmp_path, [("1", "a/x.txt"), ("2", "a")])
    assert not list(tmp_path.iterdir())


def test_stored_names_map_under_the_root_or_are_refused(tmp_path: Path) -> None:
    assert local_path(tmp_path, "a//b/./c") == tmp_path / "a" / "b" / "c"
    assert local_path(tmp_path, "./a\\b/") == tmp_path / "a" / "b"
    for bad in ("//etc/passwd", "/etc/passwd", "a/../../b", ".", "", "a/\x00"):
        with pytest.raises(InvalidRequest, match="cannot be written safely"):
            local_path(tmp_path, bad)
    pairs, _skipped = download_targets(tmp_path, [("1", "x/./y"), ("2", "x/z")])
    assert pairs == [("1", tmp_path / "x" / "y"), ("2", tmp_path / "x" / "z")]
    with pytest.raises(InvalidRequest, match="would both be written"):
        download_targets(tmp_path, [("1", "x/y"), ("2", "x//y")])


def test_existing_tells_same_different_and_blocked(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"abc")
    size, digest = hash_file(f)
    assert existing(f, tmp_path, size, digest) is Existing.SAME
    assert existing(f, tmp_path, size, "0" * 64) is Existing.DIFFERENT
    assert existing(tmp_path / "new", tmp_path, 1, digest) is Existing.NOTHING
    assert existing(f / "below", tmp_path, 1, digest) is Existing.BLOCKED
    (tmp_path / "d").mkdir()
    assert existing(tmp_path / "d", tmp_path, 1, digest) is Existing.BLOCKED
    (tmp_path / "link").symlink_to(f)
    assert existing(tmp_path / "link", tmp_path, size, digest) is Existing.DIFFERENT


def test_existing_looks_at_each_directory_once_and_still_finds_blocks(tmp_path: Path) -> None:
    """A restore shares one ``clear`` set: directories found clear are not looked at again,
    and a chain that blocks marks none of its lower directories clear."""
    (tmp_path / "x").write_bytes(b"a file where a directory goes")
    (tmp_path / "ok").mkdir()
    clear: set[Path] = set()
    assert existing(tmp_path / "x" / "y" / "f1", tmp_path, 1, "0" * 64, clear) is Existing.BLOCKED
    assert existing(tmp_path / "x" / "y" / "f2", tmp_path, 1, "0" * 64, clear) is Existing.BLOCKED
    assert clear == set()
    assert existing(tmp_path / "ok" / "n" / "f", tmp_path, 1, "0" * 64, clear) is Existing.NOTHING
    assert clear == {tmp_path / "ok", tmp_path / "ok" / "n"}
    assert existing(tmp_path / "ok" / "n" / "g", tmp_path, 1, "0" * 64, clear) is Existing.NOTHING


def test_a_link_between_the_root_and_a_target_blocks_the_root_itself_may_be_one(
    tmp_path: Path,
) -> None:
    """A link where a directory goes would carry the download out of the root; the user's
    own root (or path to it) may be a link, and a path given without a root is followed."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "docs").symlink_to(elsewhere)
    (root / "gone").symlink_to(tmp_path / "missing")
    for target in (root / "docs" / "x", root / "docs" / "sub" / "x", root / "gone" / "x"):
        assert existing(target, root, 1, "0" * 64) is Existing.BLOCKED
        assert in_the_way(target, root) is not None
        assert "symbolic link" in str(in_the_way(target, root))
    assert existing(root / "docs" / "x", None, 1, "0" * 64) is Existing.NOTHING
    linked_root = tmp_path / "linked-root"
    linked_root.symlink_to(root)
    (root / "real").mkdir()
    assert existing(linked_root / "real" / "x", linked_root, 1, "0" * 64) is Existing.NOTHING
    assert in_the_way(linked_root / "real" / "x", linked_root) is None


def test_in_the_way_of_a_keys_target(tmp_path: Path) -> None:
    """A bucket restore writes no key into a directory at its target, nor under a file or
    a link where a directory goes; a file or a link at the target is replaced."""
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_bytes(b"x")
    (tmp_path / "dirlink").symlink_to(tmp_path / "d")
    (tmp_path / "filelink").symlink_to(tmp_path / "f")
    assert in_the_way(tmp_path / "new", tmp_path) is None
    assert in_the_way(tmp_path / "f", tmp_path) is None
    assert in_the_way(tmp_path / "d" / "new", tmp_path) is None
    assert "is a directory" in str(in_the_way(tmp_path / "d", tmp_path))
    assert in_the_way(tmp_path / "dirlink", tmp_path) is None
    assert in_the_way(tmp_path / "filelink", tmp_path) is None
    assert "symbolic link" in str(in_the_way(tmp_path / "dirlink" / "below", tmp_path))
    assert "not a directory" in str(in_the_way(tmp_path / "f" / "below", tmp_path))
    # one key to OUT itself: nothing above it is looked at, what is at it is
    assert in_the_way(tmp_path / "f", tmp_path / "f") is None
    assert in_the_way(tmp_path / "d", tmp_path / "d") is not None


def test_holds_nothing_only_where_no_file_can_be_in_the_way(tmp_path: Path) -> None:
    """A restore reads its first chunks before the checks only into such a place."""
    assert holds_nothing(tmp_path / "new")
    (tmp_path / "empty").mkdir()
    assert holds_nothing(tmp_path / "empty")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / ".hidden").write_bytes(b"")
    assert not holds_nothing(tmp_path / "full")
    (tmp_path / "file").write_bytes(b"x")
    assert not holds_nothing(tmp_path / "file")
    (tmp_path / "link").symlink_to(tmp_path / "empty")
    assert not holds_nothing(tmp_path / "link")
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    assert not holds_nothing(tmp_path / "dangling")


def test_open_own_never_follows_links_or_writes_a_second_name(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / "link").symlink_to(victim)
    assert open_own(tmp_path / "link", os.O_RDWR | os.O_CREAT) is None
    os.link(victim, tmp_path / "hard")
    assert open_own(tmp_path / "hard", os.O_RDWR | os.O_CREAT) is None
    fd = open_own(tmp_path / "mine", os.O_RDWR | os.O_CREAT)
    assert fd is not None
    os.close(fd)
    # a sidecar planted as a link is dropped, never appended through
    part = tmp_path / "x.dfs-part"
    Path(str(part) + ".done").symlink_to(victim)
    sidecar = DownloadSidecar(part)
    sidecar.load()
    sidecar.add(0)
    assert victim.read_text() == "precious"
    assert sidecar.path.read_text() == "0\n"


def test_documented_curl_downloads_fail_on_an_error_answer() -> None:
    """curl -o without -f saves a JSON error body as the file (issue 16)."""
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    saving = []
    for doc in docs:
        for line in doc.read_text(encoding="utf-8").splitlines():
            for cmd in re.findall(r"curl\s[^`|;]*", line):
                flags = "".join(re.findall(r"(?:^|\s)-([a-zA-Z]+)", cmd))
                if "o" in flags or "O" in flags or "--output" in cmd:
                    saving.append((doc.name, cmd, "f" in flags or "--fail" in cmd))
    assert saving  # the docs do show saving downloads
    assert [s for s in saving if not s[2]] == []


def test_walk_lists_each_folders_files_sorted_before_its_sub_folders(tmp_path: Path) -> None:
    """The order ``os.walk`` top-down with sorted names gives; a link to a folder is walked
    only with follow_symlinks, and a link back up the tree only once."""
    tree = tmp_path / "tree"
    for rel in ("b/y", "b/a/x", "a/z", "c", "b0"):
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text(rel)
    (tree / "up").symlink_to(tree)
    skipped: list[Skipped] = []
    got = [(f.name, f.path, f.size) for f in walk([tree], "p/", skipped=skipped)]
    assert got == [(f"p/{rel}", tree / rel, len(rel)) for rel in ("b0", "c", "a/z", "b/y", "b/a/x")]
    assert [(s.what, s.reason) for s in skipped] == [
        (str(tree / "up"), "symbolic link to a directory not followed (-L follows links)")
    ]
    followed = [f.name for f in walk([tree], "", follow_symlinks=True, skipped=[])]
    assert followed == ["b0", "c", "a/z", "b/y", "b/a/x"]
    with pytest.raises(InvalidRequest, match="symbolic link to a directory"):
        list(walk([tree]))
