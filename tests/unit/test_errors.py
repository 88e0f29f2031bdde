"""The error tree: wire codes round-trip, unknown codes map by status, exit codes by family."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import dfs
from dfs import errors
from dfs.client import cli_output
from dfs.errors import (
    AuthError,
    BucketExists,
    BucketNotEmpty,
    BucketNotFound,
    Busy,
    ChunkNotFound,
    ConfigError,
    Conflict,
    ContentNotStored,
    DfsError,
    EtagMismatch,
    FileChanged,
    FileNotFound,
    Forbidden,
    IncompleteUpload,
    InsufficientStorage,
    IntegrityError,
    InvalidRequest,
    KeyExists,
    KeyNotFound,
    NodeNotFound,
    NotFound,
    PayloadTooLarge,
    ReplicationError,
    RequestTimeout,
    SourceChanged,
    Unavailable,
    Unreachable,
    UnsupportedMediaType,
    UploadNotFound,
    from_body,
)

WIRE_CLASSES: list[type[DfsError]] = [
    DfsError,
    InvalidRequest,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedMediaType,
    AuthError,
    Forbidden,
    NotFound,
    ChunkNotFound,
    FileNotFound,
    NodeNotFound,
    BucketNotFound,
    KeyNotFound,
    ContentNotStored,
    UploadNotFound,
    Conflict,
    IncompleteUpload,
    BucketExists,
    KeyExists,
    EtagMismatch,
    BucketNotEmpty,
    IntegrityError,
    InsufficientStorage,
    ReplicationError,
    Unavailable,
    Busy,
]

# The exit-code table of dfs-client (the docstring of dfs/client/cli.py): one code per family.
EXIT_FAMILIES: dict[int, set[type[DfsError]]] = {
    1: {DfsError},
    2: {InvalidRequest, PayloadTooLarge, RequestTimeout, UnsupportedMediaType},
    3: {AuthError, Forbidden},
    4: {
        NotFound,
        ChunkNotFound,
        FileNotFound,
        NodeNotFound,
        BucketNotFound,
        KeyNotFound,
        ContentNotStored,
        UploadNotFound,
    },
    5: {Conflict, IncompleteUpload, BucketExists, KeyExists, EtagMismatch, BucketNotEmpty},
    6: {IntegrityError},
    7: {Unavailable, Busy, ReplicationError, InsufficientStorage},
}


def all_subclasses(cls: type[DfsError]) -> set[type[DfsError]]:
    out = {cls}
    for sub in cls.__subclasses__():
        out |= all_subclasses(sub)
    return out


def test_the_lists_here_cover_the_whole_tree() -> None:
    # client-side only: a configuration error, a request no answer came for, and a file
    # that changed while it was uploaded; server-side only: a copy's source written meanwhile
    assert all_subclasses(DfsError) == {
        *WIRE_CLASSES,
        ConfigError,
        Unreachable,
        FileChanged,
        SourceChanged,
    }
    assert set(errors.BY_CODE.values()) == set(WIRE_CLASSES)


def test_codes_are_unique() -> None:
    # the client-side Unreachable (no answer came) and FileChanged go on the wire as their
    # parents, Unavailable and IntegrityError
    client_side = {Unreachable, FileChanged, SourceChanged}
    codes = [cls.code for cls in all_subclasses(DfsError) if cls not in client_side]
    assert len(codes) == len(set(codes))
    assert Unreachable.code == Unavailable.code
    assert type(from_body(503, Unreachable("x").to_body())) is Unavailable
    assert FileChanged.code == IntegrityError.code
    assert type(from_body(422, FileChanged().to_body())) is IntegrityError
    assert SourceChanged.code == Conflict.code
    assert type(from_body(409, SourceChanged("x").to_body())) is Conflict


@pytest.mark.parametrize("cls", WIRE_CLASSES, ids=lambda c: c.__name__)
def test_round_trip_through_the_wire_body(cls: type[DfsError]) -> None:
    original = cls("chunk 'ab\u00e9' is \"odd\": 3 < 4")
    body = original.to_body()
    assert body == {"error": {"code": cls.code, "message": original.message}}
    back = from_body(cls.http_status, body)
    assert type(back) is cls
    assert back.message == original.message
    assert str(back) == str(original)
    assert back.details == {}


@pytest.mark.parametrize("cls", WIRE_CLASSES, ids=lambda c: c.__name__)
def test_round_trip_keeps_details(cls: type[DfsError]) -> None:
    original = cls("missing", chunk_ids=["a", "b"], count=2)
    back = from_body(cls.http_status, original.to_body())
    assert type(back) is cls
    assert back.details == {"chunk_ids": ["a", "b"], "count": 2}
    assert back.to_body() == original.to_body()


def test_round_trip_does_not_depend_on_the_status_when_the_code_is_known() -> None:
    back = from_body(500, ChunkNotFound("gone").to_body())
    assert type(back) is ChunkNotFound


@pytest.mark.parametrize("key", ["message", "self", "details"])
def test_details_from_the_peer_cannot_collide_with_constructor_arguments(key: str) -> None:
    body = {"error": {"code": "not_found", "message": "m", "details": {key: "x"}}}
    back = from_body(404, body)
    assert type(back) is NotFound
    assert back.message == "m"
    assert back.details == {key: "x"}


def test_config_error_names_the_variable_and_travels_as_invalid_request() -> None:
    exc = ConfigError("NODE_PORT", "abc", "must be a TCP port")
    assert exc.field == "NODE_PORT"
    assert exc.message == "NODE_PORT='abc': must be a TCP port"
    assert isinstance(exc, InvalidRequest)
    # a start-up error, never sent by a server on purpose; if it is, the client sees a 400
    back = from_body(exc.http_status, exc.to_body())
    assert type(back) is InvalidRequest
    assert back.message == exc.message


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, InvalidRequest),
        (401, AuthError),
        (404, NotFound),
        (409, Conflict),
        (408, RequestTimeout),
        (413, PayloadTooLarge),
        (415, UnsupportedMediaType),
        (422, IntegrityError),
        (500, DfsError),
        (502, ReplicationError),
        (503, Unavailable),
        (507, InsufficientStorage),
        (418, DfsError),
        (200, DfsError),
    ],
)
def test_unknown_code_maps_by_status(status: int, cls: type[DfsError]) -> None:
    back = from_body(status, {"error": {"code": "from_a_newer_server", "message": "hi"}})
    assert type(back) is cls
    assert back.message == "hi"


@pytest.mark.parametrize(
    "body",
    [None, "Bad Gateway", b"<html>", ["error"], 42, {}, {"error": "oops"}, {"error": None}],
)
def test_non_error_body_gives_the_http_status_as_message(body: object) -> None:
    back = from_body(503, body)
    assert type(back) is Unavailable
    assert back.message == "HTTP 503"
    back = from_body(520, body)
    assert type(back) is DfsError
    assert back.message == "HTTP 520"


def test_partial_error_body() -> None:
    back = from_body(404, {"error": {"message": "no such file"}})
    assert type(back) is NotFound
    assert back.message == "no such file"
    back = from_body(409, {"error": {"code": "incomplete_upload", "details": ["not", "a dict"]}})
    assert type(back) is IncompleteUpload
    assert back.message == "HTTP 409"
    assert back.details == {}


def test_http_status_of_each_class() -> None:
    for cls in WIRE_CLASSES:
        assert 400 <= cls.http_status <= 599, cls
    # subclasses keep their family's status unless they are a distinct HTTP condition
    assert ChunkNotFound.http_status == FileNotFound.http_status == NotFound.http_status == 404
    assert IncompleteUpload.http_status == Conflict.http_status == 409


def test_exit_codes_by_family() -> None:
    assert set().union(*EXIT_FAMILIES.values()) == set(WIRE_CLASSES)
    for code, family in EXIT_FAMILIES.items():
        for cls in family:
            assert cls.exit_code == code, cls
    assert ConfigError.exit_code == 78  # EX_CONFIG, for the servers; not a client family
    assert Unreachable.exit_code == Unavailable.exit_code  # the family of what it refines
    assert 78 not in EXIT_FAMILIES


def test_exit_code_tables_of_the_cli_match() -> None:
    # `dfs-client --help` shows cli_output's table (no click in this module); docs/cli.md the same
    from_help = {int(m) for m in re.findall(r"^(\d+)\s", cli_output.EXIT_CODES, re.MULTILINE)}
    docs = (Path(dfs.__file__).parent.parent / "docs" / "cli.md").read_text(encoding="utf-8")
    from_docs = {int(m) for m in re.findall(r"^\|\s*(\d+)\s*\|", docs, re.MULTILINE)}
    # besides the error families: 10 (check: not stored), 23 (some files skipped), 130 (Ctrl-C)
    assert from_help == from_docs == {0, *EXIT_FAMILIES, 10, 23, 130}
    assert {cls.exit_code for cls in WIRE_CLASSES} == set(EXIT_FAMILIES)


def test_python_exception_bases() -> None:
    # callers may catch the built-in kinds
    assert issubclass(InvalidRequest, ValueError)
    assert issubclass(NotFound, LookupError)
    assert issubclass(Unavailable, ConnectionError)
    with pytest.raises(LookupError):
        raise ChunkNotFound("x")
