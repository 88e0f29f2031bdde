"""dfs.namespace_rules: S3's bucket-name, key, tag and metadata rules, and usage groups."""

from __future__ import annotations

import pytest

from dfs import namespace_rules as rules
from dfs.errors import InvalidRequest
from dfs.meta import namespace


def test_limits_match_the_port() -> None:
    assert rules.MAX_KEY_BYTES == namespace.MAX_KEY_BYTES
    assert rules.MAX_TAGS == namespace.MAX_TAGS
    assert rules.MAX_USER_METADATA_BYTES == namespace.MAX_USER_METADATA_BYTES


@pytest.mark.parametrize(
    "name",
    ["abc", "my-bucket", "my.bucket.name", "a" * 63, "123", "b0-9.x", "1.2.3", "photos-2024"],
)
def test_good_bucket_names(name: str) -> None:
    assert rules.validate_bucket_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "ab",
        "a" * 64,
        "",
        "My-Bucket",
        "my_bucket",
        "-abc",
        "abc-",
        ".abc",
        "abc.",
        "a..b",
        "a.-b",
        "a-.b",
        "192.168.5.4",
        "10.0.0.1",
        "xn--abc",
        "sthree-abc",
        "amzn-s3-demo-x",
        "abc-s3alias",
        "abc--ol-s3",
        "abc.mrap",
        "abc--x-s3",
        "abc--table-s3",
        "a b c",
        "ab/c",
        "abé",
        None,
        123,
    ],
)
def test_bad_bucket_names(name: object) -> None:
    with pytest.raises(InvalidRequest):
        rules.validate_bucket_name(name)


@pytest.mark.parametrize(
    "key",
    ["a", "photos/2024/cat.jpg", "folder/", "/leading", "ünïcødé/ключ", "\U0001f600", "a" * 1024,
     "é" * 512, "sp ace", "new\nline", "../up"],
)  # fmt: skip
def test_good_keys(key: str) -> None:
    assert rules.validate_key(key) == key


@pytest.mark.parametrize(
    "key", ["", "a" * 1025, "é" * 513, "\ud800", "a\udfffb", "nul\x00", None, b"k"]
)
def test_bad_keys(key: object) -> None:
    with pytest.raises(InvalidRequest):
        rules.validate_key(key)


def test_prefixes() -> None:
    assert rules.validate_prefix("") == ""
    assert rules.validate_prefix("photos/") == "photos/"
    with pytest.raises(InvalidRequest):
        rules.validate_prefix("\ud800")


def test_tags_are_sorted_and_bounded() -> None:
    assert rules.validate_tags([("b", "2"), ("a", ""), ("Key 1", "x+y=z@w:/._-")]) == (
        ("Key 1", "x+y=z@w:/._-"),
        ("a", ""),
        ("b", "2"),
    )
    assert rules.validate_tags([]) == ()
    assert rules.validate_tags([(f"k{i}", "v") for i in range(10)])[0] == ("k0", "v")
    assert rules.validate_tags([("ключ", "значение")]) == (("ключ", "значение"),)
    assert rules.validate_tags([("k" * 128, "v" * 256)]) == (("k" * 128, "v" * 256),)


@pytest.mark.parametrize(
    "tags",
    [
        [(f"k{i}", "v") for i in range(11)],
        [("", "v")],
        [("k" * 129, "v")],
        [("k", "v" * 257)],
        [("k", "a"), ("k", "b")],
        [("aws:name", "v")],
        [("AWS:name", "v")],
        [("k", "semi;colon")],
        [("k<", "v")],
        [("k", "\ud800")],
        [(1, "v")],
    ],
)
def test_bad_tags(tags: list[tuple[object, object]]) -> None:
    with pytest.raises(InvalidRequest):
        rules.validate_tags(tags)


def test_user_metadata() -> None:
    assert rules.validate_user_metadata([("Color", "red"), ("a-b", "x y")]) == (
        ("a-b", "x y"),
        ("color", "red"),
    )
    big = [("k", "v" * (rules.MAX_USER_METADATA_BYTES - 1))]
    assert rules.validate_user_metadata(big) == (("k", big[0][1]),)
    for bad in (
        [("k", "v" * rules.MAX_USER_METADATA_BYTES)],
        [("k", "é" * 1024)],
        [("a", "1"), ("A", "2")],
        [("bad key", "v")],
        [("", "v")],
        [("k", "line\r\nbreak")],
        [("k", "\ud800")],
    ):
        with pytest.raises(InvalidRequest):
            rules.validate_user_metadata(bad)


def test_stored_headers() -> None:
    got = rules.validate_stored_headers(
        [
            ("Expires", "Wed, 01 Dec 2094 16:00:00 GMT"),
            ("Cache-Control", "no-cache"),
            ("content-language", ""),
        ]
    )
    assert got == (("cache-control", "no-cache"), ("expires", "Wed, 01 Dec 2094 16:00:00 GMT"))
    name = "content-disposition"
    fits = [(name, "v" * (rules.MAX_STORED_HEADER_BYTES - len(name)))]
    assert rules.validate_stored_headers(fits) == (fits[0],)
    for bad in (
        [(name, "v" * (rules.MAX_STORED_HEADER_BYTES - len(name) + 1))],
        [("x-amz-meta-a", "v")],
        [("content-type", "text/plain")],
        [("cache-control", "a\r\nb")],
    ):
        with pytest.raises(InvalidRequest):
            rules.validate_stored_headers(bad)


def test_content_types() -> None:
    for good in ("text/plain", "image/jpeg", "application/x-tar", "text/html; charset=utf-8"):
        assert rules.validate_content_type(good) == good
    for bad in ("", "text", "text/", "/plain", "text/plain\n", "a/" + "b" * 300, 5):
        with pytest.raises(InvalidRequest):
            rules.validate_content_type(bad)


@pytest.mark.parametrize(
    ("key", "prefix", "ext"),
    [
        ("photos/2024/IMG.JPG", "photos", "jpg"),
        ("a.txt", "", "txt"),
        ("archive.tar.gz", "", "gz"),
        ("photos/", "photos", ""),
        ("dir.v2/file", "dir.v2", ""),
        (".bashrc", "", ""),
        ("docs/.hidden", "docs", ""),
        ("/abs/x.Py", "", "py"),
        ("noext", "", ""),
        ("trailing.", "", ""),
    ],
)
def test_usage_groups(key: str, prefix: str, ext: str) -> None:
    assert rules.top_prefix(key) == prefix
    assert rules.extension(key) == ext


def test_prefix_end_bounds_every_key_with_the_prefix() -> None:
    assert rules.prefix_end("b/") == "b0"
    assert rules.prefix_end("a") == "b"
    assert rules.prefix_end("\ud7ff") == "\ue000"
    assert rules.prefix_end("a\U0010ffff") == "b"
    assert rules.prefix_end("\U0010ffff") is None
    assert rules.prefix_end("") is None
    keys = ["b/", "b/x", "b/\U0010ffff", "b0", "b.", "b", "c", "b/é"]
    end = rules.prefix_end("b/")
    assert end is not None
    inside = sorted(k for k in keys if "b/" <= k < end)
    assert inside == sorted(k for k in keys if k.startswith("b/"))
    assert sorted(k.encode() for k in keys) == [k.encode() for k in sorted(keys)]
