"""``dfs.api.multipart_hash``: the object's SHA-256 kept as parts arrive, in any order."""

from __future__ import annotations

import asyncio
import hashlib
import random

from dfs.api import multipart_hash
from dfs.api.multipart_hash import Chains, Tap
from dfs.meta.multipart import UploadPart

PART = 100_000


def _parts(n: int, seed: int = 1) -> list[bytes]:
    rnd = random.Random(seed)
    return [rnd.randbytes(PART) for _ in range(n)]


async def _send(chains: Chains, upload: str, number: int, data: bytes, file_id: str) -> Tap:
    """A part read in pieces through its tap, then recorded."""
    tap = chains.tap(upload, number)
    pieces = [data[i : i + 30_000] for i in range(0, len(data), 30_000)] + [b""]

    async def read(n: int) -> bytes:
        return pieces.pop(0)

    read_tapped = tap.reading(read)
    while await read_tapped(1 << 16):
        pass
    await chains.recorded(tap, file_id, len(data))
    tap.release()
    return tap


def _listed(datas: list[bytes], ids: list[str]) -> list[UploadPart]:
    return [UploadPart(i + 1, ids[i], len(d), "", 0.0) for i, d in enumerate(datas)]


def test_parts_out_of_order_give_the_objects_sha256() -> None:
    async def go() -> None:
        chains = Chains()
        datas = _parts(5)
        ids = [f"f{i}" for i in range(5)]
        for i in [2, 0, 4, 1, 3]:  # recorded out of order: later ones wait for earlier
            await _send(chains, "u", i + 1, datas[i], ids[i])
        assert chains.held == 0
        whole = await chains.digest("u", _listed(datas, ids))
        assert whole == hashlib.sha256(b"".join(datas)).hexdigest()
        assert await chains.digest("u", _listed(datas, ids)) is None  # forgotten

    asyncio.run(go())


def test_a_part_sent_again_before_it_was_hashed_replaces_it() -> None:
    async def go() -> None:
        chains = Chains()
        a, b, b2 = _parts(3)
        await _send(chains, "u", 2, b, "old")
        await _send(chains, "u", 2, b2, "new")
        await _send(chains, "u", 1, a, "one")
        parts = [UploadPart(1, "one", PART, "", 0), UploadPart(2, "new", PART, "", 0)]
        assert await chains.digest("u", parts) == hashlib.sha256(a + b2).hexdigest()
        assert chains.held == 0

    asyncio.run(go())


def test_a_part_sent_again_after_it_was_hashed_breaks_the_chain() -> None:
    async def go() -> None:
        chains = Chains()
        a, b = _parts(2)
        await _send(chains, "u", 1, a, "one")
        await _send(chains, "u", 1, b, "again")
        parts = [UploadPart(1, "again", PART, "", 0)]
        assert await chains.digest("u", parts) is None

    asyncio.run(go())


def test_other_parts_than_hashed_give_no_digest() -> None:
    async def go() -> None:
        chains = Chains()
        datas = _parts(3)
        ids = ["a", "b", "c"]
        for i in range(3):
            await _send(chains, "u", i + 1, datas[i], ids[i])
        assert await chains.digest("u", _listed(datas[:2], ids[:2])) is None  # a subset
        for i in range(3):
            await _send(chains, "v", i + 1, datas[i], ids[i])
        assert await chains.digest("v", _listed(datas, ["a", "x", "c"])) is None  # file ids
        assert await chains.digest("none", _listed(datas, ids)) is None  # never seen here

    asyncio.run(go())


def test_over_the_budget_the_chain_breaks_and_gives_its_bytes_back() -> None:
    async def go() -> None:
        chains = Chains(budget=PART + PART // 2)
        datas = _parts(3)
        ids = ["a", "b", "c"]
        await _send(chains, "u", 2, datas[1], ids[1])  # waits for part 1
        assert chains.held == PART
        await _send(chains, "u", 3, datas[2], ids[2])  # does not fit: the chain breaks
        assert chains.held == 0
        await _send(chains, "u", 1, datas[0], ids[0])
        assert chains.held == 0
        assert await chains.digest("u", _listed(datas, ids)) is None

    asyncio.run(go())


def test_a_part_no_tap_saw_breaks_the_chain() -> None:
    async def go() -> None:
        chains = Chains()
        datas = _parts(2)
        await _send(chains, "u", 2, datas[1], "b")
        chains.breaks("u")  # UploadPartCopy of part 1
        assert chains.held == 0
        assert await chains.digest("u", _listed(datas, ["a", "b"])) is None

    asyncio.run(go())


def test_a_failed_part_gives_its_bytes_back() -> None:
    async def go() -> None:
        chains = Chains()
        tap = chains.tap("u", 1)
        pieces = [b"x" * 1000, b""]

        async def read(n: int) -> bytes:
            return pieces.pop(0)

        assert await tap.reading(read)(10) == b"x" * 1000
        assert chains.held == 1000
        tap.release()  # the part failed: never recorded
        assert chains.held == 0

    asyncio.run(go())


def test_parts_whose_predecessor_never_comes_are_let_go() -> None:
    """Parts 1, 3 here and part 2 through another gateway: part 3 waits, then its bytes are
    given back once the chain has hashed nothing for STALL_SECONDS."""
    now = [1000.0]

    async def go() -> None:
        chains = Chains(clock=lambda: now[0])
        datas = _parts(3)
        await _send(chains, "u", 1, datas[0], "a")
        await _send(chains, "u", 3, datas[2], "c")
        assert chains.held == PART
        now[0] += multipart_hash.STALL_SECONDS - 1
        chains.tap("v", 1).release()  # any tap looks at the chains
        assert chains.held == PART  # still progressing, maybe
        now[0] += 2
        chains.tap("v", 1).release()
        assert chains.held == 0
        assert await chains.digest("u", _listed(datas, ["a", "b", "c"])) is None

    asyncio.run(go())


def test_parts_are_spliced_ahead_into_the_single_streams_chunks() -> None:
    import io

    from dfs.chunking import ChunkerProfile
    from dfs.meta.base import ManifestEntry

    profile = ChunkerProfile.fastcdc(4096, 16384, 65536)

    def chunks(data: bytes) -> list[ManifestEntry]:
        return [
            ManifestEntry(c.offset, len(c.data), c.chunk_id)
            for c in profile.split(io.BytesIO(data))
        ]

    async def go() -> None:
        chains = Chains(splice=profile)
        datas = _parts(5, seed=7)
        ids = [f"f{i}" for i in range(5)]
        cut: dict[str, bytes] = {}
        for i in [1, 0, 3, 2, 4]:  # out of order: spliced as they are hashed, in order
            tap = chains.tap("u", i + 1)
            read = tap.reading(_reader(datas[i]))
            while await read(1 << 16):
                pass
            await chains.recorded(tap, ids[i], len(datas[i]), chunks(datas[i]))
            got = await chains.take_unsent("u")
            assert got is not None
            cut.update((p.chunk_id, p.data or b"") for p in got[1])
        whole, ahead = await chains.complete("u", _listed(datas, ids))
        assert ahead is not None
        assert chains.held == 0
        ahead.finish()
        cut.update((p.chunk_id, p.data or b"") for p in ahead.take_unsent())
        data = b"".join(datas)
        assert whole == hashlib.sha256(data).hexdigest()
        assert ahead.manifest == chunks(data)  # exactly one stream's chunks
        own = {e.chunk_id for d in datas for e in chunks(d)}
        for e in ahead.manifest:  # every chunk is a part's own or one cut ahead, its bytes
            assert e.chunk_id in own or cut[e.chunk_id] == data[e.offset : e.offset + e.size]
        assert len(cut) < len(ahead.manifest)

    asyncio.run(go())


def test_a_part_without_its_chunks_stops_the_splice_ahead() -> None:
    async def go() -> None:
        from dfs.chunking import ChunkerProfile

        chains = Chains(splice=ChunkerProfile.fastcdc(4096, 16384, 65536))
        datas = _parts(2)
        ids = ["a", "b"]
        for i in range(2):
            await _send(chains, "u", i + 1, datas[i], ids[i])  # no chunks given
        assert await chains.take_unsent("u") is None
        whole, ahead = await chains.complete("u", _listed(datas, ids))
        assert whole == hashlib.sha256(b"".join(datas)).hexdigest()
        assert ahead is None

    asyncio.run(go())


def _reader(data: bytes) -> multipart_hash.ReadFn:
    pieces = [data[i : i + 30_000] for i in range(0, len(data), 30_000)] + [b""]

    async def read(n: int) -> bytes:
        return pieces.pop(0)

    return read
