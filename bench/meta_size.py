"""Bytes of metadata per file, on SQLite and on DynamoDB (moto's server on loopback).

Drives a metadata store the way the API does for an upload (``create_files`` in batches,
``add_locations`` for REPLICATION_FACTOR copies of every chunk, ``commit_files``) for N
files of one shape, then measures what the store holds, divided by N:

- SQLite: the database file after a WAL checkpoint and VACUUM, and per table and index from
  the ``dbstat`` virtual table (when the sqlite3 library has it); also beyond an empty
  database's size (every table and index takes a page however few rows it has: ~150 KB,
  which is 75 bytes per file at 2,000 files and 15 at 10,000);
- DynamoDB: every item of every table scanned back and sized with DynamoDB's item-size
  rules (attribute names + values; numbers by significant digits), plus the 100 bytes of
  per-item overhead DynamoDB bills for storage, and the global secondary indexes' copies.

Shapes: ``small`` (single-chunk files, the many-small-files case), ``small with a key``
(the same files each put through the namespace as the API's upload with a key does: one
bucket with versioning enabled, a key per file, one version, one tag, the content type
guessed from the key) and ``multi`` (``--chunks`` chunks per file). Every chunk is distinct,
so nothing is deduplicated away.

    python -m bench.meta_size [--files 2000] [--dynamo-files 200] [--chunks 16]
                              [--backends sqlite dynamodb] [--shapes small keyed multi]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

from bench.meta_calls import AWS_ENV, start_moto
from dfs.meta import open_metadata_store
from dfs.meta.base import FileRecord, Location, ManifestEntry, MetadataStore, NodeRecord
from dfs.meta.namespace import VERSIONING_ENABLED, BucketRecord, NamespaceStore, NewObject

RF = 2
BATCH = 500
CHUNKER = "fastcdc:262144:1048576:4194304"
DYNAMO_ITEM_OVERHEAD = 100  # bytes DynamoDB adds to every item (and index entry) it bills
BUCKET = "bench-bucket"
TAG = (("kind", "source"),)


def _chunk_id(n: int) -> str:
    return hashlib.sha256(n.to_bytes(8, "big")).hexdigest()


def make_files(
    n: int, chunks: int, first_chunk: int = 0
) -> Iterator[tuple[FileRecord, list[ManifestEntry]]]:
    """``n`` files of ``chunks`` distinct chunks each (1-100 KiB chunks, names like a tree's)."""
    c = first_chunk
    for i in range(n):
        manifest: list[ManifestEntry] = []
        off = 0
        for _ in range(chunks):
            size = 1024 + (c * 7919) % (99 * 1024)
            manifest.append(ManifestEntry(off, size, _chunk_id(c)))
            off += size
            c += 1
        rec = FileRecord(
            file_id=str(uuid.uuid4()),
            name=f"src/pkg{i % 50:02d}/module_{i:06d}.py",
            size=off,
            # a single-chunk file's sha256 is its chunk's id
            sha256=(
                manifest[0].chunk_id
                if chunks == 1
                else hashlib.sha256(f"file {first_chunk} {i}".encode()).hexdigest()
            ),
            chunker=CHUNKER,
            tenant="default",
            created_at=1_764_000_000.0 + i * 0.001,
            chunk_count=len(manifest),
            mode=0o644,
            mtime=1_700_000_000.123456 + i,
        )
        yield rec, manifest


async def fill(meta: MetadataStore, n: int, chunks: int, keyed: bool = False) -> None:
    """Upload ``n`` files of ``chunks`` chunks as the API would: create, locate, commit;
    ``keyed``: then link each as the one version of its key, with a tag (``link``)."""
    for node in ("node-a", "node-b"):
        await meta.upsert_node(NodeRecord(node, "127.0.0.1", 9000, expires_at=1e12))
    files = list(make_files(n, chunks))
    for start in range(0, n, BATCH):
        batch = files[start : start + BATCH]
        await meta.create_files(batch)
        locs = [
            Location(e.chunk_id, node, e.size)
            for _rec, manifest in batch
            for e in manifest
            for node in ("node-a", "node-b")[:RF]
        ]
        await meta.add_locations(locs, 1_764_000_100.0)
        done = await meta.commit_files([rec.file_id for rec, _ in batch], 1_764_000_100.0)
        assert all(d is not None for d in done)
    if keyed:
        await link(cast(NamespaceStore, meta), [rec for rec, _ in files])


async def link(ns: NamespaceStore, files: list[FileRecord]) -> None:
    """Each committed file as the one version of its key, as ``Namespace.link`` makes it."""
    bucket = BucketRecord(BUCKET, "default", 1_764_000_000.0, versioning=VERSIONING_ENABLED)
    await ns.create_bucket(bucket)
    for i, rec in enumerate(files):
        obj = NewObject(
            bucket=BUCKET,
            key=rec.name,
            file_id=rec.file_id,
            size=rec.size,
            etag=rec.sha256,  # the native API's etag: the file's sha256
            sha256=rec.sha256,
            content_type="text/x-python",
            tags=TAG,
        )
        await ns.put_object(obj, 1_764_000_200.0 + i * 0.001)


# --- SQLite -------------------------------------------------------------------------------


def sqlite_sizes(path: Path) -> tuple[int, dict[str, int]]:
    """(file bytes after checkpoint + VACUUM, bytes per table/index from dbstat)."""
    import sqlite3  # the bench reads the file itself, beside the store

    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        try:
            rows = conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall()
        except sqlite3.OperationalError:  # built without SQLITE_ENABLE_DBSTAT_VTAB
            rows = []
    finally:
        conn.close()
    return path.stat().st_size, {str(name): int(size) for name, size in rows}


async def measure_sqlite(n: int, chunks: int, keyed: bool = False) -> dict[str, Any]:
    """Sizes after ``n`` files, and of the same store with none (every table's first page:
    a fixed cost, not a per-file one)."""
    with tempfile.TemporaryDirectory(prefix="dfs-meta-size-") as d:
        empty_path = Path(d) / "empty.db"
        await (await open_metadata_store(f"sqlite://{empty_path}")).close()
        empty, _ = sqlite_sizes(empty_path)
        path = Path(d) / "meta.db"
        meta = await open_metadata_store(f"sqlite://{path}")
        try:
            await fill(meta, n, chunks, keyed)
        finally:
            await meta.close()
        total, tables = sqlite_sizes(path)
    return {"total": total, "empty": empty, "tables": tables}


# --- DynamoDB -----------------------------------------------------------------------------


def number_size(text: str) -> int:
    """DynamoDB's size of a number: about one byte per two significant digits, plus one."""
    digits = format(abs(Decimal(text)), "f").replace(".", "").strip("0") or "0"
    return (len(digits) + 1) // 2 + 1


def value_size(value: dict[str, Any]) -> int:
    ((kind, v),) = value.items()
    if kind == "S":
        return len(v.encode())
    if kind == "N":
        return number_size(v)
    if kind == "B":
        return len(v)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in v)
    if kind == "NS":
        return sum(number_size(s) for s in v)
    if kind == "BS":
        return sum(len(b) for b in v)
    if kind == "L":
        return 3 + sum(1 + value_size(x) for x in v)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(x) for k, x in v.items())
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item: dict[str, Any]) -> int:
    """An item's size by DynamoDB's rules: each attribute's name and value."""
    return sum(len(name.encode()) + value_size(v) for name, v in item.items())


def _index_entry(item: dict[str, Any], table: dict[str, Any], index: dict[str, Any]) -> int | None:
    keys = [k["AttributeName"] for k in (*table["KeySchema"], *index["KeySchema"])]
    if any(k not in item for k in keys):
        return None  # sparse: not in the index
    proj = index["Projection"]
    if proj["ProjectionType"] == "ALL":
        names = set(item)
    else:
        names = set(keys) | set(proj.get("NonKeyAttributes", []))
    return item_size({k: v for k, v in item.items() if k in names}) + DYNAMO_ITEM_OVERHEAD


def dynamo_table_sizes(meta: Any) -> dict[str, dict[str, int]]:
    """Per logical table: items, item bytes, billed bytes (+100 per item), index bytes."""
    from dfs.meta.dynamo.schema import TABLES

    out: dict[str, dict[str, int]] = {}
    for logical, name in meta.tables.items():
        items = list(meta._rq.paginate("scan", TableName=name))
        raw = sum(item_size(i) for i in items)
        gsi = 0
        for index in TABLES[logical]["GlobalSecondaryIndexes"]:
            gsi += sum(s for i in items if (s := _index_entry(i, TABLES[logical], index)))
        out[logical] = {
            "items": len(items),
            "bytes": raw,
            "billed": raw + DYNAMO_ITEM_OVERHEAD * len(items) + gsi,
        }
    return out


async def measure_dynamo(endpoint: str, n: int, chunks: int, keyed: bool = False) -> dict[str, Any]:
    os.environ.update(AWS_ENV)
    prefix = f"size{uuid.uuid4().hex[:8]}-"
    url = f"dynamodb://?endpoint_url={endpoint}&table_prefix={prefix}&create_tables=1"
    meta = await open_metadata_store(url)
    try:
        await fill(meta, n, chunks, keyed)
        tables = await asyncio.to_thread(dynamo_table_sizes, meta)
    finally:
        await meta.close()
    return {"tables": tables}


# --- report -------------------------------------------------------------------------------


def report_sqlite(shape: str, n: int, got: dict[str, Any]) -> list[str]:
    lines = [
        f"SQLite, {shape}: {n} files, {got['total']} bytes after VACUUM = "
        f"{got['total'] / n:.0f} bytes per file; beyond the {got['empty']} bytes of an empty "
        f"database: {(got['total'] - got['empty']) / n:.0f} bytes per file",
        "| table or index | bytes | bytes per file |",
        "|---|---|---|",
    ]
    for name, size in sorted(got["tables"].items(), key=lambda kv: -kv[1]):
        lines.append(f"| {name} | {size} | {size / n:.1f} |")
    return lines


def report_dynamo(shape: str, n: int, got: dict[str, Any]) -> list[str]:
    tables = got["tables"]
    raw = sum(t["bytes"] for t in tables.values())
    billed = sum(t["billed"] for t in tables.values())
    lines = [
        f"DynamoDB, {shape}: {n} files, item bytes {raw / n:.0f} per file, billed storage "
        f"(+100 B per item and index entry) {billed / n:.0f} per file",
        "| table | items | item bytes | item bytes per file | billed per file |",
        "|---|---|---|---|---|",
    ]
    for name, t in sorted(tables.items(), key=lambda kv: -kv[1]["billed"]):
        if t["items"]:
            lines.append(
                f"| {name} | {t['items']} | {t['bytes']} | {t['bytes'] / n:.1f} | "
                f"{t['billed'] / n:.1f} |"
            )
    return lines


async def run(args: argparse.Namespace) -> list[str]:
    every = {
        "small": ("small (1 chunk)", 1, False),
        "keyed": ("small with a key (1 chunk, 1 version, 1 tag)", 1, True),
        "multi": (f"multi ({args.chunks} chunks)", args.chunks, False),
    }
    shapes = [every[name] for name in args.shapes]
    out: list[str] = []
    if "sqlite" in args.backends:
        for shape, chunks, keyed in shapes:
            got = await measure_sqlite(args.files, chunks, keyed)
            out += report_sqlite(shape, args.files, got)
            out.append("")
    if "dynamodb" in args.backends:
        proc, endpoint = start_moto()
        try:
            for shape, chunks, keyed in shapes:
                got = await measure_dynamo(endpoint, args.dynamo_files, chunks, keyed)
                out += report_dynamo(shape, args.dynamo_files, got)
                out.append("")
        finally:
            proc.terminate()
            proc.wait()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.meta_size")
    p.add_argument("--files", type=int, default=2000, help="files per shape on SQLite")
    p.add_argument("--dynamo-files", type=int, default=200, help="files per shape on DynamoDB")
    p.add_argument("--chunks", type=int, default=16, help="chunks per file of the multi shape")
    p.add_argument("--backends", nargs="*", default=["sqlite", "dynamodb"])
    p.add_argument(
        "--shapes",
        nargs="*",
        default=["small", "keyed", "multi"],
        choices=["small", "keyed", "multi"],
    )
    args = p.parse_args(argv)
    print("\n".join(asyncio.run(run(args))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
