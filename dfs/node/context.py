"""The storage node app's shared state: its one set of AppKeys and the request helpers.

Every route module (``routes_chunks``, ``routes_batch``, ``routes_maintenance``,
``routes_monitoring``) reads the node's configuration, chunk store and replica forwarder
through these keys and reads capabilities and query numbers through these helpers; they
import this module, never ``dfs.node.app``, which imports them to assemble the app. So there
is one key per object and no import cycle to dodge.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from dfs import auth, protocol
from dfs.chunkstore.base import ChunkStore
from dfs.config import NodeConfig
from dfs.errors import InvalidRequest
from dfs.metrics import NodeMetrics
from dfs.node import capabilities
from dfs.node.forwarding import ReplicaForwarder
from dfs.node.heartbeat import TrackingRegistrar


@dataclass
class Monitoring:
    """What ``/readyz`` and ``/metrics`` read besides the store. ``cfg`` may be replaced
    while the node runs (the integration tests set a metrics token this way)."""

    cfg: NodeConfig
    registrar: TrackingRegistrar


CONFIG = web.AppKey("config", NodeConfig)
STORE = web.AppKey[ChunkStore]("store")
FORWARDER = web.AppKey("forwarder", ReplicaForwarder)
MONITORING = web.AppKey("monitoring", Monitoring)
METRICS = web.AppKey("metrics", NodeMetrics)


def capability(request: web.Request) -> str | None:
    """The capability a request carries: the ``X-Dfs-Capability`` header or ``cap`` query."""
    return request.headers.get(protocol.CAPABILITY) or request.query.get("cap")


def authorize(
    request: web.Request, op: str, chunk_id: str = auth.ANY_CHUNK, *, extra: str = ""
) -> None:
    """AuthError/Forbidden unless the request's capability grants ``op`` on ``chunk_id`` here."""
    capabilities.check(request.app[CONFIG], capability(request), op, chunk_id, extra=extra)


def is_forwarded(request: web.Request) -> bool:
    """A primary's replica write (never fanned out again), not a client's upload write."""
    return request.headers.get(protocol.FORWARDED) == "1"


def int_query(request: web.Request, name: str, default: int) -> int:
    """An integer query parameter; InvalidRequest naming it if it is not one."""
    try:
        return int(request.query.get(name, str(default)))
    except ValueError:
        raise InvalidRequest(f"{name} must be an integer") from None
