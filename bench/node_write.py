"""A node's large-chunk write path in isolation: what one stored copy costs, piece by piece.

    python -m bench.node_write [--mib 1024] [--rounds 3] [--dir DIR] [--receive-only]

Two measurements, CPU seconds per GiB (user and system), each A/B in alternating rounds so
that a neighbour's load hits both sides alike:

- **receive**: an aiohttp server like a node's (``read_bufsize`` 1 MiB) takes 1.25 MiB PUT
  bodies from a client process on loopback, 8 at a time, and hashes each (SHA-256, on a worker
  thread): ``read_body(..., authorized=True)`` (the pieces joined into one buffer) against
  ``read_body_pieces`` (hashed as they arrived), both as a node receives (1 MiB socket
  reads, ``widen_socket_reads``; each buffered piece as it is, ``next_piece``), and
  ``read_body_pieces`` of a second server process that receives as nodes did before
  (``before``: asyncio's 256 KiB socket reads, and ``readany``, which joins the pieces
  buffered together). Server CPU only.
- **store**: ``FsChunkStore.put`` of 1 MiB chunks, 8 at a time, into three stores
  (``dfs.chunkstore.fan_out``): a new one, of layout 1 (``ab/<id>``, its 256 folders made
  with it); a new one of layout 2 as nodes made them before (``ab/cd/<id>``: nearly every
  chunk's folder is new, a ``mkdir`` and an fsync of its parent); and one of layout 2 whose
  folders exist already (a node that has stored ~65,000 chunks).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path

import aiohttp
from aiohttp import web

import dfs.server
from dfs.chunkstore.fan_out import LAYOUT_NAME
from dfs.chunkstore.fs import FsChunkStore
from dfs.ids import ChunkId, sha256_hex, sha256_hex_parts
from dfs.malloc import keep_freed_buffers
from dfs.server import read_body, read_body_pieces

GIB = 1 << 30
BODY = 1_310_720  # FastCDC's default chunks average ~1.25 MiB
PORT = 18_779


def cpu() -> tuple[float, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime


def _readany(stream: aiohttp.StreamReader) -> Awaitable[bytes]:
    return stream.readany()


async def serve(port: int, before: bool) -> None:
    """The receiving server (run in its own process by ``receive``); ``before``: the socket
    reads left at asyncio's size and ``readany`` for ``next_piece``, as nodes received."""
    keep_freed_buffers()
    if before:
        dfs.server.widen_socket_reads = lambda _transport: None
        dfs.server.next_piece = _readany

    async def joined(request: web.Request) -> web.Response:
        data = await read_body(request, 16 << 20, authorized=True)
        await asyncio.to_thread(sha256_hex, data)
        return web.json_response({})

    async def pieces(request: web.Request) -> web.Response:
        parts = await read_body_pieces(request, 16 << 20)
        await asyncio.to_thread(sha256_hex_parts, parts)
        return web.json_response({})

    async def usage(_request: web.Request) -> web.Response:
        return web.json_response(cpu())

    app = web.Application(client_max_size=16 << 20)
    app.router.add_put("/joined", joined)
    app.router.add_put("/pieces", pieces)
    app.router.add_get("/cpu", usage)
    runner = web.AppRunner(app, access_log=None, read_bufsize=1 << 20)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


async def receive(total: int, rounds: int) -> None:
    body = os.urandom(BODY)
    now, before = f"http://127.0.0.1:{PORT}", f"http://127.0.0.1:{PORT + 1}"
    async with aiohttp.ClientSession() as s:
        for base in (now, before):
            for _ in range(60):  # the server process starting
                try:
                    await (await s.get(f"{base}/cpu")).read()
                    break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.2)
        sem = asyncio.Semaphore(8)

        async def one(url: str) -> None:
            async with sem, s.put(url, data=body) as r:
                await r.read()

        runs = (("joined", now, "/joined"), ("pieces", now, "/pieces"))
        for n in range(1, rounds + 1):
            for name, base, path in (*runs, ("before", before, "/pieces")):
                u0, s0 = await (await s.get(f"{base}/cpu")).json()
                await asyncio.gather(*(one(base + path) for _ in range(total // BODY)))
                u1, s1 = await (await s.get(f"{base}/cpu")).json()
                scale = GIB / (total // BODY * BODY)
                print(
                    f"receive round {n} {name:7s}: server user {(u1 - u0) * scale:.2f}"
                    f" sys {(s1 - s0) * scale:.2f} s/GiB",
                    flush=True,
                )


async def store(work: Path, total: int, rounds: int) -> None:
    count = total // (1 << 20)
    for n in range(1, rounds + 1):
        for kind in ("layout 1", "layout 2 fresh", "layout 2 aged"):
            root = Path(tempfile.mkdtemp(dir=work))
            if kind != "layout 1":  # a store as nodes made them before layout 1
                (root / "chunks").mkdir()
                (root / "chunks" / LAYOUT_NAME).write_text("2\n")
            st = await FsChunkStore.open(root)
            items = []
            for _ in range(count):
                data = os.urandom(1 << 20)
                items.append((ChunkId(hashlib.sha256(data).hexdigest()), data))
            if kind == "layout 2 aged":
                for c, _ in items:
                    os.makedirs(os.path.dirname(st.path_of(c)), exist_ok=True)
            os.sync()
            (u0, s0), t0 = cpu(), time.monotonic()
            await _put_all(st, items)
            (u1, s1), t1 = cpu(), time.monotonic()
            scale = GIB / (count << 20)
            print(
                f"store round {n} {kind:14s}: user {(u1 - u0) * scale:.2f} sys"
                f" {(s1 - s0) * scale:.2f} s/GiB, {count / (t1 - t0):.0f} chunks/s",
                flush=True,
            )
            shutil.rmtree(root)


async def _put_all(st: FsChunkStore, items: list[tuple[ChunkId, bytes]]) -> None:
    """Every item into ``st``, 8 at a time (a client's default concurrency)."""
    sem = asyncio.Semaphore(8)

    async def one(c: ChunkId, d: bytes) -> None:
        async with sem:
            await st.put(c, d)

    await asyncio.gather(*(one(c, d) for c, d in items))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.node_write")
    p.add_argument("--mib", type=int, default=1024)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--dir", type=Path, default=None, help="work folder for the store test")
    p.add_argument("--receive-only", action="store_true", help="skip the store test")
    p.add_argument("--serve", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--before", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        asyncio.run(serve(args.serve, args.before))
        return 0
    serve_args = ([str(PORT)], [str(PORT + 1), "--before"])
    servers = [
        subprocess.Popen([sys.executable, "-m", "bench.node_write", "--serve", *a])
        for a in serve_args
    ]
    try:
        asyncio.run(receive(args.mib << 20, args.rounds))
    finally:
        for server in servers:
            server.terminate()
            server.wait()
    if args.receive_only:
        return 0
    with tempfile.TemporaryDirectory(prefix="dfs-node-write-", dir=args.dir) as work:
        asyncio.run(store(Path(work), min(args.mib, 600) << 20, args.rounds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
