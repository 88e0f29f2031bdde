"""The API's node-drain routes (an admin token only): empty a storage node before removing it.

| method | path                           | answer                                          |
|--------|--------------------------------|-------------------------------------------------|
| POST   | /admin/nodes/{node_id}/drain   | start draining: no new chunks, copies elsewhere |
| GET    | /admin/nodes/{node_id}/drain   | how far it got; ``done`` once it can go         |
| DELETE | /admin/nodes/{node_id}/drain   | cancel: the node takes new chunks again         |

Every answer is the drain's status (``dfs.api.drain.DrainSet.status``). Repair does the
copying (``dfs.api.repair``); ``dfs-client admin drain NODE --wait`` polls the status.
"""

from __future__ import annotations

from aiohttp import web

from dfs import protocol
from dfs.api.context import COORDINATOR, admin
from dfs.ids import parse_node_id
from dfs.server import json_response


async def _answer(request: web.Request, draining: bool | None) -> web.Response:
    admin(request)
    node_id = parse_node_id(request.match_info["node_id"])
    coord = request.app[COORDINATOR]
    if draining is not None:
        await coord.drains.set_draining(node_id, draining)
    return json_response(await coord.drains.status(node_id, coord.rf))


async def start_drain(request: web.Request) -> web.Response:
    return await _answer(request, True)


async def drain_status(request: web.Request) -> web.Response:
    return await _answer(request, None)


async def cancel_drain(request: web.Request) -> web.Response:
    return await _answer(request, False)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_post(protocol.ADMIN_NODE_DRAIN, start_drain)
    r.add_get(protocol.ADMIN_NODE_DRAIN, drain_status)
    r.add_delete(protocol.ADMIN_NODE_DRAIN, cancel_drain)
