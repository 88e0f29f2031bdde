"""How one file's download cuts its chunks into pieces: runs of small chunks (one
``/get-chunks`` each, bounded in chunks and bytes, so the window's memory is bounded) and
big chunks alone; in file order, every chunk exactly once."""

from __future__ import annotations

from typing import Any

from dfs.client.batch_read import BATCH_CHUNKS
from dfs.client.download import RUN_BYTES, RUN_CHUNK_MAX, _pieces


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
