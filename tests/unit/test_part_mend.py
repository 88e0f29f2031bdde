"""``part_mend``: the chunks of a downloaded temp file that are wrong are found on disk and
rewritten with the bytes a verifying fetcher returns; the file is cut to its size and hashed
again. (End to end, with a node's bytes altered on the way: tests/e2e/test_deferred_verify.py.)"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from typing import Any

from dfs.client.part_mend import mend


class _Fetcher:
    """Returns each chunk's right bytes, and counts what it was asked for."""

    def __init__(self, by_id: dict[str, bytes]) -> None:
        self.by_id = by_id
        self.asked: list[str] = []

    async def fetch(self, chunk: dict[str, Any]) -> list[bytes]:
        self.asked.append(str(chunk["sha256"]))
        data = self.by_id[str(chunk["sha256"])]
        return [data[:10], data[10:]]


def test_mend_rewrites_only_the_wrong_chunks_and_hashes_the_file_again(tmp_path: Path) -> None:
    parts = [os.urandom(1000 + n) for n in range(4)]
    chunks, offset = [], 0
    for data in parts:
        chunks.append(
            {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "offset": offset}
        )
        offset += len(data)
    right = b"".join(parts)
    wrong = bytearray(right)
    wrong[chunks[2]["offset"] + 5] ^= 0xFF  # one chunk rotten on disk
    path = tmp_path / "part"
    path.write_bytes(bytes(wrong) + b"left over")  # and longer than the file
    fetcher = _Fetcher({str(c["sha256"]): d for c, d in zip(chunks, parts, strict=True)})
    fd = os.open(path, os.O_RDWR)
    try:
        whole = asyncio.run(mend(fd, chunks, fetcher, "file x"))  # type: ignore[arg-type]
    finally:
        os.close(fd)
    assert fetcher.asked == [chunks[2]["sha256"]]
    assert path.read_bytes() == right
    assert whole.hexdigest() == hashlib.sha256(right).hexdigest()
