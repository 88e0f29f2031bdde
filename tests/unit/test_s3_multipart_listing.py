"""The gateway's pure parts of ListMultipartUploads (the roll-up into common prefixes over
the store's (key, upload id) order) and of partNumber reads (part sizes kept with a version)."""

from __future__ import annotations

import pytest

from dfs.meta.multipart import MultipartUpload
from dfs.meta.namespace import ObjectVersion
from dfs.namespace_rules import MAX_USER_METADATA_BYTES
from dfs.s3 import multipart_listing, part_numbers
from dfs.s3.errors import S3Error
from dfs.s3.multipart_listing import After, Query, uploads_page

KEYS = ["a/1", "a/2", "a/b/3", "b", "b", "c/x", "c/y", "d", "e/1"]


class Uploads:
    """A bucket's uploads in the store's order, read as the store answers (and counted)."""

    def __init__(self, keys: list[str], prefix: str = "") -> None:
        self.all = [
            MultipartUpload(f"{i:04d}", "t", "bk", k, 1.0)
            for i, k in enumerate(keys)
            if k.startswith(prefix)
        ]
        self.all.sort(key=lambda u: (u.key.encode(), u.upload_id))
        self.reads: list[int] = []

    async def __call__(self, after: After, limit: int) -> list[MultipartUpload]:
        self.reads.append(limit)
        rows = [u for u in self.all if after is None or (u.key, u.upload_id) > after]
        return rows[:limit]


def shown(entries: list[multipart_listing.Entry]) -> list[str]:
    return [e if isinstance(e, str) else f"{e.key}#{e.upload_id}" for e in entries]


async def test_roll_up_counts_prefixes_as_entries() -> None:
    store = Uploads(KEYS)
    entries, truncated = await uploads_page(store, Query(delimiter="/"), 1000)
    assert shown(entries) == ["a/", "b#0003", "b#0004", "c/", "d#0007", "e/"]
    assert not truncated
    entries, truncated = await uploads_page(store, Query(delimiter="/"), 2)
    assert (shown(entries), truncated) == (["a/", "b#0003"], True)
    entries, truncated = await uploads_page(Uploads(KEYS, "a/"), Query("a/", "/"), 10)
    assert (shown(entries), truncated) == (["a/1#0000", "a/2#0001", "a/b/"], False)


async def test_markers_resume_after_a_prefix_and_within_a_key() -> None:
    store = Uploads(KEYS)
    page, _ = await uploads_page(store, Query(delimiter="/", key_marker="c/"), 10)
    assert shown(page) == ["d#0007", "e/"]
    page, _ = await uploads_page(store, Query(key_marker="b", upload_id_marker="0003"), 2)
    assert shown(page) == ["b#0004", "c/x#0005"]
    page, _ = await uploads_page(store, Query(key_marker="b"), 1)
    assert shown(page) == ["c/x#0005"]
    # a page that ends exactly where the uploads end is not truncated
    _, truncated = await uploads_page(store, Query(delimiter="/"), 6)
    assert not truncated


async def test_a_large_prefix_is_skipped_not_read() -> None:
    store = Uploads([f"big/{i:05d}" for i in range(5000)] + ["z"])
    entries, truncated = await uploads_page(store, Query(delimiter="/"), 1000)
    assert (shown(entries), truncated) == (["big/", "z#5000"], False)
    assert len(store.reads) <= 3  # one read into big/, then straight past it


def test_xml_of_prefixes_and_next_markers() -> None:
    u = MultipartUpload("0001", "t", "bk", "k é", 1.0)
    q = Query(delimiter="/", encode=True)
    out = multipart_listing.list_uploads_xml("bk", [u, "p é/"], True, q, 2)
    assert (
        "<NextKeyMarker>p%20%C3%A9/</NextKeyMarker><NextUploadIdMarker></NextUploadIdMarker>" in out
    )
    assert "<Key>k%20%C3%A9</Key>" in out
    assert "<CommonPrefixes><Prefix>p%20%C3%A9/</Prefix></CommonPrefixes>" in out
    assert "<Delimiter>/</Delimiter>" in out


def version(etag: str, size: int, meta: tuple[tuple[str, str], ...] = ()) -> ObjectVersion:
    return ObjectVersion("bk", "k", "v", "f", size, 1.0, etag=etag, user_metadata=meta)


def test_part_sizes_round_trip_and_ranges() -> None:
    sizes = [8, 8, 8, 5, 5, 3]
    assert part_numbers.encode(sizes) == "8*3,5*2,3"
    assert part_numbers.decode("8*3,5*2,3") == sizes
    meta = part_numbers.with_part_sizes((("owner", "me"),), sizes)
    v = version("abc-6", sum(sizes), meta)
    rng = part_numbers.part_range(v, 4)
    assert rng is not None
    assert (rng.start, rng.end, rng.size) == (24, 28, 37)
    with pytest.raises(S3Error) as exc:
        part_numbers.part_range(v, 7)
    assert (exc.value.code, exc.value.status) == ("InvalidPartNumber", 416)
    assert part_numbers.part_range(version("0" * 32, 10), 1) is None  # one piece: all of it


def test_part_sizes_that_do_not_fit_are_left_out() -> None:
    mine = (("note", "x" * (MAX_USER_METADATA_BYTES - 40)),)
    sizes = list(range(1, 40))
    assert part_numbers.with_part_sizes(mine, sizes) == mine
    v = version("abc-39", sum(sizes), mine)
    with pytest.raises(S3Error) as exc:
        part_numbers.part_range(v, 2)
    assert exc.value.status == 501
    assert part_numbers.part_range(version("abc-1", 5, mine), 1) is None  # one part: all


def test_part_checksums_are_kept_when_they_fit_and_answered_per_part() -> None:
    meta = part_numbers.with_part_checksums((("owner", "me"),), "crc32", ["AAAAAQ==", "AAAAAg=="])
    v = version("abc-2", 10, meta)
    assert part_numbers.part_checksum(v, 2) == {
        "x-amz-checksum-crc32": "AAAAAg==",
        "x-amz-checksum-type": "COMPOSITE",
    }
    assert part_numbers.part_checksum(v, 3) == {}
    assert part_numbers.part_checksum(version("abc-2", 10), 1) == {}  # not kept
    crowded = (("owner", "x" * 2000),)
    assert part_numbers.with_part_checksums(crowded, "crc32", ["AAAAAQ=="] * 20) == crowded
    assert part_numbers.with_part_checksums(crowded, "", []) == crowded
