"""``key_targets``: where a bucket restore writes each key, by the rules a download by file id
places stored names (``download_targets``), but going on past the keys it cannot write."""

from __future__ import annotations

from pathlib import Path

from dfs.client.local_files import key_targets


def _same(keys: list[str]) -> list[tuple[str, str]]:
    return [(k, k) for k in keys]


def test_keys_map_under_the_root_by_their_names(tmp_path: Path) -> None:
    targets, skipped = key_targets(tmp_path, [("p/a.txt", "a.txt"), ("p/x//y/./z", "x//y/./z")])
    assert targets == [("p/a.txt", tmp_path / "a.txt"), ("p/x//y/./z", tmp_path / "x/y/z")]
    assert skipped == []


def test_every_key_landing_on_a_taken_path_is_skipped(tmp_path: Path) -> None:
    keys = ["d/r.txt", "d\\r.txt", "d/./n.txt", "d/n.txt", "d//n.txt", "d/ok.txt"]
    targets, skipped = key_targets(tmp_path, _same(keys))
    assert targets == [("d/ok.txt", tmp_path / "d" / "ok.txt")]
    assert sorted(s.what for s in skipped) == sorted(keys[:5])
    why = {s.what: s.reason for s in skipped}
    assert why["d/r.txt"] == (
        f"would be written to {tmp_path / 'd' / 'r.txt'}, as 'd\\r.txt' would; none of them written"
    )
    assert "as 'd/./n.txt', 'd//n.txt' would" in why["d/n.txt"]


def test_unsafe_names_are_skipped_under_their_keys(tmp_path: Path) -> None:
    keys = [("d//s.txt", "/s.txt"), ("d/../../up", "../../up"), ("d/", ""), ("d/ok", "ok")]
    targets, skipped = key_targets(tmp_path, keys)
    assert targets == [("d/ok", tmp_path / "ok")]
    assert [s.what for s in skipped] == ["d//s.txt", "d/../../up", "d/"]
    assert all("cannot be written safely" in s.reason for s in skipped)


def test_a_key_where_others_need_a_directory_is_skipped(tmp_path: Path) -> None:
    """``a`` and ``a/b`` beside ``a/b/c``: both files are in the way of a directory; ``x``
    beside ``x/y`` and ``x\\y`` (skipped: one path) is not, and is written."""
    keys = ["a", "a/b", "a/b/c", "x", "x/y", "x\\y"]
    targets, skipped = key_targets(tmp_path, _same(keys))
    assert targets == [("a/b/c", tmp_path / "a/b/c"), ("x", tmp_path / "x")]
    why = {s.what: s.reason for s in skipped}
    assert sorted(why) == ["a", "a/b", "x/y", "x\\y"]
    assert why["a"] == f"{tmp_path / 'a'} must be a directory, for 'a/b/c'; not written"


def test_keys_named_as_a_download_temp_file_are_skipped(tmp_path: Path) -> None:
    """A download's temp file and sidecar have predictable names (``.NAME.FILE_ID.dfs-part``):
    a key restored under one could be written into, or renamed over the target of, the
    download of the key beside it."""
    keys = ["d/.big.x.dfs-part", "d/.big.x.dfs-part.done", "d/big", "d/s/.a.b.dfs-part"]
    targets, skipped = key_targets(tmp_path, [(k, k[2:]) for k in keys])
    assert targets == [("d/big", tmp_path / "big")]
    assert [s.what for s in skipped] == [keys[0], keys[1], keys[3]]
    assert all("temp file" in s.reason for s in skipped)
    # a name that only ends so, or only starts with a dot, is written
    plain = ["part.dfs-part", ".hidden", ".x.dfs-partial"]
    targets, skipped = key_targets(tmp_path, _same(plain))
    assert [k for k, _ in targets] == plain
    assert skipped == []


def test_a_segment_longer_than_a_file_name_may_be_is_skipped(tmp_path: Path) -> None:
    """255 bytes is the longest file name; a key's segment may be longer (in bytes, which
    for other letters than ASCII is more than characters)."""
    ok = ["a" * 255, "\u00e9" * 127 + "a", "b/" + "c" * 255]
    too_long = ["a" * 256, "\u00e9" * 128, "d" * 300 + "/e", "f/" + "\u6587" * 86]
    targets, skipped = key_targets(tmp_path, _same(ok + too_long))
    assert [k for k, _ in targets] == ok
    assert [s.what for s in skipped] == too_long
    assert all("longer than 255 bytes" in s.reason for s in skipped)
