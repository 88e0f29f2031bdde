"""The node registry's routes: storage nodes announce themselves to the API.

| method | path               | answer                                                     |
|--------|--------------------|------------------------------------------------------------|
| POST   | /nodes/heartbeat   | ``{"ok", "expires_at"}``: the node is live until then       |
| POST   | /nodes/deregister  | ``{"ok"}``: the node's entry is marked down (a tombstone) on a clean shutdown |

Nodes configured with DFS_API_URL call these with a capability signed with the cluster
secret instead of a bearer token (the auth middleware lets them through, see
``dfs.api.context.PUBLIC``); ``dfs.api.registry`` checks it and records the entry. Both
bodies carry ``boot`` (the node's boot number, greater at every start) and ``seq`` (growing
with every call), which the capability binds, with the heartbeat's host, port, capacity and
disk identity: a call is accepted once, and never after a newer one.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dfs import auth, protocol
from dfs.api.bodies import unicode_text
from dfs.api.context import REGISTRY
from dfs.api.registry import Heartbeat
from dfs.errors import InvalidRequest
from dfs.ids import parse_node_id
from dfs.server import json_response, read_json


def _count(body: dict[str, Any], name: str, default: object = None) -> int:
    value = body.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidRequest(f"{name} must be a non-negative integer")
    return value


def _boot_seq(body: dict[str, Any]) -> tuple[int, int]:
    boot, seq = _count(body, "boot"), _count(body, "seq")
    if boot > auth.MAX_BOOT or seq > auth.MAX_BOOT:
        raise InvalidRequest("boot and seq must be below 2**63")
    if not boot or not seq:  # (0, 0) is the store's unordered write, which always applies
        raise InvalidRequest("boot and seq must be at least 1")
    return boot, seq


def _heartbeat(body: dict[str, Any], node_id: str) -> Heartbeat:
    host = body.get("host")
    if (
        not isinstance(host, str)
        or not 0 < len(host) <= 255
        or not host.isprintable()
        or any(c in host for c in "/@ ?#")
    ):
        raise InvalidRequest("host must be an address or host name")
    unicode_text(host, "host")
    port = _count(body, "port")
    cap = _count(body, "capacity_bytes", 0)
    used = _count(body, "used_bytes", 0)
    if not 0 < port <= 65535:
        raise InvalidRequest("port must be within [1, 65535]")
    zone = body.get("zone", "")
    if not isinstance(zone, str) or len(zone) > protocol.MAX_ZONE or not zone.isprintable():
        raise InvalidRequest(
            f"zone must be printable text of at most {protocol.MAX_ZONE} characters"
        )
    unicode_text(zone, "zone")
    disk_id = body.get("disk_id", "")  # absent from nodes that predate disk identities
    if not isinstance(disk_id, str) or len(disk_id) > 64:
        raise InvalidRequest("disk_id must be a string of at most 64 characters")
    unicode_text(disk_id, "disk_id")
    boot, seq = _boot_seq(body)
    return Heartbeat(node_id, host, port, zone, cap, used, boot, seq, disk_id)


async def node_heartbeat(request: web.Request) -> web.Response:
    body = await read_json(request, 64 * 1024)
    registry = request.app[REGISTRY]
    node_id = parse_node_id(body.get("node_id"))
    cap = request.headers.get(protocol.CAPABILITY)
    return json_response(await registry.accept_heartbeat(cap, _heartbeat(body, node_id)))


async def node_deregister(request: web.Request) -> web.Response:
    body = await read_json(request, 4096)
    registry = request.app[REGISTRY]
    node_id = parse_node_id(body.get("node_id"))
    cap = request.headers.get(protocol.CAPABILITY)
    boot, seq = _boot_seq(body)
    return json_response(await registry.accept_deregister(cap, node_id, boot, seq))


def add_routes(app: web.Application) -> None:
    app.router.add_post(protocol.NODE_HEARTBEAT, node_heartbeat)
    app.router.add_post(protocol.NODE_DEREGISTER, node_deregister)
