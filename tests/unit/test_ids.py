"""Identifier parsing: the gate in front of every path, URL and query."""

from __future__ import annotations

import hashlib
import time
import uuid

import pytest

from dfs.errors import InvalidRequest
from dfs.ids import (
    new_file_id,
    new_file_ids,
    parse_chunk_id,
    parse_file_id,
    parse_node_id,
    parse_sha256,
    short,
)

SHA = hashlib.sha256(b"x").hexdigest()
UUID = "0f8fad5b-d9cb-469f-a165-70867728950e"

NOT_STRINGS = [None, 1, 1.5, b"abc", [SHA], {"id": SHA}, object()]
TRAVERSAL = ["", ".", "..", "../", "../x", "a/b", "/a", "a\\b", "a\x00b", "~", "a b", "a\n"]


@pytest.mark.parametrize("value", [SHA, "0" * 64, "f" * 64])
def test_chunk_id_accepts_lowercase_sha256(value: str) -> None:
    assert parse_chunk_id(value) == value
    assert parse_sha256(value) == value


@pytest.mark.parametrize(
    "value",
    [
        *TRAVERSAL,
        *NOT_STRINGS,
        SHA.upper(),
        SHA[:-1] + "A",
        SHA[:63],
        SHA + "0",
        SHA[:62] + "g0",
        f"{SHA}\n",
        f" {SHA}",
        "../" + SHA[3:],
        SHA[:2] + "/" + SHA[3:],
        "\uff10" * 64,  # fullwidth digits
    ],
)
def test_chunk_id_rejects(value: object) -> None:
    with pytest.raises(InvalidRequest, match="chunk_id"):
        parse_chunk_id(value)


def test_field_name_is_in_the_message() -> None:
    with pytest.raises(InvalidRequest, match="sha256"):
        parse_sha256("nope")
    with pytest.raises(InvalidRequest, match=r"body\.ids"):
        parse_chunk_id("nope", "body.ids")


def test_file_id_accepts_canonical_uuid() -> None:
    assert parse_file_id(UUID) == UUID
    fresh = new_file_id()
    assert parse_file_id(fresh) == fresh
    assert uuid.UUID(fresh).version == 7


@pytest.mark.parametrize(
    "value",
    [
        *TRAVERSAL,
        *NOT_STRINGS,
        UUID.upper(),
        "{" + UUID + "}",
        "urn:uuid:" + UUID,
        UUID.replace("-", ""),
        UUID[:-1],
        UUID + "0",
        UUID[:35] + "g",
        "0f8fad5bd9cb-469f-a165-70867728950e-",  # 36 chars, hyphens misplaced
        "../../../../../../../../../etc/pass",
        uuid.UUID(UUID),
    ],
)
def test_file_id_rejects(value: object) -> None:
    with pytest.raises(InvalidRequest, match="file_id"):
        parse_file_id(value)


@pytest.mark.parametrize("value", ["n1", "node-1", "node_1", "a", "A.b-c_d", "1", "x" * 64, "a.."])
def test_node_id_accepts(value: str) -> None:
    assert parse_node_id(value) == value


@pytest.mark.parametrize(
    "value",
    [*TRAVERSAL, *NOT_STRINGS, ".hidden", "x" * 65, "n\u00e9", "n:1", "n%2f", "n/../x"],
)
def test_node_id_rejects(value: object) -> None:
    with pytest.raises(InvalidRequest, match="node_id"):
        parse_node_id(value)


def test_short() -> None:
    assert short(SHA) == SHA[:12]
    assert short("n1") == "n1"


def test_new_file_ids_are_canonical_time_ordered_uuids() -> None:
    before = time.time_ns() // 1_000_000
    ids = new_file_ids(5000)  # more than the 4,096 places the 12 batch bits count
    after = time.time_ns() // 1_000_000
    assert len(ids) == 5000
    assert len(set(ids)) == 5000
    for f in ids:
        assert parse_file_id(f) == f  # canonical, lowercase
        parsed = uuid.UUID(f)
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
        assert before <= parsed.int >> 80 <= after  # the first 48 bits: Unix milliseconds
    # one batch sorts in the order it was made (within each 4,096)
    assert ids[:4096] == sorted(ids[:4096])
    # later batches sort after earlier ones (the clock moved on)
    first = new_file_id()
    made_at = uuid.UUID(first).int >> 80
    deadline = time.monotonic() + 5
    # ids of one millisecond are ordered by chance only: wait for the clock to tick
    while time.time_ns() // 1_000_000 <= made_at and time.monotonic() < deadline:
        pass
    assert new_file_id() > first
    assert new_file_ids(0) == []
