"""Capabilities as a storage node checks and mints them: the node's side of ``dfs.auth``.

Every node operation is one the API (or, for a replica write, a primary node) signed with
the cluster secret for exactly that operation, chunk and node. This module holds the checks
the routes share, so that ``/store-chunk`` and ``/store-chunks`` accept capabilities of the
same shape (a batch's binds its list digests where a chunk's binds its id), and the one place
a node mints a capability of its own: the ``replicate`` (or ``replicate-batch``) capability a
primary gives each replica it forwards to.

An upload write's ``put`` capability binds the upload's file id and the raw FORWARD_TO list;
under REPLICATION_STRATEGY=async the API signs the same fields plus an async marker, and the
marker is not sent separately: the node learns it by which of the two signatures checks.
No aiohttp here: the routes pass the capability they read from the request.
"""

from __future__ import annotations

from dfs import auth, protocol
from dfs.config import NodeConfig
from dfs.errors import Forbidden


def check(
    cfg: NodeConfig, cap: str | None, op: str, chunk_id: str = auth.ANY_CHUNK, *, extra: str = ""
) -> None:
    """AuthError/Forbidden unless ``cap`` grants ``op`` on ``chunk_id`` on this node."""
    auth.check(cfg.cluster_secret, cap, op, chunk_id, cfg.node_id, extra=extra)


def check_put(
    cfg: NodeConfig,
    cap: str | None,
    chunk_id: str,
    file_id: str,
    forward: str,
    op: str = auth.OP_PUT,
) -> bool:
    """Check a client's upload write of ``chunk_id`` for ``file_id``, forwarded to the raw
    FORWARD_TO value ``forward``; True when the API signed it for async replication. With
    ``op`` ``put-batch``, ``chunk_id`` and ``file_id`` are a batch's two list digests."""
    try:
        check(cfg, cap, op, chunk_id, extra=protocol.put_cap_extra(file_id, forward))
        return False
    except Forbidden:
        extra = protocol.put_cap_extra(file_id, forward, asynchronous=True)
        check(cfg, cap, op, chunk_id, extra=extra)
        return True


def check_put_batch(
    cfg: NodeConfig, cap: str | None, chunks_sha256: str, files_sha256: str, forward: str
) -> bool:
    """Check a client's ``/store-chunks`` batch: its chunk-id list and file-id list (their
    ``protocol.list_sha256``), forwarded to ``forward``; True when signed for async."""
    return check_put(cfg, cap, chunks_sha256, files_sha256, forward, auth.OP_PUT_BATCH)


def check_replicate(cfg: NodeConfig, cap: str | None, chunk_id: str) -> None:
    """Check a primary's replica write of ``chunk_id`` to this node."""
    check(cfg, cap, auth.OP_REPLICATE, chunk_id)


def check_replicate_batch(cfg: NodeConfig, cap: str | None, chunks_sha256: str) -> None:
    """Check a primary's replica batch to this node, by its chunk-id list's digest."""
    check(cfg, cap, auth.OP_REPLICATE_BATCH, chunks_sha256)


def replica_cap(cfg: NodeConfig, chunk_id: str, node_id: str, op: str = auth.OP_REPLICATE) -> str:
    """The capability this node, as primary, gives ``node_id`` to store ``chunk_id`` (or,
    with ``replicate-batch``, the batch whose chunk-id list digest it is); it lives as long
    as a replica write may take, plus the allowed clock skew, but never longer than a
    capability may (``CAP_MAX_TTL``: a longer one is refused, and REPLICATION_TIMEOUT may
    be longer). The replica checks it when the request's head arrives, before the body, so
    it need not outlive the write."""
    ttl = min(cfg.replication_timeout + auth.CLOCK_SKEW, auth.CAP_MAX_TTL)
    return auth.mint(cfg.cluster_secret, op, chunk_id, node_id, ttl=ttl)


def receipt(cfg: NodeConfig, file_id: str, chunk_id: str) -> str:
    """Proof for finalize-upload that upload ``file_id`` sent ``chunk_id``'s verified bytes."""
    return auth.mint_receipt(cfg.cluster_secret, file_id, chunk_id)
