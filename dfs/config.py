"""Configuration of the API and node processes: frozen dataclasses loaded from an env mapping.

Precedence: defaults < environment < command-line flags (the ``main()``s apply flags by
passing an updated mapping). The seed's variable names keep working; additions are ``DFS_*``.
Every value is validated once at load; an invalid one raises ``ConfigError`` naming the
variable, and the process exits with that one line instead of half-starting.

Standard library only; loaders take the env as an argument so tests need no monkeypatching.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from dfs import protocol
from dfs.auth import CAP_MAX_TTL, DEFAULT_CAP_TTL, MIN_SECRET_LENGTH, hash_token
from dfs.errors import ConfigError
from dfs.ids import parse_node_id
from dfs.protocol import DEFAULT_GC_GRACE as DEFAULT_GC_GRACE  # its home is the contract

DEFAULT_API_PORT = 8080
DEFAULT_NODE_PORT = 9000
DEFAULT_BIND_HOST = "127.0.0.1"
DEFAULT_DATA_DIR = "./dfs-data"
DEFAULT_REPLICATION_FACTOR = 2
DEFAULT_REPLICATION_TIMEOUT = 30.0
DEFAULT_HEARTBEAT_INTERVAL = 5.0
DEFAULT_HEARTBEAT_TIMEOUT = 15.0
REPLICATION_STRATEGIES = ("sync", "async")
DEFAULT_REPAIR_GRACE = 60.0
DEFAULT_DRAIN_SETTLE = 60.0
DEFAULT_REPAIR_INTERVAL = 10.0
DEFAULT_REPAIR_RATE = 64 * 1024 * 1024
DEFAULT_S3_MULTIPART_TTL = 7 * 24 * 3600.0
DEFAULT_S3_UPLOADS_REFRESH = 15.0
DEFAULT_GC_INTERVAL = 60.0
DEFAULT_REPAIR_FULL_SCAN = 3600.0
DEFAULT_ORPHAN_INTERVAL = 3600.0
DEFAULT_INVENTORY_PAGES_PER_PASS = 10
DEFAULT_USAGE_SAMPLE_INTERVAL = 300.0
DEFAULT_USAGE_HISTORY_RETENTION = 90 * 86400.0
DEFAULT_MIN_FREE = 64 * 1024 * 1024
DEFAULT_SCRUB_INTERVAL = 3600.0
DEFAULT_SCRUB_RATE = 32 * 1024 * 1024
DEFAULT_PACK_THRESHOLD = 256 * 1024
"""Chunks below this many bytes go to a node's pack files (measured: bench/pack_threshold.py)."""
DEFAULT_PACK_SIZE = 32 * 1024 * 1024
"""A pack file takes appends until it is this big (then a new one starts)."""
DEFAULT_COMPACT_INTERVAL = 300.0

T = TypeVar("T")


def _get(env: Mapping[str, str], name: str, default: T, parse: Callable[[str], T]) -> T:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return parse(raw.strip())
    except (ValueError, ConfigError) as exc:
        reason = exc.message if isinstance(exc, ConfigError) else str(exc)
        raise ConfigError(name, raw, reason) from None


def _zone(raw: str) -> str:
    if len(raw) > protocol.MAX_ZONE or not raw.isprintable():
        raise ValueError(f"must be printable text of at most {protocol.MAX_ZONE} characters")
    return raw


def _port(raw: str) -> int:
    port = int(raw)
    if not 0 <= port <= 65535:
        raise ValueError("must be a TCP port in [0, 65535]")
    return port


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not (value > 0 and math.isfinite(value)):  # "inf" would mean: never time out
        raise ValueError("must be a positive number of seconds")
    return value


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise ValueError("must be an integer >= 1")
    return value


MAX_API_WORKERS = 64


def _workers(raw: str) -> int:
    value = int(raw)
    if not 1 <= value <= MAX_API_WORKERS:
        raise ValueError(f"must be an integer from 1 to {MAX_API_WORKERS}")
    return value


def _non_negative_float(raw: str) -> float:
    value = float(raw)
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError("must be a number of seconds >= 0")
    return value


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be an integer >= 0")
    return value


def _bool(raw: str) -> bool:
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be 1/0, true/false, yes/no or on/off")


def _host(raw: str) -> str:
    try:
        ipaddress.ip_address(raw)
    except ValueError:
        if not raw or any(c in raw for c in "/:@ ?#"):
            raise ValueError("must be an IP address or a host name") from None
    return raw


def _is_unspecified(host: str) -> bool:
    """0.0.0.0, ::, and every other spelling of them (::0, 0:0::0, ...)."""
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def _url(raw: str) -> str:
    if not raw.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return raw.rstrip("/")


def _meta_url(raw: str) -> str:
    if not raw.startswith(("sqlite://", "dynamodb://")):
        raise ValueError("must start with sqlite:/// or dynamodb://")
    return raw


def _secret(raw: str) -> bytes:
    if len(raw) < MIN_SECRET_LENGTH:
        raise ValueError(
            f"must be at least {MIN_SECRET_LENGTH} characters (e.g. `openssl rand -hex 32`)"
        )
    return raw.encode()


def _cluster_secret(env: Mapping[str, str]) -> bytes:
    secret = _get(env, "DFS_CLUSTER_SECRET", b"", _secret)
    if not secret:
        raise ConfigError(
            "DFS_CLUSTER_SECRET",
            "",
            "required: the API and every node must share it "
            "(e.g. export DFS_CLUSTER_SECRET=$(openssl rand -hex 32))",
        )
    return secret


def _api_secret(env: Mapping[str, str], cluster_secret: bytes) -> bytes:
    """DFS_API_SECRET: the key only API processes hold (signed download URLs, page keys).
    Unset: ``dfs-api`` keeps a generated one in its data directory (one API process only)."""
    secret = _get(env, "DFS_API_SECRET", b"", _secret)
    if secret and secret == cluster_secret:
        raise ConfigError(
            "DFS_API_SECRET", "", "must differ from DFS_CLUSTER_SECRET: nodes hold that one"
        )
    return secret


def _cap_ttl(raw: str) -> float:
    ttl = _positive_float(raw)
    if ttl > CAP_MAX_TTL:
        raise ValueError(f"must be at most {CAP_MAX_TTL} seconds")
    return ttl


def registers_through_api(meta_url: str | None, api_url: str | None) -> bool:
    """Whether a node given these registers through the API rather than writing its entry in
    the metadata store: always when it has no store, and on SQLite whenever it knows the API.
    SQLite has one write lock per file, so a node process stopped inside its write (SIGSTOP,
    a debugger, a swapped-out page) would hold it: every other writer, the API's every
    upload and delete among them, would wait out the busy timeout and fail. Through the API,
    a stopped node holds nothing but its own requests."""
    return api_url is not None and (meta_url is None or meta_url.startswith("sqlite:"))


def default_meta_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir.resolve() / 'meta.db'}"


@dataclass(frozen=True)
class ApiConfig:
    host: str = DEFAULT_BIND_HOST
    port: int = DEFAULT_API_PORT
    data_dir: Path = Path(DEFAULT_DATA_DIR)
    meta_url: str = ""
    replication_factor: int = DEFAULT_REPLICATION_FACTOR
    replication_strategy: str = "sync"
    replication_timeout: float = DEFAULT_REPLICATION_TIMEOUT
    heartbeat_timeout: float = DEFAULT_HEARTBEAT_TIMEOUT
    cluster_secret: bytes = b""
    """Shared with every node: capabilities, replica capabilities, receipts, heartbeats."""
    api_secret: bytes = b""
    """API processes only (DFS_API_SECRET): signed download URLs and sealed page keys, so that
    a compromised node cannot mint them; empty until ``dfs.api.main`` loads or generates it."""
    admin_token_hash: str | None = None
    """SHA-256 of DFS_ADMIN_TOKEN; None: generate one at first start (see dfs.api.main)."""
    cap_ttl: float = DEFAULT_CAP_TTL
    repair_grace: float = DEFAULT_REPAIR_GRACE
    """Seconds a dead node's copies still count before repair replaces them."""
    drain_settle: float = DEFAULT_DRAIN_SETTLE
    """Seconds from a drain's start before it may say done (``dfs.api.drain``: a commit
    counting copies against a draining set read before the drain began lands within it)."""
    repair_interval: float = DEFAULT_REPAIR_INTERVAL
    repair_rate: int = DEFAULT_REPAIR_RATE
    """Bytes per second repair may copy (per cluster: one API process holds the lease)."""
    gc_grace: float = DEFAULT_GC_GRACE
    """Seconds an unreferenced chunk survives; also the longest an upload may take."""
    gc_interval: float = DEFAULT_GC_INTERVAL
    repair_full_scan: float = DEFAULT_REPAIR_FULL_SCAN
    """Seconds between repair passes that scan every chunk (the others read the by-node
    index for dead and returning nodes only)."""
    orphan_interval: float = DEFAULT_ORPHAN_INTERVAL
    """Seconds between sweeps of every node for copies no chunk row accounts for."""
    inventory_pages_per_pass: int = DEFAULT_INVENTORY_PAGES_PER_PASS
    """Pages of 1000 chunk ids per live node that each repair pass compares with what the
    node really holds (``dfs.api.inventory``); 0 turns the inventory off."""
    usage_sample_interval: float = DEFAULT_USAGE_SAMPLE_INTERVAL
    """Seconds between samples of every tenant's usage into the usage history."""
    usage_history_retention: float = DEFAULT_USAGE_HISTORY_RETENTION
    """Seconds a usage sample is kept (the dashboards' longest history)."""
    min_free_bytes: int = DEFAULT_MIN_FREE
    """Placement skips nodes with less free space than this plus the chunk."""
    maintenance: bool = True
    """Run the repair and garbage-collection loops (DFS_MAINTENANCE=0: tests drive them)."""
    workers: int = 1
    """DFS_API_WORKERS: processes answering on the API's one listening socket (``dfs.api.workers``);
    each request is planned on one core, so a machine's cores serve requests at once."""
    metrics_token_hash: str | None = None
    """SHA-256 of DFS_METRICS_TOKEN, the bearer token /metrics takes (besides the admin's)."""
    cors_origins: tuple[str, ...] = ()
    """DFS_CORS_ORIGINS: comma-separated origins browsers may call the API from ("*" for any)."""
    public_url: str | None = None
    """DFS_PUBLIC_URL: base of the signed download URLs; unset: the URL the request came to."""
    s3_multipart_ttl: float = DEFAULT_S3_MULTIPART_TTL
    """DFS_S3_MULTIPART_TTL: seconds after which GC aborts an S3 multipart upload that was
    neither completed nor aborted (and deletes its parts)."""
    s3_uploads_refresh: float = DEFAULT_S3_UPLOADS_REFRESH
    """DFS_S3_UPLOADS_REFRESH: seconds between two counts of the gateway's multipart-uploads
    gauge (a scrape in between answers the last count); tests set it short."""


def _origins(raw: str) -> tuple[str, ...]:
    out = tuple(o.strip().rstrip("/") for o in raw.split(",") if o.strip())
    for o in out:
        if o != "*" and not o.startswith(("http://", "https://")):
            raise ValueError("must be '*' or comma-separated http(s):// origins")
    return out


def load_api_config(env: Mapping[str, str]) -> ApiConfig:
    data_dir = _get(env, "DFS_DATA_DIR", Path(DEFAULT_DATA_DIR), Path)
    strategy = _get(env, "REPLICATION_STRATEGY", "sync", str)
    if strategy not in REPLICATION_STRATEGIES:
        raise ConfigError("REPLICATION_STRATEGY", strategy, "must be 'sync' or 'async'")
    return ApiConfig(
        host=_get(env, "DFS_API_HOST", DEFAULT_BIND_HOST, _host),
        port=_get(env, "DFS_API_PORT", DEFAULT_API_PORT, _port),
        data_dir=data_dir,
        meta_url=_get(env, "DFS_META_URL", default_meta_url(data_dir), _meta_url),
        replication_factor=_get(
            env, "REPLICATION_FACTOR", DEFAULT_REPLICATION_FACTOR, _positive_int
        ),
        replication_strategy=strategy,
        replication_timeout=_get(
            env, "REPLICATION_TIMEOUT", DEFAULT_REPLICATION_TIMEOUT, _positive_float
        ),
        heartbeat_timeout=_get(
            env, "NODE_HEARTBEAT_TIMEOUT", DEFAULT_HEARTBEAT_TIMEOUT, _positive_float
        ),
        cluster_secret=(cluster := _cluster_secret(env)),
        api_secret=_api_secret(env, cluster),
        admin_token_hash=_get(env, "DFS_ADMIN_TOKEN", None, _admin_token),
        cap_ttl=_get(env, "DFS_CAPABILITY_TTL", DEFAULT_CAP_TTL, _cap_ttl),
        repair_grace=_get(env, "DFS_REPAIR_GRACE", DEFAULT_REPAIR_GRACE, _non_negative_float),
        drain_settle=_get(env, "DFS_DRAIN_SETTLE", DEFAULT_DRAIN_SETTLE, _non_negative_float),
        repair_interval=_get(env, "DFS_REPAIR_INTERVAL", DEFAULT_REPAIR_INTERVAL, _positive_float),
        repair_rate=_get(env, "DFS_REPAIR_RATE", DEFAULT_REPAIR_RATE, _positive_int),
        gc_grace=_get(env, "DFS_GC_GRACE", DEFAULT_GC_GRACE, _positive_float),
        gc_interval=_get(env, "DFS_GC_INTERVAL", DEFAULT_GC_INTERVAL, _positive_float),
        repair_full_scan=_get(
            env, "DFS_REPAIR_FULL_SCAN", DEFAULT_REPAIR_FULL_SCAN, _positive_float
        ),
        orphan_interval=_get(env, "DFS_ORPHAN_INTERVAL", DEFAULT_ORPHAN_INTERVAL, _positive_float),
        inventory_pages_per_pass=_get(
            env,
            "DFS_INVENTORY_PAGES_PER_PASS",
            DEFAULT_INVENTORY_PAGES_PER_PASS,
            _non_negative_int,
        ),
        usage_sample_interval=_get(
            env, "DFS_USAGE_SAMPLE_INTERVAL", DEFAULT_USAGE_SAMPLE_INTERVAL, _positive_float
        ),
        usage_history_retention=_get(
            env, "DFS_USAGE_HISTORY_RETENTION", DEFAULT_USAGE_HISTORY_RETENTION, _positive_float
        ),
        min_free_bytes=_get(env, "DFS_MIN_FREE_BYTES", DEFAULT_MIN_FREE, _non_negative_int),
        maintenance=_get(env, "DFS_MAINTENANCE", True, _bool),
        workers=_get(env, "DFS_API_WORKERS", 1, _workers),
        metrics_token_hash=_get(env, "DFS_METRICS_TOKEN", None, _admin_token),
        cors_origins=_get(env, "DFS_CORS_ORIGINS", (), _origins),
        public_url=_get(env, "DFS_PUBLIC_URL", None, _url),
        s3_multipart_ttl=_get(
            env, "DFS_S3_MULTIPART_TTL", DEFAULT_S3_MULTIPART_TTL, _positive_float
        ),
        s3_uploads_refresh=_get(
            env, "DFS_S3_UPLOADS_REFRESH", DEFAULT_S3_UPLOADS_REFRESH, _positive_float
        ),
    )


def _admin_token(raw: str) -> str:
    if len(raw) < MIN_SECRET_LENGTH:
        raise ValueError(f"must be at least {MIN_SECRET_LENGTH} characters")
    return hash_token(raw)


@dataclass(frozen=True)
class NodeConfig:
    node_id: str
    host: str = DEFAULT_BIND_HOST
    port: int = DEFAULT_NODE_PORT
    advertise_host: str = DEFAULT_BIND_HOST
    zone: str = ""
    data_dir: Path = Path(DEFAULT_DATA_DIR)
    meta_url: str | None = None
    api_url: str | None = None
    capacity_bytes: int | None = None
    heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL
    heartbeat_timeout: float = DEFAULT_HEARTBEAT_TIMEOUT
    replication_timeout: float = DEFAULT_REPLICATION_TIMEOUT
    cluster_secret: bytes = b""
    scrub_interval: float = DEFAULT_SCRUB_INTERVAL
    scrub_rate: float = DEFAULT_SCRUB_RATE
    pack_threshold: int = DEFAULT_PACK_THRESHOLD
    """Chunks below this size are appended to pack files; 0 stores every new chunk as a file."""
    pack_size: int = DEFAULT_PACK_SIZE
    compact_interval: float = DEFAULT_COMPACT_INTERVAL
    metrics_token_hash: str | None = None
    """SHA-256 of DFS_METRICS_TOKEN; without it the node's /metrics stays closed."""


def load_node_config(env: Mapping[str, str], default_node_id: Callable[[Path], str]) -> NodeConfig:
    """Load a node's config. ``default_node_id(data_dir)`` supplies NODE_ID when unset.

    The node needs a way to register: DFS_META_URL (write the registry directly, the seed's
    design: on DynamoDB nodes keep registering while the API is down) and/or DFS_API_URL
    (heartbeat through the API). With both set, DynamoDB is written directly, and a SQLite
    file never is (``registers_through_api``). With neither, the node registers through the
    API on this machine at DFS_API_PORT (8080), where ``dfs-api`` listens unconfigured.
    """
    data_dir = _get(env, "DFS_DATA_DIR", Path(DEFAULT_DATA_DIR), Path)
    host = _get(env, "DFS_NODE_HOST", DEFAULT_BIND_HOST, _host)
    advertise = _get(env, "DFS_NODE_ADVERTISE_HOST", host, _host)
    if _is_unspecified(advertise):
        raise ConfigError(
            "DFS_NODE_ADVERTISE_HOST",
            advertise,
            "set the address other processes reach this node at",
        )
    meta_url = _get(env, "DFS_META_URL", None, _meta_url)
    api_url = _get(env, "DFS_API_URL", None, _url)
    if meta_url is None and api_url is None:
        # where `dfs-api` listens with no configuration, so the two run side by side in one
        # folder with no configuration at all
        api_port = _get(env, "DFS_API_PORT", DEFAULT_API_PORT, _port)
        api_url = f"http://{DEFAULT_BIND_HOST}:{api_port}"
    if registers_through_api(meta_url, api_url):
        meta_url = None
    interval = _get(env, "NODE_HEARTBEAT_INTERVAL", DEFAULT_HEARTBEAT_INTERVAL, _positive_float)
    timeout = _get(env, "NODE_HEARTBEAT_TIMEOUT", DEFAULT_HEARTBEAT_TIMEOUT, _positive_float)
    if timeout <= interval:
        raise ConfigError(
            "NODE_HEARTBEAT_TIMEOUT", timeout, f"must exceed NODE_HEARTBEAT_INTERVAL ({interval})"
        )
    node_id = _get(env, "NODE_ID", "", lambda raw: str(parse_node_id(raw, "NODE_ID")))
    return NodeConfig(
        node_id=node_id or default_node_id(data_dir),
        host=host,
        port=_get(env, "NODE_PORT", DEFAULT_NODE_PORT, _port),
        advertise_host=advertise,
        zone=_get(env, "DFS_NODE_ZONE", "", _zone),
        data_dir=data_dir,
        meta_url=meta_url,
        api_url=api_url,
        capacity_bytes=_get(env, "DFS_NODE_CAPACITY", None, _positive_int),
        heartbeat_interval=interval,
        heartbeat_timeout=timeout,
        replication_timeout=_get(
            env, "REPLICATION_TIMEOUT", DEFAULT_REPLICATION_TIMEOUT, _positive_float
        ),
        cluster_secret=_cluster_secret(env),
        scrub_interval=_get(env, "DFS_SCRUB_INTERVAL", DEFAULT_SCRUB_INTERVAL, _positive_float),
        scrub_rate=_get(env, "DFS_SCRUB_RATE", float(DEFAULT_SCRUB_RATE), _positive_float),
        pack_threshold=_get(env, "DFS_PACK_THRESHOLD", DEFAULT_PACK_THRESHOLD, _non_negative_int),
        pack_size=_get(env, "DFS_PACK_SIZE", DEFAULT_PACK_SIZE, _positive_int),
        compact_interval=_get(
            env, "DFS_COMPACT_INTERVAL", DEFAULT_COMPACT_INTERVAL, _positive_float
        ),
        metrics_token_hash=_get(env, "DFS_METRICS_TOKEN", None, _admin_token),
    )
