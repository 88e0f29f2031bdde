"""Prometheus metrics of the API and the nodes: the metric families and their exposition.

Each app owns its own ``CollectorRegistry`` (never the process-global one), so several apps in
one process (the integration tests run an API and N nodes in one event loop) do not collide.
HTTP series are labelled by the route's canonical path (``/get-chunk``, not the raw URL with
its query), the method and the status, which bounds their cardinality.

| series | type | labels | meaning |
|---|---|---|---|
| ``dfs_http_requests_total`` | counter | route, method, status | requests answered |
| ``dfs_http_request_duration_seconds`` | histogram | route, method, status | time to answer |
| ``dfs_http_request_bytes_total`` | counter | route | request body bytes read (in) |
| ``dfs_http_response_bytes_total`` | counter | route | response body bytes sent (out) |
| ``dfs_node_chunks_stored`` | gauge | | chunks on this node's disk |
| ``dfs_node_bytes_stored`` | gauge | | bytes of those chunks |
| ``dfs_node_capacity_bytes`` | gauge | | bytes this node may use |
| ``dfs_node_registered`` | gauge | | 1 while the last heartbeat is within its TTL |
| ``dfs_node_replication_queue_size`` | gauge | | replica writes waiting (0: sync replication) |
| ``dfs_files`` | gauge | | committed files (API) |
| ``dfs_logical_bytes`` / ``dfs_stored_bytes`` | gauge | | bytes of files / of distinct chunks |
| ``dfs_unique_chunks`` | gauge | | distinct chunks referenced |
| ``dfs_duplicate_chunks_avoided`` | gauge | | manifest entries that were already stored |
| ``dfs_dedup_ratio`` | gauge | | logical / stored bytes (1 when empty) |
| ``dfs_live_nodes`` / ``dfs_replication_factor`` | gauge | | registry view of the API |
| ``dfs_metadata_up`` | gauge | | 1 if the last scrape could read the metadata store |
| ``dfs_under_replicated_chunks`` | gauge | | set by the repairer; NaN until one reports |
| ``dfs_repair_queue_size`` | gauge | | set by the repairer; NaN until one reports |
| ``dfs_replication_queue_size`` | gauge | | async replication backlog (0: sync replication) |

No aiohttp here (the middleware and handlers live in ``dfs.monitoring``).
"""

from __future__ import annotations

import functools
import math
import os

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# seconds; chunk writes of a few MiB with fsync and a replica hop take 10-100 ms
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED_ROUTE = "<unmatched>"


class HttpMetrics:
    """Request count, latency and bytes in/out, by route, shared by the API and the nodes."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "dfs_http_requests",
            "HTTP requests answered",
            ("route", "method", "status"),
            registry=registry,
        )
        self.latency = Histogram(
            "dfs_http_request_duration_seconds",
            "Time to answer an HTTP request",
            ("route", "method", "status"),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.bytes_in = Counter(
            "dfs_http_request_bytes", "Request body bytes read", ("route",), registry=registry
        )
        self.bytes_out = Counter(
            "dfs_http_response_bytes", "Response body bytes sent", ("route",), registry=registry
        )

    def observe(
        self,
        route: str,
        method: str,
        status: int,
        seconds: float,
        bytes_in: int,
        bytes_out: int,
    ) -> None:
        code = str(status)
        self.requests.labels(route, method, code).inc()
        self.latency.labels(route, method, code).observe(seconds)
        if bytes_in:
            self.bytes_in.labels(route).inc(bytes_in)
        if bytes_out:
            self.bytes_out.labels(route).inc(bytes_out)

    def render(self) -> bytes:
        """The exposition; summed over every API worker's files when they write them
        (``PROMETHEUS_MULTIPROC_DIR``, set by ``dfs.api.workers`` before this import)."""
        if os.environ.get(MULTIPROC_ENV):
            merged = CollectorRegistry()
            multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
            return generate_latest(merged)
        return generate_latest(self.registry)


class NodeMetrics(HttpMetrics):
    """A node's series; the store gauges are read at scrape time by ``refresh``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry or CollectorRegistry())
        r = self.registry
        self.chunks = Gauge("dfs_node_chunks_stored", "Chunks stored on this node", registry=r)
        self.bytes = Gauge("dfs_node_bytes_stored", "Bytes of chunks on this node", registry=r)
        self.capacity = Gauge("dfs_node_capacity_bytes", "Bytes this node may use", registry=r)
        self.registered = Gauge(
            "dfs_node_registered", "1 while the node's registry entry is live", registry=r
        )
        self.replication_queue = Gauge(
            "dfs_node_replication_queue_size",
            "Replica writes waiting to be sent (0 with sync replication)",
            registry=r,
        )

    def refresh(self, *, chunks: int, used: int, capacity: int, registered: bool) -> None:
        self.chunks.set(chunks)
        self.bytes.set(used)
        self.capacity.set(capacity)
        self.registered.set(1 if registered else 0)

    def set_replication_queue(self, size: int) -> None:
        """Hook for an async replicator: the number of replica writes it still holds."""
        self.replication_queue.set(size)


class ApiMetrics(HttpMetrics):
    """The coordinator's series: dedup counters and the registry view, read at scrape time,
    plus gauges the repairer and an async replicator set through the ``set_*`` hooks."""

    def __init__(self, registry: CollectorRegistry | None = None, *, first: bool = True) -> None:
        super().__init__(registry or CollectorRegistry())
        r = self.registry
        # several API workers: a gauge reads as the value the last of them set (the
        # scrape's own refresh, the repairer's report), not one series per worker
        g = functools.partial(Gauge, registry=r, multiprocess_mode="mostrecent")
        self.files = g("dfs_files", "Committed files")
        self.logical_bytes = g("dfs_logical_bytes", "Bytes of committed files")
        self.stored_bytes = g("dfs_stored_bytes", "Bytes of the distinct chunks files reference")
        self.unique_chunks = g("dfs_unique_chunks", "Distinct chunks referenced")
        self.duplicates = g(
            "dfs_duplicate_chunks_avoided",
            "Manifest entries whose chunk was already stored when committed",
        )
        self.dedup_ratio = g("dfs_dedup_ratio", "Logical bytes / stored bytes")
        self.live_nodes = g("dfs_live_nodes", "Nodes with a live registry entry")
        self.replication_factor = g("dfs_replication_factor", "Copies kept of every chunk")
        self.under_replicated = g(
            "dfs_under_replicated_chunks",
            "Chunks with fewer live copies than the replication factor (NaN: not yet counted)",
        )
        self.repair_queue = g(
            "dfs_repair_queue_size",
            "Chunks waiting for repair (NaN: no repairer has reported)",
        )
        self.replication_queue = g(
            "dfs_replication_queue_size",
            "Replica writes waiting (0 with sync replication)",
        )
        self.metadata_up = g(
            "dfs_metadata_up", "1 if the last scrape could read the metadata store"
        )
        if first:  # NaN until one reports; a restarted worker must not set it back
            self.under_replicated.set(math.nan)
            self.repair_queue.set(math.nan)

    def refresh(self, stats: dict[str, object]) -> None:
        """Set the gauges from ``Coordinator.stats()``'s answer."""

        def num(key: str) -> float:
            value = stats.get(key, 0)
            return float(value) if isinstance(value, int | float) else 0.0

        self.files.set(num("total_files"))
        self.logical_bytes.set(num("logical_bytes"))
        self.stored_bytes.set(num("stored_bytes"))
        self.unique_chunks.set(num("unique_chunks"))
        self.duplicates.set(num("duplicates_avoided"))
        self.dedup_ratio.set(num("dedup_ratio"))
        self.live_nodes.set(num("live_nodes"))
        self.replication_factor.set(num("replication_factor"))

    def set_repair_status(
        self, *, under_replicated: int, repair_queue: int, replication_queue: int | None = None
    ) -> None:
        """Hook for the repairer (and an async replicator): call after each scan or batch."""
        self.under_replicated.set(under_replicated)
        self.repair_queue.set(repair_queue)
        if replication_queue is not None:
            self.replication_queue.set(replication_queue)
