"""Which read errors lose a copy, and keeping a bad pack record in ``quarantine/``, durably,
before the record is forgotten.

A read that fails with one of ``MEDIUM_ERRORS`` (a bad sector) means the copy is gone, as
rot does: ``PackSet`` (``dfs.chunkstore.packs``) and ``FsChunkStore`` quarantine it, so
repair is told; any other error says nothing about the copy, which is kept.

``PackSet`` tombstones a record that fails verification or cannot be read, so it is never
served again. The quarantine file is what tells the rest of the system that this node lost
the copy: ``quarantined()`` lists ids with a file there and no good copy, and repair copies
them back. So the file must exist, and be durable, before the tombstone is: a tombstone
without it loses the copy silently. When the record's bytes cannot be kept (a full disk: a
payload is up to the pack threshold; or they could not be read at all), an empty file of the
same name still marks the id. If not even that can be created, the caller must not tombstone
the record (it stays held, and a later read or scrub tries again).

Blocking, like the rest of the pack store; standard library, ``dfs.fsutil`` and ``dfs.ids``.
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

from dfs.fsutil import Buffer, fsync_dir, write_all
from dfs.ids import ChunkId

MEDIUM_ERRORS = frozenset({errno.EIO, errno.EUCLEAN, errno.EBADMSG})
"""Read errors that mean the bytes under a copy are gone (a bad sector, a file system's own
checksum failing). Any other (out of descriptors, say) tells nothing about the copy."""


def keep(directory: Path, chunk_id: ChunkId, payload: Buffer | None) -> bool:
    """Write ``quarantine/<id>.<time>`` holding ``payload`` (None: the bytes could not be
    read), or, if that fails, empty; fsync it and the directory. False if neither could be
    made durable: the caller must then keep the record (see the module docstring)."""
    dest = directory / f"{chunk_id}.{int(time.time())}"
    for data in (payload, b"") if payload else (b"",):
        try:
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                write_all(fd, [data])
                os.fsync(fd)
            finally:
                os.close(fd)
            fsync_dir(directory)
        except OSError:
            continue  # the bytes did not fit: an empty marker may still
        return True
    return False
