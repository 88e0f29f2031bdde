"""Cost model: DynamoDB request units per upload, per file and per listing, from the calls
the metadata store makes (bench/meta_calls.py counts them: 41 SQLite / ~1,005 DynamoDB
calls per GiB of 1 MiB chunks) and the items it writes (dfs/meta/dynamo/), turned into
dollars at on-demand prices; EBS and network by layout.

Units: a write request unit covers 1 KB of item, a read request unit 4 KB strongly
consistent (the store reads strongly consistent everywhere) or 8 KB eventually consistent
(GSI queries); transactional writes cost double. Each write to an item with a GSI that
projects it costs one more write for the index.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from dfs.sim.config import GIB, KIB, PB, TB, Workload

PRICES = {
    "dynamodb_wru": 0.625 / 1e6,
    "dynamodb_rru": 0.125 / 1e6,
    "dynamodb_gb_month": 0.25,
    "ebs_gp3_gb_month": 0.08,
    "ebs_st1_gb_month": 0.045,
    "ebs_sc1_gb_month": 0.015,
    "inter_az_gb": 0.02,
    "internet_egress_gb": 0.05,
}
PRICE_SOURCE = (
    "AWS us-east-1 on-demand list prices: DynamoDB on-demand after the November 2024 "
    "reduction ($0.625 per million write and $0.125 per million read request units, AWS "
    "News Blog post on DynamoDB on-demand, updated 2025-01-31; $0.25/GB-month storage), EBS "
    "pricing page (gp3 $0.08, st1 $0.045, sc1 $0.015 per GB-month), EC2 data transfer "
    "($0.01/GB each way between AZs; internet egress $0.09/GB for the first 10 TB a month "
    "down to $0.05/GB above 150 TB: the 1 PB scale uses $0.05). Read 2026-12-02 from "
    "those pages as quoted in public write-ups; not re-checked against the live pages."
)
ITEM_OVERHEAD = 100  # bytes DynamoDB adds per item for storage billing
CHUNK_ITEM = 150  # chunk_id (64 B) + size, refcount, created_at, nodes set
LOCATION_ITEM = 110  # (chunk_id, node_id), size, created_at; by-node GSI projects ALL
TENANT_CHUNK_ITEM = 110
FILE_ITEM = 350  # without its inline manifest
ENTRY = 48  # one manifest entry (offset, size, sha256)
INLINE_ENTRIES = 256
NODE_ITEM = 200
HASH_ITEM = 250
TX_CHUNKS = 48
MEASURED_CALLS_PER_GIB = 1005  # bench/README.md: DynamoDB (moto), 3 nodes, RF 2, 823 chunks


def wru(nbytes: float) -> float:
    return float(max(math.ceil(nbytes / 1024), 1))


def rru(nbytes: float, consistent: bool = True) -> float:
    return float(max(math.ceil(nbytes / 4096), 1)) / (1 if consistent else 2)


@dataclass(frozen=True)
class Units:
    wru: float = 0.0
    rru: float = 0.0
    calls: float = 0.0

    def __add__(self, other: Units) -> Units:
        return Units(self.wru + other.wru, self.rru + other.rru, self.calls + other.calls)

    def __mul__(self, k: float) -> Units:
        return Units(self.wru * k, self.rru * k, self.calls * k)

    @property
    def dollars(self) -> float:
        return self.wru * PRICES["dynamodb_wru"] + self.rru * PRICES["dynamodb_rru"]


def per_new_chunk(rf: int) -> Units:
    """One new chunk of an upload: init (owned_chunks batch get), finalize (owned_chunks,
    get_locations, has-chunks then add_locations: RF location puts + their GSI + one update
    of the chunk item), commit (the refcount batch get, then chunk + tenant_chunk refcounts
    in a transaction, 48 chunks per transaction with its marker and counter shard), and its
    manifest entry."""
    reads = 3 * rru(CHUNK_ITEM)
    writes = rf * 2 * wru(LOCATION_ITEM) + wru(CHUNK_ITEM)
    writes += 2 * (wru(CHUNK_ITEM) + wru(TENANT_CHUNK_ITEM)) + 2 * 2 * 2 / TX_CHUNKS
    writes += ENTRY / 1024
    calls = 3 / 100 + rf / 25 + 1 + 1 / 100 + 2 / TX_CHUNKS
    return Units(writes, reads, calls)


def per_file(chunks: int, nodes: int) -> Units:
    """What a file costs beyond its chunks: the file item (with its inline manifest, and the
    by-tenant GSI once complete), the commit transaction (file, counter shard, file_hashes),
    reads of the token, file and file_hashes, and the live-node scans of init and finalize
    (every call scans the nodes table: ``list_live_nodes``)."""
    inline = ENTRY * min(chunks, INLINE_ENTRIES)
    file_bytes = FILE_ITEM + inline
    writes = wru(file_bytes) + 2 * (wru(file_bytes) + 1 + wru(HASH_ITEM)) + 1
    reads = 2 * rru(file_bytes) + rru(HASH_ITEM)
    scans = 2 * rru(nodes * NODE_ITEM)
    return Units(writes, reads + scans, 7 + 2 * math.ceil(nodes * NODE_ITEM / 1e6))


def upload(size: int, chunk_bytes: int, rf: int, nodes: int, dedup: float = 0.0) -> Units:
    chunks = max(math.ceil(size / chunk_bytes), 1)
    return per_file(chunks, nodes) + per_new_chunk(rf) * (chunks * (1 - dedup))


def listing(files: int = 1000) -> Units:
    """One page of ``files`` from the by-tenant GSI (eventually consistent, projected)."""
    return Units(0.0, rru(files * 250, consistent=False), 1.0)


SCAN_PAGE_ITEMS = 1000  # dfs.api.coordinator.SCAN_PAGE
SCAN_PAGE_SECONDS = 0.05  # one Scan round trip returning ~200 KB (assumed, not measured)


def full_scan(chunks: float, rf: int) -> dict[str, float]:
    """One pass over every chunk row (repair's full pass, and every GC pass today), strongly
    consistent, one page of SCAN_PAGE_ITEMS at a time."""
    item = CHUNK_ITEM + rf * 8
    pages = chunks / SCAN_PAGE_ITEMS
    units = chunks * item / 4096
    return {
        "rru": units,
        "dollars": units * PRICES["dynamodb_rru"],
        "calls": pages,
        "seconds_sequential": pages * SCAN_PAGE_SECONDS,
    }


def scan_month(
    chunks: float, rf: int, repair_full_scan: float, gc_interval: float
) -> dict[str, float]:
    """What the periodic full scans cost a month at ``chunks`` rows."""
    one = full_scan(chunks, rf)
    month = 30 * 86400.0
    return {
        "repair_full_scan_dollars": one["dollars"] * month / repair_full_scan,
        "gc_scan_dollars": one["dollars"] * month / max(gc_interval, one["seconds_sequential"]),
        "scan_seconds": one["seconds_sequential"],
        "scan_rru": one["rru"],
    }


def storage_per_chunk(rf: int) -> float:
    return (
        CHUNK_ITEM
        + ITEM_OVERHEAD
        + rf * 2 * (LOCATION_ITEM + ITEM_OVERHEAD)
        + TENANT_CHUNK_ITEM
        + ITEM_OVERHEAD
        + ENTRY
    )


def storage_per_file() -> float:
    return FILE_ITEM + 250 + HASH_ITEM + 3 * ITEM_OVERHEAD


def bucket_mean(lo: int, hi: int) -> float:
    """Mean of a log-uniform size on [lo, hi]."""
    return (hi - lo) / math.log(hi / lo)


def mix_summary(w: Workload, total: float = PB) -> dict[str, float]:
    mean = sum(p * bucket_mean(lo, hi) for lo, hi, p in w.size_mix)
    files = total / mean
    chunks = files * sum(
        p * max(bucket_mean(lo, hi) / w.chunk_bytes, 1.0) for lo, hi, p in w.size_mix
    )
    return {"mean_file_bytes": mean, "files": files, "chunks": chunks}


def _plain(u: Units) -> dict[str, float]:
    return {"wru": u.wru, "rru": u.rru, "calls": u.calls, "dollars": u.dollars}


def report(w: Workload, nodes: int, rf: int) -> dict[str, Any]:
    """Request units per GiB, per file by size, per listing, and the 1 PB totals (JSON-able)."""
    # bench/meta_calls.py's shape: 4 files of 256 MiB make one GiB
    per_gib = upload(GIB // 4, w.chunk_bytes, rf, nodes) * 4
    by_bucket = {
        f"{lo // KIB} KiB-{hi // KIB} KiB": _plain(
            upload(int(bucket_mean(lo, hi)), w.chunk_bytes, rf, nodes)
        )
        for lo, hi, _ in w.size_mix
    }
    mix = mix_summary(w)
    uploads = sum(
        p
        * mix["files"]
        * upload(int(bucket_mean(lo, hi)), w.chunk_bytes, rf, nodes, w.dedup).dollars
        for lo, hi, p in w.size_mix
    )
    meta_gb = (mix["chunks"] * storage_per_chunk(rf) + mix["files"] * storage_per_file()) / 1e9
    return {
        "units": {
            "per_gib": _plain(per_gib),
            "per_gib_3_nodes": _plain(upload(GIB // 4, w.chunk_bytes, rf, 3) * 4),
            "listing_1000": _plain(listing()),
        },
        "measured_calls_per_gib_3_nodes": MEASURED_CALLS_PER_GIB,
        "per_file": by_bucket,
        "mix": mix,
        "upload_1pb_dollars": uploads,
        "metadata_gb": meta_gb,
        "metadata_month_dollars": meta_gb * PRICES["dynamodb_gb_month"],
        "heartbeat_month_dollars": nodes
        / 5.0
        * 86400
        * 30
        * PRICES["dynamodb_wru"]
        * wru(NODE_ITEM),
        "prices": PRICES,
        "source": PRICE_SOURCE,
    }


def ebs_month(data_bytes: float, overhead: float, fill: float = 0.8) -> dict[str, float]:
    """Monthly EBS bill for ``data_bytes`` stored at ``overhead`` x on volumes ``fill`` full."""
    gb = data_bytes * overhead / fill / 1e9
    return {
        k.removeprefix("ebs_").removesuffix("_gb_month"): gb * v
        for k, v in PRICES.items()
        if k.startswith("ebs_")
    }


def network(data_bytes: float, overhead: float, zones: int) -> dict[str, float]:
    """One-time cross-AZ cost of writing ``data_bytes`` (copies in other zones) and of
    reading it all once to the internet."""
    cross = data_bytes * overhead * (zones - 1) / zones / 1e9
    return {
        "inter_az_write": cross * PRICES["inter_az_gb"],
        "internet_read_once": data_bytes / 1e9 * PRICES["internet_egress_gb"],
    }


__all__ = ["PRICES", "PRICE_SOURCE", "TB", "Units", "ebs_month", "network", "report", "upload"]
