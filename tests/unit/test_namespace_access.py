"""``dfs.api.access`` (who may do what with a bucket or object) and the CLI's remote-path
grammar (``dfs.client.namespace``)."""

from __future__ import annotations

import dataclasses

import pytest

from dfs.api import access
from dfs.api.bodies import Principal
from dfs.client.namespace import is_file_id, is_remote, parse_remote
from dfs.errors import BucketNotFound, Forbidden, InvalidRequest, KeyNotFound
from dfs.meta.namespace import BucketRecord, ObjectVersion

OWNER, READER, WRITER, STRANGER = (Principal(t, "user") for t in ("own", "rd", "rw", "x"))
BUCKET = BucketRecord("b", "own", grants=(("rd", "read"), ("rw", "read-write")))
OBJ = ObjectVersion("b", "k", "null", "f", 1, 0.0)


def test_owner_and_grants() -> None:
    for who in (OWNER, READER, WRITER):
        assert access.can_list(who, BUCKET)
        assert access.can_read(who, BUCKET, OBJ)
    assert access.can_write(OWNER, BUCKET)
    assert access.can_write(WRITER, BUCKET)
    assert not access.can_write(READER, BUCKET)
    for who in (STRANGER, None):
        assert not access.can_list(who, BUCKET)
        assert not access.can_read(who, BUCKET, OBJ)
        assert not access.can_write(who, BUCKET)


def test_refusals_look_missing_unless_the_caller_can_see_the_bucket() -> None:
    with pytest.raises(KeyNotFound):
        access.require_read(STRANGER, BUCKET, OBJ)
    with pytest.raises(BucketNotFound):
        access.require_write(STRANGER, BUCKET)
    with pytest.raises(Forbidden):
        access.require_write(READER, BUCKET)
    with pytest.raises(Forbidden):
        access.require_owner(WRITER, BUCKET)
    with pytest.raises(BucketNotFound):
        access.require_owner(None, BUCKET)


def test_public_and_shared() -> None:
    public_bucket = dataclasses.replace(BUCKET, access="public-read")
    assert access.can_list(None, public_bucket)
    assert not access.can_write(None, public_bucket)
    public_obj = dataclasses.replace(OBJ, access="public-read")
    assert access.can_read(None, BUCKET, public_obj)
    assert not access.can_list(None, BUCKET)
    shared = dataclasses.replace(OBJ, access="shared", shared_with=("x",))
    assert access.can_read(STRANGER, BUCKET, shared)
    assert not access.can_read(None, BUCKET, shared)
    assert not access.can_read(Principal("y", "user"), BUCKET, shared)


def test_remote_path_grammar() -> None:
    assert is_remote("photos/")
    assert is_remote("photos/2024/a.jpg")
    assert not is_remote("photos")
    assert not is_remote("./photos/")
    assert not is_remote("/tmp/x")
    assert is_file_id("6f1c2d3e-0000-4000-8000-00000000abcd")
    assert not is_file_id("photos/")
    assert parse_remote("photos/") == ("photos", "")
    assert parse_remote("photos/a/b") == ("photos", "a/b")
    with pytest.raises(InvalidRequest):
        parse_remote("photos")
