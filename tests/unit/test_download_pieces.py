"""How one file's download cuts its chunks into pieces: runs of small chunks (one
``/get-chunks`` each, bounded in chunks and bytes, so the window's memory is bounded) and
big chunks alone; in file order, every chunk exactly once; and how many pieces its window
fetches at once (``concurrency``, up to twice as many within ``concurrency * SLOT_BYTES``)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from dfs.client.batch_read import BATCH_CHUNKS
from dfs.client.download import RUN_BYTES, RUN_CHUNK_MAX, SLOT_BYTES, DownloadPipeline, _pieces


def _plan(sizes: list[int]) -> list[dict[str, Any]]:
    out, offset = [], 0
    for n, size in enumerate(sizes):
        out.append({"sha256": f"{n:064x}", "size": size, "offset": offset})
        offset += size
    return out


def test_small_chunks_come_in_bounded_runs_and_big_ones_alone() -> None:
    sizes = [300] * 600 + [RUN_CHUNK_MAX] + [200 * 1024] * 12 + [300] * 3
    chunks = _plan(sizes)
    pieces = list(_pieces(chunks, batched=True))
    assert [c for piece, _run in pieces for c in piece] == chunks  # in order, each once
    for piece, run in pieces:
        if run:
            assert len(piece) <= BATCH_CHUNKS
            assert sum(int(c["size"]) for c in piece) <= RUN_BYTES
            assert all(int(c["size"]) < RUN_CHUNK_MAX for c in piece)
        else:
            assert len(piece) == 1
    shape = [(len(piece), run) for piece, run in pieces]
    # 600 tiny: 256 + 256 + 88; the big one alone; 12 of 200 KiB: 5 a run (1 MiB), the
    # last 2 with the 3 tiny ones after them
    assert shape == [
        (256, True), (256, True), (88, True), (1, False), (5, True), (5, True), (5, True),
    ]  # fmt: skip


def test_without_batches_every_chunk_is_alone() -> None:
    chunks = _plan([300] * 10 + [4 << 20])
    pieces = list(_pieces(chunks, batched=False))
    assert pieces == [([c], False) for c in chunks]


class _Fetches:
    """Chunk fetches that wait until released: counts how many are in flight at most."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.most = 0

    async def fetch(self, chunk: dict[str, Any]) -> list[bytes]:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        await asyncio.sleep(0)  # a yield: the window's other fetches start before this ends
        self.in_flight -= 1
        return [b"x" * int(chunk["size"])]


class _Part:
    def __init__(self) -> None:
        self.written: list[int] = []

    async def written_before(self, chunk: dict[str, Any]) -> None:
        return None

    async def write(self, offset: int, data: list[bytes], run: list[int]) -> None:
        self.written.append(offset)


def _in_flight_at_most(sizes: list[int], concurrency: int) -> int:
    conn = SimpleNamespace(concurrency=concurrency, proxy=True, overwrite=True)  # chunks alone
    pipeline = DownloadPipeline(conn, None)  # type: ignore[arg-type]
    fetches, part = _Fetches(), _Part()
    chunks = _plan(sizes)
    asyncio.run(pipeline._fetch_in_order(chunks, fetches, part))  # type: ignore[arg-type]
    assert part.written == [int(c["offset"]) for c in chunks]  # in order, each once
    return fetches.most


def test_a_window_of_big_chunks_holds_concurrency_of_them() -> None:
    """The window's memory: ``concurrency`` chunks of the largest size at most."""
    assert _in_flight_at_most([4 << 20] * 40, 8) == 8
    assert _in_flight_at_most([3 << 20] * 40, 8) == 10  # 30 MiB within 8 x SLOT_BYTES


def test_a_window_of_average_chunks_holds_twice_concurrency_of_them() -> None:
    assert _in_flight_at_most([1 << 20] * 40, 8) == 16
    assert _in_flight_at_most([1 << 20] * 40, 1) == 2
    assert SLOT_BYTES == 4 << 20
