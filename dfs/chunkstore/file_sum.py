"""A chunk file's fast checksum, kept in an extended attribute: what a node checks when it
serves a large chunk, instead of re-hashing it with SHA-256.

Why a fast checksum is enough there (as for pack records, ``dfs.chunkstore.pack_reads``):
every reader of a chunk a node serves verifies its SHA-256 itself (clients, the API's proxy
and signed downloads, a repair target or replica storing a copy), so the node's check on read
does not stand between a reader and wrong bytes; it is there so that a node does not keep
serving rot, and finds it. An XXH3-64 of the bytes written finds rot as well as a re-hash
does for that purpose, at a seventh of the CPU (XXH3 ~10 GiB/s here, SHA-256 ~1.4): of a
large download's ~5 CPU-s per GiB, ~0.6 were the node's re-hash. ``scrub`` still re-hashes
every copy with SHA-256, so rot the checksum would miss is still found there.

The checksum is the attribute ``user.dfs.xxh3`` (8 bytes, big-endian) of the chunk file,
set on the temp file before its fsync and rename, so it is durable and atomic with the bytes.
A file without it (written before this, or on a file system without user attributes) is
checked with SHA-256, and a read that verified it that way adds the attribute, best effort.
A checksum that does not match sends the read to SHA-256, which decides: a good copy gets its
attribute rewritten, a bad one is quarantined as before. Standard library and xxhash only.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence

import xxhash

from dfs.chunkstore.base import Buffer

ATTRIBUTE = "user.dfs.xxh3"

_UNSUPPORTED = frozenset({errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM, errno.EACCES})
"""setxattr errors that mean "no user attributes here" (file system, mount or policy)."""
_ABSENT = frozenset({errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP})


def of(parts: Sequence[Buffer]) -> bytes:
    """The checksum of ``parts`` end to end."""
    h = xxhash.xxh3_64()
    for p in parts:
        h.update(p)
    return h.digest()


def stored(fd: int) -> bytes | None:
    """The checksum kept with the open chunk file, or None when it has none."""
    try:
        return os.getxattr(fd, ATTRIBUTE)
    except OSError as exc:
        if exc.errno in _ABSENT:
            return None
        raise


def keep(fd: int, digest: bytes) -> bool:
    """Keep ``digest`` with the open chunk file; False when this file system (or its mount)
    takes no user attributes, so the caller can stop trying."""
    try:
        os.setxattr(fd, ATTRIBUTE, digest)
    except OSError as exc:
        if exc.errno in _UNSUPPORTED:
            return False
        raise
    return True
