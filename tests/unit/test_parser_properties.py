"""Property-based tests (hypothesis) for every parser that meets outside input.

Each parser either returns a value that round-trips to its canonical form, or raises the
one error type its callers handle (InvalidRequest / ConfigError / AuthError): never another
exception, which a server would turn into a 500.
"""

from __future__ import annotations

import hashlib
import string
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dfs import auth, protocol
from dfs.api.bodies import UploadRequest
from dfs.chunking import ChunkerProfile
from dfs.chunkstore.fs import FsChunkStore
from dfs.client.local_files import safe_basename
from dfs.config import load_api_config, load_node_config
from dfs.errors import AuthError, ConfigError, InvalidRequest
from dfs.ids import ChunkId, parse_chunk_id, parse_file_id, parse_node_id, parse_tenant
from dfs.meta.sqlite_codec import pack_file_id, unpack_file_id

HEX = "0123456789abcdef"
sha256s = st.text(HEX, min_size=64, max_size=64)
junk = st.one_of(
    st.text(),
    st.text(string.printable),
    st.binary().map(lambda b: b.decode("latin-1")),
    st.integers(),
    st.none(),
    st.lists(st.text(), max_size=3),
    st.floats(allow_nan=True),
    st.booleans(),
)
SECRET = b"property-test-cluster-secret-0123456789"


# --- ids ----------------------------------------------------------------------------------


@given(sha256s)
def test_chunk_ids_round_trip(value: str) -> None:
    assert parse_chunk_id(value) == value


@given(junk)
def test_chunk_id_parse_accepts_only_lowercase_hex(value: Any) -> None:
    try:
        parsed = parse_chunk_id(value)
    except InvalidRequest:
        return
    assert isinstance(parsed, str)
    assert len(parsed) == 64
    assert set(parsed) <= set(HEX)


@given(st.uuids())
def test_file_ids_round_trip(value: uuid.UUID) -> None:
    assert parse_file_id(str(value)) == str(value)


@given(st.one_of(junk, st.uuids().map(lambda u: str(u).upper()), st.uuids().map(lambda u: u.hex)))
def test_file_id_parse_accepts_only_canonical_uuids(value: Any) -> None:
    try:
        parsed = parse_file_id(value)
    except InvalidRequest:
        return
    assert str(uuid.UUID(parsed)) == parsed


@given(junk)
def test_node_ids_and_tenants_are_safe_in_paths_urls_and_macs(value: Any) -> None:
    for parse in (parse_node_id, parse_tenant):
        try:
            parsed = parse(value)
        except InvalidRequest:
            continue
        assert parsed not in (".", "..")
        assert not parsed.startswith(".")
        assert not any(c in parsed for c in "/\\\n\r\x00=,|@?#: %")
        assert 1 <= len(parsed) <= 64


@given(st.text(min_size=0, max_size=80))
def test_the_chunk_store_never_builds_a_path_from_a_non_id(value: str) -> None:
    store = FsChunkStore(Path("/nonexistent-root"))
    try:
        path = store.path_of(ChunkId(value))
    except InvalidRequest:
        assert parse_chunk_id_ok(value) is False
        return
    assert path.parent.parent.parent == Path("/nonexistent-root/chunks")
    assert path.name == value


def parse_chunk_id_ok(value: str) -> bool:
    try:
        parse_chunk_id(value)
    except InvalidRequest:
        return False
    return True


@given(st.text(max_size=200), st.uuids())
def test_safe_basename_never_leaves_the_directory(name: str, fallback: uuid.UUID) -> None:
    base = safe_basename(name, str(fallback))
    assert base not in ("", ".", "..")
    assert "/" not in base
    assert "\\" not in base
    assert "\x00" not in base


# --- chunker profiles ---------------------------------------------------------------------


@given(st.one_of(st.text(max_size=40), st.from_regex(r"(fixed|fastcdc)(:[0-9+_ -]{1,9}){1,3}")))
def test_chunker_profiles_parse_to_their_canonical_form(text: str) -> None:
    try:
        profile = ChunkerProfile.parse(text)
    except InvalidRequest:
        return
    assert str(profile) == text  # only canonical spellings are accepted
    assert ChunkerProfile.parse(str(profile)) == profile
    assert protocol.MIN_CHUNK_SIZE <= profile.max_size <= protocol.MAX_CHUNK_SIZE
    assert profile.min_size <= profile.avg_size <= profile.max_size


@given(st.integers(protocol.MIN_CHUNK_SIZE, protocol.MAX_CHUNK_SIZE))
def test_every_fixed_size_in_range_is_accepted(size: int) -> None:
    assert ChunkerProfile.parse(f"fixed:{size}").max_size == size


# --- configuration ------------------------------------------------------------------------

API_VARS = [
    "DFS_API_HOST",
    "DFS_API_PORT",
    "DFS_META_URL",
    "REPLICATION_FACTOR",
    "REPLICATION_STRATEGY",
    "REPLICATION_TIMEOUT",
    "NODE_HEARTBEAT_TIMEOUT",
    "DFS_ADMIN_TOKEN",
    "DFS_CAPABILITY_TTL",
]
NODE_VARS = [
    "NODE_ID",
    "NODE_PORT",
    "DFS_NODE_HOST",
    "DFS_NODE_ADVERTISE_HOST",
    "DFS_NODE_ZONE",
    "DFS_NODE_CAPACITY",
    "DFS_API_URL",
    "NODE_HEARTBEAT_INTERVAL",
    "NODE_HEARTBEAT_TIMEOUT",
    "REPLICATION_TIMEOUT",
]


def config_error_field(load: Callable[[], object]) -> str | None:
    """The variable a ConfigError names, or None if the configuration loaded."""
    try:
        load()
    except ConfigError as exc:
        return exc.field
    return None


env_values = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=40),
    st.integers(-(10**20), 10**20).map(str),
    st.floats().map(str),
    st.sampled_from(["0", "-1", "inf", "nan", "1e400", " 7 ", "0x10", "sqlite:///", "::"]),
)


@given(st.sampled_from(API_VARS), env_values)
def test_api_config_either_loads_or_names_the_variable(name: str, value: str) -> None:
    env = {"DFS_CLUSTER_SECRET": SECRET.decode(), "DFS_DATA_DIR": "/tmp/dfs-prop", name: value}
    assert config_error_field(lambda: load_api_config(env)) in (None, name)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(NODE_VARS), env_values)
def test_node_config_either_loads_or_names_the_variable(name: str, value: str) -> None:
    env = {
        "DFS_CLUSTER_SECRET": SECRET.decode(),
        "DFS_DATA_DIR": "/tmp/dfs-prop",
        "DFS_META_URL": "sqlite:////tmp/dfs-prop/meta.db",
        name: value,
    }
    field = config_error_field(lambda: load_node_config(env, lambda _: "node-x"))
    # cross-field checks name the other variable: an interval at or above the (default)
    # timeout is reported on the timeout, an unspecified bind address (0.0.0.0) on the
    # advertise host it would otherwise default to
    related = {
        "NODE_HEARTBEAT_INTERVAL": "NODE_HEARTBEAT_TIMEOUT",
        "NODE_HEARTBEAT_TIMEOUT": "NODE_HEARTBEAT_TIMEOUT",
        "DFS_NODE_HOST": "DFS_NODE_ADVERTISE_HOST",
    }
    assert field in (None, name, related.get(name, name))


# --- capabilities and receipts ------------------------------------------------------------

ops = st.sampled_from([auth.OP_PUT, auth.OP_GET, auth.OP_REPLICATE, auth.OP_HAS])
node_ids = st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True)


@given(ops, sha256s, node_ids, st.text(max_size=30).filter(lambda s: "\n" not in s))
def test_a_capability_grants_exactly_what_it_names(
    op: str, chunk_id: str, node_id: str, extra: str
) -> None:
    cap = auth.mint(SECRET, op, chunk_id, node_id, extra=extra, now=1000.0)
    auth.check(SECRET, cap, op, chunk_id, node_id, extra=extra, now=1000.0)
    for wrong in (
        dict(op=auth.OP_STATUS),
        dict(chunk_id=chunk_id[::-1] if chunk_id[::-1] != chunk_id else "0" * 63 + "1"),
        dict(node_id=node_id + "x"),
        dict(extra=extra + "x"),
    ):
        args = {"op": op, "chunk_id": chunk_id, "node_id": node_id, "extra": extra, **wrong}
        with pytest.raises(AuthError):
            auth.check(
                SECRET, cap, args["op"], args["chunk_id"], args["node_id"],
                extra=args["extra"], now=1000.0,
            )  # fmt: skip
    with pytest.raises(AuthError):  # expired
        auth.check(SECRET, cap, op, chunk_id, node_id, extra=extra, now=1000.0 + 10_000)
    with pytest.raises(AuthError):  # another cluster's secret
        auth.check(SECRET + b"!", cap, op, chunk_id, node_id, extra=extra, now=1000.0)


@given(junk)
def test_capability_strings_from_strangers_are_refused(cap: Any) -> None:
    assume(cap is None or isinstance(cap, str))
    with pytest.raises(AuthError):
        auth.check(SECRET, cap, auth.OP_GET, "a" * 64, "node1")


def test_a_capability_has_exactly_one_wire_form() -> None:
    """Issue 12: ``0<expiry>`` and non-ASCII digits were accepted (``"²".isdigit()`` is true,
    and ``int("²")`` raised: a 500). Only the canonical string grants anything."""
    cap = auth.mint(SECRET, auth.OP_GET, "a" * 64, "node1", now=1000.0)
    auth.check(SECRET, cap, auth.OP_GET, "a" * 64, "node1", now=1000.0)
    expires, _, mac = cap.partition(".")
    for variant in (
        f"0{expires}.{mac}",
        f"+{expires}.{mac}",
        f"{expires}.{mac.upper()}",
        f" {expires}.{mac}",
        f"{expires}.{mac}\n",
        f"{expires[:-1]}\u00b2.{mac}",
        f"{expires}\u0661.{mac}",
    ):
        with pytest.raises(AuthError, match="malformed"):
            auth.check(SECRET, variant, auth.OP_GET, "a" * 64, "node1", now=1000.0)


@given(st.uuids(), sha256s, junk)
def test_receipts_are_bound_to_file_and_chunk(
    file_id: uuid.UUID, chunk_id: str, junk_value: Any
) -> None:
    fid = str(file_id)
    receipt = auth.mint_receipt(SECRET, fid, chunk_id)
    assert auth.receipt_ok(SECRET, receipt, fid, chunk_id)
    assert not auth.receipt_ok(SECRET, receipt, str(uuid.UUID(int=file_id.int ^ 1)), chunk_id)
    assert not auth.receipt_ok(SECRET, junk_value, fid, chunk_id)


# --- UploadRequest.parse ------------------------------------------------------------------

chunk_entries = st.lists(
    st.fixed_dictionaries({"sha256": sha256s, "size": st.integers(1, protocol.MAX_CHUNK_SIZE)}),
    max_size=20,
)


@given(
    st.text(min_size=1, max_size=50).filter(lambda s: "\x00" not in s),
    chunk_entries,
    st.sampled_from(["fixed:65536", "fastcdc:262144:1048576:4194304"]),
)
def test_valid_upload_requests_parse_into_a_contiguous_manifest(
    name: str, chunks: list[dict[str, Any]], chunker: str
) -> None:
    body = {
        "name": name,
        "size": sum(c["size"] for c in chunks),
        "sha256": hashlib.sha256(name.encode()).hexdigest(),
        "chunker": chunker,
        "chunks": chunks,
    }
    req = UploadRequest.parse(body)
    offset = 0
    for entry, chunk in zip(req.manifest, chunks, strict=True):
        assert (entry.offset, entry.size, entry.chunk_id) == (
            offset,
            chunk["size"],
            chunk["sha256"],
        )
        offset += entry.size
    assert offset == req.size


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20)),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "name": json_values,
            "size": st.one_of(st.integers(), json_values),
            "sha256": st.one_of(sha256s, json_values),
            "chunker": st.one_of(st.just("fixed:4096"), json_values),
            "chunks": st.one_of(chunk_entries, json_values),
        },
    )
)
def test_hostile_upload_requests_are_refused_cleanly(body: dict[str, Any]) -> None:
    try:
        req = UploadRequest.parse(body)
    except InvalidRequest:
        return
    assert req.size == sum(e.size for e in req.manifest)


# --- the forward header of a store-chunk request ------------------------------------------


@given(
    st.lists(
        st.tuples(node_ids, st.from_regex(r"http://127\.0\.0\.1:[1-9][0-9]{0,4}", fullmatch=True)),
        max_size=8,
    )
)
def test_forward_headers_round_trip(targets: list[tuple[str, str]]) -> None:
    assert protocol.parse_forward(protocol.forward_header(targets)) == targets


@given(st.text(max_size=300))
def test_forward_header_parse_yields_only_safe_targets(header: str) -> None:
    try:
        targets = protocol.parse_forward(header)
    except InvalidRequest:
        return
    assert len(targets) <= 8
    for node_id, url in targets:
        parse_node_id(node_id)
        assert url.startswith(("http://", "https://"))
        assert not any(c in url for c in " @?#|,")


def test_a_deeply_nested_store_chunks_index_is_a_clean_refusal() -> None:
    """Issue 12: a nested index raised RecursionError inside json.loads, answered 500."""
    index = b"[" * 200_000 + b"]" * 200_000
    body = len(index).to_bytes(4, "big") + index
    with pytest.raises(InvalidRequest, match="not JSON"):
        protocol.unpack_chunks(body)


def _pack_file_id_by_uuid(value: str) -> bytes | str:
    """What ``pack_file_id`` answered when it parsed with ``uuid.UUID``."""
    try:
        u = uuid.UUID(value)
    except ValueError:
        return value
    return u.bytes if str(u) == value else value


@given(
    st.one_of(
        st.uuids().map(str),
        st.uuids().map(lambda u: str(u).upper()),
        st.uuids().map(lambda u: u.hex),
        st.uuids().map(lambda u: "{" + str(u) + "}"),
        st.uuids().map(lambda u: str(u) + "\n"),
        st.text(max_size=40),
    )
)
def test_file_ids_pack_as_uuid_parsing_did(value: str) -> None:
    """The pattern and ``bytes.fromhex`` give uuid.UUID's answer, and unpack inverts it."""
    packed = pack_file_id(value)
    assert packed == _pack_file_id_by_uuid(value)
    assert unpack_file_id(packed) == value


@given(st.lists(st.binary(max_size=300), min_size=1, max_size=12))
def test_a_pack_sent_as_its_index_then_its_chunks_is_the_joined_body(payloads: list[bytes]) -> None:
    """What a sender from files writes (``pack_index``, then each chunk's bytes) is the body
    ``pack_chunks`` builds, and it unpacks to the chunks."""
    entries = [{"chunk_id": hashlib.sha256(p).hexdigest(), "file_id": "f"} for p in payloads]
    body = protocol.pack_index(entries, [len(p) for p in payloads]) + b"".join(payloads)
    assert body == protocol.pack_chunks(entries, payloads)
    assert [bytes(v) for _e, v in protocol.unpack_chunks(body)] == payloads
