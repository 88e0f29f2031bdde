"""The scale model's inputs: cluster shape, failure processes, workload and the service's
durability settings, with the defaults the report's numbers come from and why.

Failure rates are public figures, not measurements of dfs: EBS volumes are documented at
99.8-99.9 % annual durability (0.1-0.2 % AFR; AWS EBS volume types page), bare disks at
about 1.5 % AFR (Backblaze drive stats); transient node unavailability is short and
frequent (Ford et al., "Availability in Globally Distributed Storage Systems", OSDI 2010:
most node outages end within 15 minutes, and correlated bursts - a rack, a power domain -
are a large share of what loses data).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dfs import config as service

KIB = 1 << 10
MIB = 1 << 20
GIB = 1 << 30
TB = 10**12
PB = 10**15
DAY = 86400.0
YEAR = 365.0 * DAY


@dataclass(frozen=True)
class Failures:
    """Rates per node-year (or per zone / rack-year) and lognormal durations (median, sigma)."""

    crash_per_node_year: float = 4.0
    crash_median_s: float = 600.0
    crash_sigma: float = 1.5
    disk_afr: float = 0.002
    """Permanent loss of a node's data (an EBS volume: 0.1-0.2 % AFR)."""
    replace_s: float = 6 * 3600.0
    """A node that lost its disk rejoins empty, under a new id, after this long."""
    zone_outage_per_zone_year: float = 0.3
    zone_median_s: float = 2 * 3600.0
    zone_sigma: float = 0.8
    rack_size: int = 20
    rack_event_per_rack_year: float = 0.5
    """Correlated failures: a rack's nodes (same zone) go down together (switch, power)."""
    rack_median_s: float = 1800.0
    rack_disk_loss_p: float = 0.01
    """Share of rack events that also destroy the nodes' data (fire, a bad firmware push)."""


@dataclass(frozen=True)
class Workload:
    """Uploads, deletions and their size mix (counts per bucket, log-uniform inside)."""

    data_bytes: int = 1 * PB
    """Unique bytes stored at the end of the run (after dedup), before replication."""
    initial_fraction: float = 0.5
    """Share of the data present at the start; the rest arrives over the run."""
    dedup: float = 0.2
    """Share of uploaded bytes that are already stored (not written again)."""
    delete_per_year: float = 0.1
    """Share of the stored groups deleted per year (garbage collection frees them)."""
    size_mix: tuple[tuple[int, int, float], ...] = (
        (1 * KIB, 100 * KIB, 0.60),
        (100 * KIB, 10 * MIB, 0.30),
        (10 * MIB, 1 * GIB, 0.095),
        (1 * GIB, 10 * GIB, 0.005),
    )
    chunk_bytes: int = 1024 * MIB // 823
    """Mean chunk size of dfs.chunking's default profile (FastCDC, 1 MiB target): 823 chunks
    per GiB of random data in bench/meta_calls.py's run (bench/README.md)."""


@dataclass(frozen=True)
class Durability:
    """The service's settings (dfs.config defaults unless the run says otherwise)."""

    rf: int = service.DEFAULT_REPLICATION_FACTOR
    repair_rate: float = float(service.DEFAULT_REPAIR_RATE)
    repair_grace: float = service.DEFAULT_REPAIR_GRACE
    repair_interval: float = service.DEFAULT_REPAIR_INTERVAL
    heartbeat_interval: float = service.DEFAULT_HEARTBEAT_INTERVAL
    heartbeat_timeout: float = service.DEFAULT_HEARTBEAT_TIMEOUT
    gc_grace: float = service.DEFAULT_GC_GRACE
    gc_interval: float = service.DEFAULT_GC_INTERVAL
    min_free: int = service.DEFAULT_MIN_FREE
    zone_aware: bool = False
    """Run the proposed zone-aware repair targets and trimming instead of today's rules."""
    recheck: bool = False
    """Proposed: re-check each chunk against the current registry before copying it (today
    a pass copies everything it listed, even after the node came back)."""
    copy_bandwidth: float = 250.0 * MIB
    """Bytes/s of one node-to-node copy (a gp3/st1 volume's throughput class)."""


@dataclass(frozen=True)
class SimConfig:
    nodes: int = 1000
    zones: int = 3
    capacity_bytes: int = 16 * TB
    days: float = 365.0
    seed: int = 1
    groups: int = 100_000
    """Placement groups (each stands for data_bytes / groups of chunks sharing one node set)."""
    join_fraction: float = 0.05
    """Nodes added half way through the run (share of the initial count)."""
    failures: Failures = field(default_factory=Failures)
    workload: Workload = field(default_factory=Workload)
    durability: Durability = field(default_factory=Durability)

    @property
    def group_bytes(self) -> int:
        return max(self.workload.data_bytes // self.groups, 1)
