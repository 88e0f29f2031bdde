"""Many files at once: directory uploads and downloads without round trips per file.

``upload_many`` sends big files one by one through ``Client.upload`` (parallel chunks, resume
journal) and groups small files (at most ``SMALL_FILE`` bytes) into batches of at most
``BATCH_FILES`` files or ``BATCH_BYTES`` bytes: one ``/init-uploads`` per batch, the chunks of
the whole batch in parallel straight to their nodes (one request per chunk the tenant does not
own yet), and one ``/finalize-uploads`` per batch. While a batch is in flight the next one is
scanned, so hashing overlaps the network.

``download_many`` asks ``/download-plans`` for a batch of files and downloads
``concurrency`` files at once, each with its usual verified, windowed fetch.

``walk`` turns CLI arguments (files and directories) into (path, stored name) pairs: a
directory's files are named by their path relative to it, with ``/`` separators.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from dfs import protocol
from dfs.chunking import ChunkerProfile, FileScan, scan_file
from dfs.client.transfer import Client, DownloadResult, ProgressFn, UploadResult, read_chunk_from
from dfs.errors import IntegrityError, InvalidRequest, ReplicationError, Unavailable, from_body

SMALL_FILE = 8 * 1024 * 1024
BATCH_FILES = 500
BATCH_BYTES = 64 * 1024 * 1024
SMALL_CHUNK = 1024 * 1024  # chunks up to this size go to nodes in /store-chunks batches
SEND_BATCH_CHUNKS = 64
SEND_BATCH_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Item:
    path: Path
    name: str
    size: int


def walk(paths: Sequence[Path], prefix: str = "") -> Iterator[Item]:
    """Files to upload with their stored names; directories recursively, in sorted order.

    Symbolic links to directories are not followed (no loops); links to files are read."""
    for p in paths:
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs.sort()
                for f in sorted(files):
                    full = Path(root) / f
                    if not full.is_file():
                        continue
                    rel = full.relative_to(p).as_posix()
                    yield Item(full, prefix + rel, full.stat().st_size)
        else:
            yield Item(p, prefix + p.name, p.stat().st_size)


def local_path(root: Path, name: str) -> Path:
    """Where a stored name lands under ``root``; refuses names that would escape it."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if not parts or parts[0] == "/" or any(x in ("..", "") or "\x00" in x for x in parts):
        raise InvalidRequest(f"stored name {name!r} cannot be written safely under {root}")
    return root.joinpath(*parts)


def _batches(items: Sequence[Item]) -> Iterator[list[Item]]:
    batch: list[Item] = []
    size = 0
    for it in items:
        if batch and (len(batch) >= BATCH_FILES or size + it.size > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(it)
        size += it.size
    if batch:
        yield batch


def _scan_all(items: Sequence[Item], profile: ChunkerProfile) -> list[FileScan]:
    return [scan_file(it.path, profile) for it in items]


def _read_all(items: Sequence[Item], group: Sequence[dict[str, Any]]) -> list[bytes]:
    out = []
    for it in group:
        with open(items[int(it["_file"])].path, "rb") as f:
            f.seek(int(it["_offset"]))
            data = f.read(int(it["size"]))
        if len(data) != int(it["size"]):
            raise IntegrityError(f"{items[int(it['_file'])].path} changed while being uploaded")
        out.append(data)
    return out


def _packs(work: Sequence[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Small chunks grouped for /store-chunks: same primary and forward list (which every
    capability of a request binds), at most SEND_BATCH_CHUNKS chunks / SEND_BATCH_BYTES."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for w in work:
        groups.setdefault(tuple(str(t["node_id"]) for t in w["targets"]), []).append(w)
    for group in groups.values():
        pack: list[dict[str, Any]] = []
        size = 0
        for w in group:
            if pack and (
                len(pack) >= SEND_BATCH_CHUNKS or size + int(w["size"]) > SEND_BATCH_BYTES
            ):
                yield pack
                pack, size = [], 0
            pack.append(w)
            size += int(w["size"])
        if pack:
            yield pack


async def _upload_batch(
    client: Client,
    items: Sequence[Item],
    scans: Sequence[FileScan],
    profile: ChunkerProfile,
    progress: ProgressFn | None,
) -> list[UploadResult]:
    started = time.monotonic()
    plans = await client.api.init_uploads(
        [
            {
                "name": it.name,
                "size": sc.size,
                "sha256": sc.sha256,
                "chunker": str(profile),
                "chunks": [{"sha256": c.chunk_id, "size": c.size} for c in sc.chunks],
            }
            for it, sc in zip(items, scans, strict=True)
        ]
    )
    receipts: list[dict[str, str]] = [{} for _ in items]
    sent = [0] * len(items)
    work: list[dict[str, Any]] = []
    for i, (sc, plan) in enumerate(zip(scans, plans, strict=True)):
        offsets = {c.chunk_id: c.offset for c in reversed(sc.chunks)}
        todo = plan["upload"]
        if progress:
            progress(sc.size - sum(int(u["size"]) for u in todo))
        work += [{**u, "_file": i, "_offset": offsets[u["sha256"]]} for u in todo]

    async def read(item: dict[str, Any]) -> bytes:
        path = items[int(item["_file"])].path
        return await asyncio.to_thread(read_chunk_from, path, item["_offset"], int(item["size"]))

    def sent_one(item: dict[str, Any], receipt: str) -> None:
        i = int(item["_file"])
        receipts[i][str(item["sha256"])] = receipt
        sent[i] += int(item["size"])
        if progress:
            progress(int(item["size"]))

    async def send(item: dict[str, Any]) -> None:
        i = int(item["_file"])
        data = await read(item)
        sent_one(
            item,
            await client.send_chunk(str(plans[i]["file_id"]), str(item["sha256"]), data, item),
        )

    async def send_pack(pack: dict[str, Any]) -> None:
        group: list[dict[str, Any]] = pack["_items"]
        datas = await asyncio.to_thread(_read_all, items, group)
        first = group[0]["targets"]
        body = protocol.pack_chunks(
            [
                {
                    "chunk_id": it["sha256"],
                    "file_id": plans[int(it["_file"])]["file_id"],
                    "cap": it["caps"][0],
                }
                for it in group
            ],
            datas,
        )
        try:
            answers = await client.nodes.store_chunks(
                str(first[0]["url"]),
                body,
                forward=protocol.forward_header([(t["node_id"], t["url"]) for t in first[1:]]),
            )
        except (Unavailable, ReplicationError, IntegrityError):
            # one chunk at a time, with the usual retries, failover and error for a file
            # that changed while it was being uploaded
            for it in group:
                await send(it)
            return
        for it, answer in zip(group, answers, strict=True):
            sent_one(it, str(answer["receipt"]))

    small = [] if client.proxy else [w for w in work if int(w["size"]) <= SMALL_CHUNK]
    large = [w for w in work if client.proxy or int(w["size"]) > SMALL_CHUNK]
    packs = [{"_items": p} for p in _packs(small)]
    await client.run_bounded(send_pack, iter(packs))
    await client.run_bounded(send, iter(large))
    done = await client.api.finalize_uploads(
        [{"file_id": p["file_id"], "receipts": r} for p, r in zip(plans, receipts, strict=True)]
    )
    seconds = time.monotonic() - started
    results = []
    for i, body in enumerate(done):
        if "error" in body:
            raise from_body(409, body)
        results.append(
            UploadResult(
                file_id=str(body["file_id"]),
                name=str(body["name"]),
                size=int(body["size"]),
                sha256=str(body["sha256"]),
                chunks=len(scans[i].chunks),
                new_chunks=len(plans[i]["upload"]),
                bytes_sent=sent[i],
                seconds=seconds,
            )
        )
    return results


async def upload_many(
    client: Client,
    items: Sequence[Item],
    profile: ChunkerProfile,
    progress: ProgressFn | None = None,
) -> list[UploadResult]:
    """Upload ``items``; results in the order of ``items``."""
    results: dict[int, UploadResult] = {}
    order = {id(it): n for n, it in enumerate(items)}
    small = [it for it in items if it.size <= SMALL_FILE]
    for it in items:
        if it.size > SMALL_FILE:
            results[order[id(it)]] = await client.upload(
                it.path, name=it.name, profile=profile, progress=progress
            )
    batches = list(_batches(small))
    next_scan: asyncio.Task[list[FileScan]] | None = None
    if batches:
        next_scan = asyncio.create_task(asyncio.to_thread(_scan_all, batches[0], profile))
    try:
        for n, batch in enumerate(batches):
            assert next_scan is not None
            scans = await next_scan
            next_scan = None
            if n + 1 < len(batches):
                next_scan = asyncio.create_task(
                    asyncio.to_thread(_scan_all, batches[n + 1], profile)
                )
            for it, r in zip(
                batch, await _upload_batch(client, batch, scans, profile, progress), strict=True
            ):
                results[order[id(it)]] = r
    finally:
        if next_scan is not None:
            next_scan.cancel()
            await asyncio.gather(next_scan, return_exceptions=True)
    return [results[n] for n in range(len(items))]


async def download_many(
    client: Client,
    files: Sequence[tuple[str, Path]],
    progress: ProgressFn | None = None,
) -> list[DownloadResult]:
    """Download (file_id, target path) pairs, ``client.concurrency`` files at a time."""
    out: list[DownloadResult] = []
    sem = asyncio.Semaphore(client.concurrency)
    for start in range(0, len(files), BATCH_FILES):
        part = files[start : start + BATCH_FILES]
        plans = await client.api.download_plans([f for f, _ in part])
        for plan in plans:
            if "error" in plan:
                raise from_body(404, plan)

        async def one(plan: dict[str, Any], target: Path) -> DownloadResult:
            async with sem:
                await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
                return await client.download(
                    str(plan["file_id"]), target, plan=plan, progress=progress
                )

        out += await asyncio.gather(
            *(one(p, target) for p, (_f, target) in zip(plans, part, strict=True))
        )
    return out
