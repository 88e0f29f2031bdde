"""Keys in the client's URL paths (dfs.client.namespace.key_path): a key with "." or ".."
segments names itself, never the key a URL library's dot-segment removal would make of it
(x/../keep.txt is not keep.txt: ``rm`` of the one must not delete the other)."""

from __future__ import annotations

from urllib.parse import unquote

from yarl import URL

from dfs.client.namespace import key_path


def test_plain_keys_keep_their_slashes() -> None:
    assert key_path("a/b c/d.txt") == "a/b%20c/d.txt"
    assert key_path("a//b") == "a//b"
    assert key_path("v1.2/..x/x..") == "v1.2/..x/x.."


def test_dot_segments_survive_a_url_library() -> None:
    for key in ("x/../keep.txt", "../x", "a/.", "x/./../y", "a/b/..", "x/../../b2/k"):
        url = URL(f"http://api.local/objects/b/{key_path(key)}")
        assert url.raw_path.startswith("/objects/b/"), key
        assert unquote(url.raw_path.removeprefix("/objects/b/")) == key
