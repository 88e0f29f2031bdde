"""Who may call the coordinator and who stores for it: tokens, tenants and the node registry.

- Bearer tokens name a tenant and a role (``authenticate``; the admin token comes from the
  configuration, the others from the metadata store, cached for ``TOKEN_CACHE_SECONDS``).
- Tenants and tokens are created by admins; a token's text is returned once, only its hash
  is stored.
- Nodes register themselves with heartbeats signed with the cluster secret, each binding all
  they announce (address, port, capacity, use, zone, disk identity) and a (boot, seq) pair
  the metadata store accepts once (``advance_node_sequence``: no replays, on any API
  process); a clean shutdown, its own
  capability operation, leaves a tombstone (``deregister_node``) that repair reads as "down
  since then".

Separate from ``dfs.api.coordinator`` (which plans and commits files) because none of this
touches files, chunks or nodes' disks; it knows nothing of aiohttp.web.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dfs import auth
from dfs.api.bodies import ADMIN_TENANT, Principal
from dfs.config import ApiConfig
from dfs.errors import AuthError, Conflict, Forbidden, InvalidRequest, NotFound
from dfs.meta.base import NODE_UP, MetadataStore, NodeRecord, TokenRecord

TOKEN_CACHE_SECONDS = 10.0
"""How long an API process trusts a token it looked up: a revoked token is refused by every
API process within this many seconds (the one that revoked it at once)."""
ADMIN_TOKEN_LABEL = "bootstrap admin (DFS_ADMIN_TOKEN)"


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """What a node says about itself in a heartbeat (already validated by the route)."""

    node_id: str
    host: str
    port: int
    zone: str
    capacity_bytes: int
    used_bytes: int
    boot: int
    """The node's boot number (greater at every start); with ``seq`` it makes each heartbeat
    usable once, and none of an earlier boot usable after a restart."""
    seq: int
    disk_id: str = ""


class Registry:
    def __init__(
        self, cfg: ApiConfig, meta: MetadataStore, clock: Callable[[], float] = time.time
    ) -> None:
        self.cfg = cfg
        self.meta = meta
        self.clock = clock
        self._token_cache: dict[str, tuple[float, Principal]] = {}

    # --- callers ---------------------------------------------------------------------------

    async def authenticate(self, token: str | None) -> Principal:
        """The principal a bearer token names; AuthError for a missing or unknown token."""
        if not token:
            raise AuthError("missing bearer token (Authorization: Bearer <token>)")
        digest = auth.hash_token(token)
        admin_hash = self.cfg.admin_token_hash
        if admin_hash and auth.tokens_equal(digest, admin_hash):
            return Principal(
                ADMIN_TENANT, auth.ROLE_ADMIN, auth.token_id(digest), ADMIN_TOKEN_LABEL
            )
        now = self.clock()
        cached = self._token_cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        rec = await self.meta.get_token(digest)
        if rec is None:
            raise AuthError("invalid token")
        principal = Principal(rec.tenant, rec.role, auth.token_id(digest), rec.label)
        if len(self._token_cache) > 10_000:
            self._token_cache.clear()
        self._token_cache[digest] = (now + TOKEN_CACHE_SECONDS, principal)
        return principal

    async def create_tenant(self, tenant: str) -> dict[str, Any]:
        if tenant == ADMIN_TENANT:
            raise Conflict(f"tenant name {tenant!r} is reserved")
        await self.meta.create_tenant(tenant, self.clock())
        return {"tenant": tenant}

    async def list_tenants(self) -> dict[str, Any]:
        return {"tenants": await self.meta.list_tenants()}

    async def create_token(self, tenant: str, role: str, label: str) -> dict[str, Any]:
        """A new token for an existing tenant; its text is returned once and never stored."""
        if role not in auth.ROLES:
            raise InvalidRequest(f"role must be one of {', '.join(auth.ROLES)}")
        if not await self.meta.tenant_exists(tenant):
            raise NotFound(f"no tenant {tenant}")
        token = auth.new_token()
        await self.meta.put_token(
            TokenRecord(auth.hash_token(token), tenant, role, label, self.clock())
        )
        digest = auth.hash_token(token)
        return {
            "token": token,
            "token_id": auth.token_id(digest),
            "tenant": tenant,
            "role": role,
            "label": label,
        }

    async def list_tokens(self, tenant: str | None) -> dict[str, Any]:
        """The tokens (of one tenant, else all), named by id: their text is never stored."""
        recs = await self.meta.list_tokens(tenant)
        return {"tokens": [_token_body(r) for r in recs]}

    async def revoke_token(self, token_id: str) -> dict[str, Any]:
        """Delete the token named ``token_id``: refused here at once, and by every other API
        process once its cache entry (TOKEN_CACHE_SECONDS) runs out."""
        if not auth.TOKEN_ID_RE.fullmatch(token_id):
            raise InvalidRequest("a token id is 16 lowercase hex digits (dfs-client admin tokens)")
        admin_hash = self.cfg.admin_token_hash
        if admin_hash and auth.token_id(admin_hash) == token_id:
            raise InvalidRequest("the bootstrap admin token is DFS_ADMIN_TOKEN: change it there")
        matches = [
            r for r in await self.meta.list_tokens() if auth.token_id(r.token_hash) == token_id
        ]
        if len(matches) != 1:
            raise NotFound(f"no token {token_id}")  # 2+: a 64-bit collision, never seen
        await self.meta.delete_token(matches[0].token_hash)
        self._token_cache.pop(matches[0].token_hash, None)
        return {"token_id": token_id, "revoked": True}

    # --- nodes -----------------------------------------------------------------------------

    async def accept_heartbeat(self, cap: str | None, beat: Heartbeat) -> dict[str, Any]:
        """A heartbeat whose capability binds everything it announces, not seen before."""
        claim = (
            beat.host,
            beat.port,
            beat.capacity_bytes,
            beat.disk_id,
            beat.used_bytes,
            beat.zone,
        )
        self._check_node_call(cap, auth.OP_HEARTBEAT, beat.node_id, beat.boot, beat.seq, claim)
        await self._advance(beat.node_id, beat.boot, beat.seq)
        return await self.heartbeat(beat)

    async def accept_deregister(
        self, cap: str | None, node_id: str, boot: int, seq: int
    ) -> dict[str, Any]:
        """A clean shutdown's call: its own operation, so a heartbeat's capability cannot
        deregister a node."""
        self._check_node_call(cap, auth.OP_DEREGISTER, node_id, boot, seq, ())
        await self._advance(node_id, boot, seq)
        return await self.deregister_node(node_id, boot, seq)

    def _check_node_call(
        self, cap: str | None, op: str, node_id: str, boot: int, seq: int, claim: tuple[Any, ...]
    ) -> None:
        """A node's registry calls carry a capability minted with the cluster secret."""
        extra = auth.node_call_extra(boot, seq, *claim)
        secret = self.cfg.cluster_secret
        auth.check(
            secret, cap, op, auth.ANY_CHUNK, node_id, extra=extra, max_ttl=auth.NODE_CALL_TTL
        )

    async def _advance(self, node_id: str, boot: int, seq: int) -> None:
        # in the metadata store, so every API process refuses a call another one accepted
        if not await self.meta.advance_node_sequence(node_id, boot, seq):
            raise Forbidden("a node call seen before (replayed or out of order) is refused")

    async def heartbeat(self, beat: Heartbeat) -> dict[str, Any]:
        """Record a node as up until ``heartbeat_timeout`` from now, unless a later call of
        the node (its deregistration, a later heartbeat) was recorded first: the two store
        calls (``_advance``, then this write) are not one, so two API processes may run a
        node's calls' writes out of order, and the write is conditional on the order."""
        now = self.clock()
        expires_at = now + self.cfg.heartbeat_timeout
        await self.meta.upsert_node(
            NodeRecord(
                node_id=beat.node_id,
                host=beat.host,
                port=beat.port,
                zone=beat.zone,
                capacity_bytes=beat.capacity_bytes,
                used_bytes=beat.used_bytes,
                status=NODE_UP,
                last_heartbeat=now,
                expires_at=expires_at,
                disk_id=beat.disk_id,
                boot=beat.boot,
                seq=beat.seq,
            )
        )
        return {"ok": True, "expires_at": expires_at}

    async def deregister_node(self, node_id: str, boot: int, seq: int) -> dict[str, Any]:
        # a tombstone (see repair), recording the call so no earlier heartbeat's write wins
        await self.meta.deregister_node(node_id, self.clock(), boot, seq)
        return {"ok": True}

    async def node_list(self) -> dict[str, Any]:
        now = self.clock()
        nodes = await self.meta.list_nodes()
        return {
            "replication_factor": self.cfg.replication_factor,
            "live": sum(1 for n in nodes if n.expires_at > now),
            "nodes": [
                {
                    "node_id": n.node_id,
                    "url": n.url,
                    "zone": n.zone,
                    "capacity_bytes": n.capacity_bytes,
                    "used_bytes": n.used_bytes,
                    "status": n.status if n.expires_at > now else "down",
                    "live": n.expires_at > now,
                    "last_heartbeat": n.last_heartbeat,
                }
                for n in nodes
            ],
        }


def _token_body(rec: TokenRecord) -> dict[str, Any]:
    return {
        "token_id": auth.token_id(rec.token_hash),
        "tenant": rec.tenant,
        "role": rec.role,
        "label": rec.label,
        "created_at": rec.created_at,
    }
