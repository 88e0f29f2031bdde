"""``FsChunkStore``'s fast checksum of a chunk file (``dfs.chunkstore.file_sum``): written with
the file, checked by reads instead of SHA-256, added to older files by a read that re-hashed
them, never trusted over SHA-256 when it disagrees, and bypassed by scrub. On a file system
without user attributes the store keeps working with SHA-256 on every read."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from dfs.chunkstore import file_sum
from dfs.chunkstore import fs as fs_module
from dfs.chunkstore.fs import FsChunkStore
from dfs.errors import ChunkNotFound
from tests.contract.test_chunk_store import chunk


def _count_sha256(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times the store re-hashes a chunk with SHA-256 (calls of its ``sha256_hex``)."""
    calls = [0]
    real: Callable[[bytes], str] = fs_module.sha256_hex

    def counted(data: bytes) -> str:
        calls[0] += 1
        return real(data)

    monkeypatch.setattr(fs_module, "sha256_hex", counted)
    return calls


def _attribute(path: Path) -> bytes | None:
    try:
        return os.getxattr(path, file_sum.ATTRIBUTE)
    except OSError as exc:
        if exc.errno == errno.ENODATA:
            return None
        raise


async def test_a_written_chunk_file_keeps_the_checksum_of_its_bytes(tmp_path: Path) -> None:
    store = await FsChunkStore.open(tmp_path)
    cid, data = chunk(1)
    await store.put_parts(cid, [data[:100], data[100:]])
    assert _attribute(store.path_of(cid)) == file_sum.of([data])


async def test_a_read_checks_the_checksum_and_does_not_rehash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await FsChunkStore.open(tmp_path)
    cid, data = chunk(2)
    await store.put(cid, data)
    rehashed = _count_sha256(monkeypatch)
    assert await store.get(cid) == data
    assert await store.get_many([cid], 1 << 20) == [data]
    assert rehashed[0] == 0


async def test_a_file_without_a_checksum_is_rehashed_once_and_given_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files written before checksums (or copied in by hand) read as before, with SHA-256;
    the read that verified one adds its checksum, so the next read is cheap."""
    store = await FsChunkStore.open(tmp_path)
    cid, data = chunk(3)
    await store.put(cid, data)
    os.removexattr(store.path_of(cid), file_sum.ATTRIBUTE)
    rehashed = _count_sha256(monkeypatch)
    assert await store.get(cid) == data
    assert rehashed[0] == 1
    assert _attribute(store.path_of(cid)) == file_sum.of([data])
    assert await store.get(cid) == data
    assert rehashed[0] == 1


async def test_a_wrong_checksum_on_good_bytes_is_put_right_not_trusted(tmp_path: Path) -> None:
    store = await FsChunkStore.open(tmp_path)
    cid, data = chunk(4)
    await store.put(cid, data)
    os.setxattr(store.path_of(cid), file_sum.ATTRIBUTE, b"\0" * 8)
    assert await store.get(cid) == data  # SHA-256 decided: the bytes are the chunk's
    assert _attribute(store.path_of(cid)) == file_sum.of([data])
    assert await store.quarantined() == []


async def test_rot_under_a_checksum_is_quarantined_on_read(tmp_path: Path) -> None:
    store = await FsChunkStore.open(tmp_path)
    cid, data = chunk(5)
    await store.put(cid, data)
    path = store.path_of(cid)
    with open(path, "r+b") as f:  # noqa: ASYNC230 - a flipped byte; the old sum stays
        f.seek(len(data) // 2)
        f.write(bytes([data[len(data) // 2] ^ 0x01]))
    with pytest.raises(ChunkNotFound, match="quarantined"):
        await store.get(cid)
    assert not path.exists()
    assert await store.quarantined() == [cid]


async def test_scrub_rehashes_even_where_the_checksum_agrees(tmp_path: Path) -> None:
    """Rot that its checksum would not tell (here: bytes changed and the checksum with
    them) is served by a read, whose reader's own SHA-256 refuses it, and found by scrub,
    which re-hashes every copy with SHA-256."""
    store = await FsChunkStore.open(tmp_path)
    cid, data = chunk(6)
    good, _ = chunk(7)
    await store.put(cid, data)
    await store.put(good, chunk(7)[1])
    path = store.path_of(cid)
    rotten = bytes([data[0] ^ 0xFF]) + data[1:]
    path.write_bytes(rotten)
    os.setxattr(path, file_sum.ATTRIBUTE, file_sum.of([rotten]))
    assert await store.get(cid) == rotten  # the check on read is only the checksum
    assert await store.scrub(1 << 40) == (1, 1)
    assert await store.quarantined() == [cid]
    assert await store.get(good) == chunk(7)[1]


async def test_a_file_system_without_user_attributes_reads_with_sha256(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unsupported(*_args: object) -> None:
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr(os, "setxattr", unsupported)
    store = await FsChunkStore.open(tmp_path)
    cid, data = chunk(8)
    other, other_data = chunk(9)
    await store.put(cid, data)  # the first write finds out, and stores the chunk anyway
    await store.put(other, other_data)
    assert _attribute(store.path_of(cid)) is None
    rehashed = _count_sha256(monkeypatch)
    assert await store.get(cid) == data
    assert await store.get(other) == other_data
    assert rehashed[0] == 2
