"""Huge files page by page (issue 19 item 5), against an in-process cluster: a file of more
than MAX_CHUNKS_PER_FILE chunks uploads and downloads byte-identical, the scan overlaps the
sends, and an interrupted paged upload resumes."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import time
from pathlib import Path
from typing import Any

import pytest

from dfs import protocol
from dfs.chunking import ChunkerProfile
from dfs.client import Client
from dfs.client.file_upload import UploadResult
from dfs.client.paged_upload import PAGED_BYTES, PAGES_AHEAD, PageScanner, wants_pages
from dfs.transport.api_client import ApiClient
from dfs.transport.node_client import NodeClient
from tests.integration.conftest import ADMIN_TOKEN, running_cluster

pytestmark = pytest.mark.integration

TINY = ChunkerProfile.parse("fastcdc:64:256:1024")  # ~320-byte chunks


def periodic(path: Path, size: int, seed: int = 7) -> bytes:
    """A file of one random 64 KiB block repeated: a few hundred distinct chunks make the
    many entries of its manifest, so the test sends little and the manifest is huge."""
    block = random.Random(seed).randbytes(64 * 1024)
    data = (block * (size // len(block) + 1))[:size]
    path.write_bytes(data)
    return data


@pytest.mark.slow  # ~100 s on 2 cores: ~110,000 chunks planned, proven, committed, read back
async def upload_tiny(tmp_path: Path, src: Path) -> UploadResult:
    """``src`` uploaded with the ``TINY`` profile to a fresh one-node cluster."""
    async with (
        running_cluster(tmp_path / "cluster", n=1, rf=1) as cluster,
        Client(cluster.api.url, token=ADMIN_TOKEN, concurrency=4) as c,
    ):
        return await c.upload(src, profile=TINY)


async def test_a_file_of_more_than_100000_chunks_round_trips(tmp_path: Path) -> None:
    src = tmp_path / "huge.bin"
    data = periodic(src, 34 * protocol.MIB)
    out = tmp_path / "huge.out"
    async with (
        running_cluster(tmp_path / "cluster", n=1, rf=1) as cluster,
        Client(cluster.api.url, token=ADMIN_TOKEN, concurrency=4) as c,
    ):
        up = await c.upload(src, profile=TINY)
        assert up.chunks > protocol.MAX_CHUNKS_PER_FILE
        assert up.size == len(data)
        down = await c.download(up.file_id, out)
    assert down.sha256 == up.sha256
    assert out.read_bytes() == data


async def test_the_scan_overlaps_the_sends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first page is planned and its chunks reach the node while the file is still
    being scanned; the scan is never more than PAGES_AHEAD pages ahead of the sender."""
    src = tmp_path / "big.bin"
    periodic(src, 8 * protocol.MIB)
    events: list[tuple[str, float]] = []
    scanned = {"pages": 0, "sent": 0, "ahead": 0}
    put = PageScanner._put

    def counting_put(self: PageScanner, page: Any) -> None:
        if page is not None:
            scanned["pages"] += 1
            scanned["ahead"] = max(scanned["ahead"], scanned["pages"] - scanned["sent"])
        else:
            events.append(("scan-end", time.monotonic()))
        put(self, page)

    upload_page = ApiClient.upload_page

    async def spying_page(self: ApiClient, *args: Any, **kwargs: Any) -> dict[str, Any]:
        scanned["sent"] += 1
        answer = await upload_page(self, *args, **kwargs)
        events.append(("planned", time.monotonic()))
        return answer

    prove_page = ApiClient.prove_page

    async def spying_prove(self: ApiClient, *args: Any, **kwargs: Any) -> dict[str, Any]:
        events.append(("proving", time.monotonic()))
        return await prove_page(self, *args, **kwargs)

    monkeypatch.setattr(PageScanner, "_put", counting_put)
    monkeypatch.setattr(ApiClient, "upload_page", spying_page)
    monkeypatch.setattr(ApiClient, "prove_page", spying_prove)
    up = await upload_tiny(tmp_path, src)
    assert up.chunks > 4 * protocol.MAX_PAGE_CHUNKS
    order = [name for name, _ in sorted(events, key=lambda e: e[1])]
    # the first page's chunks were sent (its proof asks the node for them) before the end
    assert order.index("proving") < order.index("scan-end")
    # pages in the client's memory: those waiting, the one handed over, the one being sent
    assert scanned["ahead"] <= PAGES_AHEAD + 2


async def test_an_interrupted_paged_upload_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed at the third page's proof: the next run skips the proven pages, finishes the
    same pending file, and the journal goes."""
    src = tmp_path / "big.bin"
    data = periodic(src, 4 * protocol.MIB + 512 * protocol.KIB, seed=9)
    prove_page = ApiClient.prove_page
    proofs: list[int] = []
    fail = {"on": True}

    async def failing_third(
        self: ApiClient, file_id: str, page: int, receipts: Any, *rest: Any
    ) -> Any:
        proofs.append(page)
        if page == 2 and fail["on"]:
            raise ConnectionResetError("the network went away")
        return await prove_page(self, file_id, page, receipts, *rest)

    monkeypatch.setattr(ApiClient, "prove_page", failing_third)
    async with running_cluster(tmp_path / "cluster", n=1, rf=1) as cluster:
        async with Client(cluster.api.url, token=ADMIN_TOKEN) as c:
            with pytest.raises(ConnectionResetError):
                await c.upload(src, profile=TINY)
        journals = list((Path(os.environ["DFS_CACHE_DIR"]) / "uploads").glob("*.jsonl"))
        assert len(journals) == 1
        assert proofs == [0, 1, 2]
        proofs.clear()
        fail["on"] = False
        async with Client(cluster.api.url, token=ADMIN_TOKEN) as c:
            up = await c.upload(src, profile=TINY)
            plan = await c.api.download_plan(up.file_id)
        assert proofs[0] == 2  # pages 0 and 1 were proven in the first run
        assert not list(journals[0].parent.glob("*.jsonl"))
    assert (up.size, up.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert b"".join(data[c["offset"] : c["offset"] + c["size"]] for c in plan["chunks"]) == data
    assert [c["sha256"] for c in plan["chunks"]] == [
        hashlib.sha256(data[c["offset"] : c["offset"] + c["size"]]).hexdigest()
        for c in plan["chunks"]
    ]


async def test_a_pages_chunks_go_in_the_packs_of_its_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each page's plan carries packs (one put-batch capability each, as /init-uploads'),
    and the client sends the page's small chunks in them: no chunk goes alone."""
    src = tmp_path / "big.bin"
    data = periodic(src, 4 * protocol.MIB + 512 * protocol.KIB, seed=3)  # 4 pages
    calls = {"store_chunks": 0, "put_chunk": 0}
    packs: list[int] = []
    for name in calls:
        real = getattr(NodeClient, name)

        def counting(real: Any = real, name: str = name) -> Any:
            async def call(self: NodeClient, *args: Any, **kwargs: Any) -> Any:
                if not kwargs.get("forwarded"):  # the client's, not a primary's to a replica
                    calls[name] += 1
                return await real(self, *args, **kwargs)

            return call

        monkeypatch.setattr(NodeClient, name, counting())
    upload_page = ApiClient.upload_page

    async def page_plan(self: ApiClient, *args: Any, **kwargs: Any) -> Any:
        plan = await upload_page(self, *args, **kwargs)
        packed = [(c["file_id"], c["sha256"]) for p in plan["packs"] for c in p["chunks"]]
        assert sorted(packed) == sorted((plan["file_id"], i["sha256"]) for i in plan["upload"])
        assert all(p["cap"] for p in plan["packs"])
        packs.append(len(plan["packs"]))
        return plan

    monkeypatch.setattr(ApiClient, "upload_page", page_plan)
    out = tmp_path / "out.bin"
    async with (
        running_cluster(tmp_path / "cluster", n=2, rf=2) as cluster,
        Client(cluster.api.url, token=ADMIN_TOKEN, resume=False) as c,
    ):
        up = await c.upload(src, profile=TINY)
        await c.download(up.file_id, out)
    assert up.chunks > protocol.MAX_PAGE_CHUNKS  # several pages
    assert len(packs) >= 2
    assert calls["put_chunk"] == 0
    assert calls["store_chunks"] == sum(packs)
    assert out.read_bytes() == data


async def test_a_page_is_proven_while_the_next_is_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Page n's proof does not hold up page n+1: the proof of page 0 is made to wait until
    page 1 is planned (it would wait forever if the sends waited for proofs); proofs still
    run one at a time, in page order, and the file commits whole."""
    src = tmp_path / "big.bin"
    data = periodic(src, 4 * protocol.MIB)  # paged: it may hold > MAX_CHUNKS_PER_FILE / 2
    planned: list[int] = []
    proofs: list[tuple[str, int]] = []
    page_1_planned = asyncio.Event()
    upload_page = ApiClient.upload_page

    async def spying_page(self: ApiClient, file_id: str, no: int, *args: Any) -> dict[str, Any]:
        answer = await upload_page(self, file_id, no, *args)
        planned.append(no)
        if no == 1:
            page_1_planned.set()
        return answer

    prove_page = ApiClient.prove_page

    async def held_prove(self: ApiClient, file_id: str, no: int, *args: Any) -> dict[str, Any]:
        proofs.append(("start", no))
        if no == 0:
            await asyncio.wait_for(page_1_planned.wait(), 30)  # TimeoutError: serialized
        answer = await prove_page(self, file_id, no, *args)
        proofs.append(("end", no))
        return answer

    monkeypatch.setattr(ApiClient, "upload_page", spying_page)
    monkeypatch.setattr(ApiClient, "prove_page", held_prove)
    up = await upload_tiny(tmp_path, src)
    pages = planned[-1] + 1
    assert pages >= 3
    assert planned == list(range(pages))
    assert proofs == [(what, n) for n in range(pages) for what in ("start", "end")]
    assert up.size == len(data)
    assert up.sha256 == hashlib.sha256(data).hexdigest()


async def test_pages_start_small_and_grow(tmp_path: Path) -> None:
    """The first page ends at first_page_bytes and each next one may hold twice the bytes
    of the last, up to max_page_bytes and page_chunks chunks: the first chunks go out after a short scan, and
    the same file is always cut into the same pages (a resumed upload relies on it)."""
    src = tmp_path / "big.bin"
    data = random.Random(5).randbytes(4 * protocol.MIB + 100)
    src.write_bytes(data)
    profile = ChunkerProfile.fixed(64 * protocol.KIB)

    async def cut(page_chunks: int, max_page_bytes: int = 64 * protocol.MIB) -> list[list[int]]:
        scanner = PageScanner(
            src, profile, page_chunks, 256 * protocol.KIB, max_page_bytes=max_page_bytes
        )
        pages = [[r.size for r in page] async for page in scanner.pages()]
        assert scanner.size == len(data)
        assert scanner.sha256 == hashlib.sha256(data).hexdigest()
        return pages

    pages = await cut(protocol.MAX_PAGE_CHUNKS)
    assert [len(p) for p in pages] == [4, 8, 16, 32, 5]  # 256 KiB, 512 KiB, 1, 2 MiB, rest
    assert pages[-1][-1] == 100
    assert await cut(protocol.MAX_PAGE_CHUNKS) == pages
    assert [len(p) for p in await cut(10)] == [4, 8, 10, 10, 10, 10, 10, 3]
    # pages stop doubling at max_page_bytes (1 MiB: 16 chunks)
    assert [len(p) for p in await cut(100, protocol.MIB)] == [4, 8, 16, 16, 16, 5]


def test_big_files_go_page_by_page() -> None:
    """Past PAGED_BYTES a file is paged whatever its chunker (its scan overlaps its sends)."""
    default = ChunkerProfile.default()
    assert wants_pages(PAGED_BYTES + 1, default)
    assert not wants_pages(PAGED_BYTES, default)
