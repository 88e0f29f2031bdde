"""Identifiers: parse and validate every id before it reaches a path, a URL or a query.

- ``ChunkId``: lowercase hex SHA-256 of the chunk bytes (64 characters).
- ``FileId``: a canonical lowercase UUID (the API assigns it).
- ``NodeId``: 1-64 characters of ``[A-Za-z0-9._-]``, not starting with a dot.
- ``Tenant``: 1-63 characters of ``[a-z0-9_-]``, starting with a letter or digit.

Standard library only.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
import uuid
from collections.abc import Sequence
from typing import NewType

from dfs.errors import InvalidRequest

ChunkId = NewType("ChunkId", str)
FileId = NewType("FileId", str)
NodeId = NewType("NodeId", str)

_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_NODE_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}")
_TENANT_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def parse_chunk_id(value: object, field: str = "chunk_id") -> ChunkId:
    if not isinstance(value, str) or not _SHA256_RE.fullmatch(value):
        raise InvalidRequest(f"{field} must be 64 lowercase hex characters (sha256)")
    return ChunkId(value)


def parse_sha256(value: object, field: str = "sha256") -> str:
    return str(parse_chunk_id(value, field))


def parse_file_id(value: object, field: str = "file_id") -> FileId:
    # the canonical form is what str(uuid.UUID(value)) gives: a match is one, without
    # building a UUID (a batch of uploads checks one file id per chunk)
    if isinstance(value, str) and _UUID_RE.fullmatch(value):
        return FileId(value)
    if not isinstance(value, str) or len(value) != 36:
        raise InvalidRequest(f"{field} must be a UUID")
    try:
        uuid.UUID(value)
    except ValueError:
        raise InvalidRequest(f"{field} must be a UUID") from None
    raise InvalidRequest(f"{field} must be a lowercase canonical UUID")


def parse_node_id(value: object, field: str = "node_id") -> NodeId:
    if not isinstance(value, str) or not _NODE_RE.fullmatch(value):
        raise InvalidRequest(f"{field} must be 1-64 characters of [A-Za-z0-9._-]")
    return NodeId(value)


def parse_tenant(value: object, field: str = "tenant") -> str:
    if not isinstance(value, str) or not _TENANT_RE.fullmatch(value):
        raise InvalidRequest(f"{field} must be 1-63 characters of [a-z0-9_-]")
    return value


def sha256_hex(data: bytes | bytearray | memoryview) -> ChunkId:
    """The id content addressing gives ``data``: its lowercase hex SHA-256."""
    return ChunkId(hashlib.sha256(data).hexdigest())


def sha256_hex_parts(parts: Sequence[bytes | bytearray | memoryview]) -> ChunkId:
    """``sha256_hex`` of the parts' bytes end to end, without joining them."""
    if len(parts) == 1:
        return sha256_hex(parts[0])
    h = hashlib.sha256()
    for part in parts:
        h.update(part)
    return ChunkId(h.hexdigest())


def new_file_id() -> FileId:
    """One file id, as ``new_file_ids`` makes them."""
    return new_file_ids(1)[0]


def new_file_ids(n: int) -> list[FileId]:
    """``n`` file ids: version 7 UUIDs (RFC 9562) from one clock reading and one read of the
    system's random source (a batch of small files asks for thousands).

    The first 48 bits are the Unix time in milliseconds and the next 12 the id's place in its
    batch, so ids made close in time sort close together: each new file's rows then land on
    the same few pages of the metadata store's indexes keyed by file id, where random (version
    4) ids dirtied a page of their own in each index once the tables were large, and a
    backup's inserts and commit grew slower with every file already stored (measured: see
    bench/README.md, "Backup and restore per file"). 62 random bits keep ids unique and
    unguessable. An id tells when its file was made, as the file's ``created_at`` does.
    """
    # by hand: ``str(uuid.UUID(...))`` makes the same strings but costs about four times as
    # much (measured), and a small-file backup asks for thousands
    ms = f"{time.time_ns() // 1_000_000 & 0xFFFF_FFFF_FFFF:012x}"
    head = f"{ms[:8]}-{ms[8:]}-7"
    raw = bytearray(os.urandom(8 * n))
    out = []
    for i in range(n):
        raw[8 * i] = (raw[8 * i] & 0x3F) | 0x80  # RFC 9562 variant
        h = raw[8 * i : 8 * i + 8].hex()
        out.append(FileId(f"{head}{i & 0xFFF:03x}-{h[:4]}-{h[4:]}"))
    return out


def short(value: str) -> str:
    """A short form for logs."""
    return value[:12]
