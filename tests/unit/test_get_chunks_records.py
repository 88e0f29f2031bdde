"""The /get-chunks answer's records cut out of the blocks a stream hands over, whatever
their sizes: every record byte for byte, and a cut-short answer told apart."""

from __future__ import annotations

import asyncio
import random

import pytest

from dfs.transport.node_client import _Records


class _Blocks:
    """What ``aiohttp.StreamReader.readany`` gives: the bytes in blocks, then b""."""

    def __init__(self, data: bytes, rng: random.Random) -> None:
        self.data, self.rng, self.pos = data, rng, 0

    async def readany(self) -> bytes:
        n = self.rng.choice([1, 2, 7, 100, 1000, 5000])
        block = self.data[self.pos : self.pos + n]
        self.pos += len(block)
        return block


async def test_records_come_out_whole_whatever_the_block_sizes() -> None:
    rng = random.Random(19)
    for _ in range(200):
        data = rng.randbytes(rng.randrange(0, 3000))
        records = _Records(_Blocks(data, rng))  # type: ignore[arg-type]
        pos = 0
        while pos < len(data):
            n = min(rng.randrange(0, 300), len(data) - pos)
            assert await records.take(n) == data[pos : pos + n]
            pos += n
        with pytest.raises(asyncio.IncompleteReadError):
            await records.take(1)


async def test_an_answer_cut_short_is_an_incomplete_read() -> None:
    records = _Records(_Blocks(b"abcdef", random.Random(1)))  # type: ignore[arg-type]
    assert await records.take(2) == b"ab"
    with pytest.raises(asyncio.IncompleteReadError) as cut:
        await records.take(10)
    assert cut.value.partial == b"cdef"
